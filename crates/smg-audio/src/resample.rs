//! Sample-rate conversion with `rubato`'s FFT resampler (band-limited, synchronous ratio),
//! compensating its delay so the output lines up with the input sample for sample.

use crate::error::{AudioError, Result};
use rubato::{FftFixedIn, Resampler};

/// Resamples mono `samples` from `from` Hz to `to` Hz. The output has
/// `ceil(len · to / from)` samples and no leading delay.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 {
        return Err(AudioError::InvalidArgument(format!("cannot resample {from} Hz -> {to} Hz: rates must be positive")));
    }
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let rerr = |e: &dyn std::fmt::Display| AudioError::Resample { from, to, detail: e.to_string() };
    let chunk = 2048;
    let mut r = FftFixedIn::<f32>::new(from as usize, to as usize, chunk, 2, 1).map_err(|e| rerr(&e))?;
    let delay = r.output_delay();
    let expected = ((samples.len() as u64 * to as u64).div_ceil(from as u64)) as usize;
    let mut out: Vec<f32> = Vec::with_capacity(expected + delay + 2 * chunk);
    let mut pos = 0;
    loop {
        let need = r.input_frames_next();
        if pos + need > samples.len() {
            break;
        }
        let o = r.process(&[&samples[pos..pos + need]], None).map_err(|e| rerr(&e))?;
        out.extend_from_slice(&o[0]);
        pos += need;
    }
    if pos < samples.len() {
        let o = r.process_partial(Some(&[&samples[pos..]]), None).map_err(|e| rerr(&e))?;
        out.extend_from_slice(&o[0]);
    }
    while out.len() < expected + delay {
        let o = r.process_partial::<&[f32]>(None, None).map_err(|e| rerr(&e))?;
        if o[0].is_empty() {
            break;
        }
        out.extend_from_slice(&o[0]);
    }
    out.drain(..delay.min(out.len()));
    out.resize(expected, 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, sr: u32, n: usize) -> Vec<f32> {
        (0..n).map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / sr as f32).sin()).collect()
    }

    #[test]
    fn keeps_a_sine_in_phase_across_rates() {
        for &(from, to) in &[(44100u32, 22050u32), (11025, 22050), (48000, 22050), (16000, 22050)] {
            let x = sine(440.0, from, from as usize);
            let y = resample(&x, from, to).unwrap();
            assert_eq!(y.len(), to as usize, "{from}->{to}");
            let reference = sine(440.0, to, to as usize);
            // Ignore the edges, where the filter sees the zero padding.
            let (a, b) = (to as usize / 10, to as usize * 9 / 10);
            let err = y[a..b].iter().zip(&reference[a..b]).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(err < 2e-3, "{from}->{to}: max error {err}");
        }
    }

    #[test]
    fn rejects_zero_rate() {
        assert!(resample(&[0.0; 10], 0, 22050).is_err());
    }
}
