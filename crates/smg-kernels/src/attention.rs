//! Multi-head self-attention for inference (timm's `Attention` after its `qkv` projection,
//! SPEC.md §3.2) straight from the packed `qkv` rows: per (batch, head) one task computes
//! `softmax(q·kᵀ/√d)·v` with two strided gemm calls and a vectorised softmax, writing its head's
//! columns of the output. Nothing is permuted or copied into per-head tensors first.

use crate::matmul::{gemm_raw, gemm_strided};
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
    // Adding 1.5·2²³ rounds to an integer (ties to even) in the low mantissa bits: no call
    // to a rounding function, which the baseline x86-64 target would not inline.
    let t = xc * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (xc - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let mut p = 1.0 / 5040.0f32;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let y = p * f32::from_bits(((ni + 127) as u32) << 23);
    if x < -86.0 {
        0.0
    } else {
        y
    }
}

/// Softmax of one row in place (max and sum in 16 lanes so that every pass vectorises).
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = crate::lane_max(row);
    row.iter_mut().for_each(|v| *v = exp(*v - max));
    let inv = 1.0 / crate::lane_sum(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

crate::vectorised! {
    /// Softmax of `scale ·` every `l`-long row of `s` in place, at the CPU's vector width.
    fn softmax_rows(s: &mut [f32], l: usize, scale: f32) {
        for row in s.chunks_mut(l) {
            row.iter_mut().for_each(|v| *v *= scale);
            softmax_row(row);
        }
    }
}

/// `qkv` is `(b·l) × 3d` (for each token: all heads' q, then k, then v, timm's layout), with
/// `d = heads · hd`; returns the attention output `(b·l) × d` (heads concatenated), before `proj`.
pub fn attention(qkv: &[f32], b: usize, l: usize, heads: usize, hd: usize) -> Vec<f32> {
    attention_at(qkv, b, l, heads, hd, crate::Precision::F32)
}

/// [`attention`] at a precision: with [`Precision::Bf16`](crate::Precision) and AMX, both
/// products run on bf16 tiles (f32 accumulation, softmax in f32).
pub fn attention_at(qkv: &[f32], b: usize, l: usize, heads: usize, hd: usize, precision: crate::Precision) -> Vec<f32> {
    let d = heads * hd;
    let mut out = vec![0f32; b * l * d];
    let dst = SendPtr(out.as_mut_ptr());
    attention_into(qkv, b, l, heads, hd, precision, |r, c0, vals| {
        let dst = dst;
        // Safety: each (row, head) segment is written by exactly one task.
        unsafe { std::ptr::copy_nonoverlapping(vals.as_ptr(), dst.0.add(r * d + c0), vals.len()) };
    });
    out
}

/// The attention kernel with its output handed over row segment by row segment:
/// `sink(row, column, values)` receives, for every token row of the `(b·l) × d` output, the
/// `hd` values of one head starting at `column` (each segment exactly once, from several
/// tasks at once).
pub fn attention_into(
    qkv: &[f32],
    b: usize,
    l: usize,
    heads: usize,
    hd: usize,
    precision: crate::Precision,
    sink: impl Fn(usize, usize, &[f32]) + Sync,
) {
    let d = heads * hd;
    assert_eq!(qkv.len(), b * l * 3 * d, "qkv is not {b}·{l} × 3·{d}");
    let scale = (hd as f32).powf(-0.5);
    if precision == crate::Precision::Bf16 && l >= 16 && crate::amx::available() {
        #[cfg(target_arch = "x86_64")]
        return attention_amx(qkv, b, l, heads, hd, &sink);
    }
    (0..b * heads).into_par_iter().for_each_init(
        || (vec![0f32; l * l], vec![0f32; l * hd]),
        |(s, o), bh| {
            let (bi, h) = (bh / heads, bh % heads);
            one_head(qkv, (bi, h), (l, heads, hd), scale, s, o);
            for (r, row) in o.chunks(hd).enumerate() {
                sink(bi * l + r, h * hd, row);
            }
        },
    );
}

/// Head `h` of item `bi` in f32: the weights `s = softmax(scale·QKᵀ)` (`l × l`) and the output
/// `o = s·V` (`l × hd`), from the packed `qkv` rows of `l` tokens, `heads` heads of `hd`.
fn one_head(qkv: &[f32], (bi, h): (usize, usize), (l, heads, hd): (usize, usize, usize), scale: f32, s: &mut [f32], o: &mut [f32]) {
    let d = heads * hd;
    let base = qkv[bi * l * 3 * d..].as_ptr();
    // Safety: q, k, v are strided views inside `qkv`; `s` and `o` hold `l·l` and `l·hd` values.
    unsafe {
        let (q, k, v) = (base.add(h * hd), base.add(d + h * hd), base.add(2 * d + h * hd));
        // s (l × l) = q (l × hd, row stride 3d) · kᵀ (hd × l: column stride 3d).
        gemm_raw(l, l, hd, s.as_mut_ptr(), l, false, q, 3 * d, (k, 3 * d as isize, 1), gemm::Parallelism::None);
        softmax_rows(s, l, scale);
        gemm_raw(l, hd, l, o.as_mut_ptr(), hd, false, s.as_ptr(), l, (v, 1, 3 * d as isize), gemm::Parallelism::None);
    }
}

/// Gradient of [`attention`] (f32) with respect to its packed `qkv`, given the gradient `dout`
/// of its `(b·l) × d` output; returns `(b·l) × 3d` in the layout of `qkv`. Per (item, head) the
/// attention weights `P = softmax(s·QKᵀ)` are recomputed, then `dP = dO·Vᵀ`,
/// `dS = s·P ⊙ (dP − rowsum(P ⊙ dP))`, `dQ = dS·K`, `dK = dSᵀ·Q`, `dV = Pᵀ·dO`
/// (FlashAttention's backward pass without the tiling; `s = hd^−½`). One item per task.
pub fn attention_backward(qkv: &[f32], dout: &[f32], b: usize, l: usize, heads: usize, hd: usize) -> Vec<f32> {
    backward_impl(qkv, None, dout, b, l, heads, hd)
}

/// [`attention`] that also returns the attention weights `P` of every (item, head), `b·heads`
/// blocks of `l × l`, for [`attention_backward_saved`] (training: the backward pass then reads
/// them instead of recomputing `QKᵀ` and the softmax).
pub fn attention_saving(qkv: &[f32], b: usize, l: usize, heads: usize, hd: usize) -> (Vec<f32>, Vec<f32>) {
    let d = heads * hd;
    assert_eq!(qkv.len(), b * l * 3 * d, "qkv is not {b}·{l} × 3·{d}");
    let scale = (hd as f32).powf(-0.5);
    let mut out = crate::uninit_f32(b * l * d);
    let mut probs = crate::uninit_f32(b * heads * l * l);
    let dst = SendPtr(out.as_mut_ptr());
    probs.par_chunks_mut(l * l).enumerate().for_each_init(
        || vec![0f32; l * hd],
        |o, (bh, s)| {
            let (bi, h) = (bh / heads, bh % heads);
            one_head(qkv, (bi, h), (l, heads, hd), scale, s, o);
            for (r, row) in o.chunks(hd).enumerate() {
                let dst = dst;
                // Safety: each (row, head) segment of `out` is written by exactly one task.
                unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), dst.0.add((bi * l + r) * d + h * hd), hd) };
            }
        },
    );
    (out, probs)
}

