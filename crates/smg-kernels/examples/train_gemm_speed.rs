//! GFLOP/s of a training step's products, f32 (`gemm` crate, operands transposed into its fast
//! orientation) against bf16 dot products (`dot_bf16`, no transposes), at the medium masked
//! ViT's and tokenizer's shapes. `cargo run --release -p smg-kernels --example train_gemm_speed`.
use smg_kernels::dot_bf16::{self, Operand};
use smg_kernels::matmul::{gemm_nn, transpose};
use std::time::Instant;

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    println!("bf16 dot product available: {}", dot_bf16::available());
    // (name, m, n, k): x·Wᵀ, dY·W and dYᵀ·x of a 5120-row linear layer; a 3×3 convolution.
    for &(name, m, n, k) in &[
        ("linear fwd 5120x1024x256", 5120, 1024, 256),
        ("linear dx 5120x256x1024", 5120, 256, 1024),
        ("linear dW 1024x256x5120", 1024, 256, 5120),
        ("conv fwd 32x163840x288", 32, 163840, 288),
        ("conv dW 32x288x163840", 32, 288, 163840),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let mut y = vec![0f32; m * n];
        let reps = 5;
        let f32s = time(reps, || gemm_nn(m, n, k, &mut y, &a, &b));
        let bt = transpose(&b, k, n);
        let f32t = time(reps, || {
            let b2 = transpose(&bt, n, k);
            gemm_nn(m, n, k, &mut y, &a, &b2)
        });
        let bf = time(reps, || dot_bf16::gemm(m, n, k, &mut y, Operand::plain(&a), Operand::plain(&b)));
        let bft = time(reps, || dot_bf16::gemm(m, n, k, &mut y, Operand::plain(&a), Operand::t(&bt)));
        let g = |s: f64| 2.0 * (m * n * k) as f64 / s / 1e9;
        if name.starts_with("conv fwd") {
            // The convolution's backward: dcols = Wᵀ·dY and dWᵀ = cols·dYᵀ (w: m × k, cols: k × n).
            let (w, cols, dy) = (&a, &b, &y);
            let mut dcols = vec![0f32; k * n];
            let f = time(reps, || {
                let wt = transpose(w, m, k);
                gemm_nn(k, n, m, &mut dcols, &wt, dy)
            });
            let bb = time(reps, || dot_bf16::gemm(k, n, m, &mut dcols, Operand::t(w), Operand::plain(dy)));
            println!("conv dcols {k}x{n}x{m}: f32 {:.1} ms, bf16 {:.1} ms", f * 1e3, bb * 1e3);
            let mut dwt = vec![0f32; k * m];
            let f = time(reps, || {
                let dyt = transpose(dy, m, n);
                gemm_nn(k, m, n, &mut dwt, cols, &dyt)
            });
            let bb = time(reps, || dot_bf16::gemm(k, m, n, &mut dwt, Operand::plain(cols), Operand::t(dy)));
            println!("conv dWt {k}x{m}x{n}: f32 {:.1} ms, bf16 {:.1} ms", f * 1e3, bb * 1e3);
        }
        println!(
            "{name}: f32 {:.1} ms ({:.0} GFLOP/s), f32 + transpose {:.1} ms, bf16 {:.1} ms ({:.0} GFLOP/s), bf16 Bᵀ {:.1} ms",
            f32s * 1e3,
            g(f32s),
            f32t * 1e3,
            bf * 1e3,
            g(bf),
            bft * 1e3
        );
    }
}
