//! `y = act(x · Wᵀ + b)` for a weight prepared once (PyTorch `Linear` layout, `W` is `n × k`):
//! f32 through the `gemm` crate (AVX-512 kernels, bias fused as the initial accumulator), or
//! bf16 on AMX tiles ([`crate::amx`]) when [`Precision::Bf16`] is asked for and the machine has
//! them; otherwise bf16 requests fall back to f32.

use crate::{amx, gelu, threads};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Arithmetic of a product: f32 throughout, or bf16 inputs with f32 accumulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

/// Activation fused after the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    /// Exact (erf) GELU, [`crate::gelu`].
    Gelu,
}

/// A linear layer's weight, row-major `n × k`, with its AMX tiles packed on first bf16 use.
#[derive(Debug)]
pub struct PackedWeight {
    pub n: usize,
    pub k: usize,
    w: Vec<f32>,
    tiles: OnceLock<Option<amx::PackedB>>,
}

impl PackedWeight {
    /// Takes the row-major `n × k` weight.
    pub fn new(w: Vec<f32>, n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight is not {n} × {k}");
        Self { n, k, w, tiles: OnceLock::new() }
    }

    /// The f32 weight, row-major `n × k`.
    pub fn weight(&self) -> &[f32] {
        &self.w
    }

    /// The AMX tiles of the weight (packed on first call), `None` without AMX.
    pub fn tiles(&self) -> Option<&amx::PackedB> {
        self.tiles.get_or_init(|| amx::available().then(|| amx::PackedB::new(&self.w, self.n, self.k))).as_ref()
    }

    /// Whether a product at `precision` with `m` rows runs on AMX tiles.
    pub fn uses_amx(&self, m: usize, precision: Precision) -> bool {
        precision == Precision::Bf16 && m >= 16 && amx::available()
    }

    /// `act(x · Wᵀ + bias)` for row-major `x (m × k)`; returns row-major `m × n`.
    pub fn forward(&self, x: &[f32], m: usize, bias: Option<&[f32]>, act: Act, precision: Precision) -> Vec<f32> {
        assert_eq!(x.len(), m * self.k, "input is not {m} × {}", self.k);
        if let Some(b) = bias {
            assert_eq!(b.len(), self.n, "bias is not {}", self.n);
        }
        if self.uses_amx(m, precision) {
            if let Some(t) = self.tiles() {
                return match act {
                    Act::None => amx::matmul(x, m, t, bias, |v| v),
                    Act::Gelu => amx::matmul(x, m, t, bias, gelu::gelu),
                };
            }
        }
        let (n, k) = (self.n, self.k);
        let mut y = vec![0f32; m * n];
        if let Some(b) = bias {
            y.par_chunks_mut(n).for_each(|row| row.copy_from_slice(b));
        }
        gemm_f32(m, n, k, &mut y, n, bias.is_some(), x, k, &self.w, k);
        if act == Act::Gelu {
            y.par_chunks_mut(4096).for_each(gelu::gelu_inplace);
        }
        y
    }
}

/// `dst (m × n, row stride ldd) (+)= a (m × k, row stride lda) · bᵀ` where `b` is `n × k` with row
/// stride `ldb`; accumulates onto `dst` when `accumulate`. Multi-threaded when it pays.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(m: usize, n: usize, k: usize, dst: &mut [f32], ldd: usize, accumulate: bool, a: &[f32], lda: usize, b: &[f32], ldb: usize) {
    gemm_f32_with(m, n, k, dst, ldd, accumulate, a, lda, b, ldb, parallelism(m, n, k))
}

/// [`gemm_f32`] with an explicit parallelism (callers that already split work use `None`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32_with(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ldd: usize,
    accumulate: bool,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * ldd + n && a.len() >= (m - 1) * lda + k && b.len() >= (n - 1) * ldb + k);
    // Safety: the bounds above cover every element the strided views touch.
    unsafe { gemm_raw(m, n, k, dst.as_mut_ptr(), ldd, accumulate, a.as_ptr(), lda, (b.as_ptr(), ldb as isize, 1), par) }
}