/// [`attention_backward`] from the weights `probs` that [`attention_saving`] returned.
pub fn attention_backward_saved(qkv: &[f32], probs: &[f32], dout: &[f32], b: usize, l: usize, heads: usize, hd: usize) -> Vec<f32> {
    assert_eq!(probs.len(), b * heads * l * l, "attention weights are not {b}·{heads} × {l} × {l}");
    backward_impl(qkv, Some(probs), dout, b, l, heads, hd)
}

fn backward_impl(qkv: &[f32], probs: Option<&[f32]>, dout: &[f32], b: usize, l: usize, heads: usize, hd: usize) -> Vec<f32> {
    let d = heads * hd;
    assert_eq!(qkv.len(), b * l * 3 * d, "qkv is not {b}·{l} × 3·{d}");
    assert_eq!(dout.len(), b * l * d, "output gradient is not {b}·{l} × {d}");
    let scale = (hd as f32).powf(-0.5);
    // Every value is written: dQ, dK and dV of every head cover each row's 3·d columns.
    let mut dqkv = crate::uninit_f32(b * l * 3 * d);
    let none = gemm::Parallelism::None;
    dqkv.par_chunks_mut(l * 3 * d).enumerate().for_each_init(
        || (vec![0f32; l * l], vec![0f32; l * l]),
        |(p, dp), (bi, dblk)| {
            let base = qkv[bi * l * 3 * d..].as_ptr();
            let dob = dout[bi * l * d..].as_ptr();
            for h in 0..heads {
                // Safety: q, k, v, dO are strided views inside `qkv` and `dout`; the destination
                // views lie inside this task's block `dblk`.
                unsafe {
                    let (q, k, v, dov) = (base.add(h * hd), base.add(d + h * hd), base.add(2 * d + h * hd), dob.add(h * hd));
                    let p: &[f32] = match probs {
                        Some(saved) => &saved[(bi * heads + h) * l * l..(bi * heads + h + 1) * l * l],
                        None => {
                            gemm_raw(l, l, hd, p.as_mut_ptr(), l, false, q, 3 * d, (k, 3 * d as isize, 1), none);
                            softmax_rows(p, l, scale);
                            p
                        }
                    };
                    gemm_raw(l, l, hd, dp.as_mut_ptr(), l, false, dov, d, (v, 3 * d as isize, 1), none);
                    for (pr, dr) in p.chunks(l).zip(dp.chunks_mut(l)) {
                        let delta = dot(pr, dr);
                        dr.iter_mut().zip(pr).for_each(|(g, &pv)| *g = scale * pv * (*g - delta));
                    }
                    // dV = Pᵀ·dO (Pᵀ as a view with its strides swapped)
                    let lt = (l as isize, 1);
                    gemm_strided(
                        l,
                        hd,
                        l,
                        dblk.as_mut_ptr().add(2 * d + h * hd),
                        3 * d,
                        false,
                        (p.as_ptr(), lt.0, lt.1),
                        (dov, 1, d as isize),
                        none,
                    );
                    // dQ = dS·K
                    gemm_raw(l, hd, l, dblk.as_mut_ptr().add(h * hd), 3 * d, false, dp.as_ptr(), l, (k, 1, 3 * d as isize), none);
                    // dK = dSᵀ·Q
                    gemm_strided(
                        l,
                        hd,
                        l,
                        dblk.as_mut_ptr().add(d + h * hd),
                        3 * d,
                        false,
                        (dp.as_ptr(), lt.0, lt.1),
                        (q, 1, 3 * d as isize),
                        none,
                    );
                }
            }
        },
    );
    dqkv
}

