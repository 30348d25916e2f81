//! The tokenizer's 3 × 3 convolutions (batch 16 of 80 × 128 crops, SpecVQGAN medium's channel
//! counts per level): forward, input gradient and weight gradient on the f32 direct kernels
//! (`conv3x3`) against bf16 products (`conv3x3_amx`: AMX tiles, or the AVX-512 BF16 dot product
//! where there is no AMX), each time including the packing of its operands.
//! `cargo run --release -p smg-kernels --example conv3x3_speed` (machines with either).
use smg_kernels::{conv3x3, conv3x3_amx as amx};
use std::time::Instant;

fn best<R>(mut f: impl FnMut() -> R) -> f64 {
    std::hint::black_box(f());
    (0..3)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(f());
            s.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    // As the trainers run (smg_core::alloc::keep_freed_memory): big blocks reused, not mapped afresh.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: only changes malloc's parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
    if !amx::applies(32, 32) {
        println!("no AMX and no AVX-512 BF16 on this machine");
        return;
    }
    let kind = if smg_kernels::amx::available() { "AMX" } else { "dot" };
    let b = 16;
    println!("| shape (ci → co, h × w) | forward f32 / {kind} ms | input grad f32 / {kind} ms | weight grad f32 / {kind} ms | sum ratio |");
    println!("|---|---|---|---|---|");
    for &(ci, co, h, w) in &[
        (8usize, 8usize, 80usize, 128usize),
        (8, 16, 40, 64),
        (16, 16, 80, 128),
        (16, 32, 40, 64),
        (32, 32, 40, 64),
        (32, 64, 20, 32),
        (64, 64, 20, 32),
        (64, 128, 10, 16),
        (128, 128, 10, 16),
        (128, 128, 5, 8),
    ] {
        let x: Vec<f32> = (0..b * ci * h * w).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let dy: Vec<f32> = (0..b * co * h * w).map(|i| ((i * 6007) % 1000) as f32 / 1000.0 - 0.5).collect();
        let wt: Vec<f32> = (0..co * ci * 9).map(|i| ((i * 104729) % 1000) as f32 / 1e4).collect();
        let bias = vec![0.1f32; co];
        let f32_fwd = best(|| conv3x3::forward(&conv3x3::pad_planes(&x, b * ci, h, w), b, ci, h, w, &wt, &bias, co));
        let amx_fwd =
            best(|| amx::forward(&amx::pack_pairs(&x, b, ci, h, w), b, ci, h, w, &amx::PackedTaps::forward(&wt, co, ci), Some(&bias), co));
        let f32_dx = best(|| conv3x3::input_grad(&conv3x3::pad_planes(&dy, b * co, h, w), b, co, h, w, &wt, ci));
        let amx_dx =
            best(|| amx::forward(&amx::pack_pairs(&dy, b, co, h, w), b, co, h, w, &amx::PackedTaps::input_grad(&wt, co, ci), None, ci));
        let f32_dw = best(|| conv3x3::weight_grad(&conv3x3::pad_planes(&x, b * ci, h, w), &dy, b, ci, co, h, w));
        let amx_dw =
            best(|| amx::weight_grad(&amx::pack_planes(&x, b, ci, h, w), &amx::pack_grad_pairs(&dy, b, co, h, w), b, ci, co, h, w));
        println!(
            "| {ci} → {co}, {h} × {w} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}× |",
            f32_fwd * 1e3,
            amx_fwd * 1e3,
            f32_dx * 1e3,
            amx_dx * 1e3,
            f32_dw * 1e3,
            amx_dw * 1e3,
            (f32_fwd + f32_dx + f32_dw) / (amx_fwd + amx_dx + amx_dw)
        );
    }
}
