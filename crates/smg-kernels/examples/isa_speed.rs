//! Time of the run-time-dispatched element-wise kernels at every vector level this CPU runs
//! (`smg_kernels::isa`), on the masked ViT's training and inference shapes, one thread, best of
//! 20. `cargo run --release -p smg-kernels --example isa_speed`.
#[path = "support/mod.rs"]
mod support;
use smg_kernels::isa::{available, set_isa};
use support::best;

fn main() {
    let data = |n: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7919) % 2000) as f32 / 500.0 - 2.0).collect() };
    // GELU over a medium ViT's MLP activations (64 × 81 tokens × 1536), LayerNorm over its rows
    // (width 384), attention over the paper ViT's (batch 2, 266 tokens, 8 heads of 96).
    let (x, g) = (data(64 * 81 * 1536), data(64 * 81 * 1536));
    let (rows, d) = (64 * 81, 384);
    let (w, b) = (vec![1.0f32; d], vec![0.0f32; d]);
    let (bt, l, heads, hd) = (2, 266, 8, 96);
    let qkv = data(bt * l * 3 * heads * hd);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a thread pool");
    println!("| kernel | {} |", available().iter().map(|i| i.name()).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(available().len()));
    let mut rows_out: Vec<(&str, Vec<f64>)> = vec![
        ("GELU forward", vec![]),
        ("GELU backward", vec![]),
        ("LayerNorm rows", vec![]),
        ("attention (one forward)", vec![]),
        ("transpose 5184 × 1536", vec![]),
        ("3 × 3 conv, 8 × 32 → 32 × 40 × 128", vec![]),
    ];
    // A small tokenizer's convolution (batch 8 of 40 × 128 planes, 32 channels in and out).
    let (cb, cc, ch, cw) = (8, 32, 40, 128);
    let xp = smg_kernels::conv3x3::pad_planes(&data(cb * cc * ch * cw), cb * cc, ch, cw);
    let (cwt, cbias) = (data(cc * cc * 9), vec![0.0f32; cc]);
    for level in available() {
        set_isa(level);
        let mut y = x.clone();
        rows_out[0].1.push(best(20, || {
            y.copy_from_slice(&x);
            smg_kernels::gelu::gelu_inplace(&mut y);
        }));
        let mut gb = g.clone();
        rows_out[1].1.push(best(20, || {
            gb.copy_from_slice(&g);
            smg_kernels::gelu::gelu_backward(&mut gb, &x);
        }));
        let mut out = vec![0f32; rows * d];
        rows_out[2].1.push(best(20, || {
            for (o, r) in out.chunks_mut(d).zip(x.chunks(d)) {
                smg_kernels::vit::layer_norm_row(r, &w, &b, 1e-6, o);
            }
        }));
        rows_out[4].1.push(pool.install(|| best(20, || drop(std::hint::black_box(smg_kernels::matmul::transpose(&x, 64 * 81, 1536))))));
        rows_out[3]
            .1
            .push(pool.install(|| best(20, || drop(std::hint::black_box(smg_kernels::attention::attention(&qkv, bt, l, heads, hd))))));
        rows_out[5].1.push(
            pool.install(|| best(10, || drop(std::hint::black_box(smg_kernels::conv3x3::forward(&xp, cb, cc, ch, cw, &cwt, &cbias, cc))))),
        );
    }
    let conv_flop = 2.0 * (cb * cc * cc * 9 * ch * cw) as f64;
    println!(
        "(3 × 3 conv: {})",
        rows_out[5].1.iter().map(|s| format!("{:.0} GFLOP/s", conv_flop / s / 1e9)).collect::<Vec<_>>().join(", ")
    );
    for (name, t) in rows_out {
        println!("| {name} | {} |", t.iter().map(|s| format!("{:.2} ms", s * 1e3)).collect::<Vec<_>>().join(" | "));
    }
}
