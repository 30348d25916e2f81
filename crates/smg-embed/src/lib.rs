//! Embedders for the Fréchet audio distance (SPEC.md §6) behind one interface, [`Embedder`]:
//!
//! * [`aisfx::Aisfx`]: the aiSFX sound-effects network (512-d, 44.1 kHz), the default here because
//!   its weights ship on PyPI; scores with it are "FAD-aisfx", not comparable with VGGish FAD.
//! * [`vggish::Vggish`]: the VGGish architecture of torchvggish (128-d per 0.96 s, 16 kHz), for a
//!   user who has the official weights converted to safetensors.
//! * [`MelStats`]: log-mel statistics of the whole clip, a cheap model-free baseline.
//!
//! [`fad`] turns two sets of clips into a distance with the symmetric-eigen Fréchet distance of
//! `smg-eval`.

pub mod aisfx;
pub mod fad;
pub mod vggish;

pub use aisfx::Aisfx;
pub use fad::{embed_clips, fad_between, fad_dirs, fad_of_embeddings, load_dir, Clip, FadReport};
pub use vggish::Vggish;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Audio(#[from] smg_audio::AudioError),
    #[error(transparent)]
    Eval(#[from] smg_eval::EvalError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, EmbedError>;

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(EmbedError::Invalid(msg.into()))
}

/// Checks one clip before an embedder sees it: non-empty, finite, a positive sample rate.
pub(crate) fn check_clip(samples: &[f32], sample_rate: u32) -> Result<()> {
    if sample_rate == 0 {
        return invalid("sample rate is 0");
    }
    if samples.is_empty() {
        return invalid("the clip is empty");
    }
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        return invalid(format!("sample {i} is not finite ({})", samples[i]));
    }
    Ok(())
}

/// An audio embedding network: one clip in, a set of fixed-width embeddings out (one per
/// analysis window; FAD pools all windows of all clips of a set, SPEC.md §6).
pub trait Embedder {
    /// Short name for reports (`aisfx`, `vggish`, `mel`).
    fn name(&self) -> &str;
    /// Width of one embedding.
    fn dim(&self) -> usize;
    /// Embeddings `(windows, dim)` of mono `samples` at `sample_rate` (resampled as needed).
    fn embed(&self, samples: &[f32], sample_rate: u32) -> Result<Vec<Vec<f64>>>;
    /// One vector per clip: the mean over windows (what a probe or classifier takes).
    fn embed_mean(&self, samples: &[f32], sample_rate: u32) -> Result<Vec<f64>> {
        let e = self.embed(samples, sample_rate)?;
        let n = e.len() as f64;
        Ok((0..self.dim()).map(|j| e.iter().map(|r| r[j]).sum::<f64>() / n).collect())
    }
}

/// Log-mel statistics of the whole clip ([`smg_eval::mel_statistics`] on the HiFi-GAN log-mel
/// at 22.05 kHz, 245 numbers): one embedding per clip, no network.
pub struct MelStats {
    mel: smg_audio::MelTransform,
}

impl Default for MelStats {
    fn default() -> Self {
        Self { mel: smg_audio::MelTransform::hifigan() }
    }
}

impl Embedder for MelStats {
    fn name(&self) -> &str {
        "mel"
    }
    fn dim(&self) -> usize {
        smg_eval::MEL_STAT_DIM
    }
    fn embed(&self, samples: &[f32], sample_rate: u32) -> Result<Vec<Vec<f64>>> {
        check_clip(samples, sample_rate)?;
        let x = smg_audio::resample(samples, sample_rate, self.mel.config.sample_rate)?;
        let m = self.mel.log_mel(&x)?;
        let (b, t) = m.dim();
        let flat: Vec<f32> = m.iter().copied().collect();
        Ok(vec![smg_eval::mel_statistics(&flat, b, t)?])
    }
}

/// Builds an embedder by name: `aisfx` (weights at `<data>/weights/aisfx.safetensors`),
/// `vggish` (weights at `<data>/weights/vggish.safetensors`, which a user converts from
/// torchvggish) or `mel`.
pub fn by_name(name: &str, data_dir: &std::path::Path, device: &candle_core::Device) -> Result<Box<dyn Embedder>> {
    match name {
        "aisfx" => Ok(Box::new(Aisfx::load(&data_dir.join("weights/aisfx.safetensors"), device)?)),
        "vggish" => Ok(Box::new(Vggish::load(&data_dir.join("weights/vggish.safetensors"), device)?)),
        "mel" => Ok(Box::new(MelStats::default())),
        other => invalid(format!("unknown embedder {other:?}: use aisfx, vggish or mel")),
    }
}
