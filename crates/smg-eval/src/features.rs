//! Mel-statistics features: a cheap, model-free description of a clip used by the independent
//! generation judge and as the baseline embedder of FAD (SPEC.md §10 used 245 such numbers).

use crate::{invalid, Result};

/// Length of [`mel_statistics`] for an 80-band mel: 3 × 80 per-band numbers + 5 global ones.
pub const MEL_STAT_DIM: usize = 3 * 80 + 5;

/// Features of one mel spectrogram `mel` (row-major `(n_mels, frames)`, any log scale):
/// per band the mean over time, the standard deviation over time and the mean absolute
/// frame-to-frame change; then the overall mean and standard deviation, the mean and standard
/// deviation of the spectral centroid (in band units, on values shifted to be ≥ 0), and the
/// standard deviation of the per-frame mean (loudness movement). `3·n_mels + 5` numbers.
pub fn mel_statistics(mel: &[f32], n_mels: usize, frames: usize) -> Result<Vec<f64>> {
    if n_mels == 0 || frames < 2 {
        return invalid(format!("mel statistics need at least 1 band and 2 frames, got {n_mels}x{frames}"));
    }
    if mel.len() != n_mels * frames {
        return invalid(format!("mel has {} values, expected {n_mels}x{frames}", mel.len()));
    }
    if let Some(i) = mel.iter().position(|v| !v.is_finite()) {
        return invalid(format!("mel value {i} is not finite ({})", mel[i]));
    }
    let at = |b: usize, t: usize| mel[b * frames + t] as f64;
    let mut out = Vec::with_capacity(3 * n_mels + 5);
    let (mut means, mut stds, mut deltas) = (vec![0.0; n_mels], vec![0.0; n_mels], vec![0.0; n_mels]);
    for b in 0..n_mels {
        let m = (0..frames).map(|t| at(b, t)).sum::<f64>() / frames as f64;
        let v = (0..frames).map(|t| (at(b, t) - m).powi(2)).sum::<f64>() / frames as f64;
        let d = (1..frames).map(|t| (at(b, t) - at(b, t - 1)).abs()).sum::<f64>() / (frames - 1) as f64;
        (means[b], stds[b], deltas[b]) = (m, v.sqrt(), d);
    }
    out.extend(&means);
    out.extend(&stds);
    out.extend(&deltas);
    let n = mel.len() as f64;
    let mean = mel.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (mel.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let lo = mel.iter().fold(f64::INFINITY, |a, &v| a.min(v as f64));
    let mut centroids = Vec::with_capacity(frames);
    let mut frame_means = Vec::with_capacity(frames);
    for t in 0..frames {
        let w: Vec<f64> = (0..n_mels).map(|b| at(b, t) - lo).collect();
        let total: f64 = w.iter().sum();
        let c = if total > 0.0 { w.iter().enumerate().map(|(b, x)| b as f64 * x).sum::<f64>() / total } else { 0.0 };
        centroids.push(c);
        frame_means.push((0..n_mels).map(|b| at(b, t)).sum::<f64>() / n_mels as f64);
    }
    let (cm, cs) = mean_std(&centroids);
    let (_, fs) = mean_std(&frame_means);
    out.extend([mean, std, cm, cs, fs]);
    Ok(out)
}

/// The first `2·n_mels` numbers of [`mel_statistics`]: per-band mean and standard deviation over
/// time. The generation judge uses these alone: frame-to-frame change and the global contrast
/// measures mostly describe how sharp a spectrogram is, which a tokenizer's decoder changes
/// (a classifier trained on real clips with them put 27% of tokenizer reconstructions of test
/// clips in the right category, without them 45%, at about the same accuracy on real clips).
pub fn band_mean_std(mel: &[f32], n_mels: usize, frames: usize) -> Result<Vec<f64>> {
    let mut f = mel_statistics(mel, n_mels, frames)?;
    f.truncate(2 * n_mels);
    Ok(f)
}

fn mean_std(x: &[f64]) -> (f64, f64) {
    let m = x.iter().sum::<f64>() / x.len() as f64;
    (m, (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_on_a_tiny_mel() {
        // 2 bands x 3 frames: band 0 = [0, 1, 2], band 1 = [4, 4, 4].
        let f = mel_statistics(&[0.0, 1.0, 2.0, 4.0, 4.0, 4.0], 2, 3).unwrap();
        assert_eq!(f.len(), 3 * 2 + 5);
        assert_eq!(&f[..2], &[1.0, 4.0]);
        assert!((f[2] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12 && f[3] == 0.0);
        assert_eq!(&f[4..6], &[1.0, 0.0]);
        assert!((f[6] - 15.0 / 6.0).abs() < 1e-12);
        // centroid per frame (lo = 0): weights [0,4], [1,4], [2,4] -> 1, 0.8, 4/6
        let c = [1.0, 0.8, 4.0 / 6.0];
        assert!((f[8] - c.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    }

    #[test]
    fn band_mean_std_is_the_first_two_blocks() {
        let mel: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
        let full = mel_statistics(&mel, 4, 10).unwrap();
        assert_eq!(band_mean_std(&mel, 4, 10).unwrap(), full[..8].to_vec());
    }

    #[test]
    fn refuses_nan_and_wrong_shapes() {
        assert!(mel_statistics(&[0.0, f32::NAN, 0.0, 0.0], 2, 2).unwrap_err().to_string().contains("value 1"));
        assert!(mel_statistics(&[0.0; 5], 2, 3).is_err());
        assert!(mel_statistics(&[0.0; 2], 2, 1).is_err());
    }
}
