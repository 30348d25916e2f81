//! The weight gradient of the direct 3 × 3 convolution ([`crate::conv3x3`]) with the positions
//! in the vector lanes: `dW[o][i][ky][kx] = Σ_{y,x} dY[o][y][x] · xp[i][y + ky][x + kx]`.
//!
//! The tokenizer's full-resolution convolutions have 8–16 channels each way: as a product per
//! tap (`Ci × positions · positions × Co`) the gemm crate pads 8 rows to its 16-row panels and
//! packs a 10,000-deep operand for a 64-value result, 25–100 GFLOP/s where the forward kernel
//! runs at ≈ 300 (benches/SPEED.md). Here a block of output channels × input channels × the
//! three taps of one kernel row is summed in registers while the rows of `dY` and of the padded
//! input stream past once (AVX-512: 4 × 2 × 3 accumulators of 16 positions, 10 loads per 24
//! FMAs; AVX2 + FMA: 2 × 2 × 3 of 8 positions), then reduced across the lanes.
//!
//! One task per (item, kernel row), each summing its positions in a fixed order, then the items
//! in order: results do not depend on the thread count.

use crate::Isa;
use rayon::prelude::*;

/// Sizes of one item's padded input and output gradient.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // read by the x86 kernels only
struct Geo {
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    wp: usize,
    plane: usize,
}

/// `dW (Co, Ci, 3, 3)` from `xp = conv3x3::pad_planes(x (B, Ci, H, W))` and `dy (B, Co, H, W)`
/// on the vector kernels of `isa`; `None` where `isa` has none (the caller falls back).
pub(crate) fn weight_grad(isa: Isa, xp: &[f32], dy: &[f32], b: usize, ci: usize, co: usize, h: usize, w: usize) -> Option<Vec<f32>> {
    if !matches!(isa, Isa::Avx512 | Isa::Avx2) {
        return None;
    }
    let wp = crate::conv3x3::padded_width(w);
    let g = Geo { ci, co, h, w, wp, plane: (h + 2) * wp };
    assert!(xp.len() >= b * ci * g.plane, "conv3x3: padded input is shorter than {b} × {ci} planes");
    assert_eq!(dy.len(), b * co * h * w, "conv3x3: output gradient is not {b} × {co} × {h} × {w}");
    let part = co * ci * 3;
    // parts[(item · 3 + ky)] = that item's sums for kernel row ky, as [o][i][kx].
    let mut parts = vec![0f32; b * 3 * part];
    parts.par_chunks_mut(part).enumerate().for_each(|(task, out)| {
        let (item, ky) = (task / 3, task % 3);
        let x = &xp[item * ci * g.plane..(item + 1) * ci * g.plane];
        let d = &dy[item * co * h * w..(item + 1) * co * h * w];
        match isa {
            #[cfg(target_arch = "x86_64")]
            // Safety: the features were detected; `Geo` bounds every access (checked above).
            Isa::Avx512 => unsafe { item_row_avx512(x, d, g, ky, out) },
            #[cfg(target_arch = "x86_64")]
            // Safety: as above.
            Isa::Avx2 => unsafe { item_row_avx2(x, d, g, ky, out) },
            _ => unreachable!("checked above"),
        }
    });
    let mut dw = vec![0f32; co * ci * 9];
    for item in 0..b {
        for ky in 0..3 {
            let p = &parts[(item * 3 + ky) * part..][..part];
            for (j, v) in p.iter().enumerate() {
                let (oi, kx) = (j / 3, j % 3);
                dw[oi * 9 + ky * 3 + kx] += v;
            }
        }
    }
    Some(dw)
}

/// Blocks of `OB` output × `IB` input channels of one item and kernel row `ky`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn item_row_avx512(x: &[f32], d: &[f32], g: Geo, ky: usize, out: &mut [f32]) {
    let mut o0 = 0;
    while o0 < g.co {
        // Four output channels at a time, then one by one.
        let ob = if g.co - o0 >= 4 { 4 } else { 1 };
        let mut i0 = 0;
        while i0 < g.ci {
            let ib = (g.ci - i0).min(2);
            match (ob, ib) {
                (4, 2) => block_avx512::<4, 2>(x, d, g, ky, o0, i0, out),
                (4, _) => block_avx512::<4, 1>(x, d, g, ky, o0, i0, out),
                (_, 2) => block_avx512::<1, 2>(x, d, g, ky, o0, i0, out),
                _ => block_avx512::<1, 1>(x, d, g, ky, o0, i0, out),
            }
            i0 += ib;
        }
        o0 += ob;
    }
}

