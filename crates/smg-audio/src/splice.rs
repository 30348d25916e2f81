//! Putting edited audio back into a recording: raised-cosine crossfades that leave every sample
//! outside the fades untouched, and a linear-phase FIR crossover (FFT overlap-add, streamed in
//! blocks) that keeps one signal's band below a cut-off and another's above it.

use crate::error::{AudioError, Result};
use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;

/// Weights of a raised-cosine fade-in of `n` samples: strictly between 0 and 1, rising.
pub fn fade_in(n: usize) -> Vec<f32> {
    (0..n).map(|i| (0.5 - 0.5 * (std::f64::consts::PI * (i as f64 + 0.5) / n as f64).cos()) as f32).collect()
}

/// Where an edit goes into a recording, in samples of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splice {
    /// The edited range `[start, end)`: every sample there comes from the new audio.
    pub start: usize,
    pub end: usize,
    /// Crossfade lengths before `start` and after `end` (the only other samples that change).
    pub fade_before: usize,
    pub fade_after: usize,
}

impl Splice {
    /// First and one-past-last sample this splice changes.
    pub fn changed(&self) -> (usize, usize) {
        (self.start - self.fade_before, self.end + self.fade_after)
    }

    /// Writes `new` (whose sample 0 is recording sample `new_start`) into `channel` over the
    /// edited range, fading from the old samples over `fade_before` and back over `fade_after`.
    /// Samples outside [`Splice::changed`] are not touched.
    pub fn apply(&self, channel: &mut [f32], new: &[f32], new_start: usize) -> Result<()> {
        let (c0, c1) = self.changed();
        if self.start > self.end || c1 > channel.len() || c0 < new_start || c1 > new_start + new.len() {
            return Err(AudioError::InvalidArgument(format!(
                "splice {c0}..{c1} does not fit a channel of {} samples and new audio at {new_start}..{}",
                channel.len(),
                new_start + new.len()
            )));
        }
        let at = |i: usize| new[i - new_start];
        for (k, w) in fade_in(self.fade_before).into_iter().enumerate() {
            let i = c0 + k;
            channel[i] = (1.0 - w) * channel[i] + w * at(i);
        }
        channel[self.start..self.end].copy_from_slice(&new[self.start - new_start..self.end - new_start]);
        for (k, w) in fade_in(self.fade_after).into_iter().rev().enumerate() {
            let i = self.end + k;
            channel[i] = (1.0 - w) * channel[i] + w * at(i);
        }
        Ok(())
    }
}

/// Linear-phase low-pass FIR (Hann-windowed sinc, odd length, unit DC gain) at `cutoff_hz` with
/// a transition band about `transition_hz` wide.
pub fn lowpass_fir(sample_rate: u32, cutoff_hz: f64, transition_hz: f64) -> Result<Vec<f32>> {
    let sr = sample_rate as f64;
    let valid = |v: f64, hi: f64| !v.is_nan() && v > 0.0 && v < hi;
    if !valid(cutoff_hz, sr / 2.0) || !valid(transition_hz, f64::INFINITY) {
        return Err(AudioError::InvalidArgument(format!(
            "low-pass at {cutoff_hz} Hz (transition {transition_hz} Hz) needs 0 < cut-off < {} Hz",
            sr / 2.0
        )));
    }
    // A Hann window's main lobe is ≈ 4 / taps wide (in units of the sample rate).
    let half = ((2.0 * sr / transition_hz).ceil() as usize).clamp(8, 1 << 14);
    let fc = cutoff_hz / sr;
    let taps: Vec<f64> = (0..=2 * half)
        .map(|i| {
            let m = i as f64 - half as f64;
            let sinc = if m == 0.0 { 2.0 * fc } else { (2.0 * std::f64::consts::PI * fc * m).sin() / (std::f64::consts::PI * m) };
            let w = 0.5 + 0.5 * (std::f64::consts::PI * m / (half as f64 + 1.0)).cos();
            sinc * w
        })
        .collect();
    let dc: f64 = taps.iter().sum();
    Ok(taps.iter().map(|t| (t / dc) as f32).collect())
}

