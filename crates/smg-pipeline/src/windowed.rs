//! Whole recordings of any length, rate and channel count (SPEC.md §3.7, applied window by
//! window): time inpainting that regenerates only the windows touching the edited range,
//! bandwidth extension over the whole file, and text-to-audio longer than one window by
//! outpainting.
//!
//! The model sees mono audio at its own rate in windows of `cols` token columns. Windows overlap
//! and share tokens: every window after the first starts from the tokens the previous one
//! generated for their common columns (the known context), and masks only what is still to be
//! generated. Each window is decoded and vocoded on its own; consecutive windows are joined by
//! a raised-cosine crossfade in the middle of their overlap. The new audio goes back into the
//! recording at the recording's own rate, in every channel, with a short crossfade at each end
//! of the edit; every other sample is written back exactly as it was read.

use crate::{Pipeline, PipelineError, Result};
use candle_core::Tensor;
use smg_audio::splice::{crossover, fade_in, Splice};
use smg_audio::Audio;
use smg_maskgit::Sampler;
use std::collections::BTreeMap;

/// Settings of the windowed tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowOptions {
    /// Token columns of known context a window keeps on each side of what it generates (time
    /// inpainting and bandwidth extension). Default 4 (≈ 0.74 s).
    pub context_columns: usize,
    /// Token columns each outpainting window keeps from the previous one (long generation).
    /// Default: half a window.
    pub outpaint_columns: Option<usize>,
    /// Crossfade between the recording and the new audio at each end of an edit, in seconds
    /// (at most 0.05). Default 0.02.
    pub crossfade_s: f64,
}

impl Default for WindowOptions {
    fn default() -> Self {
        Self { context_columns: 4, outpaint_columns: None, crossfade_s: 0.02 }
    }
}

/// An edited recording and what was done to it.
#[derive(Debug, Clone)]
pub struct Edit {
    /// Same length, sample rate, channel count and sample format as the input.
    pub audio: Audio,
    /// Samples `[start, end)` of the recording that may differ from the input (edit and fades);
    /// every other sample is the input's, bit for bit.
    pub changed: (usize, usize),
    /// Model windows that were generated.
    pub windows: usize,
    /// Sentences for the user about conversions that happened on the way (rate, channels).
    pub notes: Vec<String>,
    /// Every generated window's decoding steps, when the sampler keeps its history.
    pub history: Vec<WindowSteps>,
}

/// The decoding steps of one model window, placed on the recording's time axis.
#[derive(Debug, Clone)]
pub struct WindowSteps {
    /// Where the window's first token column starts in the recording, in seconds (negative when
    /// the window reaches before the start).
    pub start_s: f64,
    /// The positions the window generated (`rows × cols`, row-major).
    pub mask: Vec<bool>,
    /// The sampler's steps (one grid each, `rows × cols` in row-major order).
    pub steps: Vec<smg_maskgit::Step>,
}

/// A time × frequency region of a recording to regenerate: `[from_s, to_s)` seconds and the
/// token rows `[rows.0, rows.1)` (every row when `None`: plain time inpainting). Row edges in
/// Hz: [`smg_maskgit::tasks::Grid::row_edges_hz`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub from_s: f64,
    pub to_s: f64,
    pub rows: Option<(usize, usize)>,
}

impl Region {
    /// Every frequency of `[from_s, to_s)`.
    pub fn time(from_s: f64, to_s: f64) -> Self {
        Self { from_s, to_s, rows: None }
    }
}

/// A progress callback: `(windows done, windows in all)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Per-window geometry: `cols` columns of `col` samples each, column `j` starting at model
/// sample `origin + j·col`.
struct Track {
    /// Model-rate mono samples from model sample `x_start` on (the part of the recording the
    /// windows read).
    x: Vec<f32>,
    x_start: i64,
    /// Model-rate length of the whole recording.
    n: i64,
    origin: i64,
    col: i64,
    cols: usize,
    rows: usize,
}

impl Track {
    fn start(&self, w: i64) -> i64 {
        self.origin + w * self.col
    }

    /// Samples of the window starting at column `w`, zero outside the recording.
    fn window(&self, w: i64) -> Vec<f32> {
        let s = self.start(w);
        let at = |t: i64| {
            if (0..self.n).contains(&t) {
                usize::try_from(t - self.x_start).ok().and_then(|i| self.x.get(i)).copied().unwrap_or(0.0)
            } else {
                0.0
            }
        };
        (0..self.cols as i64 * self.col).map(|i| at(s + i)).collect()
    }

