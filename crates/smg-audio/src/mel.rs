//! The vocoder-standard log-mel spectrogram of SPEC.md §1 (HiFi-GAN `mel_spectrogram`):
//! 22050 Hz, n_fft = win = 1024 (periodic Hann), hop 256, reflect padding of 384 samples each
//! side without centring, magnitude `sqrt(re² + im² + 1e-9)`, 80 Slaney mel bands over
//! 0–8000 Hz with Slaney area normalisation (`librosa.filters.mel` defaults), `ln(max(x, 1e-5))`.

use crate::error::{check_finite, AudioError, Result};
use crate::stft::Stft;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Every number of the mel front end; `hifigan()` is the paper's (SPEC.md §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MelConfig {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    pub f_min: f64,
    pub f_max: f64,
    /// Added to `re² + im²` before the square root.
    pub magnitude_eps: f32,
    /// Floor applied before the natural log (`ln 1e-5 = −11.51`).
    pub log_floor: f32,
}

impl Default for MelConfig {
    fn default() -> Self {
        Self::hifigan()
    }
}

impl MelConfig {
    /// HiFi-GAN V1 / BigVSAN-22k mel (SPEC.md §1), used by the tokenizer and the vocoders.
    pub fn hifigan() -> Self {
        Self {
            sample_rate: 22050,
            n_fft: 1024,
            hop_length: 256,
            n_mels: 80,
            f_min: 0.0,
            f_max: 8000.0,
            magnitude_eps: 1e-9,
            log_floor: 1e-5,
        }
    }

    /// Frames produced for `n` samples: `floor(n / hop)` for the symmetric padding (SPEC.md §1).
    pub fn frames_for_samples(&self, n: usize) -> usize {
        Stft::new(self.n_fft, self.hop_length).frames_for(n)
    }

    /// Samples that give exactly `frames` frames (848 → 217088).
    pub fn samples_for_frames(&self, frames: usize) -> usize {
        frames * self.hop_length
    }
}

fn hz_to_mel_slaney(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz_slaney(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        mel * f_sp
    }
}

/// Slaney-scale, Slaney-normalised triangular filters, shape (n_mels, n_fft/2 + 1); the same
/// matrix as `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)` (htk=False, norm='slaney').
/// Row 0 is the lowest band.
pub fn slaney_mel_filterbank(sr: u32, n_fft: usize, n_mels: usize, f_min: f64, f_max: f64) -> Array2<f32> {
    let n_freq = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_freq).map(|k| k as f64 * sr as f64 / n_fft as f64).collect();
    let (m_lo, m_hi) = (hz_to_mel_slaney(f_min), hz_to_mel_slaney(f_max));
    let mel_f: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz_slaney(m_lo + (m_hi - m_lo) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut w = Array2::<f32>::zeros((n_mels, n_freq));
    for m in 0..n_mels {
        let (lo, c, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - lo) / (c - lo);
            let upper = (hi - f) / (hi - c);
            let v = lower.min(upper).max(0.0);
            w[[m, k]] = (v * enorm) as f32;
        }
    }
    w
}

/// Centre frequency in Hz of each mel band of `cfg` (band 0 lowest), for axis labels.
pub fn mel_band_centres(cfg: &MelConfig) -> Vec<f64> {
    let (lo, hi) = (hz_to_mel_slaney(cfg.f_min), hz_to_mel_slaney(cfg.f_max));
    (0..cfg.n_mels).map(|b| mel_to_hz_slaney(lo + (hi - lo) * (b + 1) as f64 / (cfg.n_mels + 1) as f64)).collect()
}

/// A mel filterbank stored as one contiguous run of non-zero weights per band, so that
/// applying it (and its transpose, for Griffin-Lim) costs a few thousand multiplies per frame.
#[derive(Debug, Clone)]
pub struct SparseFilterbank {
    pub n_freq: usize,
    /// (first bin, weights) per mel band.
    pub bands: Vec<(usize, Vec<f32>)>,
}

impl SparseFilterbank {
    pub fn from_dense(w: &Array2<f32>) -> Self {
        let (n_mels, n_freq) = w.dim();
        let bands = (0..n_mels)
            .map(|m| {
                let row = w.row(m);
                let first = row.iter().position(|&v| v != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&v| v != 0.0).map_or(first, |l| l + 1);
                (first, row.iter().skip(first).take(last - first).copied().collect())
            })
            .collect();
        Self { n_freq, bands }
    }

    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// `M · x` for one frame of magnitudes.
    pub fn apply(&self, mag: &[f32], out: &mut [f32]) {
        for (o, (first, w)) in out.iter_mut().zip(&self.bands) {
            *o = w.iter().zip(&mag[*first..]).map(|(a, b)| a * b).sum();
        }
    }

