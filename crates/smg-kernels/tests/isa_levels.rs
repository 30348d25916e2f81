//! Every run-time-dispatched kernel gives the same numbers (to rounding) at every instruction-set
//! level this CPU runs (`smg_kernels::isa`): AVX-512, AVX2 + FMA and the portable code. One test
//! function, since the level is process-wide.

use smg_kernels::isa::{available, set_isa, Isa};

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 6.0 - 3.0
        })
        .collect()
}

/// All the dispatched kernels on fixed inputs, concatenated.
fn outputs() -> Vec<Vec<f32>> {
    let x = data(1037, 1);
    let bias = data(1037, 2);
    let mut g = x.clone();
    smg_kernels::gelu::gelu_inplace(&mut g);
    let mut bg = vec![0f32; x.len()];
    smg_kernels::gelu::bias_gelu(&x, &bias, &mut bg);
    let mut gb = bias.clone();
    smg_kernels::gelu::gelu_backward(&mut gb, &x);
    let (d, rows) = (61, 17);
    let (w, b) = (data(d, 3), data(d, 4));
    let mut ln = vec![0f32; d * rows];
    for (o, r) in ln.chunks_mut(d).zip(x.chunks(d)) {
        smg_kernels::vit::layer_norm_row(r, &w, &b, 1e-6, o);
    }
    let (bt, l, heads, hd) = (2, 19, 3, 8);
    let qkv = data(bt * l * 3 * heads * hd, 5);
    let att = smg_kernels::attention::attention(&qkv, bt, l, heads, hd);
    let dout = data(bt * l * heads * hd, 6);
    let datt = smg_kernels::attention::attention_backward(&qkv, &dout, bt, l, heads, hd);
    let (c, t) = (3, 77);
    let (up, down) = smg_kernels::snake::default_filters();
    let alpha: Vec<f32> = data(c, 7).iter().map(|v| v.abs() + 0.1).collect();
    let snake = smg_kernels::snake::anti_aliased_snake(&x[..c * t], c, t, &alpha, &alpha, &up, &down);
    let (ci, co, h, wd) = (5, 16, 6, 37);
    let xp = smg_kernels::conv3x3::pad_planes(&data(2 * ci * h * wd, 8), 2 * ci, h, wd);
    let conv = smg_kernels::conv3x3::forward(&xp, 2, ci, h, wd, &data(co * ci * 9, 9), &data(co, 10), co);
    let t = smg_kernels::matmul::transpose(&x[..37 * 27], 37, 27);
    vec![g, bg, gb, ln, att, datt, snake, conv, t]
}

#[test]
fn every_level_agrees_with_the_portable_code() {
    let levels = available();
    assert_eq!(set_isa(Isa::Portable), Isa::Portable);
    let reference = outputs();
    for &level in &levels[1..] {
        assert_eq!(set_isa(level), level);
        assert_eq!(smg_kernels::isa(), level);
        for (k, (got, want)) in outputs().iter().zip(&reference).enumerate() {
            assert_eq!(got.len(), want.len());
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in got.iter().zip(want).enumerate() {
                assert!((a - b).abs() <= 2e-5 * scale, "kernel {k}, element {i} at {level:?}: {a} vs {b}");
            }
        }
    }
    // A cap above the CPU's level gives the CPU's.
    assert_eq!(set_isa(Isa::Avx512), Isa::detect());
}
