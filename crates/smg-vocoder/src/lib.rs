//! Neural vocoders (SPEC.md §4): log-mel in the project's convention → 22 050 Hz waveform, their
//! discriminators, losses and trainer.

pub mod bigvsan;
pub mod discriminator;
pub mod hifigan;
pub mod loss;
pub mod train;

pub use bigvsan::{BigVsan, Config as BigVsanConfig};
pub use hifigan::{Config as HifiGanConfig, HifiGan};
pub use train::{Generator, GeneratorConfig, TrainConfig, Trainer};