/// Σ aᵢ·bᵢ in 16 lanes (so that it vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The bf16 tile operands of attention, per (batch item, head): `Q (l × hd)` as the left
/// operand, `Kᵀ` and `V` as right operands. Filled from the packed `qkv` rows
/// ([`Heads::from_qkv`]) or, by [`Heads::writer`], straight from the `qkv` product's epilogue.
#[derive(Debug)]
pub struct Heads {
    b: usize,
    l: usize,
    heads: usize,
    hd: usize,
    q: Vec<crate::amx::PackedA>,
    k: Vec<crate::amx::PackedB>,
    v: Vec<crate::amx::PackedB>,
}

impl Heads {
    /// Zeroed operands for `b` items of `l` tokens and `heads` heads of width `hd`.
    pub fn zeros(b: usize, l: usize, heads: usize, hd: usize) -> Self {
        let n = b * heads;
        Self {
            b,
            l,
            heads,
            hd,
            q: (0..n).map(|_| crate::amx::PackedA::zeros(l, hd)).collect(),
            k: (0..n).map(|_| crate::amx::PackedB::zeros(l, hd)).collect(),
            v: (0..n).map(|_| crate::amx::PackedB::zeros(hd, l)).collect(),
        }
    }

    /// Whether these operands have this shape (so that they can be reused).
    pub fn fits(&self, b: usize, l: usize, heads: usize, hd: usize) -> bool {
        (self.b, self.l, self.heads, self.hd) == (b, l, heads, hd)
    }

