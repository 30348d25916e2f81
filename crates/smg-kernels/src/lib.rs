//! CPU inference kernels of SpecMaskGIT-rs (issue 8 and the vocoder speed of issue 6), on plain
//! slices so that each one can be tested and benchmarked alone; `smg_core::fast` wraps them
//! for candle tensors.
//!
//! - [`matmul`]: `y = act(x·Wᵀ + b)` with the weight prepared once: AVX-512 f32 through the
//!   `gemm` crate, or bf16 tiles on Intel AMX ([`amx`]) where the CPU and the kernel allow it.
//! - [`gelu`]: exact (erf) GELU by a rational approximation that vectorises.
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