/// `dst (m × n) = a (m × k) · b (k × n)`, all row-major and contiguous, multi-threaded when it
/// pays. In this orientation the `gemm` crate packs both operands with contiguous copies (its
/// element-by-element packing of row-major left operands is what makes some products in a
/// backward pass slow; callers transpose into this form instead, see [`transpose`]).
pub fn gemm_nn(m: usize, n: usize, k: usize, dst: &mut [f32], a: &[f32], b: &[f32]) {
    assert!(dst.len() == m * n && a.len() == m * k && b.len() == k * n, "gemm_nn: operand sizes do not match {m}×{k}·{k}×{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // dst may be uninitialised (`uninit_f32`): the empty product is zero.
        return dst.fill(0.0);
    }
    // Safety: the sizes checked above cover every element of the contiguous views.
    unsafe { gemm_raw(m, n, k, dst.as_mut_ptr(), n, false, a.as_ptr(), k, (b.as_ptr(), 1, n as isize), parallelism(m, n, k)) }
}

/// The transpose `(cols × rows)` of a row-major `rows × cols` matrix, in 32 × 32 tiles, rows of
/// tiles in parallel; each tile by 8 × 8 register transposes where the CPU has AVX2
/// ([`crate::isa`]), element by element at the edges and elsewhere.
pub fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(src.len(), rows * cols, "transpose: {} values are not {rows} × {cols}", src.len());
    const T: usize = 32;
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    let mut dst = crate::uninit_f32(rows * cols); // every element is written below
    let wide = cfg!(target_arch = "x86_64") && crate::isa() >= crate::Isa::Avx2;
    // Each task owns T rows of the destination (T columns of the source).
    dst.par_chunks_mut(T * rows).enumerate().for_each(|(jb, out)| {
        let j0 = jb * T;
        let jn = out.len() / rows.max(1);
        for i0 in (0..rows).step_by(T) {
            let in_ = T.min(rows - i0);
            // The 8 × 8 blocks cover rows ..i8 and columns ..j8 of the tile.
            let (i8, j8) = if wide { (in_ / 8 * 8, jn / 8 * 8) } else { (0, 0) };
            #[cfg(target_arch = "x86_64")]
            for jj in (0..j8).step_by(8) {
                for ii in (0..i8).step_by(8) {
                    // Safety: AVX2 was detected (`wide`); the 8 × 8 block lies inside `src` (rows
                    // i0+ii.., columns j0+jj..) and inside this task's `out`.
                    unsafe {
                        transpose8_avx2(src.as_ptr().add((i0 + ii) * cols + j0 + jj), cols, out.as_mut_ptr().add(jj * rows + i0 + ii), rows)
                    };
                }
            }
            for j in 0..jn {
                let o = &mut out[j * rows..(j + 1) * rows];
                // Rows of the tile the blocks above did not cover: all of them past column j8.
                let from = if j < j8 { i8 } else { 0 };
                for i in i0 + from..i0 + in_ {
                    o[i] = src[i * cols + j0 + j];
                }
            }
        }
    });
    dst
}

/// `dst[c][r] = src[r][c]` for an 8 × 8 block (row strides `lds`, `ldd`) in eight registers.
///
/// # Safety
/// The CPU must have AVX2; both blocks must be inside live allocations.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn transpose8_avx2(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    use std::arch::x86_64::*;
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * lds)));
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let out = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    for (c, v) in out.iter().enumerate() {
        _mm256_storeu_ps(dst.add(c * ldd), *v);
    }
}

/// `dst (m × n, row stride ldd) (+)= a (m × k, row stride lda) · B`, B given as
/// `(pointer, column stride, row stride)` of a `k × n` view.
///
/// # Safety
/// Every element of the strided views must be inside live allocations, and no other thread may
/// touch the `m × n` elements of `dst` meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: usize,
    accumulate: bool,
    a: *const f32,
    lda: usize,
    b: (*const f32, isize, isize),
    par: gemm::Parallelism,
) {
    gemm_strided(m, n, k, dst, ldd, accumulate, (a, 1, lda as isize), b, par)
}

