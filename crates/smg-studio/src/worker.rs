//! The model worker: one thread owns the pipeline and runs the queued jobs in order. Each edit
//! runs twice with the same seed (so with the same tokens): first through Griffin-Lim for a
//! quick preview, then through the pipeline's own vocoder. A failing or panicking job marks
//! itself failed; the worker goes on with the next.

use crate::jobs::{JobRequest, JobState, ResultView, StepView, Task, WindowView};
use crate::store::{lock, Info, State};
use crate::{Result, StudioConfig, StudioError};
use candle_core::Device;
use smg_audio::{Audio, GriffinLimConfig, SampleFormat};
use smg_pipeline::{Edit, Pipeline, PipelineError, Region, Vocoder, WindowOptions, WindowSteps};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

/// Windows whose decoding steps the page gets (the rest are summarised by the result).
const MAX_WINDOWS_SHOWN: usize = 8;

/// A job's failure: the message and whether the request was at fault.
struct Failure {
    message: String,
    bad_request: bool,
}

impl From<PipelineError> for Failure {
    fn from(e: PipelineError) -> Self {
        let bad_request = matches!(
            &e,
            PipelineError::Invalid(_) | PipelineError::MaskGit(smg_maskgit::MaskGitError::Invalid(_)) | PipelineError::Audio(_)
        );
        Failure { message: e.to_string(), bad_request }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, bad_request: true }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure { message: message.into(), bad_request: true }
    }
}

