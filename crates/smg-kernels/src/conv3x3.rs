//! Direct 3 × 3 convolution (stride 1, zero padding 1) over `(B, C, H, W)` planes, with its
//! two gradients, for training. im2col would write and read back nine copies of the input for
//! products of only 8–128 channels, which made it a fifth of a tokenizer training step
//! (benches/SPEED.md); here the padded input is read in place:
//! - forward and input gradient: blocks of 8 output channels × a run of columns stay in
//!   registers while every input channel and tap streams past (AVX-512: 8 × 32 columns in 16
//!   registers; AVX2 + FMA: 8 × 8; a portable loop elsewhere). The input gradient is the same
//!   convolution of the padded output gradient with the kernel flipped and transposed.
//! - weight gradient: per tap, one product `dY (rows·wp) · shifted padded input` where the tap's
//!   shift is a flat offset into the padded planes (rows of `wp`; columns past `W` carry zeros
//!   in `dY`), so no patch matrix exists at all.
//!
//! Sums run in a fixed order, so results do not depend on the thread count.

use crate::Isa;
use rayon::prelude::*;

/// Output channels per register block.
pub const CB: usize = 8;
/// Column runs are padded to a multiple of this (the widest kernel's run).
const RUN: usize = 32;

/// Row length of the padded planes for images `w` wide: `w` rounded up to whole runs, plus the
/// two border columns.
pub fn padded_width(w: usize) -> usize {
    w.div_ceil(RUN) * RUN + 2
}

/// Whether the direct kernels take a convolution with `out` output channels over images `w`
/// wide (else im2col): whole blocks of [`CB`] channels, and rows of at least one 32-column run
/// (narrower rows leave most vector lanes idle; at 16 columns im2col measured faster).
pub fn applies(out: usize, w: usize) -> bool {
    out > 0 && out.is_multiple_of(CB) && w >= RUN
}

/// Zero-padded copy of `planes` planes of `h × w`: planes of `(h + 2) × padded_width(w)` with
/// pixel `(y, x)` at `(y + 1, x + 1)`, followed by one spare row of zeros (the shifted views of
/// the weight gradient read up to two values past the last plane).
pub fn pad_planes(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    assert_eq!(x.len(), planes * h * w, "pad_planes: {} values are not {planes} planes of {h} × {w}", x.len());
    let wp = padded_width(w);
    let plane = (h + 2) * wp;
    // Every value written once: the borders as zeros, the pixels as copies (no memset first).
    let mut out = crate::uninit_f32(planes * plane + wp);
    out[planes * plane..].fill(0.0);
    out[..planes * plane].par_chunks_mut(plane).zip(x.par_chunks(h * w)).for_each(|(dst, src)| {
        dst[..wp].fill(0.0);
        for (y, row) in src.chunks_exact(w).enumerate() {
            let line = &mut dst[(y + 1) * wp..(y + 2) * wp];
            line[0] = 0.0;
            line[1..1 + w].copy_from_slice(row);
            line[1 + w..].fill(0.0);
        }
        dst[(h + 1) * wp..].fill(0.0);
    });
    out
}

/// `y (B, Co, H, W) = bias + conv(x, weight)` from `xp = pad_planes(x (B, Ci, H, W))`, with
/// `weight (Co, Ci, 3, 3)` in PyTorch's layout. `co` must be a multiple of [`CB`].
#[allow(clippy::too_many_arguments)]
pub fn forward(xp: &[f32], b: usize, ci: usize, h: usize, w: usize, weight: &[f32], bias: &[f32], co: usize) -> Vec<f32> {
    forward_with(crate::isa(), xp, b, ci, h, w, weight, bias, co)
}

