//! Masks for the zero-shot tasks (SPEC.md §3.7): time inpainting given seconds, bandwidth
//! extension given a cut-off in Hz, or any user mask over the token grid. A mask is a
//! `Vec<bool>` over the grid in row-major order (row = mel band group from the bottom,
//! column = time), `true` = regenerate.

use crate::{MaskGitError, Result};
use candle_core::Tensor;
use smg_audio::MelConfig;

/// Token grid geometry: `rows × cols` tokens, each `factor` mel bands × `factor` frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub rows: usize,
    pub cols: usize,
    pub factor: usize,
}

impl Grid {
    /// Seconds of audio per token column (16 frames × 256 samples / 22 050 Hz ≈ 0.186 s).
    pub fn seconds_per_column(&self, mel: &MelConfig) -> f64 {
        (self.factor * mel.hop_length) as f64 / mel.sample_rate as f64
    }

    /// The columns covering `[from_s, to_s)` seconds: every column that overlaps the range.
    pub fn columns_for(&self, mel: &MelConfig, from_s: f64, to_s: f64) -> Result<(usize, usize)> {
        if !(from_s.is_finite() && to_s.is_finite()) || from_s < 0.0 || to_s <= from_s {
            return Err(MaskGitError::Invalid(format!("time range {from_s}–{to_s} s is empty or negative")));
        }
        let spc = self.seconds_per_column(mel);
        let total = self.cols as f64 * spc;
        if from_s >= total {
            return Err(MaskGitError::Invalid(format!("time range starts at {from_s} s, after the clip's end ({total:.2} s)")));
        }
        let c0 = (from_s / spc).floor() as usize;
        let c1 = ((to_s / spc).ceil() as usize).min(self.cols);
        Ok((c0, c1.max(c0 + 1)))
    }

    /// Mask of the token columns `[c0, c1)` in every row (time inpainting).
    pub fn time_mask(&self, c0: usize, c1: usize) -> Vec<bool> {
        (0..self.rows * self.cols).map(|i| (c0..c1).contains(&(i % self.cols))).collect()
    }

    /// First token row lying entirely above `cutoff_hz` (its lowest mel band centre ≥ cutoff).
    pub fn first_row_above(&self, mel: &MelConfig, cutoff_hz: f64) -> Result<usize> {
        let centres = smg_audio::mel::mel_band_centres(mel);
        if cutoff_hz.is_nan() || cutoff_hz <= 0.0 || cutoff_hz >= mel.f_max {
            return Err(MaskGitError::Invalid(format!("cut-off {cutoff_hz} Hz must lie inside (0, {} Hz)", mel.f_max)));
        }
        let row = (0..self.rows).find(|&r| centres[r * self.factor] >= cutoff_hz).ok_or_else(|| {
            MaskGitError::Invalid(format!(
                "no token row lies above {cutoff_hz} Hz (the top row starts at {:.0} Hz)",
                centres[(self.rows - 1) * self.factor]
            ))
        })?;
        Ok(row)
    }

    /// Frequency edges of the token rows, `rows + 1` values in Hz from 0 to `f_max`: row `r`
    /// spans `[edges[r], edges[r + 1])`, each inner edge halfway between the centres of the
    /// mel bands on either side of it.
    pub fn row_edges_hz(&self, mel: &MelConfig) -> Vec<f64> {
        let c = smg_audio::mel::mel_band_centres(mel);
        let mut e: Vec<f64> = (0..=self.rows)
            .map(|r| match r {
                0 => 0.0,
                r if r == self.rows => mel.f_max,
                r => 0.5 * (c[r * self.factor - 1] + c[r * self.factor]),
            })
            .collect();
        e[0] = mel.f_min.max(0.0);
        e
    }

    /// Mask of the rows `≥ row` in every column (bandwidth extension).
    pub fn band_mask(&self, row: usize) -> Vec<bool> {
        (0..self.rows * self.cols).map(|i| i / self.cols >= row).collect()
    }
}

/// `tokens` `(B, N)` with the masked positions set to `mask_id` (same mask for every row).
pub fn apply_mask(tokens: &Tensor, mask: &[bool], mask_id: u32) -> Result<Tensor> {
    let (b, n) = tokens.dims2()?;
    if mask.len() != n {
        return Err(MaskGitError::Invalid(format!("mask has {} positions, the token grid {n}", mask.len())));
    }
    if !mask.iter().any(|&m| m) {
        return Err(MaskGitError::Invalid("the mask selects no token: nothing to generate".into()));
    }
    let m: Vec<u8> = mask.iter().map(|&x| x as u8).collect();
    let m = Tensor::from_vec(m, (1, n), tokens.device())?.broadcast_as((b, n))?;
    let fill = Tensor::full(mask_id, (b, n), tokens.device())?;
    Ok(m.where_cond(&fill, &tokens.to_dtype(candle_core::DType::U32)?)?)
}