/// [`gemm_raw`] with A strided as well: `a` and `b` are `(pointer, column stride, row stride)`
/// of the `m × k` and `k × n` views (a transposed operand is a view with its strides swapped).
///
/// # Safety
/// As [`gemm_raw`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: usize,
    accumulate: bool,
    a: (*const f32, isize, isize),
    b: (*const f32, isize, isize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    gemm::gemm(m, n, k, dst, 1, ldd as isize, accumulate, a.0, a.1, a.2, b.0, b.1, b.2, 1.0f32, 1.0f32, false, false, false, par)
}

/// The `gemm` crate's parallelism for an `m × n × k` product: every thread once it pays.
pub(crate) fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(threads())
    } else {
        gemm::Parallelism::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data as data;

    fn reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32], gelu: bool) -> Vec<f64> {
        let mut y = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let v = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum::<f64>() + b[j] as f64;
                y[i * n + j] = if gelu { crate::gelu::gelu(v as f32) as f64 } else { v };
            }
        }
        y
    }

    #[test]
    fn gemm_nn_and_transpose_match_the_definition() {
        for &(m, n, k) in &[(1, 1, 1), (3, 70, 5), (33, 65, 130)] {
            let (a, b) = (data(m * k, 4), data(k * n, 5));
            let mut y = vec![0f32; m * n];
            gemm_nn(m, n, k, &mut y, &a, &b);
            for i in 0..m {
                for j in 0..n {
                    let r: f64 = (0..k).map(|t| a[i * k + t] as f64 * b[t * n + j] as f64).sum();
                    assert!((y[i * n + j] as f64 - r).abs() < 1e-4, "({m},{n},{k}) at {i},{j}");
                }
            }
            let at = transpose(&a, m, k);
            assert!((0..m).all(|i| (0..k).all(|t| at[t * m + i] == a[i * k + t])));
            assert_eq!(transpose(&at, k, m), a);
        }
        // 8 × 8 register blocks with ragged edges, several 32 × 32 tiles, and empty shapes.
        for &(r, c) in &[(8, 8), (9, 17), (37, 45), (64, 96), (300, 70), (0, 5), (5, 0)] {
            let a = data(r * c, 6);
            let at = transpose(&a, r, c);
            assert!((0..r).all(|i| (0..c).all(|j| at[j * r + i] == a[i * c + j])), "{r} × {c}");
        }
    }

    #[test]
    fn f32_and_bf16_products_match_f64() {
        for &(m, n, k) in &[(1, 3, 5), (40, 70, 130), (100, 64, 768)] {
            let (x, w, b) = (data(m * k, 1), data(n * k, 2), data(n, 3));
            let pw = PackedWeight::new(w.clone(), n, k);
            for act in [Act::None, Act::Gelu] {
                let r = reference(&x, m, &w, n, k, &b, act == Act::Gelu);
                let y = pw.forward(&x, m, Some(&b), act, Precision::F32);
                let e = y.iter().zip(&r).map(|(a, b)| (*a as f64 - b).abs()).fold(0f64, f64::max);
                assert!(e < 1e-4, "f32 ({m},{n},{k}) {act:?}: {e}");
                let y = pw.forward(&x, m, Some(&b), act, Precision::Bf16);
                let e = y.iter().zip(&r).map(|(a, b)| (*a as f64 - b).abs()).fold(0f64, f64::max);
                // bf16 keeps 8 bits: error of order 2^-8 · sqrt(k) · |x||w| for uniform inputs.
                assert!(e < 0.01 * (k as f64).sqrt(), "bf16 ({m},{n},{k}) {act:?}: {e}");
            }
            let y = pw.forward(&x, m, None, Act::None, Precision::F32);
            let r = reference(&x, m, &w, n, k, &vec![0.0; n], false);
            assert!(y.iter().zip(&r).all(|(a, b)| (*a as f64 - b).abs() < 1e-4));
        }
    }
}
