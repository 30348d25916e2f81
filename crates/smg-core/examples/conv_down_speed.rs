//! The tokenizer's down-sampling convolution (pad bottom/right by one, 3 × 3 at stride 2),
//! forward + backward through candle's autograd, batch 16 of the small and medium tokenizers'
//! shapes: padding + strided im2col conv against `smg_core::conv_down` (the same-size direct
//! convolution at the odd positions), best of 5 each, alternately in one run, and the largest
//! relative difference of the weight gradients. `SMG_TRAIN_PRECISION=bf16` for the AMX kernels.
//! `cargo run --release -p smg-core --example conv_down_speed`
use candle_core::{Device, Tensor, Var, D};
use std::time::Instant;
/// Padding + strided conv: seconds and the weight gradient.
fn old(x: &Var, w: &Var, b: &Var) -> (f64, Tensor) {
    let t = Instant::now();
    let xp = x.pad_with_zeros(D::Minus1, 0, 1).unwrap().pad_with_zeros(D::Minus2, 0, 1).unwrap();
    let y = smg_core::conv::conv2d(&xp, w, Some(b), 2, 0).unwrap();
    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    (t.elapsed().as_secs_f64(), g.get(w).unwrap().clone())
}
/// `conv2d_down`: seconds and the weight gradient.
fn new(x: &Var, w: &Var, b: &Var) -> (f64, Tensor) {
    let t = Instant::now();
    let y = smg_core::conv_down::conv2d_down(x, w, Some(b)).unwrap();
    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    (t.elapsed().as_secs_f64(), g.get(w).unwrap().clone())
}
fn main() {
    smg_core::threads::settle_thread_count();
    smg_core::threads::on_pool(|| {
        let dev = Device::Cpu;
        for &(c, h, w) in &[(8usize, 80usize, 128usize), (16, 80, 128), (16, 40, 64), (32, 40, 64), (64, 20, 32), (128, 10, 16)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (16, c, h, w), &dev).unwrap()).unwrap();
            let wt = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (c, c, 3, 3), &dev).unwrap() * 0.1).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::zeros(c, candle_core::DType::F32, &dev).unwrap()).unwrap();
            let (mut o, mut n) = (f64::INFINITY, f64::INFINITY);
            let mut d = 0f32;
            for _ in 0..5 {
                let (t1, g1) = old(&x, &wt, &b);
                let (t2, g2) = new(&x, &wt, &b);
                o = o.min(t1);
                n = n.min(t2);
                d = (g1 - &g2).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
                    / g2.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            }
            println!("{c} ch {h}x{w}: old {:.2} ms new {:.2} ms  rel diff {d:.1e}", o * 1e3, n * 1e3);
        }
    });
}
