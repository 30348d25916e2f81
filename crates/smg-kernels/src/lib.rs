//! CPU inference kernels of SpecMaskGIT-rs (issue 8 and the vocoder speed of issue 6), on plain
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

pub mod amx;
pub mod attention;
pub mod bf16;
pub mod conv1d;
pub mod conv2d;
pub mod gelu;
pub mod matmul;
pub mod snake;
pub mod vit;

pub use matmul::{Act, PackedWeight, Precision};

use std::sync::atomic::{AtomicU8, Ordering};

static FAST: AtomicU8 = AtomicU8::new(2); // 2: not yet read from the environment

/// Whether callers should take these kernels (default yes; `SMG_FAST=0` or [`set_fast`]`(false)`
/// turns them off so the plain candle path runs instead).
pub fn fast_enabled() -> bool {
    match FAST.load(Ordering::Relaxed) {
        0 => false,
        1 => true,
        _ => {
            let on = !matches!(std::env::var("SMG_FAST").as_deref(), Ok("0") | Ok("off") | Ok("false"));
            FAST.store(on as u8, Ordering::Relaxed);
            on
        }
    }
}

/// Turns the fast kernels on or off for the whole process (benchmarks compare both in one run).
pub fn set_fast(on: bool) {
    FAST.store(on as u8, Ordering::Relaxed);
}

/// A raw pointer that may cross threads: each task writes a disjoint part of one output.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

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
