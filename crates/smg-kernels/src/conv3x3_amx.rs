//! Direct (implicit-gemm) 3 × 3 convolution (stride 1, zero padding 1) on AMX bf16 tiles, with
//! its two gradients, for training with bf16 products (f32 sums). The input is kept as zero-padded
//! planes (rows of [`padded_width`]` = w + 2`, pixel `(y, x)` at `(y + 1, x + 1)`); no patch
//! matrix is ever written, because a tap of the kernel is a flat offset into the padded planes
//! and a tile load takes any start address and row stride:
//! - forward and input gradient: `C (16 out-channels × 16 positions) += A · B` with `A` the tap's
//!   weights (16 × 32 input channels, packed once) and `B` read straight from the input kept as
//!   channel *pairs* (`[pair][position][2]`, the VNNI layout `tdpbf16ps` reads), shifted by the
//!   tap's offset; the input gradient is the same product of the output gradient with the kernel
//!   flipped and transposed.
//! - weight gradient: per tap, `dWᵀ (32 in × 32 out) += x_shifted · dY` over every position of
//!   every item, `A` read straight from the bf16 padded input at the tap's offset, `B` the output
//!   gradient as position pairs (`[pair][out-channel][2]`), packed once.
//!
//! Each output is summed by one task in a fixed order, so results do not depend on the thread
//! count. Callers check [`applies`] (AMX or the AVX-512 BF16 dot product present, enough
//! channels); without AMX the entry points run the same products on the dot product
//! ([`crate::conv3x3_dot`]).

use crate::amx::{self, TILE};
use crate::{bf16, Aligned, SendPtr};
use rayon::prelude::*;

/// Whether these kernels take a convolution of `ci` → `co` channels: on AMX tiles at least 32
/// channels each way (fewer leave most of a tile idle); without AMX, on the AVX-512 BF16 dot
/// product ([`crate::conv3x3_dot`], which skips the zero padding of narrow layers) at least 16
/// each way (`examples/conv3x3_speed.rs`: 16 → 16 channels runs 1.15× the f32 kernels there,
/// 8 → 8 channels half as fast). Any image size: positions run flat across rows in blocks of 32.
pub fn applies(ci: usize, co: usize) -> bool {
    if amx::available() {
        ci >= 32 && co >= 32
    } else {
        crate::conv3x3_dot::available() && ci >= 16 && co >= 16
    }
}

/// Row length of the padded planes for images `w` wide: the image's columns and a zero column on
/// each side.
pub fn padded_width(w: usize) -> usize {
    w + 2
}

/// Positions of the padded planes covered by whole blocks of 32 (the output positions computed).
pub(crate) fn positions(h: usize, w: usize) -> usize {
    (h * padded_width(w)).div_ceil(32) * 32
}

/// Spare values past the last plane: blocks of 32 positions starting up to 31 before the end of
/// a plane, shifted by up to two rows and two columns, read that far.
fn spare(w: usize) -> usize {
    2 * (64 + 2 * padded_width(w) + 2)
}

/// The input as zero-padded bf16 planes of channel pairs: for item `i`, pair `p` (channels `2p`
/// and `2p + 1`, channels padded with zeros to a multiple of 32) and padded position `q`, the two
/// values at `((i·pairs + p)·plane + q)·2`.
pub fn pack_pairs(x: &[f32], b: usize, c: usize, h: usize, w: usize) -> Aligned<u16> {
    assert_eq!(x.len(), b * c * h * w, "conv3x3_amx: input is not {b} × {c} × {h} × {w}");
    let (wp, pairs) = (padded_width(w), c.div_ceil(32) * 16);
    let plane = (h + 2) * wp;
    let mut out = Aligned::<u16>::zeroed_par(b * pairs * plane * 2 + spare(w));
    let zero = vec![0f32; w];
    out[..b * pairs * plane * 2].par_chunks_mut(plane * 2).enumerate().for_each(|(ip, dst)| {
        let (i, p) = (ip / pairs, ip % pairs);
        let chan = |ch: usize, y: usize| if ch < c { &x[((i * c + ch) * h + y) * w..][..w] } else { &zero[..] };
        if 2 * p >= c {
            return;
        }
        for y in 0..h {
            let row = &mut dst[((y + 1) * wp + 1) * 2..][..2 * w];
            interleave(chan(2 * p, y), chan(2 * p + 1, y), row);
        }
    });
    out
}

