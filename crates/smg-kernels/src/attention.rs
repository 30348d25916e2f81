//! Multi-head self-attention for inference (timm's `Attention` after its `qkv` projection,
//! SPEC.md §3.2) straight from the packed `qkv` rows: per (batch, head) one task computes
//! `softmax(q·kᵀ/√d)·v` with two strided gemm calls and a vectorised softmax, writing its head's
//! columns of the output. Nothing is permuted or copied into per-head tensors first.

use crate::matmul::gemm_raw;
use crate::SendPtr;
use rayon::prelude::*;

/// eˣ in f32: `n = round(x·log₂e)`, `r = x − n·ln 2` in two parts (Cody–Waite, so `r` stays
/// exact), a degree-7 polynomial for `eʳ` on |r| ≤ ½ ln 2, times `2ⁿ`; relative error below 2e-7
/// on [−86, 88] (tested), and exactly 0 below −86 instead of a subnormal: in a softmax such
/// terms are below 1e-37 of the row sum, and subnormal operands would slow the following
/// products by orders of magnitude. No branch, so it vectorises.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(-86.0, 88.0);
    let n = (xc * std::f32::consts::LOG2_E).round();
    let r = (xc - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let mut p = 1.0 / 5040.0f32;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let y = p * f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -86.0 {
        0.0
    } else {
        y
    }
}

/// Softmax of one row in place.
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_rows_avx512(s: &mut [f32], l: usize) {
    s.chunks_mut(l).for_each(softmax_row);
}

fn softmax_rows(s: &mut [f32], l: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        unsafe { softmax_rows_avx512(s, l) };
        return;
    }
    s.chunks_mut(l).for_each(softmax_row);
}

/// `qkv` is `(b·l) × 3d` (for each token: all heads' q, then k, then v, timm's layout), with
/// `d = heads · hd`; returns the attention output `(b·l) × d` (heads concatenated), before `proj`.
pub fn attention(qkv: &[f32], b: usize, l: usize, heads: usize, hd: usize) -> Vec<f32> {
    let d = heads * hd;
    assert_eq!(qkv.len(), b * l * 3 * d, "qkv is not {b}·{l} × 3·{d}");
    let mut out = vec![0f32; b * l * d];
    let dst = SendPtr(out.as_mut_ptr());
    let scale = (hd as f32).powf(-0.5);
    (0..b * heads).into_par_iter().for_each_init(
        || vec![0f32; l * l],
        |s, bh| {
            let dst = dst;
            let (bi, h) = (bh / heads, bh % heads);
            let base = qkv[bi * l * 3 * d..].as_ptr();
            // Safety: q, k, v are strided views inside `qkv`; this task alone writes columns
            // h·hd .. (h+1)·hd of rows bi·l .. (bi+1)·l of `out`.
            unsafe {
                let (q, k, v) = (base.add(h * hd), base.add(d + h * hd), base.add(2 * d + h * hd));
                // s (l × l) = q (l × hd, row stride 3d) · kᵀ (hd × l: column stride 3d).
                gemm_raw(l, l, hd, s.as_mut_ptr(), l, false, q, 3 * d, (k, 3 * d as isize, 1), gemm::Parallelism::None);
                s.iter_mut().for_each(|x| *x *= scale);
                softmax_rows(s, l);
                gemm_raw(l, hd, l, dst.0.add(bi * l * d + h * hd), d, false, s.as_ptr(), l, (v, 1, 3 * d as isize), gemm::Parallelism::None);
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        for i in -86_000..=88_000 {
            let x = i as f32 / 1000.0;
            let e = ((exp(x) as f64) / (x as f64).exp() - 1.0).abs();
            worst = worst.max(e);
        }
        assert!(worst < 2e-7, "{worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-90.0), 0.0);
        assert!(exp(-85.9).is_normal());
    }

    #[test]
    fn matches_naive_attention() {
        let (b, l, heads, hd) = (2, 13, 3, 8);
        let d = heads * hd;
        let qkv: Vec<f32> = (0..b * l * 3 * d).map(|i| ((i * 2654435761usize) % 1000) as f32 / 250.0 - 2.0).collect();
        let out = attention(&qkv, b, l, heads, hd);
        for bi in 0..b {
            for h in 0..heads {
                for i in 0..l {
                    let q = |t: usize, c: usize| qkv[(bi * l + t) * 3 * d + h * hd + c] as f64;
                    let k = |t: usize, c: usize| qkv[(bi * l + t) * 3 * d + d + h * hd + c] as f64;
                    let v = |t: usize, c: usize| qkv[(bi * l + t) * 3 * d + 2 * d + h * hd + c] as f64;
                    let logits: Vec<f64> = (0..l).map(|j| (0..hd).map(|c| q(i, c) * k(j, c)).sum::<f64>() / (hd as f64).sqrt()).collect();
                    let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = logits.iter().map(|x| (x - mx).exp()).collect();
                    let z: f64 = w.iter().sum();
                    for c in 0..hd {
                        let r: f64 = (0..l).map(|j| w[j] / z * v(j, c)).sum();
                        let got = out[(bi * l + i) * d + h * hd + c] as f64;
                        assert!((got - r).abs() < 1e-5, "{bi} {h} {i} {c}: {got} vs {r}");
                    }
                }
            }
        }
    }
}
