//! Benchmark of record for inference speed: the paper-size text-to-audio pipeline on CPU for the 9.85 s
//! clip (random weights where no paper checkpoint exists): MiniLM text embedding, 16 CFG
//! iterations of the 24 × 768 masked ViT (batch 2: conditional + unconditional), the 72M
//! SpecVQGAN decoder, HiFi-GAN universal. Per-stage seconds, total and real-time factor, for
//!
//! - `plain`: candle's own ops (`SMG_FAST=0`), this run's baseline;
//! - `fast f32`: the fused CPU kernels (`smg_kernels`), f32 arithmetic;
//! - `fast bf16`: the same with bf16 products (f32 accumulation) on AMX where the CPU has it, for
//!   the ViT and the decoder (`SMG_PRECISION=bf16`), and in a last row for HiFi-GAN's ResBlocks too
//!   (`SMG_VOCODER_PRECISION=bf16`, which costs some mel-L1: `benches/SPEED.md`).
//!
//! The bf16 row is checked against f32 on the same weights: the max abs difference of one
//! forward's logits (tolerance: 5% of the largest logit) and the share of sampled tokens that
//! agree on a fixed seed. Beside them, in the same run, `benches/vit_torch.py` times PyTorch on
//! the same ViT (set `SMG_TORCH_PYTHON` to a Python with torch; skipped otherwise).
//!
//! Run: `cargo bench --bench pipeline` (about 5 minutes on 2 cores; `SMG_BENCH_QUICK=1` skips
//! the plain baseline of the whole pipeline and times one ViT forward of it instead). On a GPU:
//! `SMG_BENCH_DEVICE=cuda cargo bench --features cuda --bench pipeline` (`scripts/gpu-check.sh`);
//! there the CPU kernels are never taken, so every row runs candle's CUDA ops.

use candle_core::{DType, Device, Tensor};
use smg_core::fast::{set_precision, Precision};
use smg_core::SeededVarMap;
use smg_maskgit::{Guidance, MaskedVit, Sampler};
use std::time::Instant;

/// The device of this run: the CPU, or CUDA device 0 with `SMG_BENCH_DEVICE=cuda`.
fn device() -> &'static Device {
    static DEV: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEV.get_or_init(|| match std::env::var("SMG_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0).unwrap_or_else(|e| panic!("SMG_BENCH_DEVICE=cuda, but no CUDA device: {e}")),
        _ => Device::Cpu,
    })
}

fn secs<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    device().synchronize().unwrap();
    (v, t.elapsed().as_secs_f64())
}

fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..reps).map(|_| secs(&mut f).1).fold(f64::INFINITY, f64::min)
}

struct Models {
    text: Option<smg_clap::TextEncoder>,
    vit: MaskedVit,
    tok: smg_tokenizer::SpecVqGan,
    voc: smg_vocoder::HifiGan,
    voc_note: &'static str,
}

fn load(data: &std::path::Path) -> Models {
    let dev = device().clone();
    let vit = MaskedVit::new(&smg_maskgit::Config::paper(), SeededVarMap::new(0).frozen_builder(DType::F32, &dev)).unwrap();
    let tok =
        smg_tokenizer::SpecVqGan::new(&smg_tokenizer::Config::paper(), SeededVarMap::new(1).frozen_builder(DType::F32, &dev)).unwrap();
    let (voc, voc_note) = match smg_vocoder::HifiGan::load_v1(&data.join("weights/hifigan_universal.safetensors"), &dev) {
        Ok(v) => (v, "universal checkpoint"),
        Err(_) => {
            let vb = SeededVarMap::new(2).frozen_builder(DType::F32, &dev);
            (smg_vocoder::HifiGan::new(&smg_vocoder::HifiGanConfig::v1(), vb).unwrap(), "V1, random weights")
        }
    };
    let text = smg_clap::TextEncoder::load(&data.join("weights/minilm"), &dev).ok();
    Models { text, vit, tok, voc, voc_note }
}

/// Seconds of each stage: text, generator, decoder, vocoder.
fn run(m: &Models, cond: &Tensor) -> [f64; 4] {
    let text = m.text.as_ref().map_or(0.0, |t| secs(|| t.embed(&["a dog barking in the rain"]).unwrap()).1);
    let cfg = &m.vit.config;
    let start = Tensor::full(cfg.mask_id(), (1, cfg.seq_len()), device()).unwrap();
    let sampler = Sampler { guidance: Box::new(Guidance::Constant(3.0)), ..Sampler::default() };
    let (out, gen) = secs(|| sampler.sample(&m.vit, &start, cond).unwrap());
    let grid = out.tokens.reshape((1, cfg.rows, cfg.cols)).unwrap();
    let (unit, dec) = secs(|| m.tok.decode(&grid).unwrap());
    let mel = smg_audio::norm::to_vocoder_range(&smg_audio::tensor_to_array(&unit.get(0).unwrap().clamp(-1f32, 1f32).unwrap()).unwrap());
    let mel = smg_audio::array_to_tensor(&mel, device()).unwrap().unsqueeze(0).unwrap();
    let (_, voc) = secs(|| candle_core::Module::forward(&m.voc, &mel).unwrap());
    [text, gen, dec, voc]
}

