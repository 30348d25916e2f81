//! Convolutions with few output channels (a PatchGAN discriminator's last layer: 128 → 1 channel,
//! 4 × 4) on channels-last copies of the input. As im2col + gemm such a layer writes `C·kh·kw`
//! patch values per output value for a product with one row: most of its time was the patch
//! matrix (4 GFLOP/s). Here every output value is a sum of per-tap dot products over the
//! contiguous channels, the input gradient per-tap `axpy`s, the weight gradient one channel
//! vector per tap summed over the batch in order (bit-reproducible).

use super::Geom;
use rayon::prelude::*;

/// Whether the channels-last path serves a layer: at most 4 output channels from at least 16
/// input channels (below that a channel vector is too short to fill the vector lanes).
pub(super) fn applies(g: &Geom, cout: usize) -> bool {
    cout <= 4 && g.c >= 16
}

/// `(B, C, H·W)` → `(B, H·W, C)`.
fn channels_last(x: &[f32], b: usize, c: usize, hw: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(b * c * hw);
    for item in x.chunks_exact(c * hw).take(b) {
        out.extend_from_slice(&smg_kernels::matmul::transpose(item, c, hw));
    }
    out
}

/// `(cout, C, kh, kw)` → `(cout, kh·kw, C)`: one channel vector per tap.
fn taps_last(w: &[f32], cout: usize, c: usize, kk: usize) -> Vec<f32> {
    channels_last(w, cout, c, kk)
}

/// The input position `(iy, ix)` read by output `(oy, ox)` through tap `(i, j)`, if inside.
#[inline(always)]
fn source(g: &Geom, (oy, ox): (usize, usize), (i, j): (usize, usize)) -> Option<usize> {
    let iy = (oy * g.sh + i).checked_sub(g.ph).filter(|&v| v < g.h)?;
    let ix = (ox * g.sw + j).checked_sub(g.pw).filter(|&v| v < g.w)?;
    Some(iy * g.w + ix)
}

smg_kernels::vectorised! {
    /// One item's output `(cout, oh·ow)` from its channels-last input `(H·W, C)` and the
    /// channels-last taps `(cout, kh·kw, C)`; products in lanes of 16, summed once per value.
    fn forward_item(g: Geom, xt: &[f32], wt: &[f32], bias: &[f32], cout: usize, out: &mut [f32]) {
        let (oh, ow) = g.out_hw();
        let (c, kk) = (g.c, g.kh * g.kw);
        let n = c / 16 * 16;
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = [0f32; 16];
                    let mut tail = 0f32;
                    for i in 0..g.kh {
                        for j in 0..g.kw {
                            let Some(p) = source(&g, (oy, ox), (i, j)) else { continue };
                            let (wv, xv) = (&wt[(co * kk + i * g.kw + j) * c..][..c], &xt[p * c..][..c]);
                            for (wc, xc) in wv[..n].chunks_exact(16).zip(xv[..n].chunks_exact(16)) {
                                for l in 0..16 {
                                    acc[l] += wc[l] * xc[l];
                                }
                            }
                            for k in n..c {
                                tail += wv[k] * xv[k];
                            }
                        }
                    }
                    out[(co * oh + oy) * ow + ox] = bias[co] + acc.iter().sum::<f32>() + tail;
                }
            }
        }
    }
}

smg_kernels::vectorised! {
    /// One item's channels-last input gradient `(H·W, C)` (zeroed by the caller) from its output
    /// gradient `(cout, oh·ow)`: per output value and tap, `dxt[p] += dy · w_tap`.
    fn input_grad_item(g: Geom, dy: &[f32], wt: &[f32], cout: usize, dxt: &mut [f32]) {
        let (oh, ow) = g.out_hw();
        let (c, kk) = (g.c, g.kh * g.kw);
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let d = dy[(co * oh + oy) * ow + ox];
                    for i in 0..g.kh {
                        for j in 0..g.kw {
                            let Some(p) = source(&g, (oy, ox), (i, j)) else { continue };
                            let wv = &wt[(co * kk + i * g.kw + j) * c..][..c];
                            dxt[p * c..][..c].iter_mut().zip(wv).for_each(|(o, &w)| *o += d * w);
                        }
                    }
                }
            }
        }
    }
}