/// `dst[2j] = bf16(a[j])`, `dst[2j + 1] = bf16(b[j])`.
fn interleave(a: &[f32], b: &[f32], dst: &mut [u16]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") && std::arch::is_x86_feature_detected!("avx512bw") {
        done = a.len() / 16 * 16;
        for j in (0..done).step_by(16) {
            // Safety: 16 values of `a` and `b` from `j`, 32 of `dst` from `2j`, all in bounds.
            unsafe { amx::interleave16(&a[j..], &b[j..], dst.as_mut_ptr().add(2 * j)) };
        }
    }
    for j in done..a.len() {
        dst[2 * j] = bf16::from_f32(a[j]);
        dst[2 * j + 1] = bf16::from_f32(b[j]);
    }
}

/// Weights in `A` tiles: for tap `t`, block of 16 output channels `ob` and block of 32 input
/// channels `kb`, the 16 × 32 tile `weight(o, i, t)` at `((t·oblocks + ob)·kblocks + kb)·TILE`.
/// Output channels are padded to a multiple of 32, input channels to a multiple of 32.
pub struct PackedTaps {
    tiles: Aligned<u16>,
    oblocks: usize,
    kblocks: usize,
}

impl PackedTaps {
    pub fn new(co: usize, ci: usize, weight: impl Fn(usize, usize, usize) -> f32 + Sync) -> Self {
        let (oblocks, kblocks) = (co.div_ceil(32) * 2, ci.div_ceil(32));
        let mut tiles = Aligned::<u16>::zeroed(9 * oblocks * kblocks * TILE);
        tiles.par_chunks_mut(kblocks * TILE).enumerate().for_each(|(tob, panel)| {
            let (t, ob) = (tob / oblocks, tob % oblocks);
            for r in 0..16 {
                let o = ob * 16 + r;
                if o >= co {
                    break;
                }
                for i in 0..ci {
                    panel[(i / 32) * TILE + r * 32 + i % 32] = bf16::from_f32(weight(o, i, t));
                }
            }
        });
        Self { tiles, oblocks, kblocks }
    }

    /// The tiles, and the blocks of 16 output channels and of 32 input channels per tap.
    pub(crate) fn parts(&self) -> (&[u16], usize, usize) {
        (&self.tiles, self.oblocks, self.kblocks)
    }

    /// PyTorch's `(co, ci, 3, 3)` weight, for the forward pass.
    pub fn forward(weight: &[f32], co: usize, ci: usize) -> Self {
        assert_eq!(weight.len(), co * ci * 9, "conv3x3_amx: weight is not {co} × {ci} × 3 × 3");
        Self::new(co, ci, |o, i, t| weight[(o * ci + i) * 9 + t])
    }

    /// The same weight flipped and transposed (`ci` outputs from `co` inputs), for the input
    /// gradient.
    pub fn input_grad(weight: &[f32], co: usize, ci: usize) -> Self {
        assert_eq!(weight.len(), co * ci * 9, "conv3x3_amx: weight is not {co} × {ci} × 3 × 3");
        Self::new(ci, co, |i, o, t| weight[(o * ci + i) * 9 + 8 - t])
    }
}