    /// The operands of the packed `qkv` rows `(b·l) × 3d` (timm's layout).
    pub fn from_qkv(qkv: &[f32], b: usize, l: usize, heads: usize, hd: usize) -> Self {
        let mut h = Self::zeros(b, l, heads, hd);
        let w = h.writer();
        let row = 3 * heads * hd;
        (0..b * l).into_par_iter().for_each(|r| unsafe { w.put(r, 0, &qkv[r * row..(r + 1) * row]) });
        h
    }

    /// A writer that takes `qkv` rows piece by piece, from several tasks at once.
    pub fn writer(&mut self) -> HeadsWriter<'_> {
        HeadsWriter {
            l: self.l,
            heads: self.heads,
            hd: self.hd,
            q: self.q.iter_mut().map(|a| a.writer()).collect(),
            k: self.k.iter_mut().map(|b| b.writer()).collect(),
            v: self.v.iter_mut().map(|b| b.writer()).collect(),
        }
    }
}

/// Stores pieces of `qkv` rows into [`Heads`].
pub struct HeadsWriter<'a> {
    l: usize,
    heads: usize,
    hd: usize,
    q: Vec<crate::amx::BlockWriter<'a>>,
    k: Vec<crate::amx::BWriter<'a>>,
    v: Vec<crate::amx::BWriter<'a>>,
}

impl HeadsWriter<'_> {
    /// Stores `vals` as columns `c0 ..` of row `r` (token `r % l` of item `r / l`) of `qkv`.
    ///
    /// # Safety
    /// No two tasks may store the same element concurrently.
    pub unsafe fn put(&self, r: usize, c0: usize, vals: &[f32]) {
        let (bi, t) = (r / self.l, r % self.l);
        let (d, hd) = (self.heads * self.hd, self.hd);
        let mut c = c0;
        let end = c0 + vals.len();
        while c < end {
            // One run inside one head of one of q, k, v.
            let (part, h, off) = (c / d, (c % d) / hd, c % hd);
            let run = (hd - off).min(end - c);
            let seg = &vals[c - c0..c - c0 + run];
            let i = bi * self.heads + h;
            match part {
                0 => self.q[i].put_row(t, off, seg),
                1 => self.k[i].put_column(t, off, seg),
                _ => self.v[i].put_row(t, off, seg),
            }
            c += run;
        }
    }
}

/// Both products of attention on AMX tiles, one (batch, head) per task: `S = Q·Kᵀ` in f32,
/// the scaled softmax of each row rounded straight into the tiles of `P`, then `O = P·V`.
#[cfg(target_arch = "x86_64")]
fn attention_amx(qkv: &[f32], b: usize, l: usize, heads: usize, hd: usize, sink: &(impl Fn(usize, usize, &[f32]) + Sync)) {
    attention_heads(&Heads::from_qkv(qkv, b, l, heads, hd), sink)
}

