//! Audio front end of SpecMaskGIT-rs (SPEC.md §1, §1.1): the first and last stage of
//! wav → mel → tokens → masked ViT + sampler → tokens → mel → vocoder → wav.
//!
//! * [`io`]: decode WAV/FLAC/OGG Vorbis/MP3, mix to mono, write WAV.
//! * [`resample`]: band-limited sample-rate conversion (rubato).
//! * [`stft`], [`mel`]: the vocoder-standard log-mel (HiFi-GAN convention).
//! * [`norm`]: peak normalisation, crop/pad to frames, the SpecVQGAN [−1, 1] mapping.
//! * [`griffin_lim`]: mel → waveform without a neural network.
//! * [`splice`]: crossfaded splices and an FIR crossover, for edits of whole recordings.

pub mod error;
pub mod griffin_lim;
pub mod io;
pub mod mel;
pub mod norm;
pub mod resample;
pub mod splice;
pub mod stft;

pub use error::{AudioError, Result};
pub use griffin_lim::{mel_to_audio, GriffinLimConfig};
pub use io::{
    load, mix_to_mono, wav_bytes, wav_bytes_channels, write_wav, write_wav_channels, Audio, AudioInfo, SampleFormat, WavEncoding,
};
pub use mel::{MelConfig, MelTransform};
pub use norm::{fit_to_frames, peak_normalize, PAPER_FRAMES, PAPER_SAMPLES};
pub use resample::resample;

use ndarray::Array2;
use std::path::Path;

/// Loads any supported file as mono audio at `sample_rate` (mix down, then resample).
/// No normalisation is applied; see [`prepare_clip`] for the model-ready version.
pub fn load_mono(path: impl AsRef<Path>, sample_rate: u32) -> Result<Vec<f32>> {
    let audio = load(path)?;
    resample(&audio.to_mono(), audio.sample_rate, sample_rate)
}

/// The model input of SPEC.md §1: mono, resampled, peak-normalised to 0.95 and, when `frames`
/// is given, cropped (from `offset`) or zero-padded to exactly `frames · hop` samples.
pub fn prepare_clip(path: impl AsRef<Path>, cfg: &MelConfig, frames: Option<usize>, offset: usize) -> Result<Vec<f32>> {
    let mono = load_mono(path, cfg.sample_rate)?;
    let mono = peak_normalize(&mono, 0.95);
    match frames {
        Some(f) => fit_to_frames(&mono, f, cfg.hop_length, offset),
        None => Ok(mono),
    }
}

/// An (n_mels, frames) spectrogram as a candle tensor of the same shape.
pub fn array_to_tensor(a: &Array2<f32>, device: &candle_core::Device) -> Result<candle_core::Tensor> {
    let (r, c) = a.dim();
    let data: Vec<f32> = a.iter().copied().collect();
    Ok(candle_core::Tensor::from_vec(data, (r, c), device)?)
}

/// A rank-2 f32 tensor (any device) back to an ndarray spectrogram.
pub fn tensor_to_array(t: &candle_core::Tensor) -> Result<Array2<f32>> {
    let (r, c) = t.dims2()?;
    let v = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Array2::from_shape_vec((r, c), v).map_err(|e| AudioError::InvalidArgument(e.to_string()))
}