/// `x` filtered by the odd-length linear-phase FIR `h`, delay-compensated (same length as `x`,
/// zeros assumed outside), by FFT overlap-add in blocks so memory stays a few blocks.
pub fn fir_filter(x: &[f32], h: &[f32]) -> Vec<f32> {
    if x.is_empty() || h.is_empty() {
        return vec![0.0; x.len()];
    }
    let half = h.len() / 2;
    let fft_len = (4 * h.len()).next_power_of_two().max(1024);
    let block = fft_len - h.len() + 1;
    let mut planner = FftPlanner::<f32>::new();
    let fwd = planner.plan_fft_forward(fft_len);
    let inv = planner.plan_fft_inverse(fft_len);
    let mut hf: Vec<Complex32> = h.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    hf.resize(fft_len, Complex32::new(0.0, 0.0));
    fwd.process(&mut hf);
    let scale = 1.0 / fft_len as f32;
    // Full convolution index k = output index i + half.
    let mut out = vec![0f32; x.len()];
    let mut buf = vec![Complex32::new(0.0, 0.0); fft_len];
    let mut start = 0;
    while start < x.len() {
        let end = (start + block).min(x.len());
        buf.iter_mut().for_each(|c| *c = Complex32::new(0.0, 0.0));
        for (b, &v) in buf.iter_mut().zip(&x[start..end]) {
            b.re = v;
        }
        fwd.process(&mut buf);
        buf.iter_mut().zip(&hf).for_each(|(b, f)| *b *= f);
        inv.process(&mut buf);
        for (j, c) in buf.iter().enumerate().take(end - start + h.len() - 1) {
            let k = start + j;
            if k >= half && k - half < out.len() {
                out[k - half] += c.re * scale;
            }
        }
        start = end;
    }
    out
}

/// Complementary crossover: `low` below `cutoff_hz`, `high` above it (`high + LP·(low − high)`),
/// sample for sample; both at `sample_rate` and of one length.
pub fn crossover(low: &[f32], high: &[f32], sample_rate: u32, cutoff_hz: f64) -> Result<Vec<f32>> {
    if low.len() != high.len() {
        return Err(AudioError::InvalidArgument(format!("crossover of {} and {} samples", low.len(), high.len())));
    }
    let h = lowpass_fir(sample_rate, cutoff_hz, (cutoff_hz * 0.1).clamp(50.0, 400.0))?;
    let mut out: Vec<f32> = low.iter().zip(high).map(|(a, b)| a - b).collect();
    let lp = fir_filter(&out, &h);
    out.iter_mut().zip(high.iter().zip(&lp)).for_each(|(o, (b, d))| *o = b + d);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f: f64, sr: u32, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|i| a * (2.0 * std::f64::consts::PI * f * i as f64 / sr as f64).sin() as f32).collect()
    }

    #[test]
    fn fades_sum_to_one_and_splice_touches_only_its_range() {
        let w = fade_in(64);
        let r: Vec<f32> = w.iter().rev().copied().collect();
        assert!(w.iter().zip(&r).all(|(a, b)| (a + b - 1.0).abs() < 1e-6));
        assert!(w.windows(2).all(|p| p[0] < p[1]) && w[0] > 0.0 && w[63] < 1.0);
        let mut ch: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let orig = ch.clone();
        let new = vec![-1.0f32; 600];
        let s = Splice { start: 400, end: 500, fade_before: 30, fade_after: 20 };
        s.apply(&mut ch, &new, 300).unwrap();
        for i in 0..1000 {
            if !(370..520).contains(&i) {
                assert_eq!(ch[i].to_bits(), orig[i].to_bits(), "sample {i}");
            }
        }
        assert!(ch[400..500].iter().all(|&v| v == -1.0));
        assert!(s.apply(&mut ch, &new, 380).is_err(), "new audio must cover the fades");
    }

    #[test]
    fn crossover_takes_each_band_from_its_signal() {
        let (sr, n) = (44100, 44100);
        let low_in = tone(300.0, sr, n, 0.4);
        let high_in = tone(9000.0, sr, n, 0.1);
        let x: Vec<f32> = low_in.iter().zip(&high_in).map(|(a, b)| a + b).collect();
        let g_low = tone(300.0, sr, n, 0.05);
        let g_high = tone(9000.0, sr, n, 0.3);
        let g: Vec<f32> = g_low.iter().zip(&g_high).map(|(a, b)| a + b).collect();
        let y = crossover(&x, &g, sr, 3000.0).unwrap();
        let want: Vec<f32> = low_in.iter().zip(&g_high).map(|(a, b)| a + b).collect();
        let err = y[4000..n - 4000].iter().zip(&want[4000..n - 4000]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 2e-3, "max error {err}");
        assert!(lowpass_fir(sr, 30000.0, 100.0).is_err());
    }

    #[test]
    fn block_filtering_equals_direct_convolution() {
        let h = lowpass_fir(22050, 2000.0, 300.0).unwrap();
        let x: Vec<f32> = (0..5000).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let y = fir_filter(&x, &h);
        let half = h.len() / 2;
        for &i in &[0usize, 17, 2500, 4999] {
            let direct: f32 = (0..h.len()).filter_map(|k| (i + half).checked_sub(k).and_then(|j| x.get(j)).map(|v| v * h[k])).sum();
            assert!((y[i] - direct).abs() < 1e-4, "{i}: {} vs {direct}", y[i]);
        }
    }
}
