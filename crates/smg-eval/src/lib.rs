//! Instruments for the paper's claims: the Fréchet distance between two embedding sets
//! (SPEC.md §6), cheap mel-statistics features, and an independent multinomial
//! logistic-regression classifier (the "does generated audio sound like its prompt" judge).
//! Plain `f64` matrices as row-major `Vec<Vec<f64>>`: these are small (clips ×
//! features), and the evaluator should not depend on the models it judges.

pub mod features;
pub mod frechet;
pub mod logistic;
pub mod metrics;
pub mod paired;
pub mod probe;
pub mod sustain;

pub use features::{band_mean_std, frame_centroids, frechet_by_block, mel_statistic_blocks, mel_statistics, MEL_STAT_DIM};
pub use frechet::{frechet_distance, Gaussian};
pub use logistic::{LogisticConfig, LogisticRegression};
pub use metrics::{average_precision, macro_scores, roc_auc, MacroScores};
pub use paired::{paired_fd_difference, FdDifference};
pub use probe::{LinearProbe, ProbeConfig, ProbeData};
pub use sustain::{frame_loudness_db, span, sustain};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, EvalError>;

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(EvalError::Invalid(msg.into()))
}
