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
    let centroids = frame_centroids(mel, n_mels, frames);
    let frame_means: Vec<f64> = (0..frames).map(|t| (0..n_mels).map(|b| at(b, t)).sum::<f64>() / n_mels as f64).collect();
    let (cm, cs) = mean_std(&centroids);
    let (_, fs) = mean_std(&frame_means);
    out.extend([mean, std, cm, cs, fs]);
    Ok(out)
}

/// Each frame's spectral centroid in band units, as [`mel_statistics`] takes it: over the values
/// shifted by the clip's minimum, so a frame at that minimum in every band (digital silence)
/// counts 0. `mel` is row-major `(n_mels, frames)`, already checked by the caller.
pub fn frame_centroids(mel: &[f32], n_mels: usize, frames: usize) -> Vec<f64> {
    let lo = mel.iter().fold(f64::INFINITY, |a, &v| a.min(v as f64));
    (0..frames)
        .map(|t| {
            let w: Vec<f64> = (0..n_mels).map(|b| mel[b * frames + t] as f64 - lo).collect();
            let total: f64 = w.iter().sum();
            if total > 0.0 {
                w.iter().enumerate().map(|(b, x)| b as f64 * x).sum::<f64>() / total
            } else {
                0.0
            }
        })
        .collect()
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

/// The blocks of [`mel_statistics`] for `n_mels` bands, by name: per-band means, per-band
/// spreads, per-band mean frame-to-frame changes, then each whole-clip number alone (overall
/// level and spread, spectral centroid and its movement, loudness movement).
pub fn mel_statistic_blocks(n_mels: usize) -> [(&'static str, std::ops::Range<usize>); 8] {
    let g = 3 * n_mels;
    [
        ("band means", 0..n_mels),
        ("band spreads", n_mels..2 * n_mels),
        ("frame-to-frame change", 2 * n_mels..g),
        ("overall level", g..g + 1),
        ("overall spread", g + 1..g + 2),
        ("centroid", g + 2..g + 3),
        ("centroid movement", g + 3..g + 4),
        ("loudness movement", g + 4..g + 5),
    ]
}

/// The Fréchet distance between two sets of [`mel_statistics`] (FAD-mel, SPEC.md §6), then the
/// same distance on each of [`mel_statistic_blocks`] alone: which statistics tell the sets apart.
/// (The blocks' distances need not add up to the whole: the whole also counts how the blocks
/// vary together.)
pub fn frechet_by_block(a: &[Vec<f64>], b: &[Vec<f64>], n_mels: usize) -> Result<Vec<(String, f64)>> {
    let fd =
        |a: &[Vec<f64>], b: &[Vec<f64>]| -> Result<f64> { crate::frechet_distance(&crate::Gaussian::fit(a)?, &crate::Gaussian::fit(b)?) };
    let mut out = vec![("all".to_string(), fd(a, b)?)];
    for (name, r) in mel_statistic_blocks(n_mels) {
        let cut = |x: &[Vec<f64>]| -> Result<Vec<Vec<f64>>> {
            x.iter()
                .map(|v| {
                    v.get(r.clone())
                        .map(<[f64]>::to_vec)
                        .ok_or_else(|| crate::EvalError::Invalid(format!("mel statistics have {} values, not 3·{n_mels}+5", v.len())))
                })
                .collect()
        };
        out.push((name.to_string(), fd(&cut(a)?, &cut(b)?)?));
    }
    Ok(out)
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
    fn block_distances_find_the_statistic_that_moved() {
        // Two sets of 4-band mels alike in level and spread; the second flickers frame to frame.
        let set = |flicker: f32, seed: usize| -> Vec<Vec<f64>> {
            (0..40)
                .map(|k| {
                    let mel: Vec<f32> = (0..4 * 32)
                        .map(|i| {
                            let t = i % 32;
                            let slow = ((t as f32 + (k + seed) as f32) * 0.2).sin();
                            slow + flicker * if t % 2 == 0 { 1.0 } else { -1.0 } * ((k * 7 + i) % 5) as f32 / 5.0
                        })
                        .collect();
                    mel_statistics(&mel, 4, 32).unwrap()
                })
                .collect()
        };
        let (a, b, c) = (set(0.0, 0), set(0.0, 3), set(0.8, 0));
        let same = frechet_by_block(&a, &b, 4).unwrap();
        let moved = frechet_by_block(&a, &c, 4).unwrap();
        let names: Vec<&str> = moved.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names[..4], ["all", "band means", "band spreads", "frame-to-frame change"]);
        assert_eq!(names.len(), 9);
        let change = |r: &[(String, f64)]| r[3].1;
        assert!(change(&moved) > 10.0 * change(&same).max(1e-6), "{same:?} {moved:?}");
        assert!(change(&moved) > moved[1].1, "{moved:?}");
        assert!(frechet_by_block(&a, &[vec![0.0; 3], vec![1.0; 3]], 4).is_err());
    }

    #[test]
    fn refuses_nan_and_wrong_shapes() {
        assert!(mel_statistics(&[0.0, f32::NAN, 0.0, 0.0], 2, 2).unwrap_err().to_string().contains("value 1"));
        assert!(mel_statistics(&[0.0; 5], 2, 3).is_err());
        assert!(mel_statistics(&[0.0; 2], 2, 1).is_err());
    }
}
