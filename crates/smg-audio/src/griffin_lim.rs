//! Mel → waveform without a neural network: invert the mel filterbank with a non-negative
//! least-squares fit (multiplicative updates), then recover phase with fast Griffin-Lim
//! (Perraudin et al. 2013, the momentum form used by `librosa.griffinlim`). The always-available
//! vocoder of the project.

use crate::error::{AudioError, Result};
use crate::mel::MelTransform;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use realfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};

/// Settings of [`griffin_lim`]. Defaults: 64 iterations, momentum 0.99, 30 NNLS updates, seed 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GriffinLimConfig {
    pub n_iter: usize,
    pub momentum: f32,
    pub nnls_iter: usize,
    pub seed: u64,
}

impl Default for GriffinLimConfig {
    fn default() -> Self {
        Self { n_iter: 64, momentum: 0.99, nnls_iter: 30, seed: 0 }
    }
}

/// Linear magnitudes (n_freq, frames) whose mel projection best matches `log_mel`
/// (non-negative least squares by multiplicative updates, started from `Mᵀ·mel`).
pub fn mel_to_magnitude(mt: &MelTransform, log_mel: &Array2<f32>, nnls_iter: usize) -> Result<Array2<f32>> {
    let (n_mels, frames) = log_mel.dim();
    if n_mels != mt.filters.n_mels() {
        return Err(AudioError::InvalidArgument(format!("mel has {n_mels} bands, the transform expects {}", mt.filters.n_mels())));
    }
    if let Some(v) = log_mel.iter().find(|v| !v.is_finite()) {
        return Err(AudioError::InvalidArgument(format!("log-mel contains {v}; it must be finite")));
    }
    let nf = mt.filters.n_freq;
    let mut mag = Array2::<f32>::zeros((nf, frames));
    let mut y = vec![0f32; n_mels];
    let mut x = vec![0f32; nf];
    let mut mty = vec![0f32; nf];
    let mut mx = vec![0f32; n_mels];
    let mut mtmx = vec![0f32; nf];
    // Column sums of M normalise the starting point so that M·x0 has the right scale.
    let mut colsum = vec![0f32; nf];
    mt.filters.apply_transpose(&vec![1.0; n_mels], &mut colsum);
    for t in 0..frames {
        y.iter_mut().zip(log_mel.column(t)).for_each(|(a, b)| *a = b.exp());
        mt.filters.apply_transpose(&y, &mut mty);
        for k in 0..nf {
            x[k] = if colsum[k] > 0.0 { mty[k] / colsum[k] } else { 0.0 };
        }
        for _ in 0..nnls_iter {
            mt.filters.apply(&x, &mut mx);
            mt.filters.apply_transpose(&mx, &mut mtmx);
            for k in 0..nf {
                if mtmx[k] > 0.0 {
                    x[k] *= mty[k] / mtmx[k];
                }
            }
        }
        mag.column_mut(t).iter_mut().zip(&x).for_each(|(o, v)| *o = *v);
    }
    Ok(mag)
}

/// Fast Griffin-Lim phase recovery: returns `n_samples` samples whose STFT magnitude
/// approximates `mag` (n_freq, frames). Deterministic for a given `cfg.seed`.
pub fn griffin_lim(mt: &MelTransform, mag: &Array2<f32>, n_samples: usize, cfg: &GriffinLimConfig) -> Result<Vec<f32>> {
    if !(0.0..1.0).contains(&cfg.momentum) {
        return Err(AudioError::InvalidArgument(format!("Griffin-Lim momentum must be in [0, 1), got {}", cfg.momentum)));
    }
    let stft = &mt.stft;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut angles = mag.mapv(|_| {
        let p: f32 = rng.random::<f32>() * std::f32::consts::TAU;
        Complex32::new(p.cos(), p.sin())
    });
    let mut rebuilt = Array2::<Complex32>::zeros(mag.dim());
    let beta = cfg.momentum / (1.0 + cfg.momentum);
    for _ in 0..cfg.n_iter {
        let spec = ndarray::Zip::from(mag).and(&angles).map_collect(|m, a| a * *m);
        let y = stft.inverse(&spec, n_samples);
        let new = stft.forward(&y)?;
        ndarray::Zip::from(&mut angles).and(&new).and(&rebuilt).for_each(|a, n, prev| {
            let v = n - prev * beta;
            let norm = v.norm() + 1e-16;
            *a = v / norm;
        });
        rebuilt = new;
    }
    let spec = ndarray::Zip::from(mag).and(&angles).map_collect(|m, a| a * *m);
    Ok(stft.inverse(&spec, n_samples))
}

/// Log-mel (n_mels, frames) → waveform of `frames · hop` samples: NNLS filterbank inversion,
/// then Griffin-Lim.
pub fn mel_to_audio(mt: &MelTransform, log_mel: &Array2<f32>, cfg: &GriffinLimConfig) -> Result<Vec<f32>> {
    let frames = log_mel.dim().1;
    if frames < 2 {
        return Err(AudioError::InvalidArgument(format!("Griffin-Lim needs at least 2 mel frames, got {frames}")));
    }
    let mag = mel_to_magnitude(mt, log_mel, cfg.nnls_iter)?;
    griffin_lim(mt, &mag, frames * mt.config.hop_length, cfg)
}
