//! Direct 3 × 3 kernels against im2col + gemm on the medium tokenizer's convolutions (batch 8 of
//! 80 × 256 mels): forward + backward through candle's autograd, each shape timed with both
//! paths alternately in the same run (best of `SMG_BENCH_REPS`, default 5).
//! `cargo run --release -p smg-core --example conv3x3_speed`
use candle_core::{Device, Tensor, Var};
use std::time::Instant;

fn step(x: &Var, w: &Var, b: &Var) -> f64 {
    let t = Instant::now();
    let y = smg_core::conv::conv2d(x, w, Some(b), 1, 1).unwrap();
    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g.get(w).is_some());
    t.elapsed().as_secs_f64()
}

fn main() {
    smg_core::threads::settle_thread_count();
    let reps: usize = std::env::var("SMG_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let dev = Device::Cpu;
    println!("{} threads; forward + backward, ms (best of {reps})", rayon::current_num_threads());
    println!("| B × Cin → Cout × H × W | im2col + gemm | direct | ratio |");
    println!("|---|---|---|---|");
    let (mut total_old, mut total_new) = (0.0, 0.0);
    for &(ci, co, h, w) in &[
        (1, 16, 80, 256),
        (16, 16, 80, 256),
        (16, 32, 40, 128),
        (32, 32, 40, 128),
        (64, 64, 20, 64),
        (128, 128, 10, 32),
        (128, 128, 5, 16),
    ] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, ci, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (co, ci, 3, 3), &dev).unwrap() * 0.1).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::zeros(co, candle_core::DType::F32, &dev).unwrap()).unwrap();
        let (mut old, mut new) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..reps {
            smg_core::conv::set_direct_conv(false);
            old = old.min(step(&x, &wt, &b));
            smg_core::conv::set_direct_conv(true);
            new = new.min(step(&x, &wt, &b));
        }
        total_old += old;
        total_new += new;
        println!("| 8 × {ci} → {co} × {h} × {w} | {:.1} | {:.1} | {:.2} |", old * 1e3, new * 1e3, new / old);
    }
    println!("| all | {:.1} | {:.1} | {:.2} |", total_old * 1e3, total_new * 1e3, total_new / total_old);
}