/// `y (B, co, H, W) = bias + conv(x, weight)` from `xv = pack_pairs(x)` and the packed taps
/// (`PackedTaps::forward`, or `PackedTaps::input_grad` with `co` = the input's channels for the
/// input gradient). `ci` is the channel count `xv` was packed with. On AMX tiles, else on the
/// AVX-512 BF16 dot product ([`crate::conv3x3_dot`]).
#[allow(clippy::too_many_arguments)]
pub fn forward(xv: &[u16], b: usize, ci: usize, h: usize, w: usize, taps: &PackedTaps, bias: Option<&[f32]>, co: usize) -> Vec<f32> {
    let (wp, pairs) = (padded_width(w), ci.div_ceil(32) * 16);
    let plane = (h + 2) * wp;
    assert!(taps.kblocks * 16 == pairs && taps.oblocks * 16 >= co, "conv3x3_amx: packed taps do not match {ci} → {co} channels");
    assert!(xv.len() >= b * pairs * plane * 2 + spare(w), "conv3x3_amx: packed input is shorter than {b} items");
    if !amx::available() {
        return crate::conv3x3_dot::forward(xv, b, ci, h, w, taps, bias, co);
    }
    let mut y = crate::uninit_f32(b * co * h * w);
    let (npos, opairs) = (positions(h, w), co.div_ceil(32));
    let yp = SendPtr(y.as_mut_ptr());
    (0..b * opairs).into_par_iter().for_each(|task| {
        let yp = yp;
        let (i, op) = (task / opairs, task % opairs);
        let mut buf = [0f32; 1024];
        // Safety: AMX is available (`applies`); the tile pointers stay inside `taps.tiles` and
        // `xv` (the spare covers the last blocks' overreach); this task alone writes the output
        // rows of item `i`, channels `32·op ..`.
        unsafe {
            tiles_on();
            for p0 in (0..npos).step_by(32) {
                zero_c();
                for t in 0..9 {
                    let off = (t / 3) * wp + t % 3;
                    for kb in 0..taps.kblocks {
                        let a0 = taps.tiles.as_ptr().add(((t * taps.oblocks + 2 * op) * taps.kblocks + kb) * TILE);
                        let b0 = xv.as_ptr().add(((i * pairs + kb * 16) * plane + p0 + off) * 2);
                        step(a0, a0.add(taps.kblocks * TILE), 64, b0, b0.add(32), plane * 4);
                    }
                }
                store_c(buf.as_mut_ptr());
                scatter(&buf, yp.0, i, op, p0, co, h, w, bias);
            }
            tiles_off();
        }
    });
    y
}

/// Writes the block `buf` (32 output channels `32·op ..` × 32 positions `p0 ..` of the
/// padded-width grid, row-major) into item `i` of `y (B, co, H, W)`, plus the bias: columns
/// `< w` of rows `< h`, as runs of consecutive columns.
///
/// # Safety
/// `y` addresses `B·co·H·W` floats, and no other thread writes these outputs.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn scatter(
    buf: &[f32; 1024],
    y: *mut f32,
    i: usize,
    op: usize,
    p0: usize,
    co: usize,
    h: usize,
    w: usize,
    bias: Option<&[f32]>,
) {
    let wp = padded_width(w);
    // At most 12 runs per block of 32: rows are at least 3 long.
    let mut runs = [(0usize, 0usize, 0usize); 12];
    let mut nruns = 0;
    let mut p = p0;
    while p < p0 + 32 && p / wp < h {
        let (yy, xx) = (p / wp, p % wp);
        let end = (p0 + 32).min(yy * wp + w);
        if end > p {
            runs[nruns] = (p - p0, yy * w + xx, end - p);
            nruns += 1;
        }
        p = (yy + 1) * wp;
    }
    for r in 0..32 {
        let o = op * 32 + r;
        if o >= co {
            break;
        }
        let bo = bias.map_or(0.0, |bs| bs[o]);
        let row = y.add((i * co + o) * h * w);
        for &(j, at, n) in &runs[..nruns] {
            for (k, &v) in buf[r * 32 + j..][..n].iter().enumerate() {
                *row.add(at + k) = v + bo;
            }
        }
    }
}

