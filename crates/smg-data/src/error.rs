//! Typed errors of the data crate.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: bad manifest line: {detail}")]
    Manifest { path: PathBuf, line: usize, detail: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} is missing: {path} (run `smg data fetch` or scripts/setup.sh first)")]
    Missing { what: String, path: PathBuf },
    #[error(transparent)]
    Audio(#[from] smg_audio::AudioError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl DataError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
