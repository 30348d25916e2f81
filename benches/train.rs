//! Benchmark of record for training speed: seconds per full training step (batch → forward →
//! loss → backward → clip → optimizer) of every trainer at its default batch, at the small and
//! the medium configurations, on seeded synthetic batches of the real shapes (the step's cost
//! does not depend on the audio). Prints one Markdown table naming the CPU and the features the
//! kernels can use.
//!
//! Run: `cargo bench --bench train` (≈10 minutes on 2 cores; `SMG_BENCH_QUICK=1` times the small
//! configurations only, with fewer steps). Each row is the median of its timed steps after one
//! untimed warm-up step. `SMG_BENCH_ONLY=<text>` keeps the rows whose trainer and configuration
//! contain that text (`SMG_BENCH_ONLY="tokenizer medium"`), e.g. to profile one of them, and
//! `SMG_BENCH_STEPS=<n>` times n steps per row instead of 4 (more steady state in a profile).
//! `SMG_BENCH_REPEAT=<n>` times every row n times, its PyTorch reference in alternation with it,
//! and prints the medians (the benchmark of record on a shared machine).
//! With `SMG_TORCH_PYTHON` set to a Python that has torch, each row is followed at once by the
//! same step in PyTorch f32 (`benches/train_torch.py`, same shapes, losses and optimisers, same
//! thread count), and the table gains its time, its parameter count and the ratio. Where the CPU
//! has a native bf16 dot product (AVX-512 BF16), every row is also timed with bf16 products
//! (`smg train --precision bf16`) in a column of its own, and then in f32 once more (the f32
//! column keeps the faster of its two runs, so the heap's growth in a model's first run does not
//! count against f32).

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `steps` calls of `f` after one warm-up call.
fn time(steps: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..steps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn rand_unit(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(smg_tests::seeded_uniform(shape.iter().product(), seed), shape, &Device::Cpu).unwrap()
}

fn params(n: usize) -> String {
    format!("{:.2}M", n as f64 / 1e6)
}

/// Parameters of the model `build` makes from a fresh seeded variable map.
fn count(build: impl FnOnce(candle_nn::VarBuilder)) -> usize {
    let svm = smg_core::SeededVarMap::new(0);
    build(svm.var_builder(DType::F32, &Device::Cpu));
    svm.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}

fn maskgit(cfg: &smg_maskgit::Config, steps: usize) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let tc = smg_maskgit::train::TrainConfig { batch_size: 64, ..Default::default() };
    let mut t = smg_maskgit::train::Trainer::new(cfg, tc, dir.path(), false, &Device::Cpu).unwrap();
    let n = 256;
    let ids: Vec<u32> = (0..n * cfg.seq_len()).map(|i| (i * 2654435761usize % cfg.vocab) as u32).collect();
    let tokens = Tensor::from_vec(ids, (n, cfg.seq_len()), &Device::Cpu).unwrap();
    let cond = rand_unit(&[n, cfg.cond_dim], 1);
    let data = smg_maskgit::train::TokenData { tokens: &tokens, cond: &cond };
    let mut k = 0;
    let s = time(steps, || {
        let order: Vec<usize> = (0..64).map(|i| (k * 64 + i) % n).collect();
        k += 1;
        t.train_step(&data, &order).unwrap();
    });
    (s, count(|vb| drop(smg_maskgit::MaskedVit::new(cfg, vb).unwrap())))
}

fn tokenizer(cfg: &smg_tokenizer::Config, disc: bool, steps: usize) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let tc = smg_tokenizer::TrainConfig { batch_size: 16, disc_start: if disc { 0 } else { usize::MAX }, ..Default::default() };
    let mut t = smg_tokenizer::Trainer::new(cfg, tc, dir.path(), false, &Device::Cpu).unwrap();
    let mut k = 0;
    let s = time(steps, || {
        k += 1;
        t.train_step(&rand_unit(&[16, 1, 80, 128], k)).unwrap();
    });
    (s, count(|vb| drop(smg_tokenizer::SpecVqGan::new(cfg, vb).unwrap())))
}

