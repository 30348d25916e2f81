//! Neural vocoders (SPEC.md §4): log-mel in the project's convention → 22 050 Hz waveform.

pub mod bigvsan;
pub mod hifigan;

pub use bigvsan::{BigVsan, Config as BigVsanConfig};
pub use hifigan::{Config as HifiGanConfig, HifiGan};
