//! Conditioning for SpecMaskGIT-rs (SPEC.md §5).
//!
//! The paper trains its generator on CLAP *audio* embeddings and conditions on CLAP *text*
//! embeddings at inference. No CLAP checkpoint can be had here (ASSETS.md), so this crate builds
//! the same mechanism from parts that can: the frozen MiniLM text encoder ([`text`]) and a small
//! audio encoder trained contrastively into MiniLM's space ([`audio`], [`train`]). The generator
//! only sees the [`Conditioner`] interface, so a LAION-CLAP port can later slot in behind it.

pub mod audio;
pub mod corpus;
pub mod eval;
pub mod text;
pub mod train;

use candle_core::{Device, Tensor};
use std::path::PathBuf;

pub use audio::{AudioEncoder, AudioEncoderConfig};
pub use text::{TextEmbeddings, TextEncoder, MAX_TOKENS, TEXT_DIM};
pub use train::{ClapTrainConfig, ClapTrainer};

#[derive(Debug, thiserror::Error)]
pub enum ClapError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{}: missing", .0.display())]
    MissingFile(PathBuf),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{0}")]
    Format(String),
    #[error("nothing to embed: the batch is empty")]
    EmptyBatch,
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, ClapError>;

/// What the generator needs from a conditioning model (SPEC.md §5): audio embeddings for
/// training, text embeddings for inference, their width, and the null (unconditional) case.
pub trait Conditioner {
    /// Embedding width (384 for the MiniLM space).
    fn dim(&self) -> usize;
    /// Normalised mels `(B, n_mels, T)` in [−1, 1] → unit-norm embeddings `(B, dim)`.
    fn embed_audio(&self, mel: &Tensor) -> Result<Tensor>;
    /// Prompts → unit-norm embeddings `(N, dim)`.
    fn embed_text(&self, texts: &[&str]) -> Result<Tensor>;
    /// `n` null conditions: all-zero rows (a unit-norm embedding is never zero), which the
    /// generator replaces with its learned unconditional token.
    fn null(&self, n: usize, device: &Device) -> Result<Tensor> {
        Ok(Tensor::zeros((n, self.dim()), candle_core::DType::F32, device)?)
    }
}

/// The project's CLAP stand-in: frozen MiniLM text branch + trained audio branch.
pub struct Clap {
    pub text: TextEncoder,
    pub audio: AudioEncoder,
}

impl Conditioner for Clap {
    fn dim(&self) -> usize {
        TEXT_DIM
    }
    fn embed_audio(&self, mel: &Tensor) -> Result<Tensor> {
        self.audio.embed(mel)
    }
    fn embed_text(&self, texts: &[&str]) -> Result<Tensor> {
        Ok(self.text.embed(texts)?.embeddings)
    }
}

/// Rows of `x` scaled to unit L2 norm.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&n)?)
}
