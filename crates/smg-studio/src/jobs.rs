//! What a job asks for (the JSON body of `POST /api/jobs` and the task endpoints), how it is
//! checked before it is queued, and what the page reads back while it runs.

use crate::store::Info;
use serde::{Deserialize, Serialize};
use smg_maskgit::SamplerPreset;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Regenerate a time range, or a time × frequency region, of a recording (SPEC.md §3.7).
    Inpaint,
    /// Regenerate everything above a cut-off (SPEC.md §3.7).
    BandwidthExtension,
    /// Text-to-audio (SPEC.md §3.6), any duration by outpainting.
    Generate,
}

/// The sampler's knobs (SPEC.md §3.6): a job's `sampler` object. Fields a request leaves out
/// take the loaded generator's preset (its `sampler.json`, see [`Info::sampler`]).
pub type SamplerSettings = SamplerPreset;

/// A job: the task, what it works on and how to sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub task: Task,
    /// The recording's id (from `POST /api/audio` or `POST /api/clips/{n}`); not for `generate`.
    #[serde(default)]
    pub audio: Option<String>,
    /// Inpainting: start and end of the range, seconds.
    #[serde(default)]
    pub from_s: Option<f64>,
    #[serde(default)]
    pub to_s: Option<f64>,
    /// Inpainting: token rows `[lo, hi)` of a painted region (every row when absent).
    #[serde(default)]
    pub rows: Option<[usize; 2]>,
    /// Bandwidth extension: the cut-off, Hz.
    #[serde(default)]
    pub cutoff_hz: Option<f64>,
    /// Bandwidth extension: keep each channel's own band below the cut-off (default true).
    #[serde(default)]
    pub lfr: Option<bool>,
    /// Text conditioning: required for `generate`, optional for the edits.
    #[serde(default)]
    pub prompt: Option<String>,
    /// `generate`: seconds of audio (default one window).
    #[serde(default)]
    pub duration_s: Option<f64>,
    #[serde(default)]
    pub sampler: SamplerSettings,
}

impl JobRequest {
    /// The prompt, trimmed, when it has any text.
    pub fn prompt(&self) -> Option<&str> {
        self.prompt.as_deref().map(str::trim).filter(|p| !p.is_empty())
    }

    /// Checks what can be checked before queueing (the pipeline checks the rest).
    pub fn check(&self, info: &Info) -> Result<(), String> {
        self.sampler.sampler(self.prompt().is_some())?;
        let s = &self.sampler;
        if s.iterations == 0 || s.iterations > info.tokens_per_window {
            return Err(format!(
                "iterations must be between 1 and {} (the tokens of a window), not {}",
                info.tokens_per_window, s.iterations
            ));
        }
        if let Some(p) = &self.prompt {
            if p.len() > 1000 {
                return Err(format!("the prompt is {} characters long; at most 1000", p.len()));
            }
        }
        if self.prompt().is_some() && !info.text {
            return Err("text prompts need the MiniLM text encoder, which is not fetched (run scripts/fetch_assets.sh)".into());
        }
        let finite = |name: &str, v: Option<f64>| match v {
            Some(x) if !x.is_finite() => Err(format!("{name} must be a finite number, not {x}")),
            _ => Ok(()),
        };
        finite("from_s", self.from_s)?;
        finite("to_s", self.to_s)?;
        finite("cutoff_hz", self.cutoff_hz)?;
        finite("duration_s", self.duration_s)?;
        match self.task {
            Task::Generate => {
                if self.prompt().is_none() {
                    return Err("generate needs a prompt".into());
                }
                if let Some(d) = self.duration_s {
                    if !(d > 0.0 && d <= 60.0) {
                        return Err(format!("duration must be between 0 and 60 s in the studio, not {d}"));
                    }
                }
            }
            Task::Inpaint => {
                self.audio.as_ref().ok_or("inpaint needs an audio id")?;
                let (a, b) = (self.from_s.ok_or("inpaint needs from_s")?, self.to_s.ok_or("inpaint needs to_s")?);
                if a < 0.0 || b <= a {
                    return Err(format!("time range {a}–{b} s is empty or negative"));
                }
                if let Some([lo, hi]) = self.rows {
                    if lo >= hi || hi > info.rows {
                        return Err(format!("rows {lo}..{hi} are not a non-empty range within the grid's {} rows", info.rows));
                    }
                }
            }
            Task::BandwidthExtension => {
                self.audio.as_ref().ok_or("bandwidth extension needs an audio id")?;
                let c = self.cutoff_hz.ok_or("bandwidth extension needs cutoff_hz")?;
                let top = *info.row_edges_hz.last().unwrap_or(&0.0);
                if !(c > 0.0 && c < top) {
                    return Err(format!("cut-off must lie between 0 and {top} Hz, not {c}"));
                }
            }
        }
        Ok(())
    }
}

/// A playable recording, as the page sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AudioRef {
    pub id: String,
    pub name: String,
    pub url: String,
    pub duration_s: f64,
    pub sample_rate: u32,
    pub channels: usize,
    pub frames: usize,
    pub format: String,
}

/// One decoding step of a window: which positions are still masked, the tokens drawn and
/// their probabilities (rounded to 3 decimals).
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub masked: Vec<u8>,
    pub tokens: Vec<u32>,
    pub confidence: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    /// Where the window starts in the recording, seconds.
    pub start_s: f64,
    /// The start grid: 1 where a token was to be generated.
    pub mask: Vec<u8>,
    pub steps: Vec<StepView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultView {
    pub audio: AudioRef,
    /// Seconds of the recording that may differ from the input (edit and crossfades).
    pub changed_s: [f64; 2],
    pub windows: usize,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

/// Everything the page polls: state, the token grids step by step, the preview, the result.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub id: u64,
    pub request: JobRequest,
    pub state: JobState,
    /// What the worker is doing: `waiting`, `sampling`, `preview`, `vocoding`, `finished`.
    pub stage: String,
    /// Jobs ahead of this one in the queue.
    pub queue_position: Option<usize>,
    pub error: Option<String>,
    /// `true` when the error is about the request (400), `false` for a failure of the server.
    #[serde(skip)]
    pub bad_request: bool,
    /// The decoding steps of the first windows (at most 8).
    pub windows: Vec<WindowView>,
    /// The Griffin-Lim preview, ready before the result.
    pub preview: Option<ResultView>,
    pub result: Option<ResultView>,
    /// Seconds from the start of the run to the preview and to the result.
    pub preview_s: Option<f64>,
    pub result_s: Option<f64>,
}

impl JobStatus {
    pub fn queued(id: u64, request: JobRequest) -> Self {
        Self {
            id,
            request,
            state: JobState::Queued,
            stage: "waiting".into(),
            queue_position: None,
            error: None,
            bad_request: false,
            windows: Vec::new(),
            preview: None,
            result: None,
            preview_s: None,
            result_s: None,
        }
    }
}
