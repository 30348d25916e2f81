//! `C = A · B` with bf16 products and f32 accumulation on the AVX-512 BF16 dot-product
//! instruction (`vdpbf16ps`: 32 bf16 products summed pairwise into 16 f32 lanes, twice the
//! multiply rate of an f32 FMA on the same vector width). Zen 4 and Sapphire Rapids have it;
//! elsewhere [`gemm`] runs the f32 product instead, so callers can ask for bf16 everywhere.
//!
//! Each operand may be given as stored or transposed, so a training step's three products
//! (`x·Wᵀ`, `dY·W`, `dYᵀ·x`) need no transposes: both are packed once into bf16 *pair panels*
//! (8 rows of A or 32 columns of B, `k` in pairs), then an 8 × 32 microkernel runs over
//! 256-pair slices of `k`, tiles of 64 rows × 256 columns in parallel. Every output element is
//! summed by one thread in a fixed order, so results are bit-reproducible.
//!
//! Where the CPU has AMX ([`crate::amx::available`], Sapphire Rapids and later) the same
//! products run on its tiles instead: both operands packed into 16 × 32 bf16 tiles each step
//! (a transposed A through [`crate::matmul::transpose`] first), [`crate::amx::gemm_into`] on
//! 2 × 2 blocks of tiles. The rounding of the operands is the same; only the order of the f32
//! sums differs.

use crate::{bf16, SendPtr};
use rayon::prelude::*;

const MR: usize = 8;
const NR: usize = 32;
const KC: usize = 256; // k-pairs per slice
const MC: usize = 64;
const NC: usize = 256;

/// A row-major matrix operand: `data` holds `rows × cols` (`transposed == false`) or its
/// transpose stored row-major as `cols × rows` (`transposed == true`).
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub data: &'a [f32],
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// The matrix as stored.
    pub fn plain(data: &'a [f32]) -> Self {
        Self { data, transposed: false }
    }
    /// The transpose of the stored matrix.
    pub fn t(data: &'a [f32]) -> Self {
        Self { data, transposed: true }
    }
}

/// Whether this CPU runs the bf16 dot-product instruction (else [`gemm`] computes in f32).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AV.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `dst (m × n, row-major) = a (m × k) · b (k × n)`, bf16 products with f32 sums where the CPU
/// has them ([`available`]), else f32 through the `gemm` crate.
pub fn gemm(m: usize, n: usize, k: usize, dst: &mut [f32], a: Operand, b: Operand) {
    assert!(
        dst.len() == m * n && a.data.len() == m * k && b.data.len() == k * n,
        "dot_bf16::gemm: operand sizes do not match {m}×{k}·{k}×{n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst.fill(0.0);
        return;
    }
    if crate::amx::available() && m >= 16 && n >= 16 && k >= 32 {
        return gemm_amx(m, n, k, dst, a, b);
    }
    if !available() {
        return gemm_f32(m, n, k, dst, a, b);
    }
    gemm_dot(m, n, k, dst, a, b)
}

/// [`gemm`] on the bf16 dot-product instruction (the CPU has it: [`available`]).
fn gemm_dot(m: usize, n: usize, k: usize, dst: &mut [f32], a: Operand, b: Operand) {
    let kp = k.div_ceil(2);
    let pa = pack_a(a, m, k);
    // B: panels of NR columns, `kp × NR` pairs each.
    let pb = if b.transposed { pack_lanes(b.data, n, k, NR) } else { pack_depth(b.data, n, k, NR) };
    let units = m.div_ceil(MC) * n.div_ceil(NC);
    let threads = crate::threads();
    if units >= 2 * threads || kp <= 2 * KC || threads == 1 {
        return slices(&pa, &pb, m, n, kp, 0..kp, dst);
    }
    // Few output tiles and a long depth (weight gradients over a whole batch): each task sums
    // one range of k into its own buffer, and the buffers are added in range order.
    let step = kp.div_ceil(2 * threads).div_ceil(KC) * KC;
    let parts: Vec<Vec<f32>> = (0..kp)
        .step_by(step)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|p0| {
            let mut part = vec![0f32; m * n];
            slices(&pa, &pb, m, n, kp, p0..(p0 + step).min(kp), &mut part);
            part
        })
        .collect();
    dst.copy_from_slice(&parts[0]);
    for part in &parts[1..] {
        dst.iter_mut().zip(part).for_each(|(d, v)| *d += v);
    }
}

