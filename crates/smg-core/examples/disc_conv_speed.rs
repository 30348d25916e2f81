//! The tokenizer's PatchGAN discriminator convolutions (4 × 4; `NDF` base width, 16 by default as
//! in the small and medium tokenizers) on batch 16 of 80 × 128 mels: forward, input gradient and
//! weight gradient of each layer through `smg_core::conv::SliceConv`, best of 15, in ms.
//! `cargo run --release -p smg-core --example disc_conv_speed`
use std::time::Instant;
fn best(mut f: impl FnMut()) -> f64 {
    let mut b = f64::INFINITY;
    for _ in 0..15 {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b * 1e3
}
fn main() {
    smg_core::alloc::keep_freed_memory();
    smg_core::threads::settle_thread_count();
    smg_core::threads::on_pool(|| {
        let ndf = std::env::var("NDF").ok().and_then(|s| s.parse().ok()).unwrap_or(16usize);
        let layers = [
            (1, ndf, 80, 128, 2),
            (ndf, 2 * ndf, 40, 64, 2),
            (2 * ndf, 4 * ndf, 20, 32, 2),
            (4 * ndf, 8 * ndf, 10, 16, 1),
            (8 * ndf, 1, 9, 15, 1),
        ];
        let b = 16;
        let (mut tf, mut tb) = (0.0, 0.0);
        for &(ci, co, h, w, s) in &layers {
            let conv = smg_core::conv::SliceConv::new(ci, co, (h, w), 4, s, 1);
            let (oh, ow) = conv.out_hw();
            let x: Vec<f32> = (0..b * ci * h * w).map(|i| ((i * 7919 % 1000) as f32) / 1000.0 - 0.5).collect();
            let wt: Vec<f32> = (0..co * ci * 16).map(|i| ((i * 104729 % 1000) as f32) / 10000.0).collect();
            let bias = vec![0f32; co];
            let dy: Vec<f32> = (0..b * co * oh * ow).map(|i| ((i * 31 % 1000) as f32) / 1000.0 - 0.5).collect();
            let f = best(|| {
                std::hint::black_box(conv.forward(&x, b, &wt, &bias));
            });
            let bx = best(|| {
                std::hint::black_box(conv.backward_some(&x, b, &wt, &dy, (true, false)));
            });
            let bw = best(|| {
                std::hint::black_box(conv.backward_some(&x, b, &wt, &dy, (false, true)));
            });
            let gf = 2.0 * (b * co * oh * ow * ci * 16) as f64 / 1e9;
            println!("{ci:>3}->{co:<3} {h}x{w} s{s}: fwd {f:.2} ms ({:.0} GF/s)  dx {bx:.2}  dW {bw:.2}", gf / f * 1e3);
            tf += f;
            tb += bx + bw;
        }
        // A training step runs three forward passes (real, fake, and the generator's), two weight
        // gradients and about three input gradients per layer.
        println!("sum: forward {tf:.2} ms, backward {tb:.2} ms");
    });
}
