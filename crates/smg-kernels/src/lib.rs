//! CPU inference kernels of SpecMaskGIT-rs (and the vocoder's), on plain
//! slices so that each one can be tested and benchmarked alone; `smg_core::fast` wraps them
//! for candle tensors.
//!
//! - [`matmul`]: `y = act(x·Wᵀ + b)` with the weight prepared once: AVX-512 f32 through the
//!   `gemm` crate, or bf16 tiles on Intel AMX ([`amx`]) where the CPU and the kernel allow it.
//! - [`gelu`]: exact (erf) GELU by a rational approximation that vectorises.
//! - [`vit`]: a whole pre-norm transformer block fused, bf16 tiles from LayerNorm to residual.
//! - [`conv1d`]: 1-D convolution and transposed convolution as chunked im2col + gemm, with the
//!   leaky-ReLU before, and the bias and residual after, fused in.
//!
//! Every fast path can be switched off at run time ([`set_fast`], or `SMG_FAST=0`; AMX alone
//! with `SMG_AMX=0`), so the plain candle path stays available as the baseline and the reference.
// `let p = p;` inside a closure makes it capture the whole `Send` pointer wrapper rather than
// its raw-pointer field (edition-2021 disjoint capture), which would not be `Send`.
#![allow(clippy::redundant_locals)]

pub mod amx;
pub mod attention;
pub mod bf16;
pub mod conv1d;
pub mod conv2d;
pub mod conv3x3;
pub mod conv3x3_amx;
pub mod conv3x3_dot;
mod conv3x3_dw;
pub mod dot_bf16;
pub mod gelu;
pub mod isa;
pub mod matmul;
pub mod snake;
pub mod vit;

pub use isa::{isa, set_isa, Isa};
pub use matmul::{Act, PackedWeight, Precision};

use std::sync::atomic::{AtomicU8, Ordering};

/// A process-wide on/off switch, on unless its environment variable says `0`, `off` or `false`
/// (read on first use), and settable at run time (benchmarks compare both sides in one run).
pub struct Switch {
    cell: AtomicU8, // 0: off, 1: on, 2: not yet read from the environment
    env: &'static str,
}

impl Switch {
    pub const fn new(env: &'static str) -> Self {
        Self { cell: AtomicU8::new(2), env }
    }

    pub fn get(&self) -> bool {
        match self.cell.load(Ordering::Relaxed) {
            0 => false,
            1 => true,
            _ => {
                let on = !matches!(std::env::var(self.env).as_deref(), Ok("0") | Ok("off") | Ok("false"));
                self.set(on);
                on
            }
        }
    }

    pub fn set(&self, on: bool) {
        self.cell.store(on as u8, Ordering::Relaxed);
    }
}

static FAST: Switch = Switch::new("SMG_FAST");

/// Whether callers should take these kernels (default yes; `SMG_FAST=0` or [`set_fast`]`(false)`
/// turns them off so the plain candle path runs instead).
pub fn fast_enabled() -> bool {
    FAST.get()
}

/// Turns the fast kernels on or off for the whole process (benchmarks compare both in one run).
pub fn set_fast(on: bool) {
    FAST.set(on)
}

/// A zero-initialised buffer of `u16` or `f32` whose first element sits on a 64-byte boundary:
/// AMX tile loads and stores whose rows straddle cache lines run ~3× slower (measured with
/// `examples/amx_sched.rs`: 16 vs 2.3 ns per 1 KiB tile load), and `Vec` only promises the
/// element type's alignment.
#[derive(Clone)]
pub struct Aligned<T: Zeroable> {
    lines: Vec<Line>,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// Element types for which all-zero bits are the value zero.
pub trait Zeroable: Copy {}
impl Zeroable for u16 {}
impl Zeroable for f32 {}

impl<T: Zeroable> Aligned<T> {
    pub fn zeroed(len: usize) -> Self {
        let bytes = len * std::mem::size_of::<T>();
        Self { lines: vec![Line([0; 64]); bytes.div_ceil(64)], len, _t: std::marker::PhantomData }
    }

    /// [`Self::zeroed`] with the zeroing spread over rayon's pool, for the big packed operands
    /// of the training kernels: on heap memory a previous step freed, `calloc` zeroes the whole
    /// block on the calling thread while the other cores wait.
    pub(crate) fn zeroed_par(len: usize) -> Self {
        use rayon::prelude::*;
        let mut a = Self::uninit(len);
        a.lines.par_chunks_mut(1024).for_each(|c| c.fill(Line([0; 64])));
        a
    }

    /// A buffer whose contents are unspecified, for callers that write every element before
    /// any is read (as [`uninit_f32`], whose reasons apply: zeroing a packed operand that is
    /// then overwritten cost ≈ 5 % of a masked-ViT training step).
    pub(crate) fn uninit(len: usize) -> Self {
        let n = (len * std::mem::size_of::<T>()).div_ceil(64);
        let mut lines = Vec::with_capacity(n);
        // Safety: `Line` is plain bytes with no destructor, and every caller writes all `len`
        // elements before any is read.
        #[allow(clippy::uninit_vec)]
        unsafe {
            lines.set_len(n)
        };
        // Under test every byte starts as 0xFF (a bf16 / f32 NaN), so an element left unwritten
        // shows in the results.
        #[cfg(test)]
        lines.fill(Line([0xFF; 64]));
        Self { lines, len, _t: std::marker::PhantomData }
    }
}

impl<T: Zeroable> std::ops::Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // Safety: the lines hold at least `len` zero-initialised `T`s, suitably aligned.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const T, self.len) }
    }
}

impl<T: Zeroable> std::ops::DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // Safety: as in `deref`, and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut T, self.len) }
    }
}

impl<T: Zeroable> std::fmt::Debug for Aligned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aligned({} elements)", self.len)
    }
}

/// A raw pointer that may cross threads: each task writes a disjoint part of one output.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// A vector of `n` f32 whose contents are unspecified, for outputs that the caller overwrites
/// entirely before reading (products with `beta = 0`, transposes, im2col): `vec![0.0; n]` would
/// `memset` it first, and with freed memory kept in the process (`smg_core::alloc`) that zeroing
/// is not free: ≈ 10 % of a tokenizer training step. The same allocation candle's CPU backend
/// makes for its own outputs (`alloc_uninit`).
pub fn uninit_f32(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // Safety: f32 has no invalid bit patterns and no destructor, and every caller writes all `n`
    // elements before any is read.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(n)
    };
    v
}

/// Seeded uniform values in [−1, 1) for the kernels' tests (a 64-bit LCG, top 24 bits).
#[cfg(test)]
pub(crate) fn test_data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub(crate) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Sum of a slice in 16 independent lanes (a plain `iter().sum()` is one serial chain of adds,
/// as float addition may not be reordered; the lanes let it vectorise).
#[inline(always)]
pub(crate) fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element of a slice in 16 lanes (−∞ for an empty one), see [`lane_sum`].
#[inline(always)]
pub(crate) fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for c in chunks {
        for i in 0..16 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().fold(tail, |a, &b| if b > a { b } else { a })
}