/// [`gemm`] on AMX tiles.
fn gemm_amx(m: usize, n: usize, k: usize, dst: &mut [f32], a: Operand, b: Operand) {
    use crate::amx::{gemm_into, PackedA, PackedB};
    let pa = if a.transposed { PackedA::from_f32_t(a.data, m, k) } else { PackedA::from_f32(a.data, m, k) };
    let pb = if b.transposed { PackedB::new(b.data, n, k) } else { PackedB::from_k_rows_par(n, k, |kk| &b.data[kk * n..(kk + 1) * n]) };
    gemm_into(&pa, &pb, dst);
}

/// `dst = A · B` over the depth pairs `range` of the packed operands, tiles in parallel.
fn slices(pa: &PackedA, pb: &[u32], m: usize, n: usize, kp: usize, range: std::ops::Range<usize>, dst: &mut [f32]) {
    let nb = n.div_ceil(NC);
    let out = SendPtr(dst.as_mut_ptr());
    (0..m.div_ceil(MC) * nb).into_par_iter().for_each(|u| {
        let out = out;
        let (i0, j0) = ((u / nb) * MC, (u % nb) * NC);
        let (i1, j1) = ((i0 + MC).min(m), (j0 + NC).min(n));
        for p0 in range.clone().step_by(KC) {
            let pk = KC.min(range.end - p0);
            for j in (j0..j1).step_by(NR) {
                let bp = &pb[(j / NR) * kp * NR + p0 * NR..][..pk * NR];
                for i in (i0..i1).step_by(MR) {
                    let (ap, rs, ps) = pa.tile(i, p0);
                    // Safety: the tile (i.., j..) lies inside dst and belongs to this task only;
                    // `ap` addresses MR rows of `pk` pairs inside `pa`; the CPU has the
                    // instructions (checked by `available`).
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        micro(pk, ap, rs, ps, bp, out.0.add(i * n + j), n, MR.min(i1 - i), NR.min(j1 - j), p0 == range.start)
                    };
                }
            }
        }
    });
}

/// A packed in bf16 pairs (`u32`, even depth index in the low half), rows padded to a multiple
/// of [`MR`] with zeros: stored A row by row (`rows × kp`, a plain conversion), transposed A in
/// panels of `MR` rows (`kp × MR` each), whichever its layout makes a streaming pass.
struct PackedA {
    data: Vec<u32>,
    panels: bool,
    kp: usize,
}

impl PackedA {
    /// The first pair of tile row `i` at depth pair `p`, with row and depth-pair strides.
    fn tile(&self, i: usize, p: usize) -> (*const u32, usize, usize) {
        let base = self.data.as_ptr();
        // Pointer arithmetic inside `data` (`i < rows`, `p < kp`).
        if self.panels {
            (base.wrapping_add((i / MR) * self.kp * MR + p * MR), 1, MR)
        } else {
            (base.wrapping_add(i * self.kp + p), self.kp, 1)
        }
    }
}

fn pack_a(a: Operand, m: usize, k: usize) -> PackedA {
    let kp = k.div_ceil(2);
    if a.transposed {
        return PackedA { data: pack_depth(a.data, m, k, MR), panels: true, kp };
    }
    let mut data = vec![0u32; m.div_ceil(MR) * MR * kp];
    data.par_chunks_mut(kp).zip(a.data.par_chunks(k)).for_each(|(dst, row)| {
        // Safety: `dst` holds `2·kp ≥ k` u16 (u32 has no stricter layout rules than 2 × u16).
        let halves = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut u16, 2 * kp) };
        bf16::convert(row, &mut halves[..k]);
    });
    PackedA { data, panels: false, kp }
}

fn bits(v: f32) -> u32 {
    bf16::from_f32(v) as u32
}

/// Packs a `lanes × k` matrix stored depth-major (`src[t*lanes + l]`) into panels of `r`
/// lanes, `panel[p][l] = (v[2p], v[2p+1])` of lane `l`, zero-padded; depth pairs in parallel.
fn pack_depth(src: &[f32], lanes: usize, k: usize, r: usize) -> Vec<u32> {
    let kp = k.div_ceil(2);
    let panels = lanes.div_ceil(r);
    let mut out = vec![0u32; panels * kp * r];
    let ptr = SendPtr(out.as_mut_ptr());
    (0..kp).into_par_iter().with_min_len(8).for_each(|p| {
        let ptr = ptr;
        let lo = &src[2 * p * lanes..][..lanes];
        let hi = (2 * p + 1 < k).then(|| &src[(2 * p + 1) * lanes..][..lanes]);
        for q in 0..panels {
            let (l0, nl) = (q * r, r.min(lanes - q * r));
            // Safety: row `p` of panel `q` is written by this task only and lies inside `out`.
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr.0.add(q * kp * r + p * r), nl) };
            interleave(&lo[l0..l0 + nl], hi.map(|h| &h[l0..l0 + nl]), dst);
        }
    });
    out
}