/// [`forward`] with the kernel given.
#[allow(clippy::too_many_arguments)]
fn forward_with(isa: Isa, xp: &[f32], b: usize, ci: usize, h: usize, w: usize, weight: &[f32], bias: &[f32], co: usize) -> Vec<f32> {
    assert!(co > 0 && co.is_multiple_of(CB), "conv3x3: {co} output channels are not a multiple of {CB}");
    assert_eq!(weight.len(), co * ci * 9, "conv3x3: weight is not {co} × {ci} × 3 × 3");
    assert_eq!(bias.len(), co, "conv3x3: bias is not {co}");
    let wp = padded_width(w);
    let plane = (h + 2) * wp;
    assert!(xp.len() >= b * ci * plane, "conv3x3: padded input is shorter than {b} × {ci} planes");
    // Weights as [block][ci][tap][CB]: the CB output channels of one (ci, tap) side by side.
    let blocks = co / CB;
    let mut wr = vec![0f32; co * ci * 9];
    for (i, v) in weight.iter().enumerate() {
        let (o, rest) = (i / (ci * 9), i % (ci * 9));
        wr[((o / CB) * ci * 9 + rest) * CB + o % CB] = *v;
    }
    let mut y = crate::uninit_f32(b * co * h * w);
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(CB * h * w).enumerate().for_each(|(task, out)| {
        let (item, blk) = (task / blocks, task % blocks);
        let x = &xp[item * ci * plane..(item + 1) * ci * plane];
        let wb = &wr[blk * ci * 9 * CB..(blk + 1) * ci * 9 * CB];
        let bb: &[f32; CB] = bias[blk * CB..(blk + 1) * CB].try_into().expect("CB values");
        let geo = Geo { ci, h, w, wp, plane };
        match isa {
            #[cfg(target_arch = "x86_64")]
            // Safety: the features were detected; `Geo` bounds every access (checked above).
            Isa::Avx512 => unsafe { block_avx512(x, geo, wb, bb, out) },
            #[cfg(target_arch = "x86_64")]
            // Safety: as above.
            Isa::Avx2 => unsafe { block_avx2(x, geo, wb, bb, out) },
            _ => block_portable(x, geo, wb, bb, out),
        }
    });
    y
}

/// The input gradient `dx (B, Ci, H, W)` from `dyp = pad_planes(dy (B, Co, H, W))`: the
/// convolution of `dy` with the kernel flipped in both axes and its channels swapped. `ci` must
/// be a multiple of [`CB`].
pub fn input_grad(dyp: &[f32], b: usize, co: usize, h: usize, w: usize, weight: &[f32], ci: usize) -> Vec<f32> {
    assert_eq!(weight.len(), co * ci * 9, "conv3x3: weight is not {co} × {ci} × 3 × 3");
    let mut flipped = vec![0f32; ci * co * 9];
    for o in 0..co {
        for i in 0..ci {
            for t in 0..9 {
                flipped[(i * co + o) * 9 + 8 - t] = weight[(o * ci + i) * 9 + t];
            }
        }
    }
    forward(dyp, b, co, h, w, &flipped, &vec![0f32; ci], ci)
}

/// The weight gradient `dW (Co, Ci, 3, 3) = Σ dY ⋆ x` from `xp = pad_planes(x (B, Ci, H, W))`
/// and `dy (B, Co, H, W)`, summed over the batch in order: with the positions in the vector
/// lanes on AVX-512 and AVX2 (`conv3x3_dw`), else nine products, one per tap.
pub fn weight_grad(xp: &[f32], dy: &[f32], b: usize, ci: usize, co: usize, h: usize, w: usize) -> Vec<f32> {
    weight_grad_with(crate::isa(), xp, dy, b, ci, co, h, w)
}

/// [`weight_grad`] with the kernel given.
#[allow(clippy::too_many_arguments)]
fn weight_grad_with(isa: Isa, xp: &[f32], dy: &[f32], b: usize, ci: usize, co: usize, h: usize, w: usize) -> Vec<f32> {
    if let Some(dw) = crate::conv3x3_dw::weight_grad(isa, xp, dy, b, ci, co, h, w) {
        return dw;
    }
    weight_grad_gemm(xp, dy, b, ci, co, h, w)
}