/// The input as zero-padded bf16 planes (`[item·channels (padded to 32)][plane]`), for the
/// weight gradient's `A` operand.
pub fn pack_planes(x: &[f32], b: usize, c: usize, h: usize, w: usize) -> Aligned<u16> {
    assert_eq!(x.len(), b * c * h * w, "conv3x3_amx: input is not {b} × {c} × {h} × {w}");
    let (wp, cp) = (padded_width(w), c.div_ceil(32) * 32);
    let plane = (h + 2) * wp;
    let mut out = Aligned::<u16>::zeroed_par(b * cp * plane + spare(w));
    out[..b * cp * plane].par_chunks_mut(plane).enumerate().for_each(|(ic, dst)| {
        let (i, ch) = (ic / cp, ic % cp);
        if ch >= c {
            return;
        }
        for y in 0..h {
            bf16::convert(&x[((i * c + ch) * h + y) * w..][..w], &mut dst[(y + 1) * wp + 1..][..w]);
        }
    });
    out
}

/// The output gradient as position pairs: for item `i`, pair `q` of the padded-width positions
/// (`p = y·wp + x`, zero where `x ≥ w` or past the last row) and output channel `o` (padded to a
/// multiple of 32), the two values at `((i·pairs + q)·co_pad + o)·2`.
pub fn pack_grad_pairs(dy: &[f32], b: usize, co: usize, h: usize, w: usize) -> Aligned<u16> {
    assert_eq!(dy.len(), b * co * h * w, "conv3x3_amx: output gradient is not {b} × {co} × {h} × {w}");
    let (wp, cp, pairs) = (padded_width(w), co.div_ceil(32) * 32, positions(h, w) / 2);
    let mut out = Aligned::<u16>::zeroed_par(b * pairs * cp * 2);
    // One task per item. Row `y` starts at position y·wp, in slot `s = y·wp mod 2` of its first
    // pair: every channel's row is converted first, `s` values in (with zeros either side), then
    // the pairs are written out position by position, each as one contiguous run of channels.
    let len = w + 2;
    out.par_chunks_mut(pairs * cp * 2).enumerate().for_each(|(i, dst)| {
        let mut rows = vec![0u16; co * len];
        for y in 0..h {
            let s = (y * wp) % 2;
            for (o, row) in rows.chunks_exact_mut(len).enumerate() {
                row[..s].fill(0);
                bf16::convert(&dy[((i * co + o) * h + y) * w..][..w], &mut row[s..s + w]);
                row[s + w..].fill(0);
            }
            let q0 = (y * wp - s) / 2;
            for j in 0..(w + s).div_ceil(2) {
                let d = &mut dst[(q0 + j) * cp * 2..][..co * 2];
                for (o, d) in d.chunks_exact_mut(2).enumerate() {
                    d.copy_from_slice(&rows[o * len + 2 * j..][..2]);
                }
            }
        }
    });
    out
}

/// `dW (co, ci, 3, 3)` from `xb = pack_planes(x)` and `dyv = pack_grad_pairs(dy)`, summed over
/// the items in order. On AMX tiles, else on the AVX-512 BF16 dot product
/// ([`crate::conv3x3_dot`]).
pub fn weight_grad(xb: &[u16], dyv: &[u16], b: usize, ci: usize, co: usize, h: usize, w: usize) -> Vec<f32> {
    let (cip, cop) = (ci.div_ceil(32) * 32, co.div_ceil(32) * 32);
    let (plane, npos) = ((h + 2) * padded_width(w), positions(h, w));
    assert!(xb.len() >= b * cip * plane + spare(w), "conv3x3_amx: packed input is shorter than {b} items");
    assert!(dyv.len() >= b * npos * cop, "conv3x3_amx: packed output gradient is shorter than {b} items");
    if !amx::available() {
        return crate::conv3x3_dot::weight_grad(xb, dyv, b, ci, co, h, w);
    }
    weight_grad_blocks(ci, co, w, |cb, o2, off, buf| {
        // Safety: AMX is available; A reads rows of `xb` from the tap's offset (the spare covers
        // the overreach of the last plane), B reads whole packed rows of `dyv`.
        unsafe {
            tiles_on();
            zero_c();
            for i in 0..b {
                let a0 = xb.as_ptr().add((i * cip + cb * 32) * plane + off);
                let b0 = dyv.as_ptr().add((i * npos / 2 * cop + o2 * 32) * 2);
                for k0 in (0..npos).step_by(32) {
                    let (a, bb) = (a0.add(k0), b0.add(k0 / 2 * cop * 2));
                    step(a, a.add(16 * plane), plane * 2, bb, bb.add(32), cop * 4);
                }
            }
            store_c(buf.as_mut_ptr());
            tiles_off();
        }
    })
}

