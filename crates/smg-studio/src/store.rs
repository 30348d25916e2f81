//! The studio's shared state: loaded recordings (uploads, corpus clips, results) by id, the job
//! table and queue, and what the worker reported about the models.

use crate::jobs::{AudioRef, JobRequest, JobStatus, SamplerSettings};
use crate::StudioConfig;
use serde::Serialize;
use smg_audio::Audio;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Recordings kept at once; the oldest go first.
const MAX_ENTRIES: usize = 96;
/// Finished jobs kept for the page to read.
const MAX_JOBS: usize = 256;

/// The models' geometry, for the page: grid, axes, vocoder.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub model: String,
    pub rows: usize,
    pub cols: usize,
    /// Mel bands per token row and frames per token column.
    pub factor: usize,
    pub bands: usize,
    pub sample_rate: u32,
    pub hop_length: usize,
    pub seconds_per_column: f64,
    pub window_s: f64,
    /// Token row edges in Hz (`rows + 1` values).
    pub row_edges_hz: Vec<f64>,
    /// Centre frequency of each mel band, Hz.
    pub band_hz: Vec<f64>,
    pub vocoder: String,
    pub text: bool,
    pub tokens_per_window: usize,
    /// The generator's sampler preset (its `sampler.json`, with where it was measured): the
    /// page's knobs start here and a request's missing sampler fields are taken from it.
    pub sampler: SamplerSettings,
}

impl Info {
    pub fn describe(&self) -> String {
        format!(
            "{} models: {}×{} token grid per {:.2} s window, vocoder {}, text prompts {}; sampler {}",
            self.model,
            self.rows,
            self.cols,
            self.window_s,
            self.vocoder,
            if self.text { "on" } else { "off (MiniLM not fetched)" },
            self.sampler.describe()
        )
    }
}

/// A recording the page can play, plot and edit.
pub struct Entry {
    pub name: String,
    pub audio: Audio,
}

/// A stored recording as the page sees it.
pub fn audio_ref(id: &str, name: &str, a: &Audio) -> AudioRef {
    AudioRef {
        id: id.into(),
        name: name.into(),
        url: format!("/api/audio/{id}/wav"),
        duration_s: a.duration_s(),
        sample_rate: a.sample_rate,
        channels: a.channels.len(),
        frames: a.frames(),
        format: a.format.clone(),
    }
}

#[derive(Default)]
pub struct Store {
    next: u64,
    entries: HashMap<String, Arc<Entry>>,
    order: VecDeque<String>,
}

impl Store {
    pub fn insert(&mut self, name: String, audio: Audio) -> String {
        self.next += 1;
        let id = format!("a{}", self.next);
        self.entries.insert(id.clone(), Arc::new(Entry { name, audio }));
        self.order.push_back(id.clone());
        while self.order.len() > MAX_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        id
    }

    /// Keeps a recording and describes it for the page.
    pub fn keep(&mut self, name: String, audio: Audio) -> AudioRef {
        let r = audio_ref("", &name, &audio);
        let id = self.insert(name, audio);
        AudioRef { url: format!("/api/audio/{id}/wav"), id, ..r }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.entries.get(id).cloned()
    }
}

#[derive(Default)]
pub struct Jobs {
    next: u64,
    pub map: HashMap<u64, JobStatus>,
    /// Waiting jobs, in order.
    pub queue: VecDeque<u64>,
    finished: VecDeque<u64>,
}

impl Jobs {
    pub fn finish(&mut self, id: u64) {
        self.finished.push_back(id);
        while self.finished.len() > MAX_JOBS {
            if let Some(old) = self.finished.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

pub struct State {
    pub cfg: StudioConfig,
    info: OnceLock<Info>,
    pub store: Mutex<Store>,
    pub jobs: Mutex<Jobs>,
    tx: Mutex<mpsc::Sender<u64>>,
}

/// Locks a mutex even when a thread panicked while holding it (the data stay usable: every
/// update is a single insert or field write).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    pub fn new(cfg: StudioConfig) -> (Self, mpsc::Receiver<u64>) {
        let (tx, rx) = mpsc::channel();
        (Self { cfg, info: OnceLock::new(), store: Mutex::default(), jobs: Mutex::default(), tx: Mutex::new(tx) }, rx)
    }

    pub fn set_info(&self, info: Info) {
        let _ = self.info.set(info);
    }

    pub fn info(&self) -> Option<&Info> {
        self.info.get()
    }

    /// Queues a checked request; `Err` when the queue is full or the worker is gone.
    pub fn submit(&self, req: JobRequest) -> std::result::Result<u64, String> {
        let mut jobs = lock(&self.jobs);
        if jobs.queue.len() >= self.cfg.max_queue {
            return Err(format!("{} jobs are already waiting: try again when some have finished", jobs.queue.len()));
        }
        jobs.next += 1;
        let id = jobs.next;
        jobs.map.insert(id, JobStatus::queued(id, req));
        jobs.queue.push_back(id);
        if lock(&self.tx).send(id).is_err() {
            jobs.queue.pop_back();
            jobs.map.remove(&id);
            return Err("the model worker has stopped; restart the studio".into());
        }
        Ok(id)
    }
}