/// Output channels `o0..o0 + OB` × input channels `i0..i0 + IB` × the three taps of row `ky`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // register blocks: indices name the accumulators
unsafe fn block_avx512<const OB: usize, const IB: usize>(x: &[f32], d: &[f32], g: Geo, ky: usize, o0: usize, i0: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (xp, dp) = (x.as_ptr(), d.as_ptr());
    let mut acc = [[[_mm512_setzero_ps(); 3]; IB]; OB];
    for y in 0..g.h {
        let xrow = xp.add(i0 * g.plane + (y + ky) * g.wp);
        let drow = dp.add(o0 * g.h * g.w + y * g.w);
        for x0 in (0..g.w).step_by(16) {
            let n = (g.w - x0).min(16);
            let m: __mmask16 = if n == 16 { 0xffff } else { (1u16 << n) - 1 };
            let mut dv = [_mm512_setzero_ps(); OB];
            for (k, v) in dv.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(m, drow.add(k * g.h * g.w + x0));
            }
            for i in 0..IB {
                for kx in 0..3 {
                    let xv = _mm512_maskz_loadu_ps(m, xrow.add(i * g.plane + x0 + kx));
                    for k in 0..OB {
                        acc[k][i][kx] = _mm512_fmadd_ps(dv[k], xv, acc[k][i][kx]);
                    }
                }
            }
        }
    }
    for (k, a) in acc.iter().enumerate() {
        for (i, t) in a.iter().enumerate() {
            for (kx, v) in t.iter().enumerate() {
                out[((o0 + k) * g.ci + i0 + i) * 3 + kx] = _mm512_reduce_add_ps(*v);
            }
        }
    }
}

/// [`item_row_avx512`] for AVX2 + FMA: blocks of 2 × 2 channels (12 accumulators).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn item_row_avx2(x: &[f32], d: &[f32], g: Geo, ky: usize, out: &mut [f32]) {
    let mut o0 = 0;
    while o0 < g.co {
        let ob = (g.co - o0).min(2);
        let mut i0 = 0;
        while i0 < g.ci {
            let ib = (g.ci - i0).min(2);
            match (ob, ib) {
                (2, 2) => block_avx2::<2, 2>(x, d, g, ky, o0, i0, out),
                (2, _) => block_avx2::<2, 1>(x, d, g, ky, o0, i0, out),
                (_, 2) => block_avx2::<1, 2>(x, d, g, ky, o0, i0, out),
                _ => block_avx2::<1, 1>(x, d, g, ky, o0, i0, out),
            }
            i0 += ib;
        }
        o0 += ob;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // register blocks: indices name the accumulators
unsafe fn block_avx2<const OB: usize, const IB: usize>(x: &[f32], d: &[f32], g: Geo, ky: usize, o0: usize, i0: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (xp, dp) = (x.as_ptr(), d.as_ptr());
    let mut acc = [[[_mm256_setzero_ps(); 3]; IB]; OB];
    let full = g.w / 8 * 8;
    for y in 0..g.h {
        let xrow = xp.add(i0 * g.plane + (y + ky) * g.wp);
        let drow = dp.add(o0 * g.h * g.w + y * g.w);
        let mut x0 = 0;
        while x0 < g.w {
            let mut dv = [_mm256_setzero_ps(); OB];
            let mut xs = [[_mm256_setzero_ps(); 3]; IB];
            if x0 < full {
                for (k, v) in dv.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(drow.add(k * g.h * g.w + x0));
                }
                for (i, xi) in xs.iter_mut().enumerate() {
                    for (kx, v) in xi.iter_mut().enumerate() {
                        *v = _mm256_loadu_ps(xrow.add(i * g.plane + x0 + kx));
                    }
                }
            } else {
                // The ragged tail: lanes past the row read as zero in both operands.
                let n = g.w - x0;
                let lane = |j: usize| if j < n { -1i32 } else { 0 };
                let m = _mm256_setr_epi32(lane(0), lane(1), lane(2), lane(3), lane(4), lane(5), lane(6), lane(7));
                for (k, v) in dv.iter_mut().enumerate() {
                    *v = _mm256_maskload_ps(drow.add(k * g.h * g.w + x0), m);
                }
                for (i, xi) in xs.iter_mut().enumerate() {
                    for (kx, v) in xi.iter_mut().enumerate() {
                        *v = _mm256_maskload_ps(xrow.add(i * g.plane + x0 + kx), m);
                    }
                }
            }
            for k in 0..OB {
                for i in 0..IB {
                    for kx in 0..3 {
                        acc[k][i][kx] = _mm256_fmadd_ps(dv[k], xs[i][kx], acc[k][i][kx]);
                    }
                }
            }
            x0 += 8;
        }
    }
    for (k, a) in acc.iter().enumerate() {
        for (i, t) in a.iter().enumerate() {
            for (kx, v) in t.iter().enumerate() {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), *v);
                out[((o0 + k) * g.ci + i0 + i) * 3 + kx] = lanes.iter().sum();
            }
        }
    }
}
