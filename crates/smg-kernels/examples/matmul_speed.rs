//! Quick look at product speed on this machine: GFLOP/s of f32 gemm and AMX bf16 for the ViT's
//! shapes. `cargo run --release -p smg-kernels --example matmul_speed`.
use smg_kernels::{Act, PackedWeight, Precision};
use std::time::Instant;

fn main() {
    println!("AMX available: {}", smg_kernels::amx::available());
    for &(m, n, k) in &[(532, 2304, 768), (532, 768, 768), (532, 3072, 768), (532, 768, 3072)] {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let b = vec![0.1f32; n];
        let pw = PackedWeight::new(w, n, k);
        for p in [Precision::F32, Precision::Bf16] {
            pw.forward(&x, m, Some(&b), Act::None, p);
            let reps = 20;
            let t = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(pw.forward(&x, m, Some(&b), Act::None, p));
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!("{m}x{n}x{k} {p:?}: {:.2} ms, {:.0} GFLOP/s", s * 1e3, 2.0 * (m * n * k) as f64 / s / 1e9);
        }
    }
}