/// [`weight_grad`] as nine products, one per tap (the gemm crate's kernels).
fn weight_grad_gemm(xp: &[f32], dy: &[f32], b: usize, ci: usize, co: usize, h: usize, w: usize) -> Vec<f32> {
    assert_eq!(dy.len(), b * co * h * w, "conv3x3: output gradient is not {b} × {co} × {h} × {w}");
    if b * h * w == 0 {
        return vec![0f32; co * ci * 9];
    }
    let wp = padded_width(w);
    let (plane, p) = ((h + 2) * wp, h * wp);
    assert!(xp.len() >= b * ci * plane + 2, "conv3x3: padded input is shorter than {b} × {ci} planes");
    // dY per item as (rows·wp) × Co, zero in the padding columns: the products' right operand.
    let mut dyt = vec![0f32; b * p * co];
    dyt.par_chunks_mut(p * co).zip(dy.par_chunks(co * h * w)).for_each(|(dst, src)| {
        for (o, plane_o) in src.chunks_exact(h * w).enumerate() {
            for (y, row) in plane_o.chunks_exact(w).enumerate() {
                for (x, v) in row.iter().enumerate() {
                    dst[(y * wp + x) * co + o] = *v;
                }
            }
        }
    });
    // Per tap and item: x_shifted (Ci × rows·wp, row stride = plane) · dyt = that item's dWᵀ_t
    // (Ci × Co); nine taps × B items as separate tasks (nine alone leave threads idle), then
    // summed over the items in order.
    let parts: Vec<Vec<f32>> = (0..9 * b)
        .into_par_iter()
        .map(|task| {
            let (t, item) = (task / b, task % b);
            let off = (t / 3) * wp + t % 3;
            let mut acc = crate::uninit_f32(ci * co);
            let a = &xp[item * ci * plane + off..];
            let bt = &dyt[item * p * co..(item + 1) * p * co];
            // Safety: A reads rows i·plane + 0..p for i < ci from `a`, at most
            // (ci−1)·plane + p + off ≤ ci·plane + 2 values past the item's start, inside `xp`
            // (checked above, the spare row); B and dst are contiguous and sized; dst is
            // written whole (no accumulation).
            unsafe {
                crate::matmul::gemm_strided(
                    ci,
                    co,
                    p,
                    acc.as_mut_ptr(),
                    co,
                    false,
                    (a.as_ptr(), 1, plane as isize),
                    (bt.as_ptr(), 1, co as isize),
                    gemm::Parallelism::None,
                )
            }
            acc
        })
        .collect();
    let taps: Vec<Vec<f32>> = parts
        .chunks(b)
        .map(|items| {
            let mut sum = items[0].clone();
            for it in &items[1..] {
                sum.iter_mut().zip(it).for_each(|(s, v)| *s += v);
            }
            sum
        })
        .collect();
    let mut dw = vec![0f32; co * ci * 9];
    for (t, acc) in taps.iter().enumerate() {
        for i in 0..ci {
            for o in 0..co {
                dw[(o * ci + i) * 9 + t] = acc[i * co + o];
            }
        }
    }
    dw
}

/// Sizes of one item's padded input.
#[derive(Clone, Copy)]
struct Geo {
    ci: usize,
    h: usize,
    w: usize,
    wp: usize,
    plane: usize,
}