    /// First column with audio and one past the last.
    fn audio_columns(&self) -> (i64, i64) {
        ((-self.origin).div_euclid(self.col), (self.n - self.origin + self.col - 1).div_euclid(self.col))
    }
}

/// What one window's run gives: its tokens, its audio and the sampler's steps.
struct WindowOut {
    tokens: Vec<u32>,
    audio: Vec<f32>,
    steps: Vec<smg_maskgit::Step>,
}

/// One generated window: its first sample (model rate) and its audio.
struct Piece {
    start: i64,
    audio: Vec<f32>,
}

/// The recording's length at the model's rate, after checking it holds finite samples and at
/// least one mel frame.
fn model_len(p: &Pipeline, audio: &Audio) -> Result<i64> {
    if audio.channels.is_empty() || audio.frames() == 0 {
        return Err(PipelineError::Invalid("the recording holds no samples".into()));
    }
    for (i, c) in audio.channels.iter().enumerate() {
        smg_audio::error::check_finite(c, &format!("the recording (channel {i})"))?;
    }
    let sr = p.mel.config.sample_rate as u64;
    let n = (audio.frames() as u64 * sr).div_ceil(audio.sample_rate as u64) as i64;
    let hop = p.mel.config.hop_length;
    if n < hop as i64 {
        return Err(PipelineError::Invalid(format!(
            "the recording is {:.4} s long, shorter than one mel frame of the model ({:.1} ms)",
            audio.duration_s(),
            1000.0 * hop as f64 / sr as f64
        )));
    }
    Ok(n)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Model samples `[r0, r1)` of the recording (and a little around them) as the model sees it:
/// mixed to mono and resampled, unscaled. Only that part of the file is converted, starting at
/// an input sample that falls exactly on a model sample; returns the samples and the model
/// sample the first one is.
fn model_mono(p: &Pipeline, audio: &Audio, r0: i64, r1: i64) -> Result<(Vec<f32>, i64)> {
    let (sr_in, sr_m) = (audio.sample_rate as i64, p.mel.config.sample_rate as i64);
    let period = sr_in / gcd(sr_in as u64, sr_m as u64) as i64;
    let margin = 4 * p.mel.config.n_fft as i64;
    let i0 = (((r0 - margin).max(0) * sr_in / sr_m) / period * period).max(0) as usize;
    let i1 = (((r1 + margin) * sr_in + sr_m - 1) / sr_m).clamp(i0 as i64, audio.frames() as i64) as usize;
    let scale = 1.0 / audio.channels.len() as f32;
    let mono: Vec<f32> = (i0..i1).map(|i| audio.channels.iter().map(|c| c[i]).sum::<f32>() * scale).collect();
    let x = smg_audio::resample(&mono, audio.sample_rate, p.mel.config.sample_rate)?;
    Ok((x, i0 as i64 * sr_m / sr_in))
}

fn conversion_notes(p: &Pipeline, audio: &Audio, what: &str) -> Vec<String> {
    let sr = p.mel.config.sample_rate;
    let mut notes = Vec::new();
    if audio.sample_rate != sr {
        notes.push(format!("the model works at {sr} Hz: {what} was generated at {sr} Hz and resampled to {} Hz", audio.sample_rate));
    }
    if audio.channels.len() > 1 {
        notes.push(format!("the model works on mono audio: {what} is mono, the same in all {} channels", audio.channels.len()));
    }
    notes
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Scale that peak-normalises `x` to 0.95, as the training clips were (1 for silence).
fn gain_for(x: &[f32]) -> f32 {
    match peak(x) {
        m if m > 0.0 => 0.95 / m,
        _ => 1.0,
    }
}

impl Pipeline {
    /// Token grid `(1, N)` of exactly one window of model-rate samples, as given (no
    /// normalisation, cropping or padding).
    pub fn encode_window(&self, samples: &[f32]) -> Result<Tensor> {
        let log_mel = self.mel.log_mel(samples)?;
        let unit = smg_audio::array_to_tensor(&smg_audio::norm::to_tokenizer_range(&log_mel), &self.device)?;
        Ok(self.tokenizer.encode(&unit.unsqueeze(0)?)?.flatten_from(1)?)
    }

    /// One window: `tokens` (grid order) with `mask` regenerated under `cond`, then decoded and
    /// vocoded to exactly one window of samples.
    fn run_window(&self, tokens: Vec<u32>, mask: &[bool], cond: &Tensor, sampler: &Sampler, seed: u64) -> Result<WindowOut> {
        let mask_id = self.generator.config.mask_id();
        let n = tokens.len();
        let start: Vec<u32> = tokens.iter().zip(mask).map(|(&t, &m)| if m { mask_id } else { t }).collect();
        let unknown = mask.iter().filter(|&&m| m).count();
        let (out, steps) = if unknown == 0 {
            (tokens, Vec::new())
        } else {
            let t = Tensor::from_vec(start, (1, n), &self.device)?;
            let s = sampler.sample_with(&self.generator, &t, cond, seed, sampler.iterations.min(unknown))?;
            (s.tokens.flatten_all()?.to_vec1::<u32>()?, s.history)
        };
        let mel = self.decode_mels(&Tensor::from_vec(out.clone(), (1, n), &self.device)?)?;
        let mut audio = self.vocoder.synthesize(&self.mel, &mel[0])?;
        audio.resize(self.frames() * self.mel.config.hop_length, 0.0);
        Ok(WindowOut { tokens: out, audio, steps })
    }

    /// Refuses more iterations than a window has tokens (windows with fewer masked tokens use
    /// one iteration per token).
    fn check_iterations(&self, sampler: &Sampler) -> Result<()> {
        let n = self.generator.config.seq_len();
        if sampler.iterations == 0 || sampler.iterations > n {
            return Err(PipelineError::Invalid(format!(
                "{} iterations for a window of {n} tokens: use at least 1 iteration and at most one iteration per masked token",
                sampler.iterations
            )));
        }
        Ok(())
    }

    fn track(&self, n: i64, origin: i64) -> Track {
        let g = self.grid();
        Track { x: Vec::new(), x_start: 0, n, origin, col: (g.factor * self.mel.config.hop_length) as i64, cols: g.cols, rows: g.rows }
    }

    /// The null condition (unconditional) or the text embedding of `prompt`, `(1, cond_dim)`.
    pub fn condition(&self, prompt: Option<&str>) -> Result<Tensor> {
        match prompt {
            None => Ok(Tensor::zeros((1, self.generator.config.cond_dim), candle_core::DType::F32, &self.device)?),
            Some(text) => {
                let enc = self.text.as_ref().ok_or_else(|| PipelineError::Invalid("a prompt needs the text encoder (MiniLM)".into()))?;
                Ok(enc.embed(&[text])?.embeddings.to_device(&self.device)?)
            }
        }
    }

    /// Time inpainting of `[from_s, to_s)` seconds of a whole recording of any length, rate and
    /// channel count (SPEC.md §3.7; `cond` from [`Pipeline::condition`]). Only the windows
    /// touching the range are generated, each with the known tokens around the gap as context.
    /// The result has the input's length, rate, channels and sample format; outside the range
    /// and its crossfades every sample is the input's.
    pub fn inpaint_recording(
        &self,
        audio: &Audio,
        from_s: f64,
        to_s: f64,
        cond: &Tensor,
        sampler: &Sampler,
        opt: &WindowOptions,
        progress: Progress,
    ) -> Result<Edit> {
        self.inpaint_region(audio, Region::time(from_s, to_s), cond, sampler, opt, progress)
    }

    /// [`Pipeline::inpaint_recording`] of a time × frequency region: only the token rows of
    /// `region` are regenerated, and inside the time range the recording keeps its own audio
    /// below and above the region's band (linear-phase crossovers at the row edges), so a
    /// painted region changes only there.
    pub fn inpaint_region(
        &self,
        audio: &Audio,
        region: Region,
        cond: &Tensor,
        sampler: &Sampler,
        opt: &WindowOptions,
        progress: Progress,
    ) -> Result<Edit> {
        let Region { from_s, to_s, rows } = region;
        self.check_iterations(sampler)?;
        let n_rows = self.grid().rows;
        let (r0, r1) = rows.unwrap_or((0, n_rows));
        if r0 >= r1 || r1 > n_rows {
            return Err(PipelineError::Invalid(format!("token rows {r0}..{r1} are not a non-empty range within the grid's {n_rows} rows")));
        }
        let dur = audio.duration_s();
        if !(from_s.is_finite() && to_s.is_finite()) || from_s < 0.0 || to_s <= from_s {
            return Err(PipelineError::Invalid(format!("time range {from_s}–{to_s} s is empty or negative")));
        }
        if from_s >= dur {
            return Err(PipelineError::Invalid(format!(
                "time range starts at {from_s} s, after the end of the recording ({dur:.3} s long)"
            )));
        }
        let tol = 1.0 / audio.sample_rate as f64;
        if to_s > dur + tol {
            return Err(PipelineError::Invalid(format!("time range ends at {to_s} s, after the end of the recording ({dur:.3} s long)")));
        }
        check_crossfade(opt)?;
        let n = model_len(self, audio)?;
        let sr = self.mel.config.sample_rate as f64;
        let a = ((from_s * sr).round() as i64).min(n - 1);
        let b = ((to_s * sr).round() as i64).clamp(a + 1, n);
        let probe = self.track(n, 0);
        let (cols, col) = (probe.cols as i64, probe.col);
        let ctx = (opt.context_columns as i64).min((cols - 1) / 2);
        let origin = a - ctx * col;
        let mut t = self.track(n, origin);
        let (j_start, j_end) = t.audio_columns();
        let (g0, g1) = (ctx, ctx + (b - a + col - 1) / col);
        let plan = plan_gap(g0, g1, cols, ctx, j_start, j_end);
        // Only the part of the file the windows read is converted to the model's rate.
        let (s0, s1) = (t.start(plan[0]).max(0), (t.start(*plan.last().unwrap_or(&0)) + cols * col).min(n));
        (t.x, t.x_start) = model_mono(self, audio, s0, s1)?;
        // One gain for every window, so tokens carried between windows mean the same level.
        let span = |v: i64| (v - t.x_start).clamp(0, t.x.len() as i64) as usize;
        let gain = gain_for(&t.x[span(s0)..span(s1)]);
        t.x.iter_mut().for_each(|v| *v *= gain);
        let margin = 512;
        let (gs, ge) = ((a - margin - (0.05 * sr) as i64).max(0), (b + margin + (0.05 * sr) as i64).min(n));
        let mut asm = Assembler::new(gs, ge, col);
        let mut generated: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut history = Vec::new();
        for (k, &w) in plan.iter().enumerate() {
            progress(k, plan.len());
            let mut tokens = self.encode_window(&t.window(w))?.flatten_all()?.to_vec1::<u32>()?;
            let mut mask = vec![false; tokens.len()];
            for c in 0..cols {
                let j = w + c;
                if let Some(col_tokens) = generated.get(&j) {
                    for r in 0..t.rows {
                        tokens[r * cols as usize + c as usize] = col_tokens[r];
                    }
                } else if (g0..g1).contains(&j) {
                    for r in r0..r1 {
                        mask[r * cols as usize + c as usize] = true;
                    }
                }
            }
            let o = self.run_window(tokens, &mask, cond, sampler, sampler.seed.wrapping_add(k as u64))?;
            for c in 0..cols {
                if mask[r0 * cols as usize + c as usize] {
                    generated.insert(w + c, (0..t.rows).map(|r| o.tokens[r * cols as usize + c as usize]).collect());
                }
            }
            history.push(WindowSteps { start_s: t.start(w) as f64 / sr, mask, steps: o.steps });
            asm.push(Piece { start: t.start(w), audio: o.audio });
        }
        progress(plan.len(), plan.len());
        let g: Vec<f32> = asm.finish().into_iter().map(|v| v / gain).collect();
        let mut edit = splice_back(audio, &g, gs, from_s, to_s, opt, self.mel.config.sample_rate)?;
        if (r0, r1) != (0, n_rows) {
            keep_outside_band(audio, &mut edit, &self.grid().row_edges_hz(&self.mel.config), (r0, r1))?;
        }
        Ok(Edit { windows: plan.len(), notes: conversion_notes(self, audio, "the new part"), history, ..edit })
    }

    /// Bandwidth extension of a whole recording (SPEC.md §3.7): every window regenerates the
    /// token rows above `cutoff_hz` (windows overlap by the context columns and share their
    /// generated tokens); with `lfr`, each channel keeps its own band below the cut-off
    /// (a linear-phase crossover at the recording's rate), else every channel is the
    /// resynthesis.
    pub fn bandwidth_extension_recording(
        &self,
        audio: &Audio,
        cutoff_hz: f64,
        lfr: bool,
        cond: &Tensor,
        sampler: &Sampler,
        opt: &WindowOptions,
        progress: Progress,
    ) -> Result<Edit> {
        self.check_iterations(sampler)?;
        let grid = self.grid();
        let row = grid.first_row_above(&self.mel.config, cutoff_hz)?;
        if lfr && cutoff_hz >= audio.sample_rate as f64 / 2.0 {
            return Err(PipelineError::Invalid(format!(
                "cut-off {cutoff_hz} Hz is not below the recording's Nyquist frequency ({} Hz)",
                audio.sample_rate / 2
            )));
        }
        let n = model_len(self, audio)?;
        let mut t = self.track(n, 0);
        (t.x, t.x_start) = model_mono(self, audio, 0, n)?;
        let gain = gain_for(&t.x);
        t.x.iter_mut().for_each(|v| *v *= gain);
        let (cols, col) = (t.cols as i64, t.col);
        let ctx = (opt.context_columns as i64).min((cols - 1) / 2);
        let (_, j_end) = t.audio_columns();
        let plan = plan_sweep(j_end, cols, ctx);
        let mut generated: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut history = Vec::new();
        let mut asm = Assembler::new(0, n, col);
        for (k, &w) in plan.iter().enumerate() {
            progress(k, plan.len());
            let mut tokens = self.encode_window(&t.window(w))?.flatten_all()?.to_vec1::<u32>()?;
            let mut mask = vec![false; tokens.len()];
            for c in 0..cols {
                let known = generated.get(&(w + c));
                for r in row..t.rows {
                    let i = r * cols as usize + c as usize;
                    match known {
                        Some(v) => tokens[i] = v[r],
                        None => mask[i] = true,
                    }
                }
            }
            let o = self.run_window(tokens, &mask, cond, sampler, sampler.seed.wrapping_add(k as u64))?;
            for c in 0..cols {
                generated.entry(w + c).or_insert_with(|| (0..t.rows).map(|r| o.tokens[r * cols as usize + c as usize]).collect());
            }
            history.push(WindowSteps { start_s: t.start(w) as f64 / self.mel.config.sample_rate as f64, mask, steps: o.steps });
            // Columns no later window will read can go.
            let next = plan.get(k + 1).copied().unwrap_or(i64::MAX);
            generated.retain(|&j, _| j >= next);
            asm.push(Piece { start: t.start(w), audio: o.audio });
        }
        progress(plan.len(), plan.len());
        t.x = Vec::new();
        let mut g = asm.finish();
        g.iter_mut().for_each(|v| *v /= gain);
        let mut g_in = smg_audio::resample(&g, self.mel.config.sample_rate, audio.sample_rate)?;
        g_in.resize(audio.frames(), 0.0);
        let channels = if lfr {
            audio.channels.iter().map(|c| crossover(c, &g_in, audio.sample_rate, cutoff_hz)).collect::<smg_audio::Result<Vec<_>>>()?
        } else {
            vec![g_in; audio.channels.len()]
        };
        let mut notes = conversion_notes(self, audio, if lfr { "the band above the cut-off" } else { "the whole recording" });
        if !lfr {
            notes.push("without low-frequency replacement every sample is resynthesised by the model".into());
        }
        Ok(Edit {
            audio: Audio { channels, sample_rate: audio.sample_rate, format: audio.format.clone(), sample_format: audio.sample_format },
            changed: (0, audio.frames()),
            windows: plan.len(),
            notes,
            history,
        })
    }

    /// Text-to-audio of any duration (model rate, mono): the first window is generated from a
    /// fully masked grid, each later one from the tail tokens of the previous (outpainting),
    /// joined by crossfades in their overlap. One window or less is plain text-to-audio, cut to
    /// length.
    pub fn generate_long(
        &self,
        cond: &Tensor,
        duration_s: f64,
        sampler: &Sampler,
        opt: &WindowOptions,
        progress: Progress,
    ) -> Result<Vec<f32>> {
        self.generate_long_steps(cond, duration_s, sampler, opt, progress).map(|(audio, _)| audio)
    }

    /// [`Pipeline::generate_long`], also returning each window's decoding steps (its start, the
    /// tokens it was given to fill, and the sampler's steps), as the windowed edits do.
    pub fn generate_long_steps(
        &self,
        cond: &Tensor,
        duration_s: f64,
        sampler: &Sampler,
        opt: &WindowOptions,
        progress: Progress,
    ) -> Result<(Vec<f32>, Vec<WindowSteps>)> {
        self.check_iterations(sampler)?;
        let sr = self.mel.config.sample_rate as f64;
        if !(duration_s.is_finite() && duration_s > 0.0) {
            return Err(PipelineError::Invalid(format!("duration must be a positive number of seconds, not {duration_s}")));
        }
        if duration_s > 24.0 * 3600.0 {
            return Err(PipelineError::Invalid(format!("duration {duration_s} s is over a day; generate in parts")));
        }
        let n = (duration_s * sr).round().max(1.0) as i64;
        let t = self.track(n, 0);
        let (cols, col) = (t.cols as i64, t.col);
        let keep = opt.outpaint_columns.map_or(cols / 2, |k| k as i64);
        if keep <= 0 || keep >= cols {
            return Err(PipelineError::Invalid(format!(
                "outpainting keeps {keep} of {cols} columns: it must keep at least 1 and generate at least 1"
            )));
        }
        let j_end = (n + col - 1) / col;
        let mut plan = vec![0i64];
        while plan.last().unwrap() + cols < j_end {
            plan.push(plan.last().unwrap() + cols - keep);
        }
        let mask_id = self.generator.config.mask_id();
        let mut generated: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut asm = Assembler::new(0, n, col);
        let mut history = Vec::with_capacity(plan.len());
        for (k, &w) in plan.iter().enumerate() {
            progress(k, plan.len());
            let mut tokens = vec![mask_id; t.rows * cols as usize];
            let mut mask = vec![true; tokens.len()];
            for c in 0..cols {
                if let Some(v) = generated.get(&(w + c)) {
                    for r in 0..t.rows {
                        tokens[r * cols as usize + c as usize] = v[r];
                        mask[r * cols as usize + c as usize] = false;
                    }
                }
            }
            let o = self.run_window(tokens, &mask, cond, sampler, sampler.seed.wrapping_add(k as u64))?;
            for c in 0..cols {
                generated.entry(w + c).or_insert_with(|| (0..t.rows).map(|r| o.tokens[r * cols as usize + c as usize]).collect());
            }
            generated.retain(|&j, _| j >= w + cols - keep);
            history.push(WindowSteps { start_s: (w * col) as f64 / sr, mask, steps: o.steps });
            asm.push(Piece { start: w * col, audio: o.audio });
        }
        progress(plan.len(), plan.len());
        Ok((asm.finish(), history))
    }
}

fn check_crossfade(opt: &WindowOptions) -> Result<()> {
    if !(0.0..=0.05).contains(&opt.crossfade_s) {
        return Err(PipelineError::Invalid(format!("crossfade must be between 0 and 0.05 s, not {} s", opt.crossfade_s)));
    }
    Ok(())
}

/// Window start columns for a gap of columns `[g0, g1)` within audio columns `[j0, j1)`: one
/// window centred on the gap when it fits with `ctx` columns each side, else windows that each
/// keep `ctx` generated columns of the last as left context, the final one with the right
/// context.
fn plan_gap(g0: i64, g1: i64, cols: i64, ctx: i64, j0: i64, j1: i64) -> Vec<i64> {
    let clamp = |w: i64| w.min((j1 - cols).max(j0)).max(j0);
    if g1 - g0 <= cols - 2 * ctx {
        return vec![clamp(g0 - (cols - (g1 - g0)) / 2)];
    }
    let mut plan = Vec::new();
    let mut pos = g0;
    let mut w = (g0 - ctx).max(j0);
    loop {
        plan.push(w);
        pos = pos.max(w + cols).min(g1);
        if pos >= g1 {
            return plan;
        }
        w = if g1 - pos <= cols - 2 * ctx { (g1 + ctx).min(j1.max(g1)) - cols } else { pos - ctx };
    }
}

/// Window start columns covering columns `[0, j_end)` with `ctx` columns of overlap; the last
/// window ends at `j_end` (or starts at 0 when one window covers everything).
fn plan_sweep(j_end: i64, cols: i64, ctx: i64) -> Vec<i64> {
    let mut plan = vec![0i64];
    while plan.last().unwrap() + cols < j_end {
        let next = (plan.last().unwrap() + cols - ctx).min(j_end - cols);
        plan.push(next);
    }
    plan
}

/// The signal over model samples `[s0, s1)` from overlapping pieces given in order of start,
/// built as they come (only the last piece is held): each piece owns the samples up to the
/// middle of its overlap with the next, with a raised-cosine crossfade of at most `max_fade`
/// samples centred there; zero where no piece is.
struct Assembler {
    out: Vec<f32>,
    s0: i64,
    max_fade: i64,
    last: Option<Piece>,
    /// First sample the last piece owns (after the previous crossfade).
    from: i64,
}

impl Assembler {
    fn new(s0: i64, s1: i64, max_fade: i64) -> Self {
        Self { out: vec![0f32; (s1 - s0).max(0) as usize], s0, max_fade, last: None, from: i64::MIN }
    }

    fn at(p: &Piece, t: i64) -> f32 {
        usize::try_from(t - p.start).ok().and_then(|i| p.audio.get(i)).copied().unwrap_or(0.0)
    }

    /// Writes `p`'s own samples over `[lo, hi)`.
    fn own(&mut self, p: &Piece, lo: i64, hi: i64) {
        let s1 = self.s0 + self.out.len() as i64;
        for t in lo.max(self.s0).max(p.start)..hi.min(s1).min(p.start + p.audio.len() as i64) {
            self.out[(t - self.s0) as usize] = Self::at(p, t);
        }
    }

    fn push(&mut self, next: Piece) {
        let Some(prev) = self.last.take() else {
            self.last = Some(next);
            return;
        };
        let end = prev.start + prev.audio.len() as i64;
        let mid = (next.start + end) / 2;
        let half = ((end - next.start).max(0) / 2).min(self.max_fade) / 2;
        self.own(&prev, self.from, mid - half);
        let s1 = self.s0 + self.out.len() as i64;
        for (i, w) in fade_in((2 * half) as usize).into_iter().enumerate() {
            let t = mid - half + i as i64;
            if (self.s0..s1).contains(&t) {
                self.out[(t - self.s0) as usize] = (1.0 - w) * Self::at(&prev, t) + w * Self::at(&next, t);
            }
        }
        self.from = mid + half;
        self.last = Some(next);
    }

    fn finish(mut self) -> Vec<f32> {
        if let Some(p) = self.last.take() {
            self.own(&p, self.from, i64::MAX);
        }
        self.out
    }
}

#[cfg(test)]
fn assemble(pieces: Vec<Piece>, s0: i64, s1: i64, max_fade: i64) -> Vec<f32> {
    let mut a = Assembler::new(s0, s1, max_fade);
    pieces.into_iter().for_each(|p| a.push(p));
    a.finish()
}

/// Puts model-rate mono audio `g` (model sample `gs` first) back into every channel of
/// `audio` over `[from_s, to_s)`, with crossfades of `opt.crossfade_s` outside the range.
fn splice_back(audio: &Audio, g: &[f32], gs: i64, from_s: f64, to_s: f64, opt: &WindowOptions, model_rate: u32) -> Result<Edit> {
    let sr = audio.sample_rate as f64;
    let len = audio.frames();
    let mut g_in = smg_audio::resample(g, model_rate, audio.sample_rate)?;
    let gs_in = (gs as f64 * sr / model_rate as f64).round() as usize;
    let start = ((from_s * sr).round() as usize).min(len - 1);
    let end = ((to_s * sr).round() as usize).clamp(start + 1, len);
    let fade = (opt.crossfade_s * sr).round() as usize;
    let s = Splice { start, end, fade_before: fade.min(start).min(start - gs_in.min(start)), fade_after: fade.min(len - end) };
    let (c0, c1) = s.changed();
    // The resampled piece must cover the splice; pad its tail with its last samples' zeros if
    // rounding left it a sample short.
    if g_in.len() + gs_in < c1 {
        g_in.resize(c1 - gs_in, 0.0);
    }
    if gs_in > c0 {
        return Err(PipelineError::Invalid(format!("internal: new audio starts at sample {gs_in}, after the splice at {c0}")));
    }
    let mut channels = audio.channels.clone();
    for ch in channels.iter_mut() {
        s.apply(ch, &g_in, gs_in)?;
    }
    Ok(Edit {
        audio: Audio { channels, sample_rate: audio.sample_rate, format: audio.format.clone(), sample_format: audio.sample_format },
        changed: (c0, c1),
        windows: 0,
        notes: Vec::new(),
        history: Vec::new(),
    })
}

/// Inside the edit's changed samples, puts back the recording's own audio below and above the
/// band of token rows `[r0, r1)` (`edges`: row edges in Hz), each channel through linear-phase
/// crossovers at the band's edges; samples outside the changed range are not touched.
fn keep_outside_band(audio: &Audio, edit: &mut Edit, edges: &[f64], (r0, r1): (usize, usize)) -> Result<()> {
    let nyquist = audio.sample_rate as f64 / 2.0;
    let (lo, hi) = (edges[r0], edges[r1]);
    if r0 > 0 && lo >= nyquist {
        return Err(PipelineError::Invalid(format!(
            "the region starts at {lo:.0} Hz, above what the recording holds ({} Hz sample rate, so nothing above {nyquist:.0} Hz)",
            audio.sample_rate
        )));
    }
    let (c0, c1) = edit.changed;
    for (orig, new) in audio.channels.iter().zip(edit.audio.channels.iter_mut()) {
        let x = &orig[c0..c1];
        let mut y = new[c0..c1].to_vec();
        if r0 > 0 {
            y = crossover(x, &y, audio.sample_rate, lo)?;
        }
        if r1 < edges.len() - 1 && hi < nyquist * 0.98 {
            y = crossover(&y, x, audio.sample_rate, hi)?;
        }
        new[c0..c1].copy_from_slice(&y);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converting_part_of_a_file_matches_converting_all_of_it() {
        use candle_core::{DType, Device};
        let dev = Device::Cpu;
        let vb = |seed| smg_core::SeededVarMap::new(seed).var_builder(DType::F32, &dev);
        let gcfg = smg_maskgit::Config { dim: 16, depth: 1, heads: 2, mlp_dim: 32, ..smg_maskgit::Config::small() };
        let p = Pipeline {
            tokenizer: smg_tokenizer::SpecVqGan::new(&smg_tokenizer::Config::small(), vb(1)).unwrap(),
            generator: smg_maskgit::MaskedVit::new(&gcfg, vb(2)).unwrap(),
            text: None,
            vocoder: crate::Vocoder::GriffinLim(Default::default()),
            mel: smg_audio::MelTransform::hifigan(),
            device: dev.clone(),
        };
        for rate in [48000u32, 44100, 16000, 22050, 37000] {
            let n = rate as usize * 6;
            let ch = |f: f64| -> Vec<f32> {
                (0..n).map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin() as f32 * 0.5).collect()
            };
            let audio = Audio {
                channels: vec![ch(300.0), ch(450.0)],
                sample_rate: rate,
                format: String::new(),
                sample_format: smg_audio::SampleFormat::Float,
            };
            let whole = smg_audio::resample(&audio.to_mono(), rate, 22050).unwrap();
            let (part, start) = model_mono(&p, &audio, 60000, 80000).unwrap();
            assert!(start <= 60000 - 4096 && start + part.len() as i64 >= 80000, "{rate}: {start}+{}", part.len());
            let err = (60000..80000).map(|t| (part[(t - start) as usize] - whole[t as usize]).abs()).fold(0f32, f32::max);
            assert!(err < 2e-3, "{rate} Hz: part and whole differ by {err}");
        }
    }

    #[test]
    fn a_short_gap_gets_one_centred_window() {
        // 16 columns, 4 of context, gap of 3 columns at 4..7, audio columns -10..40.
        assert_eq!(plan_gap(4, 7, 16, 4, -10, 40), vec![4 - 6]);
        // Near the start: clamped to the first audio column.
        assert_eq!(plan_gap(4, 7, 16, 4, 2, 40), vec![2]);
        // Recording shorter than a window: starts at its first column.
        assert_eq!(plan_gap(4, 7, 16, 4, 3, 9), vec![3]);
    }

    #[test]
    fn a_long_gap_is_covered_with_context_on_both_sides() {
        let (g0, g1, cols, ctx) = (4, 60, 16, 4);
        let plan = plan_gap(g0, g1, cols, ctx, -100, 200);
        assert_eq!(plan[0], 0);
        let mut covered = std::collections::BTreeSet::new();
        for (k, &w) in plan.iter().enumerate() {
            let new: Vec<i64> = (w..w + cols).filter(|j| (g0..g1).contains(j) && !covered.contains(j)).collect();
            assert!(!new.is_empty(), "window {k} generates something");
            if k > 0 {
                assert!(new[0] - w >= ctx, "window {k} keeps {ctx} columns of context");
            }
            covered.extend(new);
        }
        assert_eq!(covered.len() as i64, g1 - g0);
        let last = *plan.last().unwrap();
        assert!(last + cols - g1 >= ctx, "the last window sees the audio after the gap");
        // Gap running to the end of the recording: the last window stops at the audio's end.
        let plan = plan_gap(4, 60, 16, 4, -100, 60);
        assert_eq!(*plan.last().unwrap() + 16, 60);
    }

    #[test]
    fn sweep_covers_everything_with_overlap() {
        assert_eq!(plan_sweep(10, 16, 4), vec![0]);
        assert_eq!(plan_sweep(16, 16, 4), vec![0]);
        assert_eq!(plan_sweep(30, 16, 4), vec![0, 12, 14]);
        assert_eq!(plan_sweep(40, 16, 4), vec![0, 12, 24]);
    }

    #[test]
    fn assembly_crossfades_in_the_overlap_only() {
        let a = Piece { start: 0, audio: vec![1.0; 100] };
        let b = Piece { start: 60, audio: vec![2.0; 100] };
        let out = assemble(vec![a, b], 0, 160, 16);
        // Overlap 60..100, middle 80, fade of 2·8 samples at 72..88.
        assert!(out[..72].iter().all(|&v| v == 1.0));
        assert!(out[88..].iter().all(|&v| v == 2.0));
        assert!(out[72..88].windows(2).all(|w| w[0] < w[1]));
    }
}