/// Loads the models in a new thread, then serves jobs there; returns what the page needs to
/// know about them, or why they could not be loaded.
pub fn spawn(state: Arc<State>, rx: mpsc::Receiver<u64>, cfg: &StudioConfig) -> Result<Info> {
    let (info_tx, info_rx) = mpsc::channel();
    let cfg = cfg.clone();
    std::thread::Builder::new()
        .name("smg-studio-models".into())
        .spawn(move || {
            let p = match Pipeline::pretrained(&cfg.model, &cfg.checkpoints, &cfg.data_dir, &Device::Cpu) {
                Ok(p) => p,
                Err(e) => {
                    let _ = info_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let preset = match smg_pipeline::sampler_preset(&cfg.model, &cfg.checkpoints) {
                Ok(s) => s,
                Err(e) => {
                    let _ = info_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = info_tx.send(Ok(info(&p, smg_pipeline::resolve_size(&cfg.model, &cfg.checkpoints), &preset)));
            let mut w = Worker { p, state, saved: None };
            while let Ok(id) = rx.recv() {
                w.run(id);
            }
        })
        .map_err(|e| StudioError::Thread("model", e))?;
    match info_rx.recv() {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(e)) => Err(StudioError::Models(e)),
        Err(_) => Err(StudioError::Models("the model thread stopped while loading".into())),
    }
}

fn info(p: &Pipeline, model: &str, preset: &smg_maskgit::SamplerPreset) -> Info {
    let g = p.grid();
    let mel = &p.mel.config;
    Info {
        model: model.into(),
        rows: g.rows,
        cols: g.cols,
        factor: g.factor,
        bands: mel.n_mels,
        sample_rate: mel.sample_rate,
        hop_length: mel.hop_length,
        seconds_per_column: g.seconds_per_column(mel),
        window_s: g.cols as f64 * g.seconds_per_column(mel),
        row_edges_hz: g.row_edges_hz(mel),
        band_hz: smg_audio::mel::mel_band_centres(mel),
        vocoder: p.vocoder.name().into(),
        text: p.text.is_some(),
        tokens_per_window: g.rows * g.cols,
        sampler: preset.clone(),
    }
}

fn windows_view(history: &[WindowSteps]) -> Vec<WindowView> {
    let round = |c: f32| (c * 1000.0).round() / 1000.0;
    history
        .iter()
        .take(MAX_WINDOWS_SHOWN)
        .map(|w| WindowView {
            start_s: w.start_s,
            mask: w.mask.iter().map(|&m| m as u8).collect(),
            steps: w
                .steps
                .iter()
                .map(|s| StepView {
                    masked: s.masked[0].iter().map(|&m| m as u8).collect(),
                    tokens: s.sampled[0].clone(),
                    confidence: s.confidence[0].iter().map(|&c| round(c)).collect(),
                })
                .collect(),
        })
        .collect()
}

struct Worker {
    p: Pipeline,
    state: Arc<State>,
    /// The pipeline's own vocoder while the preview one is in its place.
    saved: Option<Vocoder>,
}

impl Worker {
    fn update(&self, id: u64, f: impl FnOnce(&mut crate::jobs::JobStatus)) {
        if let Some(j) = lock(&self.state.jobs).map.get_mut(&id) {
            f(j);
        }
    }

    fn run(&mut self, id: u64) {
        let req = {
            let mut jobs = lock(&self.state.jobs);
            jobs.queue.retain(|&j| j != id);
            match jobs.map.get_mut(&id) {
                Some(j) => {
                    j.state = JobState::Running;
                    j.stage = "sampling".into();
                    j.request.clone()
                }
                None => return,
            }
        };
        let t0 = Instant::now();
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.execute(id, &req, t0)));
        let failure = match out {
            Ok(Ok(())) => None,
            Ok(Err(f)) => Some(f),
            Err(panic) => {
                let what = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                Some(Failure {
                    message: format!("the model worker failed on this request: {}", what.unwrap_or_default()),
                    bad_request: false,
                })
            }
        };
        // A panic may have left the preview vocoder in place.
        self.restore_vocoder();
        let mut jobs = lock(&self.state.jobs);
        if let Some(j) = jobs.map.get_mut(&id) {
            j.stage = "finished".into();
            match failure {
                None => j.state = JobState::Done,
                Some(f) => {
                    j.state = JobState::Failed;
                    j.error = Some(f.message);
                    j.bad_request = f.bad_request;
                }
            }
        }
        jobs.finish(id);
    }

    fn result_view(&self, name: String, edit: Edit) -> ResultView {
        let sr = edit.audio.sample_rate as f64;
        let changed_s = [edit.changed.0 as f64 / sr, edit.changed.1 as f64 / sr];
        let audio = lock(&self.state.store).keep(name, edit.audio);
        ResultView { audio, changed_s, windows: edit.windows, notes: edit.notes }
    }

    /// Publishes the decoding steps and the preview; the result follows.
    fn publish_preview(&self, id: u64, t0: Instant, windows: Vec<WindowView>, preview: ResultView) {
        self.update(id, |j| {
            j.windows = windows;
            j.preview = Some(preview);
            j.preview_s = Some(t0.elapsed().as_secs_f64());
            j.stage = "vocoding".into();
        });
    }

    fn publish_result(&self, id: u64, t0: Instant, result: ResultView) {
        self.update(id, |j| {
            j.result = Some(result);
            j.result_s = Some(t0.elapsed().as_secs_f64());
        });
    }

    fn preview_vocoder() -> Vocoder {
        Vocoder::GriffinLim(GriffinLimConfig { n_iter: 32, ..Default::default() })
    }

    fn restore_vocoder(&mut self) {
        if let Some(v) = self.saved.take() {
            self.p.vocoder = v;
        }
    }

    /// Runs `task` with the Griffin-Lim preview vocoder and publishes its result and steps,
    /// then (unless the pipeline's vocoder is Griffin-Lim already) with the real one.
    fn two_pass(
        &mut self,
        id: u64,
        t0: Instant,
        name: &str,
        task: impl Fn(&Pipeline) -> smg_pipeline::Result<Edit>,
    ) -> std::result::Result<(), Failure> {
        let gl_only = matches!(self.p.vocoder, Vocoder::GriffinLim(_));
        if !gl_only {
            self.saved = Some(std::mem::replace(&mut self.p.vocoder, Self::preview_vocoder()));
        }
        let first = task(&self.p);
        self.restore_vocoder();
        let first = first?;
        let windows = windows_view(&first.history);
        if gl_only {
            self.update(id, |j| j.windows = windows);
            self.publish_result(id, t0, self.result_view(name.to_string(), first));
            return Ok(());
        }
        self.publish_preview(id, t0, windows, self.result_view(format!("{name} (Griffin-Lim preview)"), first));
        let edit = task(&self.p)?;
        self.publish_result(id, t0, self.result_view(name.to_string(), edit));
        Ok(())
    }

    fn execute(&mut self, id: u64, req: &JobRequest, t0: Instant) -> std::result::Result<(), Failure> {
        // Every step is kept for the page's token grid.
        let sampler = smg_maskgit::Sampler { keep_history: true, ..req.sampler.sampler(req.prompt().is_some())? };
        let cond = self.p.condition(req.prompt())?;
        let opt = WindowOptions::default();
        let entry = match &req.audio {
            Some(a) if req.task != Task::Generate => Some(
                lock(&self.state.store)
                    .get(a)
                    .ok_or_else(|| format!("no recording with id {a:?} (it may have been dropped: upload it again)"))?,
            ),
            _ => None,
        };
        match req.task {
            Task::Inpaint => {
                let e = entry.ok_or("inpaint needs an audio id")?;
                let region = Region {
                    from_s: req.from_s.ok_or("inpaint needs from_s")?,
                    to_s: req.to_s.ok_or("inpaint needs to_s")?,
                    rows: req.rows.map(|[a, b]| (a, b)),
                };
                let name = format!("{}, {:.2}–{:.2} s inpainted", e.name, region.from_s, region.to_s);
                self.two_pass(id, t0, &name, |p| p.inpaint_region(&e.audio, region, &cond, &sampler, &opt, &mut |_, _| {}))
            }
            Task::BandwidthExtension => {
                let e = entry.ok_or("bandwidth extension needs an audio id")?;
                let cutoff = req.cutoff_hz.ok_or("bandwidth extension needs cutoff_hz")?;
                let lfr = req.lfr.unwrap_or(true);
                let name = format!("{}, extended above {cutoff:.0} Hz", e.name);
                self.two_pass(id, t0, &name, |p| {
                    p.bandwidth_extension_recording(&e.audio, cutoff, lfr, &cond, &sampler, &opt, &mut |_, _| {})
                })
            }
            Task::Generate => self.generate(id, req, t0, &sampler, &cond, &opt),
        }
    }

    fn generate(
        &mut self,
        id: u64,
        req: &JobRequest,
        t0: Instant,
        sampler: &smg_maskgit::Sampler,
        cond: &candle_core::Tensor,
        opt: &WindowOptions,
    ) -> std::result::Result<(), Failure> {
        let prompt = req.prompt().ok_or("generate needs a prompt")?;
        let sr = self.p.mel.config.sample_rate;
        let window_s = self.p.grid().cols as f64 * self.p.grid().seconds_per_column(&self.p.mel.config);
        let d = req.duration_s.unwrap_or(window_s);
        let n = (d * sr as f64).round().max(1.0) as usize;
        let name = format!("\"{prompt}\", seed {}", req.sampler.seed);
        let as_edit = |x: Vec<f32>| Edit {
            changed: (0, x.len()),
            audio: Audio { channels: vec![x], sample_rate: sr, format: "WAV PCM 16-bit".into(), sample_format: SampleFormat::Int(16) },
            windows: 1,
            notes: Vec::new(),
            history: Vec::new(),
        };
        if d > window_s {
            // Longer than a window: outpainting, once per vocoder (same seed, same tokens).
            return self.two_pass(id, t0, &name, |p| {
                let (x, history) = p.generate_long_steps(cond, d, sampler, opt, &mut |_, _| {})?;
                Ok(Edit { windows: history.len(), history, ..as_edit(x) })
            });
        }
        // One window: sample once, then vocode the decoded mel twice.
        let out = self.p.text_to_tokens(&[prompt], sampler)?;
        let mel = self.p.decode_mels(&out.tokens)?.remove(0);
        let n_tokens = self.p.grid().rows * self.p.grid().cols;
        let steps = WindowSteps { start_s: 0.0, mask: vec![true; n_tokens], steps: out.history };
        let windows = windows_view(std::slice::from_ref(&steps));
        let cut = |mut x: Vec<f32>| {
            x.resize(n, 0.0);
            x
        };
        let gl = cut(Self::preview_vocoder().synthesize(&self.p.mel, &mel)?);
        self.publish_preview(id, t0, windows, self.result_view(format!("{name} (Griffin-Lim preview)"), as_edit(gl)));
        let x = cut(self.p.vocoder.synthesize(&self.p.mel, &mel)?);
        self.publish_result(id, t0, self.result_view(name, as_edit(x)));
        Ok(())
    }
}
