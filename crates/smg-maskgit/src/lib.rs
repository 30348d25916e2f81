//! SpecMaskGIT proper (SPEC.md §3): the masked ViT over tokenizer grids and its iterative
//! sampler, with the sampler's pieces (mask schedule, guidance schedule, Gumbel temperature,
//! re-masking rule, token draw) as small traits, and the masks of the zero-shot tasks.

pub mod preset;
pub mod sampler;
pub mod schedule;
pub mod tasks;
pub mod train;
pub mod vit;

pub use preset::{SamplerPreset, PRESET_FILE};
pub use sampler::{SampleOutput, Sampler, Step};
pub use schedule::{
    guidance_named, CfgSchedule, Draw, Guidance, Gumbel, MaskSchedule, Remask, RemaskRule, Rescaled, Schedule, Temperature, TokenDraw,
};
pub use vit::{Config, MaskedVit};

#[derive(Debug, thiserror::Error)]
pub enum MaskGitError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, MaskGitError>;