    /// `Mᵀ · y` for one frame of mel energies.
    pub fn apply_transpose(&self, mel: &[f32], out: &mut [f32]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        for (y, (first, w)) in mel.iter().zip(&self.bands) {
            for (o, a) in out[*first..].iter_mut().zip(w) {
                *o += a * y;
            }
        }
    }
}

/// The mel transform of SPEC.md §1, built once and applied to many signals.
#[derive(Debug, Clone)]
pub struct MelTransform {
    pub config: MelConfig,
    pub stft: Stft,
    pub filters: SparseFilterbank,
}

impl MelTransform {
    pub fn new(config: MelConfig) -> Self {
        let dense = slaney_mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max);
        Self { stft: Stft::new(config.n_fft, config.hop_length), filters: SparseFilterbank::from_dense(&dense), config }
    }

    /// The paper's transform (`MelConfig::hifigan()`).
    pub fn hifigan() -> Self {
        Self::new(MelConfig::hifigan())
    }

    /// Dense filter matrix (n_mels, n_freq), e.g. for plotting or comparing with librosa.
    pub fn filter_matrix(&self) -> Array2<f32> {
        let mut w = Array2::zeros((self.filters.n_mels(), self.filters.n_freq));
        for (m, (first, ws)) in self.filters.bands.iter().enumerate() {
            for (j, v) in ws.iter().enumerate() {
                w[[m, first + j]] = *v;
            }
        }
        w
    }

    fn check_input(&self, samples: &[f32]) -> Result<()> {
        check_finite(samples, "mel input")?;
        let need = self.stft.pad() + 1;
        if samples.len() < need.max(self.config.hop_length) {
            return Err(AudioError::TooShort {
                what: "mel input".into(),
                got: samples.len(),
                need: need.max(self.config.hop_length),
                why: "one mel frame needs at least a hop and the reflect padding",
            });
        }
        Ok(())
    }

    /// Linear magnitude spectrogram (n_freq, frames) with the `+eps` inside the square root.
    pub fn magnitude(&self, samples: &[f32]) -> Result<Array2<f32>> {
        self.check_input(samples)?;
        let spec = self.stft.forward(samples)?;
        let eps = self.config.magnitude_eps;
        Ok(spec.mapv(|c| (c.re * c.re + c.im * c.im + eps).sqrt()))
    }

    /// Mel energies (n_mels, frames) from a magnitude spectrogram.
    pub fn mel_from_magnitude(&self, mag: &Array2<f32>) -> Array2<f32> {
        let (_, frames) = mag.dim();
        let mut out = Array2::<f32>::zeros((self.filters.n_mels(), frames));
        let mut col = vec![0f32; mag.dim().0];
        let mut mel = vec![0f32; self.filters.n_mels()];
        for t in 0..frames {
            col.iter_mut().zip(mag.column(t)).for_each(|(c, v)| *c = *v);
            self.filters.apply(&col, &mut mel);
            out.column_mut(t).iter_mut().zip(&mel).for_each(|(o, v)| *o = *v);
        }
        out
    }

    /// Natural-log mel spectrogram (n_mels, frames) of mono audio at `config.sample_rate`;
    /// `frames = floor(len / hop)`. Rejects NaN/Inf and too-short input with a clear error.
    pub fn log_mel(&self, samples: &[f32]) -> Result<Array2<f32>> {
        let mel = self.mel_from_magnitude(&self.magnitude(samples)?);
        let floor = self.config.log_floor;
        Ok(mel.mapv(|v| v.max(floor).ln()))
    }

    /// [`MelTransform::log_mel`] that first checks the sample rate of the audio.
    pub fn log_mel_at(&self, samples: &[f32], sample_rate: u32) -> Result<Array2<f32>> {
        if sample_rate != self.config.sample_rate {
            return Err(AudioError::WrongSampleRate { expected: self.config.sample_rate, got: sample_rate });
        }
        self.log_mel(samples)
    }
}

/// Mean |a − b| over the bands and the frames both mels have.
pub fn mel_l1(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let (bands, frames) = (a.nrows().min(b.nrows()), a.ncols().min(b.ncols()));
    if bands == 0 || frames == 0 {
        return f64::NAN;
    }
    let mut s = 0f64;
    for r in 0..bands {
        for c in 0..frames {
            s += (a[[r, c]] - b[[r, c]]).abs() as f64;
        }
    }
    s / (bands * frames) as f64
}

#[cfg(test)]
mod mel_l1_tests {
    use super::*;

    #[test]
    fn mel_l1_uses_the_common_frames() {
        let a = Array2::from_shape_fn((2, 4), |(r, c)| (r + c) as f32);
        let mut b = Array2::from_shape_fn((2, 3), |(r, c)| (r + c) as f32);
        assert_eq!(mel_l1(&a, &b), 0.0);
        b[[1, 2]] += 6.0;
        assert!((mel_l1(&a, &b) - 1.0).abs() < 1e-12);
        assert!(mel_l1(&a, &Array2::zeros((2, 0))).is_nan());
    }
}
