//! Amplitude and length conventions: peak normalisation (SPEC.md §1, ×0.95), cropping/padding to
//! a frame count (848 frames = 217088 samples, ambiguity A1), and the SpecVQGAN dB
//! normalisation of SPEC.md §1.1 between the natural-log mel and the tokenizer's [−1, 1] image.

use crate::error::{AudioError, Result};
use ndarray::Array2;

/// The paper's clip: 848 mel frames.
pub const PAPER_FRAMES: usize = 848;
/// 848 · 256 samples at 22050 Hz (9.845 s).
pub const PAPER_SAMPLES: usize = 217_088;
/// Lower and upper dB limits of the SpecVQGAN normalisation.
pub const DB_MIN: f32 = -80.0;
pub const DB_MAX: f32 = 20.0;
const DB_PER_NEPER: f32 = 8.685_889; // 20 / ln 10

/// Scales so the largest |sample| is `peak` (HiFi-GAN uses 0.95). Silence stays silence.
pub fn peak_normalize(samples: &[f32], peak: f32) -> Vec<f32> {
    let m = samples.iter().fold(0f32, |m, x| m.max(x.abs()));
    if m <= 0.0 {
        return samples.to_vec();
    }
    let g = peak / m;
    samples.iter().map(|x| x * g).collect()
}

/// Crops (from `offset`) or zero-pads (at the end) to exactly `frames · hop` samples.
pub fn fit_to_frames(samples: &[f32], frames: usize, hop: usize, offset: usize) -> Result<Vec<f32>> {
    let n = frames * hop;
    if n == 0 {
        return Err(AudioError::InvalidArgument("frame count must be positive".into()));
    }
    if offset > samples.len() {
        return Err(AudioError::InvalidArgument(format!("crop offset {offset} is past the end of {} samples", samples.len())));
    }
    let mut out: Vec<f32> = samples[offset..].iter().take(n).copied().collect();
    out.resize(n, 0.0);
    Ok(out)
}

/// Natural-log mel → SpecVQGAN [−1, 1] (SPEC.md §1.1): dB = 20/ln10 · x, clamped to
/// [−80, 20] dB, then `(dB + 30)/50`.
pub fn log_mel_to_unit(x: f32) -> f32 {
    ((x * DB_PER_NEPER).clamp(DB_MIN, DB_MAX) + 30.0) / 50.0
}

/// Exact inverse of [`log_mel_to_unit`] on [−1, 1]: `dB = 50·u − 30`, `x = dB · ln10/20`.
pub fn unit_to_log_mel(u: f32) -> f32 {
    (50.0 * u - 30.0) / DB_PER_NEPER
}

/// [`log_mel_to_unit`] over a whole spectrogram.
pub fn to_tokenizer_range(log_mel: &Array2<f32>) -> Array2<f32> {
    log_mel.mapv(log_mel_to_unit)
}

/// [`unit_to_log_mel`] over a whole spectrogram.
pub fn to_vocoder_range(unit: &Array2<f32>) -> Array2<f32> {
    unit.mapv(unit_to_log_mel)
}

/// Tensor form of [`log_mel_to_unit`], for any shape and device.
pub fn log_mel_to_unit_tensor(x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
    ((x * DB_PER_NEPER as f64)?.clamp(DB_MIN, DB_MAX)? + 30.0)? / 50.0
}

/// Tensor form of [`unit_to_log_mel`].
pub fn unit_to_log_mel_tensor(u: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
    ((u * 50.0)? - 30.0)? / DB_PER_NEPER as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_mapping_endpoints_and_inverse() {
        let floor = -80.0 / DB_PER_NEPER;
        assert!((log_mel_to_unit(floor) + 1.0).abs() < 1e-6);
        assert!((log_mel_to_unit(20.0 / DB_PER_NEPER) - 1.0).abs() < 1e-6);
        assert_eq!(log_mel_to_unit(-11.51), -1.0);
        for i in 0..=200 {
            let u = -1.0 + i as f32 / 100.0;
            assert!((log_mel_to_unit(unit_to_log_mel(u)) - u).abs() < 1e-5);
        }
    }

    #[test]
    fn fit_crops_and_pads() {
        let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(fit_to_frames(&x, 2, 256, 10).unwrap()[0], 10.0);
        let y = fit_to_frames(&x, 5, 256, 0).unwrap();
        assert_eq!(y.len(), 1280);
        assert_eq!(y[999], 999.0);
        assert_eq!(y[1000], 0.0);
        assert!(fit_to_frames(&x, 1, 256, 2000).is_err());
    }

    #[test]
    fn peak_normalize_hits_the_peak() {
        let y = peak_normalize(&[0.1, -0.5, 0.2], 0.95);
        assert!((y[1] + 0.95).abs() < 1e-6);
        assert_eq!(peak_normalize(&[0.0, 0.0], 0.95), vec![0.0, 0.0]);
    }
}
