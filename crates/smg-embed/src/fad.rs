//! Fréchet audio distance between two sets of clips (SPEC.md §6): every analysis window of every
//! clip of a set is embedded, the windows are pooled, a Gaussian (mean, unbiased covariance) is
//! fitted per set and compared with [`smg_eval::frechet_distance`].

use crate::{invalid, Embedder, Result};
use serde::{Deserialize, Serialize};
use smg_eval::{frechet_distance, Gaussian};
use std::path::{Path, PathBuf};

/// One clip in memory: mono samples at a sample rate.
#[derive(Debug, Clone)]
pub struct Clip {
    pub name: String,
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Clip {
    pub fn new(name: impl Into<String>, samples: Vec<f32>, sample_rate: u32) -> Self {
        Self { name: name.into(), samples, sample_rate }
    }
}

/// What a FAD measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FadReport {
    pub embedder: String,
    pub fad: f64,
    /// Clips and pooled embedding windows of each set.
    pub clips: [usize; 2],
    pub windows: [usize; 2],
}

/// Embeddings of all windows of all `clips`, pooled; `progress` is called once per clip.
pub fn embed_clips(embedder: &dyn Embedder, clips: &[Clip], mut progress: impl FnMut()) -> Result<Vec<Vec<f64>>> {
    let mut rows = vec![];
    for c in clips {
        let e = embedder.embed(&c.samples, c.sample_rate).map_err(|e| crate::EmbedError::Invalid(format!("{}: {e}", c.name)))?;
        rows.extend(e);
        progress();
    }
    Ok(rows)
}

/// FAD between two pooled embedding sets already computed with `embedder_name`.
pub fn fad_of_embeddings(embedder_name: &str, a: &[Vec<f64>], b: &[Vec<f64>], clips: [usize; 2]) -> Result<FadReport> {
    let (ga, gb) = (Gaussian::fit(a)?, Gaussian::fit(b)?);
    Ok(FadReport { embedder: embedder_name.to_string(), fad: frechet_distance(&ga, &gb)?, clips, windows: [a.len(), b.len()] })
}

/// FAD between two in-memory sets of clips, with a progress bar over both sets.
pub fn fad_between(embedder: &dyn Embedder, a: &[Clip], b: &[Clip], show_progress: bool) -> Result<FadReport> {
    if a.is_empty() || b.is_empty() {
        return invalid(format!("FAD needs clips in both sets, got {} and {}", a.len(), b.len()));
    }
    let bar = if show_progress { indicatif::ProgressBar::new((a.len() + b.len()) as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_message(format!("embedding with {}", embedder.name()));
    let ea = embed_clips(embedder, a, || bar.inc(1))?;
    let eb = embed_clips(embedder, b, || bar.inc(1))?;
    bar.finish_and_clear();
    fad_of_embeddings(embedder.name(), &ea, &eb, [a.len(), b.len()])
}

/// Every audio file (wav, flac, ogg, mp3, aiff) directly in `dir` or below it, sorted, mixed to
/// mono at its own sample rate. Unreadable files are an error naming the file.
pub fn load_dir(dir: &Path) -> Result<Vec<Clip>> {
    if !dir.is_dir() {
        return invalid(format!("{}: not a folder", dir.display()));
    }
    let mut paths = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p: PathBuf = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
                Some("wav" | "flac" | "ogg" | "mp3" | "aif" | "aiff")
            ) {
                paths.push(p);
            }
        }
    }
    paths.sort();
    if paths.is_empty() {
        return invalid(format!("{}: no audio files (wav, flac, ogg, mp3, aiff) in it", dir.display()));
    }
    paths
        .iter()
        .map(|p| {
            let a = smg_audio::load(p).map_err(|e| crate::EmbedError::Invalid(format!("{}: {e}", p.display())))?;
            Ok(Clip::new(p.display().to_string(), a.to_mono(), a.sample_rate))
        })
        .collect()
}

/// FAD between the audio files of two folders.
pub fn fad_dirs(embedder: &dyn Embedder, a: &Path, b: &Path, show_progress: bool) -> Result<FadReport> {
    fad_between(embedder, &load_dir(a)?, &load_dir(b)?, show_progress)
}