/// Packs a `lanes × k` matrix stored lane-major (`src[l*k + t]`, a small weight) the same way.
fn pack_lanes(src: &[f32], lanes: usize, k: usize, r: usize) -> Vec<u32> {
    let kp = k.div_ceil(2);
    let mut out = vec![0u32; lanes.div_ceil(r) * kp * r];
    out.par_chunks_mut(kp * r).enumerate().for_each(|(q, panel)| {
        for l in 0..r.min(lanes - q * r) {
            let row = &src[(q * r + l) * k..][..k];
            for (p, pair) in row.chunks(2).enumerate() {
                panel[p * r + l] = bits(pair[0]) | pair.get(1).map_or(0, |&v| bits(v) << 16);
            }
        }
    });
    out
}

/// `dst[l] = (lo[l], hi[l])` as bf16 pairs (`hi` absent: zero), vectorised where AVX-512 is.
fn interleave(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // Safety: checked just above.
        return unsafe { interleave_avx512(lo, hi, dst) };
    }
    interleave_plain(lo, hi, dst)
}

#[inline(always)]
fn interleave_plain(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    match hi {
        Some(hi) => {
            dst.iter_mut().zip(lo.iter().zip(hi)).for_each(|(d, (&a, &b))| *d = bf16::from_f32_vec(a) | bf16::from_f32_vec(b) << 16)
        }
        None => dst.iter_mut().zip(lo).for_each(|(d, &a)| *d = bf16::from_f32_vec(a)),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn interleave_avx512(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    interleave_plain(lo, hi, dst)
}

/// One `rows × cols` (≤ 8 × 32) tile of C over `pk` pairs of depth: stores (`first`) or adds.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512 BF16; `a` must address `MR` rows (stride `rs`) of
/// `pk` pairs (stride `ps`); `c` must address `rows` rows of `cols` floats
/// with row stride `ldc`, owned by the caller.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    pk: usize,
    a: *const u32,
    rs: usize,
    ps: usize,
    bp: &[u32],
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    first: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let b = bp.as_ptr();
    for p in 0..pk {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR) as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16) as *const _));
        for (r, acc) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(p * ps + r * rs) as i32));
            acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
            acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
        }
    }
    let m0 = if cols >= 16 { 0xffff } else { ((1u32 << cols) - 1) as __mmask16 };
    let m1 = if cols >= 32 {
        0xffff
    } else if cols <= 16 {
        0
    } else {
        ((1u32 << (cols - 16)) - 1) as __mmask16
    };
    for (r, acc) in acc.iter().enumerate().take(rows) {
        let row = c.add(r * ldc);
        for (h, mask) in [(0usize, m0), (1, m1)] {
            if mask == 0 {
                continue;
            }
            let mut v = acc[h];
            if !first {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, row.add(16 * h)));
            }
            _mm512_mask_storeu_ps(row.add(16 * h), mask, v);
        }
    }
}

