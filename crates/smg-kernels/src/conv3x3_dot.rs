//! The bf16 3 × 3 convolution of [`crate::conv3x3_amx`] on the AVX-512 BF16 dot product
//! (`vdpbf16ps`) instead of AMX tiles, for CPUs that have the instruction but no AMX (Zen 4).
//! Same packed operands ([`conv3x3_amx::pack_pairs`], [`conv3x3_amx::PackedTaps`],
//! [`conv3x3_amx::pack_planes`], [`conv3x3_amx::pack_grad_pairs`]) and the same blocks of
//! 32 output channels × 32 positions, so the two agree up to the order of their f32 sums:
//! - forward and input gradient: 16 lanes of positions per register; a weight pair (one output
//!   channel, two input channels) is broadcast and multiplied with 16 positions' channel pairs,
//!   8 output channels × 32 positions in 16 accumulators over every tap and pair;
//! - weight gradient: 16 lanes of output channels; two positions of one input channel, shifted
//!   by the tap, broadcast against the output gradient's position pairs, 8 input × 32 output
//!   channels in 16 accumulators over every position of every item.
//!
//! Narrow layers (16 channels, which the AMX tiles do not take) skip the zero padding to 32
//! channels: only the channel pairs, blocks of 8 output channels, blocks of 8 input channels and
//! halves of 16 output-gradient lanes that hold real channels are multiplied.
//!
//! Each output is summed by one task in a fixed order, so results do not depend on the thread
//! count. Callers check [`available`].

use crate::conv3x3_amx::{self, PackedTaps};
use crate::SendPtr;
use rayon::prelude::*;

/// Whether this CPU runs these kernels (AVX-512F with AVX-512 BF16).
pub fn available() -> bool {
    crate::dot_bf16::available()
}

/// [`conv3x3_amx::forward`] on the dot product: `y (B, co, H, W) = bias + conv(x, weight)` from
/// `xv = pack_pairs(x)` and the packed taps.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(xv: &[u16], b: usize, ci: usize, h: usize, w: usize, taps: &PackedTaps, bias: Option<&[f32]>, co: usize) -> Vec<f32> {
    assert!(available(), "conv3x3_dot: this CPU has no AVX-512 BF16 dot product");
    let (wp, pairs) = (conv3x3_amx::padded_width(w), ci.div_ceil(32) * 16);
    let plane = (h + 2) * wp;
    let (tiles, oblocks, kblocks) = taps.parts();
    debug_assert_eq!(kblocks * 16, pairs);
    let mut y = crate::uninit_f32(b * co * h * w);
    let (npos, opairs) = (conv3x3_amx::positions(h, w), co.div_ceil(32));
    // Channel pairs holding real channels: the packing pads to whole blocks of 16 pairs with
    // zeros, whose products are skipped (narrow layers).
    let used = ci.div_ceil(2);
    let yp = SendPtr(y.as_mut_ptr());
    (0..b * opairs).into_par_iter().for_each(|task| {
        let yp = yp;
        let (i, op) = (task / opairs, task % opairs);
        let mut buf = [0f32; 1024];
        let x0 = xv[i * pairs * plane * 2..].as_ptr() as *const u32;
        for p0 in (0..npos).step_by(32) {
            // Blocks of 8 output channels holding real channels (fewer than 4 for narrow layers).
            for ob8 in 0..(co - op * 32).min(32).div_ceil(8) {
                // Safety: the CPU has AVX-512 BF16 (asserted above); weight reads stay inside the
                // tiles (output channels < oblocks·16, pairs < kblocks·16); x reads stay inside
                // `xv` (positions up to p0 + 31 + 2·wp + 2, covered by the spare after the last plane).
                unsafe {
                    let out = buf[ob8 * 8 * 32..].as_mut_ptr();
                    fwd_micro(tiles.as_ptr() as *const u32, (oblocks, kblocks, used), x0, op * 32 + ob8 * 8, p0, plane, wp, out);
                }
            }
            // Safety: this task alone writes item `i`'s channels `32·op ..`.
            unsafe { conv3x3_amx::scatter(&buf, yp.0, i, op, p0, co, h, w, bias) };
        }
    });
    y
}