/// `dW (co, ci, 3, 3)` from blocks computed in parallel, one per tap and 32 × 32 channels:
/// `block(cb, o2, off, buf)` fills `buf` (input channels `32·cb ..` × output channels `32·o2 ..`,
/// row-major) for the tap whose offset into the padded planes of images `w` wide is `off`.
pub(crate) fn weight_grad_blocks(ci: usize, co: usize, w: usize, block: impl Fn(usize, usize, usize, &mut [f32; 1024]) + Sync) -> Vec<f32> {
    let (wp, ib, ob) = (padded_width(w), ci.div_ceil(32), co.div_ceil(32));
    let mut dw = vec![0f32; co * ci * 9];
    let dp = SendPtr(dw.as_mut_ptr());
    (0..9 * ib * ob).into_par_iter().for_each(|task| {
        let dp = dp;
        let (t, cb, o2) = (task / (ib * ob), (task / ob) % ib, task % ob);
        let mut buf = [0f32; 1024];
        block(cb, o2, (t / 3) * wp + t % 3, &mut buf);
        for r in 0..32 {
            let ii = cb * 32 + r;
            if ii >= ci {
                break;
            }
            for c in 0..32 {
                let o = o2 * 32 + c;
                if o >= co {
                    break;
                }
                // Safety: in bounds (o < co, ii < ci, t < 9); this task alone writes tap `t`
                // of channels (32·o2 .., 32·cb ..).
                unsafe { *dp.0.add((o * ci + ii) * 9 + t) = buf[r * 32 + c] };
            }
        }
    });
    dw
}

/// Configures this thread's tiles (the layout of [`amx`]: C in 0–3, A in 4–5, B in 6–7).
#[inline(always)]
unsafe fn tiles_on() {
    #[cfg(target_arch = "x86_64")]
    amx::configure();
}

/// Releases this thread's tile state.
#[inline(always)]
unsafe fn tiles_off() {
    #[cfg(target_arch = "x86_64")]
    amx::release();
}

/// Zeroes the four C tiles (`tmm0`–`tmm3`).
#[inline(always)]
unsafe fn zero_c() {
    #[cfg(target_arch = "x86_64")]
    std::arch::asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
}

/// Stores the 2 × 2 C tiles as one row-major 32 × 32 block at `c`.
#[inline(always)]
unsafe fn store_c(c: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    std::arch::asm!(
        "tilestored [{c} + {s}*1], tmm0",
        "tilestored [{c} + {s}*1 + 64], tmm1",
        "tilestored [{c1} + {s}*1], tmm2",
        "tilestored [{c1} + {s}*1 + 64], tmm3",
        c = in(reg) c, c1 = in(reg) c.add(16 * 32), s = in(reg) 128usize, options(nostack)
    );
}

