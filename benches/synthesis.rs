//! Text-to-audio synthesis speed on CPU: one full 16-iteration CFG synthesis at the
//! paper configuration (random weights: 24 × 768 ViT over 5 × 53 tokens, 72M tokenizer) and at
//! the small one, with the generator, the tokenizer decoder and the vocoder (Griffin-Lim, 32
//! iterations) timed separately. Prints a table; the real-time factor is seconds of compute per
//! second of audio (9.85 s paper clip, 2.97 s small clip). Baseline in the same run: one
//! generator forward pass, so the 32-pass synthesis can be read as a multiple of it.
//!
//! Run: `cargo bench --bench synthesis` (about 3 minutes on 2 cores).

use candle_core::{DType, Device, Tensor};
use smg_audio::{GriffinLimConfig, MelTransform};
use smg_core::SeededVarMap;
use smg_maskgit::{MaskedVit, Sampler};
use std::time::Instant;

fn secs<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

fn main() {
    let dev = Device::Cpu;
    let mt = MelTransform::hifigan();
    println!("| config | one batched call (cond + uncond) | 16-iter CFG synthesis | calls | tokenizer decode | Griffin-Lim 32 it | audio | RTF total |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, g, t, frames) in [
        ("small", smg_maskgit::Config::small(), smg_tokenizer::Config::small(), 256usize),
        ("paper", smg_maskgit::Config::paper(), smg_tokenizer::Config::paper(), 848usize),
    ] {
        let gen = MaskedVit::new(&g, SeededVarMap::new(0).var_builder(DType::F32, &dev)).unwrap();
        let tok = smg_tokenizer::SpecVqGan::new(&t, SeededVarMap::new(1).var_builder(DType::F32, &dev)).unwrap();
        let cond = Tensor::randn(0f32, 0.05, (1, g.cond_dim), &dev).unwrap();
        let start = Tensor::full(g.mask_id(), (1, g.seq_len()), &dev).unwrap();
        let x2 = Tensor::cat(&[&start, &start], 0).unwrap();
        let c2 = Tensor::cat(&[&cond, &cond.zeros_like().unwrap()], 0).unwrap();
        gen.forward(&x2, &c2).unwrap(); // warm-up
        let (_, fwd) = secs(|| gen.forward(&x2, &c2).unwrap());
        let (out, total) = secs(|| Sampler::default().sample(&gen, &start, &cond).unwrap());
        let grid = out.tokens.reshape((1, g.rows, g.cols)).unwrap();
        let (unit, dec) = secs(|| tok.decode(&grid).unwrap());
        let m = smg_audio::norm::to_vocoder_range(&smg_audio::tensor_to_array(&unit.get(0).unwrap().clamp(-1f32, 1f32).unwrap()).unwrap());
        let (_, voc) = secs(|| smg_audio::mel_to_audio(&mt, &m, &GriffinLimConfig { n_iter: 32, ..Default::default() }).unwrap());
        let audio = (frames * 256) as f64 / 22050.0;
        println!(
            "| {name} | {fwd:.3} s | {total:.2} s | 16 ({:.1}× one call) | {dec:.2} s | {voc:.2} s | {audio:.2} s | {:.2} |",
            total / fwd,
            (total + dec + voc) / audio
        );
    }
}