/// 8 output channels (from `o0`) × 32 positions (from `p0`) over every tap and the first `used`
/// input pairs, into `out` (8 rows of 32). `tiles` holds the taps as [`PackedTaps`] lays them
/// out (`oblocks` × `kblocks` tiles of 16 × 32 bf16 per tap); `x0` is the item's packed input.
///
/// # Safety
/// AVX-512F and AVX-512 BF16 present; the indices `wt` gives and the x reads in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn fwd_micro(
    tiles: *const u32,
    (oblocks, kblocks, used): (usize, usize, usize),
    x0: *const u32,
    o0: usize,
    p0: usize,
    plane: usize,
    wp: usize,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    const TILE_PAIRS: usize = crate::amx::TILE / 2;
    let mut acc = [[_mm512_setzero_ps(); 2]; 8];
    for t in 0..9 {
        let off = (t / 3) * wp + t % 3;
        for kb in 0..kblocks {
            // Weight pairs of the 8 output channels for pairs kb·16 .. (16 consecutive per row).
            let wrow: [*const u32; 8] = std::array::from_fn(|r| {
                let o = o0 + r;
                tiles.add(((t * oblocks + o / 16) * kblocks + kb) * TILE_PAIRS + (o % 16) * 16)
            });
            for pp in 0..(used - kb * 16).min(16) {
                let p = kb * 16 + pp;
                let xp = x0.add(p * plane + p0 + off);
                let xa: __m512bh = std::mem::transmute(_mm512_loadu_si512(xp as *const _));
                let xb: __m512bh = std::mem::transmute(_mm512_loadu_si512(xp.add(16) as *const _));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let wv: __m512bh = std::mem::transmute(_mm512_set1_epi32(*wrow[r].add(pp) as i32));
                    acc[0] = _mm512_dpbf16_ps(acc[0], wv, xa);
                    acc[1] = _mm512_dpbf16_ps(acc[1], wv, xb);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.add(r * 32), acc[0]);
        _mm512_storeu_ps(out.add(r * 32 + 16), acc[1]);
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn fwd_micro(_: *const u32, _: (usize, usize, usize), _: *const u32, _: usize, _: usize, _: usize, _: usize, _: *mut f32) {
    unreachable!("conv3x3_dot: x86-64 only")
}

/// [`conv3x3_amx::weight_grad`] on the dot product: `dW (co, ci, 3, 3)` from
/// `xb = pack_planes(x)` and `dyv = pack_grad_pairs(dy)`, summed over the items in order.
pub(crate) fn weight_grad(xb: &[u16], dyv: &[u16], b: usize, ci: usize, co: usize, h: usize, w: usize) -> Vec<f32> {
    assert!(available(), "conv3x3_dot: this CPU has no AVX-512 BF16 dot product");
    let (cip, cop) = (ci.div_ceil(32) * 32, co.div_ceil(32) * 32);
    let (plane, npos) = ((h + 2) * conv3x3_amx::padded_width(w), conv3x3_amx::positions(h, w));
    conv3x3_amx::weight_grad_blocks(ci, co, w, |cb, o2, off, buf| {
        // Blocks of 8 input channels and halves of 16 output channels holding real channels
        // (the packing pads both to 32 with zeros; narrow layers skip those products).
        let wide = co - o2 * 32 > 16;
        for r8 in 0..(ci - cb * 32).min(32).div_ceil(8) {
            // Safety: the CPU has AVX-512 BF16; x reads run from the tap's offset over `npos`
            // positions of planes inside `xb` (the spare covers the last plane's overreach), and
            // dy reads cover whole packed rows of `dyv` (lengths checked by `weight_grad`'s caller).
            unsafe {
                let x0 = xb.as_ptr().add((cb * 32 + r8 * 8) * plane + off);
                let d0 = dyv.as_ptr().add(o2 * 32 * 2);
                let (ds, out) = (npos / 2 * cop * 2, buf[r8 * 8 * 32..].as_mut_ptr());
                if wide {
                    wgrad_micro::<2>(x0, cip * plane, plane, d0, ds, cop * 2, b, npos / 2, out);
                } else {
                    wgrad_micro::<1>(x0, cip * plane, plane, d0, ds, cop * 2, b, npos / 2, out);
                }
            }
        }
    })
}

/// 8 input channels × `16·H` output channels of one tap's weight gradient (rows of 32 in `out`;
/// `H` = 1 leaves the second half untouched), summed over `b` items of `npairs` position pairs:
/// x rows from `x0` (item stride `xs`, channel stride `plane`, in bf16), output-gradient pairs
/// from `d0` (item stride `ds`, pair stride `qs`, in bf16), into `out`.
///
/// # Safety
/// AVX-512F and AVX-512 BF16 present; every read in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn wgrad_micro<const H: usize>(
    x0: *const u16,
    xs: usize,
    plane: usize,
    d0: *const u16,
    ds: usize,
    qs: usize,
    b: usize,
    npairs: usize,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); H]; 8];
    for i in 0..b {
        let (xi, di) = (x0.add(i * xs), d0.add(i * ds));
        for q in 0..npairs {
            let d = di.add(q * qs);
            let dv: [__m512bh; H] = std::array::from_fn(|c| std::mem::transmute(_mm512_loadu_si512(d.add(32 * c) as *const _)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv: __m512bh = std::mem::transmute(_mm512_set1_epi32((xi.add(r * plane + 2 * q) as *const i32).read_unaligned()));
                for c in 0..H {
                    acc[c] = _mm512_dpbf16_ps(acc[c], xv, dv[c]);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (c, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(r * 32 + 16 * c), *a);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn wgrad_micro<const H: usize>(
    _: *const u16,
    _: usize,
    _: usize,
    _: *const u16,
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: *mut f32,
) {
    unreachable!("conv3x3_dot: x86-64 only")
}
