//! The spectrogram tokenizer of SpecMaskGIT-rs: SpecVQGAN (SPEC.md §2) in candle.
//!
//! `encode(mel) -> tokens (B, H, W)` and `decode(tokens) -> mel`, batched; token index order
//! row = mel band from the bottom, column = time (SPEC.md §2.2).

pub use smg_core::adam;
pub mod discriminator;
pub mod fused;
mod fused_block;
pub mod pretrained;
pub mod quantizer;
pub mod specvqgan;
pub mod train;

pub use pretrained::save_pretrained;
pub use quantizer::{usage, Quantized, Usage, VectorQuantizer};
pub use specvqgan::{Config, SpecVqGan};
pub use train::{Metrics, TrainConfig, Trainer};
