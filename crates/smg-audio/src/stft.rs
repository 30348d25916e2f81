//! Short-time Fourier transform with the vocoder convention of SPEC.md §1: reflect padding of
//! `(n_fft − hop)/2` samples on each side, no centring, periodic Hann window; and its inverse
//! (weighted overlap-add) that undoes exactly that padding.

use crate::error::{AudioError, Result};
use ndarray::Array2;
use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Periodic Hann window (`torch.hann_window(n)` / `scipy.signal.get_window('hann', n)`).
pub fn hann_periodic(n: usize) -> Vec<f32> {
    (0..n).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32).collect()
}

/// Reflect-pads like `torch.nn.functional.pad(mode="reflect")` (the edge sample is not repeated).
pub fn reflect_pad(x: &[f32], left: usize, right: usize) -> Result<Vec<f32>> {
    let n = x.len();
    if n <= left.max(right) {
        return Err(AudioError::TooShort {
            what: "signal".into(),
            got: n,
            need: left.max(right) + 1,
            why: "reflect padding needs more samples than the pad width",
        });
    }
    let mut out = Vec::with_capacity(n + left + right);
    out.extend((1..=left).rev().map(|i| x[i]));
    out.extend_from_slice(x);
    out.extend((1..=right).map(|i| x[n - 1 - i]));
    Ok(out)
}

/// A reusable STFT/iSTFT pair for one (n_fft, hop) with a periodic Hann window.
#[derive(Clone)]
pub struct Stft {
    pub n_fft: usize,
    pub hop: usize,
    pub window: Vec<f32>,
    fwd: Arc<dyn RealToComplex<f32>>,
    inv: Arc<dyn ComplexToReal<f32>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stft(n_fft={}, hop={})", self.n_fft, self.hop)
    }
}

impl Stft {
    pub fn new(n_fft: usize, hop: usize) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        Self { n_fft, hop, window: hann_periodic(n_fft), fwd: planner.plan_fft_forward(n_fft), inv: planner.plan_fft_inverse(n_fft) }
    }

    /// Padding applied on each side: `(n_fft − hop)/2` (384 for 1024/256).
    pub fn pad(&self) -> usize {
        (self.n_fft - self.hop) / 2
    }

    pub fn n_freq(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames produced for `n` input samples: `floor((n + 2·pad − n_fft)/hop) + 1`.
    pub fn frames_for(&self, n: usize) -> usize {
        let padded = n + 2 * self.pad();
        if padded < self.n_fft {
            0
        } else {
            (padded - self.n_fft) / self.hop + 1
        }
    }

    /// Complex spectrogram (n_freq, frames) of `x` (reflect-padded, not centred).
    pub fn forward(&self, x: &[f32]) -> Result<Array2<Complex32>> {
        let padded = reflect_pad(x, self.pad(), self.pad())?;
        Ok(self.forward_padded(&padded))
    }

    /// Spectrogram of an already padded signal (center=False framing).
    pub fn forward_padded(&self, padded: &[f32]) -> Array2<Complex32> {
        let frames = if padded.len() < self.n_fft { 0 } else { (padded.len() - self.n_fft) / self.hop + 1 };
        let nf = self.n_freq();
        let mut out = Array2::<Complex32>::zeros((nf, frames));
        let mut buf = self.fwd.make_input_vec();
        let mut spec = self.fwd.make_output_vec();
        let mut scratch = self.fwd.make_scratch_vec();
        for t in 0..frames {
            let s = t * self.hop;
            for (b, (x, w)) in buf.iter_mut().zip(padded[s..s + self.n_fft].iter().zip(&self.window)) {
                *b = x * w;
            }
            self.fwd.process_with_scratch(&mut buf, &mut spec, &mut scratch).expect("buffer sizes come from the planner");
            for (k, c) in spec.iter().enumerate() {
                out[[k, t]] = *c;
            }
        }
        out
    }

    /// Inverse of [`Stft::forward`]: weighted overlap-add divided by the summed squared window,
    /// then the padding removed; returns `length` samples.
    pub fn inverse(&self, spec: &Array2<Complex32>, length: usize) -> Vec<f32> {
        let (nf, frames) = spec.dim();
        assert_eq!(nf, self.n_freq(), "spectrogram has {nf} bins, expected {}", self.n_freq());
        let total = (frames.max(1) - 1) * self.hop + self.n_fft;
        let mut acc = vec![0f32; total];
        let mut wsum = vec![0f32; total];
        let mut buf = self.inv.make_input_vec();
        let mut out = self.inv.make_output_vec();
        let mut scratch = self.inv.make_scratch_vec();
        let scale = 1.0 / self.n_fft as f32;
        for t in 0..frames {
            for k in 0..nf {
                buf[k] = spec[[k, t]];
            }
            // A real signal has real DC and Nyquist bins.
            buf[0].im = 0.0;
            buf[nf - 1].im = 0.0;
            self.inv.process_with_scratch(&mut buf, &mut out, &mut scratch).expect("buffer sizes come from the planner");
            let s = t * self.hop;
            for i in 0..self.n_fft {
                let w = self.window[i];
                acc[s + i] += out[i] * scale * w;
                wsum[s + i] += w * w;
            }
        }
        let pad = self.pad();
        (0..length)
            .map(|i| {
                let j = i + pad;
                if j < total && wsum[j] > 1e-8 {
                    acc[j] / wsum[j]
                } else {
                    0.0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_matches_torch_convention() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(reflect_pad(&x, 2, 3).unwrap(), vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0, 2.0]);
        assert!(reflect_pad(&x, 5, 0).is_err());
    }

    #[test]
    fn frame_count_is_floor_n_over_hop() {
        let s = Stft::new(1024, 256);
        assert_eq!(s.frames_for(217_088), 848);
        assert_eq!(s.frames_for(220_500), 861);
    }

    #[test]
    fn inverse_reconstructs_the_signal() {
        let s = Stft::new(1024, 256);
        let n = 256 * 40;
        let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.013).sin() * 0.5 + ((i * 7919 % 113) as f32 / 113.0 - 0.5) * 0.1).collect();
        let spec = s.forward(&x).unwrap();
        let y = s.inverse(&spec, n);
        let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-4, "max error {err}");
    }
}