smg_kernels::vectorised! {
    /// The weight gradient of one (output channel, tap): `Σ_items Σ_positions dy · x_p` over
    /// channels-last inputs, items in order.
    fn weight_grad_tap(g: Geom, xt: &[f32], dy: &[f32], b: usize, cout: usize, tap: (usize, usize, usize), acc: &mut [f32]) {
        let (co, i, j) = tap;
        let (oh, ow) = g.out_hw();
        let (c, hw) = (g.c, g.h * g.w);
        for item in 0..b {
            let x = &xt[item * hw * c..][..hw * c];
            let d = &dy[(item * cout + co) * oh * ow..][..oh * ow];
            for oy in 0..oh {
                for ox in 0..ow {
                    let Some(p) = source(&g, (oy, ox), (i, j)) else { continue };
                    let v = d[oy * ow + ox];
                    acc.iter_mut().zip(&x[p * c..][..c]).for_each(|(a, &x)| *a += v * x);
                }
            }
        }
    }
}

/// `conv(x) + bias`, `(B, C, H, W)` → `(B, cout, oh, ow)`.
pub(super) fn forward(g: Geom, x: &[f32], b: usize, w: &[f32], bias: &[f32], cout: usize) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let hw = g.h * g.w;
    let xt = channels_last(x, b, g.c, hw);
    let wt = taps_last(w, cout, g.c, g.kh * g.kw);
    let mut y = smg_kernels::uninit_f32(b * cout * oh * ow);
    y.par_chunks_mut(cout * oh * ow).zip(xt.par_chunks(hw * g.c)).for_each(|(out, xt)| forward_item(g, xt, &wt, bias, cout, out));
    y
}

/// The input and weight gradients asked for, from the forward input `x`, the weight and `dy`.
pub(super) fn backward(
    g: Geom,
    x: &[f32],
    b: usize,
    w: &[f32],
    dy: &[f32],
    cout: usize,
    (want_x, want_w): (bool, bool),
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (oh, ow) = g.out_hw();
    let (hw, kk) = (g.h * g.w, g.kh * g.kw);
    let dx = want_x.then(|| {
        let wt = taps_last(w, cout, g.c, kk);
        let mut dx = smg_kernels::uninit_f32(b * g.c * hw);
        dx.par_chunks_mut(g.c * hw).zip(dy.par_chunks(cout * oh * ow)).for_each(|(dx, dy)| {
            let mut dxt = vec![0f32; hw * g.c];
            input_grad_item(g, dy, &wt, cout, &mut dxt);
            dx.copy_from_slice(&smg_kernels::matmul::transpose(&dxt, hw, g.c));
        });
        dx
    });
    let dw = want_w.then(|| {
        let xt = channels_last(x, b, g.c, hw);
        // One task per (output channel, tap); each sums over the whole batch in order.
        let per_tap: Vec<Vec<f32>> = (0..cout * kk)
            .into_par_iter()
            .map(|t| {
                let (co, ij) = (t / kk, t % kk);
                let mut acc = vec![0f32; g.c];
                weight_grad_tap(g, &xt, dy, b, cout, (co, ij / g.kw, ij % g.kw), &mut acc);
                acc
            })
            .collect();
        // (cout, kh·kw, C) → (cout, C, kh, kw).
        let mut dw = vec![0f32; cout * g.c * kk];
        for (t, acc) in per_tap.iter().enumerate() {
            let (co, ij) = (t / kk, t % kk);
            for (ci, &v) in acc.iter().enumerate() {
                dw[(co * g.c + ci) * kk + ij] = v;
            }
        }
        dw
    });
    (dx, dw)
}