/// One block of [`CB`] output channels of one item: `out` holds their `h × w` planes.
fn block_portable(x: &[f32], g: Geo, wb: &[f32], bias: &[f32; CB], out: &mut [f32]) {
    const NW: usize = 8;
    for oy in 0..g.h {
        for ox0 in (0..g.w).step_by(NW) {
            let mut acc = [[0f32; NW]; CB];
            for (k, a) in acc.iter_mut().enumerate() {
                *a = [bias[k]; NW];
            }
            for c in 0..g.ci {
                for t in 0..9 {
                    let s = c * g.plane + (oy + t / 3) * g.wp + ox0 + t % 3;
                    let xv: &[f32; NW] = x[s..s + NW].try_into().expect("NW values");
                    let wv: &[f32; CB] = wb[(c * 9 + t) * CB..(c * 9 + t + 1) * CB].try_into().expect("CB values");
                    for k in 0..CB {
                        for j in 0..NW {
                            acc[k][j] += wv[k] * xv[j];
                        }
                    }
                }
            }
            let n = NW.min(g.w - ox0);
            for (k, a) in acc.iter().enumerate() {
                out[(k * g.h + oy) * g.w + ox0..][..n].copy_from_slice(&a[..n]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(x: &[f32], g: Geo, wb: &[f32], bias: &[f32; CB], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (xp, wp_, op) = (x.as_ptr(), wb.as_ptr(), out.as_mut_ptr());
    for oy in 0..g.h {
        for ox0 in (0..g.w).step_by(32) {
            let mut acc = [[_mm512_setzero_ps(); 2]; CB];
            for (k, a) in acc.iter_mut().enumerate() {
                *a = [_mm512_set1_ps(bias[k]); 2];
            }
            for c in 0..g.ci {
                let row = xp.add(c * g.plane + oy * g.wp + ox0);
                let wc = wp_.add(c * 9 * CB);
                for t in 0..9 {
                    let s = row.add((t / 3) * g.wp + t % 3);
                    let (x0, x1) = (_mm512_loadu_ps(s), _mm512_loadu_ps(s.add(16)));
                    for (k, a) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(*wc.add(t * CB + k));
                        a[0] = _mm512_fmadd_ps(wv, x0, a[0]);
                        a[1] = _mm512_fmadd_ps(wv, x1, a[1]);
                    }
                }
            }
            let n = 32.min(g.w - ox0);
            let (m0, m1) = (
                if n >= 16 { 0xffff } else { (1u16 << n) - 1 },
                if n >= 32 { 0xffff } else { ((1u32 << n.saturating_sub(16)) - 1) as u16 },
            );
            for (k, a) in acc.iter().enumerate() {
                let o = op.add((k * g.h + oy) * g.w + ox0);
                _mm512_mask_storeu_ps(o, m0, a[0]);
                _mm512_mask_storeu_ps(o.add(16), m1, a[1]);
            }
        }
    }
}

/// AVX2 + FMA: runs of 24 columns for 4 output channels at a time (12 accumulators, 3 column
/// loads and 4 weight broadcasts per 12 FMAs; 8 channels × 8 columns, the tail's tile, keeps
/// both FMA pipes waiting on their latency and ran at half the rate), then 8-column runs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(x: &[f32], g: Geo, wb: &[f32], bias: &[f32; CB], out: &mut [f32]) {
    use std::arch::x86_64::*;
    const HALF: usize = CB / 2;
    let (xp, wp_, op) = (x.as_ptr(), wb.as_ptr(), out.as_mut_ptr());
    for oy in 0..g.h {
        let mut ox0 = 0;
        while ox0 + 24 <= g.w {
            for k0 in (0..CB).step_by(HALF) {
                let mut acc = [[_mm256_setzero_ps(); 3]; HALF];
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = [_mm256_set1_ps(bias[k0 + k]); 3];
                }
                for c in 0..g.ci {
                    let row = xp.add(c * g.plane + oy * g.wp + ox0);
                    let wc = wp_.add(c * 9 * CB + k0);
                    for t in 0..9 {
                        let s = row.add((t / 3) * g.wp + t % 3);
                        let xv = [_mm256_loadu_ps(s), _mm256_loadu_ps(s.add(8)), _mm256_loadu_ps(s.add(16))];
                        for (k, a) in acc.iter_mut().enumerate() {
                            let wv = _mm256_broadcast_ss(&*wc.add(t * CB + k));
                            a[0] = _mm256_fmadd_ps(wv, xv[0], a[0]);
                            a[1] = _mm256_fmadd_ps(wv, xv[1], a[1]);
                            a[2] = _mm256_fmadd_ps(wv, xv[2], a[2]);
                        }
                    }
                }
                for (k, a) in acc.iter().enumerate() {
                    let o = op.add(((k0 + k) * g.h + oy) * g.w + ox0);
                    _mm256_storeu_ps(o, a[0]);
                    _mm256_storeu_ps(o.add(8), a[1]);
                    _mm256_storeu_ps(o.add(16), a[2]);
                }
            }
            ox0 += 24;
        }
        while ox0 < g.w {
            let mut acc = [_mm256_setzero_ps(); CB];
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm256_set1_ps(bias[k]);
            }
            for c in 0..g.ci {
                let row = xp.add(c * g.plane + oy * g.wp + ox0);
                let wc = wp_.add(c * 9 * CB);
                for t in 0..9 {
                    let xv = _mm256_loadu_ps(row.add((t / 3) * g.wp + t % 3));
                    for (k, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(_mm256_broadcast_ss(&*wc.add(t * CB + k)), xv, *a);
                    }
                }
            }
            let n = 8.min(g.w - ox0);
            for (k, a) in acc.iter().enumerate() {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
                out[(k * g.h + oy) * g.w + ox0..][..n].copy_from_slice(&lanes[..n]);
            }
            ox0 += 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct f64 reference of conv2d(x, w, padding 1) + bias.
    fn reference(x: &[f32], b: usize, ci: usize, h: usize, w: usize, wt: &[f32], bias: &[f32], co: usize) -> Vec<f64> {
        let mut y = vec![0f64; b * co * h * w];
        for n in 0..b {
            for o in 0..co {
                for oy in 0..h {
                    for ox in 0..w {
                        let mut s = bias[o] as f64;
                        for i in 0..ci {
                            for t in 0..9 {
                                let (iy, ix) = (oy as isize + (t / 3) as isize - 1, ox as isize + (t % 3) as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    s += wt[(o * ci + i) * 9 + t] as f64 * x[((n * ci + i) * h + iy as usize) * w + ix as usize] as f64;
                                }
                            }
                        }
                        y[((n * co + o) * h + oy) * w + ox] = s;
                    }
                }
            }
        }
        y
    }

    fn close(a: &[f32], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((*x as f64 - y).abs() <= tol * scale, "element {i}: {x} vs {y}");
        }
    }

    /// Every kernel this CPU can run, each forced in turn.
    fn each_isa(f: impl FnMut(Isa)) {
        crate::isa::available().into_iter().for_each(f);
    }

    #[test]
    fn forward_matches_a_direct_reference_for_ragged_sizes() {
        for &(b, ci, co, h, w) in &[(2, 3, 8, 5, 7), (1, 16, 16, 4, 33), (3, 1, 16, 6, 48), (1, 8, 24, 1, 1)] {
            let x = crate::test_data(b * ci * h * w, 1);
            let wt = crate::test_data(co * ci * 9, 2);
            let bias = crate::test_data(co, 3);
            let want = reference(&x, b, ci, h, w, &wt, &bias, co);
            each_isa(|isa| close(&forward_with(isa, &pad_planes(&x, b * ci, h, w), b, ci, h, w, &wt, &bias, co), &want, 1e-5));
        }
    }

    #[test]
    fn gradients_are_the_adjoints_of_the_forward() {
        // <dy, conv(x)> = <input_grad(dy), x> = <weight_grad(x, dy), w> (no bias).
        let (b, ci, co, h, w) = (2, 8, 16, 6, 37);
        let x = crate::test_data(b * ci * h * w, 4);
        let wt = crate::test_data(co * ci * 9, 5);
        let dy = crate::test_data(b * co * h * w, 6);
        let y = forward(&pad_planes(&x, b * ci, h, w), b, ci, h, w, &wt, &vec![0.0; co], co);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
        let lhs = dot(&dy, &y);
        let dx = input_grad(&pad_planes(&dy, b * co, h, w), b, co, h, w, &wt, ci);
        let dw = weight_grad(&pad_planes(&x, b * ci, h, w), &dy, b, ci, co, h, w);
        assert!((dot(&dx, &x) - lhs).abs() < 1e-4 * lhs.abs().max(1.0), "{} vs {lhs}", dot(&dx, &x));
        assert!((dot(&dw, &wt) - lhs).abs() < 1e-4 * lhs.abs().max(1.0), "{} vs {lhs}", dot(&dw, &wt));
        // and the weight gradient element by element against its definition
        let mut want = vec![0f64; co * ci * 9];
        for n in 0..b {
            for o in 0..co {
                for i in 0..ci {
                    for t in 0..9 {
                        for oy in 0..h {
                            for ox in 0..w {
                                let (iy, ix) = (oy as isize + (t / 3) as isize - 1, ox as isize + (t % 3) as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    want[(o * ci + i) * 9 + t] += dy[((n * co + o) * h + oy) * w + ox] as f64
                                        * x[((n * ci + i) * h + iy as usize) * w + ix as usize] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        close(&dw, &want, 1e-5);
        // every kernel, ragged channel counts and widths (tails of 16 and 8 columns)
        for &(b, ci, co, h, w) in &[(2, 3, 5, 4, 21), (1, 8, 8, 3, 128), (2, 1, 9, 2, 7), (1, 16, 8, 5, 33)] {
            let x = crate::test_data(b * ci * h * w, 10);
            let dy = crate::test_data(b * co * h * w, 11);
            let xp = pad_planes(&x, b * ci, h, w);
            let want = weight_grad_gemm(&xp, &dy, b, ci, co, h, w);
            let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
            each_isa(|isa| close(&weight_grad_with(isa, &xp, &dy, b, ci, co, h, w), &want, 1e-5));
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let (b, ci, co, h, w) = (2, 8, 16, 5, 40);
        let x = crate::test_data(b * ci * h * w, 7);
        let wt = crate::test_data(co * ci * 9, 8);
        let dy = crate::test_data(b * co * h * w, 9);
        let run = || {
            let xp = pad_planes(&x, b * ci, h, w);
            (forward(&xp, b, ci, h, w, &wt, &vec![0.5; co], co), weight_grad(&xp, &dy, b, ci, co, h, w))
        };
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(run);
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(run);
        assert!(one == three);
    }
}