fn torch_reference() -> Option<serde_json::Value> {
    let py = std::env::var("SMG_TORCH_PYTHON").ok()?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/vit_torch.py");
    let threads = rayon_threads();
    let out = std::process::Command::new(py).arg(script).arg(threads.to_string()).output().ok()?;
    if !out.status.success() {
        eprintln!("PyTorch reference failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).lines().last()?.as_bytes()).ok()
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn main() {
    let data = std::env::var_os("SMG_DATA_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| std::path::PathBuf::from("data"));
    let quick = std::env::var("SMG_BENCH_QUICK").is_ok_and(|v| v == "1");
    let m = load(&data);
    let cfg = m.vit.config.clone();
    let audio = (cfg.cols * 16 * 256) as f64 / 22050.0;
    let cond = Tensor::randn(0f32, 0.05, (1, cfg.cond_dim), device()).unwrap();
    let x2 = Tensor::full(cfg.mask_id(), (2, cfg.seq_len()), device()).unwrap();
    let c2 = Tensor::cat(&[&cond, &cond.zeros_like().unwrap()], 0).unwrap();
    println!(
        "device: {:?}, CPU: {} ({}), threads: {}, text encoder: {}, vocoder: {}",
        device(),
        smg_tests::cpu_name(),
        smg_tests::cpu_features(),
        rayon_threads(),
        if m.text.is_some() { "MiniLM" } else { "missing (0 s)" },
        m.voc_note
    );

    // One ViT forward (batch 2) per mode, and the bf16 tolerance check against f32.
    let fwd = |fast: bool, p: Precision| {
        smg_kernels::set_fast(fast);
        set_precision(p);
        m.vit.forward(&x2, &c2).unwrap();
        best(3, || m.vit.forward(&x2, &c2).unwrap())
    };
    let f_plain = fwd(false, Precision::F32);
    let f_f32 = fwd(true, Precision::F32);
    let f_bf16 = fwd(true, Precision::Bf16);
    smg_kernels::set_fast(true);
    set_precision(Precision::F32);
    let l32 = m.vit.forward(&x2, &c2).unwrap();
    set_precision(Precision::Bf16);
    let l16 = m.vit.forward(&x2, &c2).unwrap();
    let diff = (&l16 - &l32).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let top = l32.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    // Teacher-forced: the most likely code at each position in one forward, f32 vs bf16.
    let (a32, a16) = (
        l32.argmax(2).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap(),
        l16.argmax(2).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap(),
    );
    let argmax_agree = a32.iter().zip(&a16).filter(|(a, b)| a == b).count() as f64 / a32.len() as f64;
    let sample = |p| {
        set_precision(p);
        let start = Tensor::full(cfg.mask_id(), (1, cfg.seq_len()), device()).unwrap();
        let s = Sampler { guidance: Box::new(Guidance::Constant(3.0)), ..Sampler::default() };
        s.sample(&m.vit, &start, &cond).unwrap().tokens.flatten_all().unwrap().to_vec1::<u32>().unwrap()
    };
    let (t32, t16) = (sample(Precision::F32), sample(Precision::Bf16));
    let agree = t32.iter().zip(&t16).filter(|(a, b)| a == b).count() as f64 / t32.len() as f64;
    println!(
        "bf16 vs f32: max |Δlogit| = {diff:.4} (largest logit {top:.3}; tolerance 5% of it: {}); most likely code agrees at {:.0}% of positions in one forward; tokens after 16 sampled iterations agree at {:.0}% of {} (seed 0; one early difference changes every later step)",
        if diff <= 0.05 * top { "ok" } else { "EXCEEDED" },
        100.0 * argmax_agree,
        100.0 * agree,
        t32.len()
    );

    let torch = torch_reference();
    println!();
    println!("| ViT forward (batch 2, 266 tokens) | ms | vs candle plain | vs PyTorch f32 | vs PyTorch bf16 |");
    println!("|---|---|---|---|---|");
    let tf = torch.as_ref().and_then(|t| t["f32_ms"].as_f64());
    let tb = torch.as_ref().and_then(|t| t["bf16_ms"].as_f64());
    let ratio = |ms: f64, r: Option<f64>| r.map_or("–".to_string(), |r| format!("{:.2}×", ms / r));
    for (name, s) in [("candle plain (baseline)", f_plain), ("fast f32", f_f32), ("fast bf16", f_bf16)] {
        let ms = s * 1e3;
        println!("| {name} | {ms:.0} | {:.2}× | {} | {} |", s / f_plain, ratio(ms, tf), ratio(ms, tb));
    }
    if let (Some(f), Some(b)) = (tf, tb) {
        println!("| PyTorch {} f32 | {f:.0} | {:.2}× | 1.00× | |", torch.as_ref().unwrap()["torch"], f / 1e3 / f_plain);
        println!("| PyTorch bf16 | {b:.0} | {:.2}× | | 1.00× |", b / 1e3 / f_plain);
    } else {
        println!("| PyTorch | skipped (set SMG_TORCH_PYTHON to a Python with torch) | | | |");
    }

    println!();
    println!("| pipeline, {audio:.2} s clip | text | 16 CFG iterations | decoder | HiFi-GAN | total | RTF |");
    println!("|---|---|---|---|---|---|---|");
    // (name, fast kernels, precision of the ViT and decoder, precision of the vocoder)
    let mut modes: Vec<(&str, bool, Precision, Precision)> = vec![
        ("fast f32", true, Precision::F32, Precision::F32),
        ("fast bf16 (vocoder f32)", true, Precision::Bf16, Precision::F32),
        ("fast bf16, vocoder bf16 too", true, Precision::Bf16, Precision::Bf16),
    ];
    if !quick {
        modes.insert(0, ("candle plain (baseline)", false, Precision::F32, Precision::F32));
    }
    for &(name, fast, p, vp) in &modes {
        smg_kernels::set_fast(fast);
        set_precision(p);
        smg_core::fast::set_vocoder_precision(vp);
        let s = run(&m, &cond);
        let total: f64 = s.iter().sum();
        println!("| {name} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {total:.2} s | {:.2} |", s[0], s[1], s[2], s[3], total / audio);
    }
}