/// The f32 product of the same operands through the `gemm` crate (strided views, no copies).
fn gemm_f32(m: usize, n: usize, k: usize, dst: &mut [f32], a: Operand, b: Operand) {
    // (pointer, column stride, row stride) of A (m × k) and B (k × n) as stored.
    let a = if a.transposed { (a.data.as_ptr(), m as isize, 1) } else { (a.data.as_ptr(), 1, k as isize) };
    let b = if b.transposed { (b.data.as_ptr(), k as isize, 1) } else { (b.data.as_ptr(), 1, n as isize) };
    // Safety: the sizes checked by `gemm` cover every element of these strided views.
    unsafe { crate::matmul::gemm_strided(m, n, k, dst.as_mut_ptr(), n, false, a, b, crate::matmul::parallelism(m, n, k)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data as data;

    fn t(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        crate::matmul::transpose(x, rows, cols)
    }

    type Gemm = fn(usize, usize, usize, &mut [f32], Operand, Operand);

    fn orientations() -> [(bool, bool); 4] {
        [(false, false), (true, false), (false, true), (true, true)]
    }

    /// The bf16 paths this CPU runs: what [`gemm`] picks, and each kernel on its own.
    fn paths() -> Vec<(&'static str, Gemm)> {
        let mut p: Vec<(&'static str, Gemm)> = vec![("gemm", gemm)];
        if available() {
            p.push(("dot product", gemm_dot));
        }
        if crate::amx::available() {
            p.push(("AMX", gemm_amx));
        }
        p
    }

    /// Every orientation and ragged size, on every bf16 path the CPU runs, against f64 sums of the bf16-rounded inputs (the
    /// instruction's products are exact; only the f32 sums round) and of the f32 inputs.
    #[test]
    fn every_orientation_matches_the_definition() {
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (9, 33, 2), (17, 70, 513), (64, 256, 600), (130, 300, 31)] {
            let (a, b) = (data(m * k, 1), data(k * n, 2));
            let (at, bt) = (t(&a, m, k), t(&b, k, n));
            let exact = |round: bool| -> Vec<f64> {
                let r = |v: f32| if round { bf16::round(v) as f64 } else { v as f64 };
                let mut y = vec![0f64; m * n];
                for i in 0..m {
                    for j in 0..n {
                        y[i * n + j] = (0..k).map(|q| r(a[i * k + q]) * r(b[q * n + j])).sum();
                    }
                }
                y
            };
            let (rounded, full) = (exact(available()), exact(false));
            for ((ta, tb), (path, run)) in orientations().into_iter().flat_map(|o| paths().into_iter().map(move |p| (o, p))) {
                let oa = Operand { data: if ta { &at } else { &a }, transposed: ta };
                let ob = Operand { data: if tb { &bt } else { &b }, transposed: tb };
                let mut y = vec![f32::NAN; m * n];
                run(m, n, k, &mut y, oa, ob);
                let err = |r: &[f64]| y.iter().zip(r).map(|(v, r)| (*v as f64 - r).abs()).fold(0f64, f64::max);
                let tol = 1e-5 * (k as f64).sqrt() * 4.0;
                assert!(err(&rounded) < tol, "{path} ({m},{n},{k}) {ta} {tb}: {} against the rounded inputs", err(&rounded));
                // Against the f32 inputs: bf16 keeps 8 bits, so ≈ 2^-8 · sqrt(k) for these inputs.
                assert!(err(&full) < 0.01 * (k as f64).sqrt(), "{path} ({m},{n},{k}) {ta} {tb}: {}", err(&full));
            }
        }
    }

    /// The f32 fallback (what CPUs without the bf16 dot product run) in every orientation.
    #[test]
    fn the_f32_fallback_matches_the_definition() {
        let (m, n, k) = (13, 37, 29);
        let (a, b) = (data(m * k, 7), data(k * n, 8));
        let (at, bt) = (t(&a, m, k), t(&b, k, n));
        for (ta, tb) in orientations() {
            let mut y = vec![f32::NAN; m * n];
            let oa = Operand { data: if ta { &at } else { &a }, transposed: ta };
            let ob = Operand { data: if tb { &bt } else { &b }, transposed: tb };
            gemm_f32(m, n, k, &mut y, oa, ob);
            for i in 0..m {
                for j in 0..n {
                    let r: f64 = (0..k).map(|q| a[i * k + q] as f64 * b[q * n + j] as f64).sum();
                    assert!((y[i * n + j] as f64 - r).abs() < 1e-4, "{ta} {tb} at {i},{j}");
                }
            }
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_bits() {
        let (m, n, k) = (100, 300, 700);
        let (a, b) = (data(m * k, 3), data(k * n, 4));
        for (path, run) in paths() {
            let mut y1 = vec![0f32; m * n];
            let mut y2 = vec![1f32; m * n];
            run(m, n, k, &mut y1, Operand::plain(&a), Operand::plain(&b));
            run(m, n, k, &mut y2, Operand::plain(&a), Operand::plain(&b));
            assert!(y1.iter().zip(&y2).all(|(x, y)| x.to_bits() == y.to_bits()), "{path}");
        }
        // A long depth with few tiles (split over k): still the definition.
        let (m, n, k) = (8, 40, 9000);
        let (a, b) = (data(m * k, 5), data(k * n, 6));
        let mut y = vec![0f32; m * n];
        gemm(m, n, k, &mut y, Operand::plain(&a), Operand::t(&t(&b, k, n)));
        for i in 0..m {
            for j in 0..n {
                let r: f64 = (0..k).map(|q| bf16::round(a[i * k + q]) as f64 * bf16::round(b[q * n + j]) as f64).sum();
                let r = if available() { r } else { (0..k).map(|q| a[i * k + q] as f64 * b[q * n + j] as f64).sum() };
                assert!((y[i * n + j] as f64 - r).abs() < 1e-2, "{i},{j}");
            }
        }
    }
}
