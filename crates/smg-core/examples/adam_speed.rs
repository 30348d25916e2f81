//! One AdamW step with gradient clipping over the medium masked ViT's 5.36M parameters (its
//! tensor sizes), in place (CPU f32 fast path) against the same update composed of candle ops
//! (`SMG_FAST=0`), alternately in one run, best of `SMG_BENCH_REPS` (default 10).
//! `cargo run --release -p smg-core --example adam_speed`
use candle_core::{Device, Tensor, Var};
use smg_core::adam::Adam;
use std::time::Instant;

fn main() {
    smg_core::alloc::keep_freed_memory();
    smg_core::threads::settle_thread_count();
    let reps: usize = std::env::var("SMG_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let dev = Device::Cpu;
    // Six blocks of width 256 (qkv, proj, fc1, fc2, norms, biases), embeddings and the head.
    let mut shapes: Vec<Vec<usize>> = vec![vec![1024, 256], vec![256, 512], vec![1024, 256], vec![1024]];
    for _ in 0..6 {
        shapes.extend([vec![768, 256], vec![768], vec![256, 256], vec![256], vec![1024, 256], vec![1024], vec![256, 1024]]);
        shapes.extend([vec![256], vec![256], vec![256], vec![256], vec![256]]);
    }
    let vars: Vec<(String, Var)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("p{i}"), Var::from_tensor(&Tensor::randn(0f32, 0.02, s.as_slice(), &dev).unwrap()).unwrap()))
        .collect();
    let params: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let loss = vars.iter().map(|(_, v)| v.as_tensor().sqr().unwrap().sum_all().unwrap()).reduce(|a, b| (a + b).unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let mut opt = Adam::adamw(vars, 1e-4, 0.9, 0.95, 0.05).unwrap();
    let (mut fast, mut composed) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps {
        for (on, best) in [(true, &mut fast), (false, &mut composed)] {
            smg_kernels::set_fast(on);
            let t = Instant::now();
            opt.step_clipped(&grads, 1.0).unwrap();
            *best = best.min(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "{:.2}M parameters, {} tensors: AdamW step + clipping, candle ops {:.1} ms, in place {:.1} ms ({:.1}×)",
        params as f64 / 1e6,
        shapes.len(),
        composed * 1e3,
        fast * 1e3,
        composed / fast
    );
}