fn clap(cfg: &smg_clap::AudioEncoderConfig, steps: usize) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let tc = smg_clap::ClapTrainConfig { batch_size: 64, ..Default::default() };
    let mut t = smg_clap::ClapTrainer::new(cfg, tc, dir.path(), false, &Device::Cpu).unwrap();
    let n = 128;
    let mels: Vec<Tensor> = (0..n).map(|i| rand_unit(&[80, 256], 100 + i as u64)).collect();
    let captions: Vec<Vec<String>> = (0..n).map(|i| vec![format!("caption {}", i % 16)]).collect();
    let categories: Vec<String> = (0..n).map(|i| format!("category {}", i % 16)).collect();
    let text: HashMap<String, Tensor> = (0..16).map(|i| (format!("caption {i}"), rand_unit(&[smg_clap::TEXT_DIM], 500 + i))).collect();
    let data = smg_clap::corpus::ClapData { mels: &mels, captions: &captions, categories: &categories, text: &text };
    let mut k = 0;
    let s = time(steps, || {
        let order: Vec<usize> = (0..64).map(|i| (k * 64 + i) % n).collect();
        k += 1;
        t.train_step(&data, &order).unwrap();
    });
    (s, count(|vb| drop(smg_clap::AudioEncoder::new(cfg, vb).unwrap())))
}

fn hifigan(steps: usize) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    // `smg train vocoder --init universal`'s defaults: V1, batch 2, discriminators at width / 4.
    let gen = smg_vocoder::GeneratorConfig::Hifigan(smg_vocoder::HifiGanConfig::v1());
    let tc = smg_vocoder::TrainConfig { batch_size: 2, disc_width_div: 4, ..Default::default() };
    let mut t = smg_vocoder::Trainer::new(&gen, tc, dir.path(), false, None, &Device::Cpu).unwrap();
    let mt = smg_audio::MelTransform::hifigan();
    let wave = rand_unit(&[2, 8192], 9).affine(0.3, 0.0).unwrap();
    let mels: Vec<Tensor> = (0..2)
        .map(|i| {
            let w: Vec<f32> = wave.get(i).unwrap().to_vec1().unwrap();
            smg_audio::array_to_tensor(&mt.log_mel(&w).unwrap(), &Device::Cpu).unwrap()
        })
        .collect();
    let mel = Tensor::stack(&mels, 0).unwrap();
    let frames = 8192 / 256;
    let mel = mel.narrow(2, 0, frames).unwrap();
    let s = time(steps, || {
        t.train_step(&wave, &mel, 2e-4).unwrap();
    });
    (s, count(|vb| drop(smg_vocoder::HifiGan::new(&smg_vocoder::HifiGanConfig::v1(), vb).unwrap())))
}

/// The same training step in PyTorch f32 (`benches/train_torch.py`, run by `python`): median
/// seconds per step and parameter count of the row named `row`, or `None` where the script has
/// no such row or fails (its error is printed).
fn torch_row(python: &str, threads: usize, steps: usize, row: &str) -> Option<(f64, usize)> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/train_torch.py");
    let out = std::process::Command::new(python).arg(script).arg(threads.to_string()).arg(steps.to_string()).arg(row).output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("PyTorch reference failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("PyTorch reference could not start ({python}): {e}");
            return None;
        }
    };
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let name = format!("{} {}", v["trainer"].as_str()?, v["config"].as_str()?);
        if name != row {
            return None;
        }
        Some((v["s_per_step"].as_f64()?, v["params"].as_u64()? as usize))
    })
}