/// One K step of the 2 × 2 block: `C[r][c] += A_r · B_c` with A tiles at `a0`, `a1` (row stride
/// `sa` bytes) and B tiles at `b0`, `b1` (row stride `sb` bytes).
#[inline(always)]
unsafe fn step(a0: *const u16, a1: *const u16, sa: usize, b0: *const u16, b1: *const u16, sb: usize) {
    #[cfg(target_arch = "x86_64")]
    std::arch::asm!(
        "tileloadd tmm4, [{a0} + {sa}*1]",
        "tileloadd tmm6, [{b0} + {sb}*1]",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tileloadd tmm7, [{b1} + {sb}*1]",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tileloadd tmm5, [{a1} + {sa}*1]",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1, sa = in(reg) sa, sb = in(reg) sb,
        options(nostack, readonly)
    );
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a0, a1, sa, b0, b1, sb);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv3x3;

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Largest difference relative to the reference's largest magnitude.
    fn rel(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let m = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f32, |d, (x, y)| d.max((x - y).abs())) / m
    }

    type Forward = fn(&[u16], usize, usize, usize, usize, &PackedTaps, Option<&[f32]>, usize) -> Vec<f32>;
    type WeightGrad = fn(&[u16], &[u16], usize, usize, usize, usize, usize) -> Vec<f32>;

    /// What the public entry points pick (AMX tiles where present), against the f32 kernels.
    #[test]
    fn matches_the_f32_kernels_within_bf16_rounding() {
        if !applies(32, 32) {
            eprintln!("no AMX and no AVX-512 BF16 on this machine: the bf16 convolution kernels are not used here");
            return;
        }
        check(forward, weight_grad);
    }

    /// The dot-product kernels on their own (on an AMX machine the entry points never pick them).
    #[test]
    fn dot_product_kernels_match_the_f32_kernels_within_bf16_rounding() {
        if !crate::conv3x3_dot::available() {
            eprintln!("no AVX-512 BF16 on this machine: the dot-product convolution kernels are not used here");
            return;
        }
        check(crate::conv3x3_dot::forward, crate::conv3x3_dot::weight_grad);
    }

    /// Against the f32 direct kernels, on shapes with ragged channel and position blocks.
    fn check(forward: Forward, weight_grad: WeightGrad) {
        for &(b, ci, co, h, w) in &[
            (2, 32, 32, 5, 32),
            (3, 48, 40, 7, 40),
            (2, 64, 96, 4, 64),
            (2, 32, 64, 5, 8),
            (3, 64, 32, 3, 13),
            (2, 32, 32, 9, 1),
            (2, 16, 16, 6, 11),
            (2, 16, 24, 5, 7),
            (2, 20, 16, 4, 9),
        ] {
            let x = rand(b * ci * h * w, 1);
            let wt = rand(co * ci * 9, 2);
            let bias = rand(co, 3);
            let dy = rand(b * co * h * w, 4);
            let xp = conv3x3::pad_planes(&x, b * ci, h, w);
            let co8 = co.div_ceil(8) * 8;
            let mut wt8 = wt.clone();
            wt8.resize(co8 * ci * 9, 0.0);
            let mut bias8 = bias.clone();
            bias8.resize(co8, 0.0);
            let y_ref: Vec<f32> =
                conv3x3::forward(&xp, b, ci, h, w, &wt8, &bias8, co8).chunks(co8 * h * w).flat_map(|c| c[..co * h * w].to_vec()).collect();
            let y = forward(&pack_pairs(&x, b, ci, h, w), b, ci, h, w, &PackedTaps::forward(&wt, co, ci), Some(&bias), co);
            assert!(rel(&y, &y_ref) < 1e-2, "forward {:?}: {}", (b, ci, co, h, w), rel(&y, &y_ref));
            // Input gradient: the f32 reference needs whole blocks of 8 input channels.
            if ci % 8 == 0 && co % 8 == 0 {
                let dx_ref = conv3x3::input_grad(&conv3x3::pad_planes(&dy, b * co, h, w), b, co, h, w, &wt, ci);
                let dx = forward(&pack_pairs(&dy, b, co, h, w), b, co, h, w, &PackedTaps::input_grad(&wt, co, ci), None, ci);
                assert!(rel(&dx, &dx_ref) < 1e-2, "input gradient {:?}: {}", (b, ci, co, h, w), rel(&dx, &dx_ref));
            }
            let dw_ref = conv3x3::weight_grad(&xp, &dy, b, ci, co, h, w);
            let dw = weight_grad(&pack_planes(&x, b, ci, h, w), &pack_grad_pairs(&dy, b, co, h, w), b, ci, co, h, w);
            assert!(rel(&dw, &dw_ref) < 1e-2, "weight gradient {:?}: {}", (b, ci, co, h, w), rel(&dw, &dw_ref));
        }
    }
}