/// Attention of prepared [`Heads`] on AMX (which must be [`available`](crate::amx::available)),
/// the output handed to `sink` as in [`attention_into`].
#[cfg(target_arch = "x86_64")]
pub fn attention_heads(ops: &Heads, sink: &(impl Fn(usize, usize, &[f32]) + Sync)) {
    use crate::amx::PackedA;
    let (b, l, heads, hd) = (ops.b, ops.l, ops.heads, ops.hd);
    let scale = (hd as f32).powf(-0.5);
    let lp = l.div_ceil(32) * 32;
    let hp = hd.div_ceil(32) * 32;
    (0..b * heads).into_par_iter().for_each_init(
        // P is l × lp: the padding columns get exp(−∞) = 0 from the softmax itself, so each
        // row is a whole number of vectors.
        || (crate::Aligned::<f32>::zeroed(lp * lp), PackedA::zeros(l, lp), crate::Aligned::<f32>::zeroed(lp * hp)),
        |(s, pa, o), bh| {
            let bi = bh / heads;
            unsafe {
                crate::amx::configure();
                crate::amx::product_into(&ops.q[bh], &ops.k[bh], s.as_mut_ptr(), lp);
            }
            for r in 0..l {
                s[r * lp + l..(r + 1) * lp].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
            }
            pa.fill_rows_serial(|r, out| scaled_softmax(&s[r * lp..(r + 1) * lp], scale, out));
            unsafe {
                crate::amx::product_into(pa, &ops.v[bh], o.as_mut_ptr(), hp);
                crate::amx::release();
            }
            for r in 0..l {
                sink(bi * l + r, (bh % heads) * hd, &o[r * hp..r * hp + hd]);
            }
        },
    );
}

/// AMX is x86-64 only: never called elsewhere ([`crate::amx::available`] is false there).
#[cfg(not(target_arch = "x86_64"))]
pub fn attention_heads(_ops: &Heads, _sink: &(impl Fn(usize, usize, &[f32]) + Sync)) {
    unreachable!("AMX tiles exist on x86-64 only")
}

/// `out = softmax(scale · row)`.
fn scaled_softmax(row: &[f32], scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        unsafe { scaled_softmax_avx512(row, scale, out) };
        return;
    }
    out.iter_mut().zip(row).for_each(|(o, &v)| *o = v * scale);
    softmax_row(out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scaled_softmax_avx512(row: &[f32], scale: f32, out: &mut [f32]) {
    out.iter_mut().zip(row).for_each(|(o, &v)| *o = v * scale);
    softmax_row(out);
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

    /// The saving forward pass gives the same output, and the backward pass from its weights
    /// the same gradient as recomputing them.
    #[test]
    fn saved_weights_match_recomputed() {
        let (b, l, heads, hd) = (3, 21, 2, 8);
        let d = heads * hd;
        let qkv: Vec<f32> = (0..b * l * 3 * d).map(|i| ((i * 7919) % 1000) as f32 * 2e-3 - 1.0).collect();
        let dout: Vec<f32> = (0..b * l * d).map(|i| ((i * 104729) % 1000) as f32 * 2e-3 - 1.0).collect();
        let (out, probs) = attention_saving(&qkv, b, l, heads, hd);
        assert_eq!(out, attention(&qkv, b, l, heads, hd));
        assert_eq!(attention_backward_saved(&qkv, &probs, &dout, b, l, heads, hd), attention_backward(&qkv, &dout, b, l, heads, hd));
    }

    #[test]
    fn matches_naive_attention() {
        let (b, l, heads, hd) = (2, 13, 3, 8);
        let d = heads * hd;
        let qkv: Vec<f32> = (0..b * l * 3 * d).map(|i| ((i * 2654435761usize) % 1000) as f32 / 250.0 - 2.0).collect();
        let out = attention(&qkv, b, l, heads, hd);
        check(&out, &qkv, b, l, heads, hd, 1e-5);
        // On AMX: bf16 operands (8 bits), so a looser bound.
        let (l2, hd2) = (40, 40);
        let d2 = heads * hd2;
        let qkv2: Vec<f32> = (0..b * l2 * 3 * d2).map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0).collect();
        let out2 = attention_at(&qkv2, b, l2, heads, hd2, crate::Precision::Bf16);
        check(&out2, &qkv2, b, l2, heads, hd2, 0.03);
    }

    fn check(out: &[f32], qkv: &[f32], b: usize, l: usize, heads: usize, hd: usize, tol: f64) {
        let d = heads * hd;
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
                        assert!((got - r).abs() < tol, "{bi} {h} {i} {c}: {got} vs {r}");
                    }
                }
            }
        }
    }
}