fn main() {
    // What every trainer of the command line runs with (SMG_BENCH_MALLOC_DEFAULT=1 measures without).
    if std::env::var("SMG_BENCH_MALLOC_DEFAULT").map_or(true, |v| v != "1") {
        smg_core::alloc::keep_freed_memory();
    }
    smg_core::threads::settle_thread_count();
    let quick = std::env::var("SMG_BENCH_QUICK").is_ok_and(|v| v == "1");
    let steps = std::env::var("SMG_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 2 } else { 4 });
    let repeat = std::env::var("SMG_BENCH_REPEAT").ok().and_then(|s| s.parse().ok()).unwrap_or(1usize).max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("CPU: {}; {threads} threads; features: {}", smg_tests::cpu_name(), smg_tests::cpu_features());
    println!();
    let torch = std::env::var("SMG_TORCH_PYTHON").ok();
    // bf16 columns where the CPU computes bf16 products natively (`smg train --precision bf16`).
    let bf16 = smg_core::fast::set_train_precision_checked(smg_core::fast::Precision::Bf16);
    smg_core::fast::set_train_precision(smg_core::fast::Precision::F32);
    let mut head = vec!["trainer", "config", "batch", "parameters", "s / step"];
    if bf16 {
        head.push("s / step, bf16 products");
    }
    if torch.is_some() {
        head.extend(["PyTorch f32 parameters", "PyTorch f32 s / step", "ratio"]);
        if bf16 {
            head.push("ratio, bf16 products");
        }
    }
    println!("| {} |", head.join(" | "));
    println!("|{}", "---|".repeat(head.len()));
    let only = std::env::var("SMG_BENCH_ONLY").unwrap_or_default();
    // Runs a row when it is selected (its timing closure is only called then).
    let row = |name: &str, cfg: &str, batch: &str, medium: bool, f: &dyn Fn() -> (f64, usize)| {
        if (quick && medium) || !format!("{name} {cfg}").contains(only.as_str()) {
            return;
        }
        // `repeat` rounds of (ours f32, ours bf16, ours f32 again, PyTorch) in alternation, so a
        // slow spell of a shared machine falls on both sides; each cell is the median of its rounds.
        let (mut ss, mut sbs, mut tss) = (Vec::new(), Vec::new(), Vec::new());
        let (mut p, mut tp) = (0, None);
        for _ in 0..repeat {
            let (mut s, n) = f();
            p = n;
            // With a bf16 column, f32 is timed again after it and the faster of its two runs
            // kept: the first run of a model pays for the heap growing, which would favour bf16.
            if bf16 {
                smg_core::fast::set_train_precision(smg_core::fast::Precision::Bf16);
                sbs.push(f().0);
                smg_core::fast::set_train_precision(smg_core::fast::Precision::F32);
                s = s.min(f().0);
            }
            ss.push(s);
            if let Some(py) = &torch {
                if let Some((ts, n)) = torch_row(py, threads, steps, &format!("{name} {cfg}")) {
                    tss.push(ts);
                    tp = Some(n);
                }
            }
        }
        let s = median(ss);
        let sb = bf16.then(|| median(sbs));
        let mut cells = vec![name.to_string(), cfg.to_string(), batch.to_string(), params(p), format!("{s:.3}")];
        cells.extend(sb.map(|sb| format!("{sb:.3}")));
        if torch.is_some() {
            match tp {
                Some(tp) => {
                    let ts = median(tss);
                    cells.extend([params(tp), format!("{ts:.3}"), format!("{:.2}×", s / ts)]);
                    cells.extend(sb.map(|sb| format!("{:.2}×", sb / ts)));
                }
                None => {
                    cells.extend(["".into(), "not in the reference".into(), "".into()]);
                    cells.extend(sb.map(|_| String::new()));
                }
            }
        }
        println!("| {} |", cells.join(" | "));
    };
    let (vit, tok) = ("64 × 80 tokens", "16 × 128 frames");
    row("masked ViT", "small", vit, false, &|| maskgit(&smg_maskgit::Config::small(), steps));
    row("masked ViT", "medium", vit, true, &|| maskgit(&smg_maskgit::Config::medium(), steps));
    row("SpecVQGAN tokenizer", "small", tok, false, &|| tokenizer(&smg_tokenizer::Config::small(), false, steps));
    row("SpecVQGAN tokenizer + discriminator", "small", tok, false, &|| tokenizer(&smg_tokenizer::Config::small(), true, steps));
    row("SpecVQGAN tokenizer", "medium", tok, true, &|| tokenizer(&smg_tokenizer::Config::medium(), false, steps));
    row("SpecVQGAN tokenizer + discriminator", "medium", tok, true, &|| tokenizer(&smg_tokenizer::Config::medium(), true, steps));
    row("CLAP audio branch", "small", "64 × 256 frames", false, &|| clap(&smg_clap::AudioEncoderConfig::small(), steps));
    row("CLAP audio branch", "medium", "64 × 256 frames", true, &|| clap(&smg_clap::AudioEncoderConfig::medium(), steps));
    row("HiFi-GAN V1 fine-tuning", "universal", "2 × 8192 samples", true, &|| hifigan(2));
}
