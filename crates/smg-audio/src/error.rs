//! Typed errors of the audio front end. Every variant names the file or the value at fault.

use std::path::PathBuf;

/// Everything that can go wrong between a file on disk and a log-mel spectrogram.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: is a directory, not an audio file")]
    IsDirectory { path: PathBuf },
    #[error("{path}: file is empty (0 bytes)")]
    EmptyFile { path: PathBuf },
    #[error("{path}: unsupported audio format ({detail}); supported: WAV, AIFF, FLAC, OGG Vorbis, MP3")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path}: corrupt or truncated audio: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{what}: contains no samples")]
    NoSamples { what: String },
    #[error("{what}: sample {index} is {value} (NaN or infinite); audio must be finite")]
    NonFinite { what: String, index: usize, value: f32 },
    #[error("{what}: {got} samples is too short, at least {need} are needed ({why})")]
    TooShort { what: String, got: usize, need: usize, why: &'static str },
    #[error("expected a sample rate of {expected} Hz, got {got} Hz (resample first)")]
    WrongSampleRate { expected: u32, got: u32 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("resampling {from} Hz -> {to} Hz failed: {detail}")]
    Resample { from: u32, to: u32, detail: String },
    #[error("{path}: cannot write WAV: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, AudioError>;

/// Returns an error naming the first NaN or infinite sample of `samples`.
pub fn check_finite(samples: &[f32], what: &str) -> Result<()> {
    match samples.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(AudioError::NonFinite { what: what.to_string(), index, value: samples[index] }),
        None => Ok(()),
    }
}
