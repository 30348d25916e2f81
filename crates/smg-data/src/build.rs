//! Building the sound-event corpus: every labelled recording is decoded, mixed to
//! mono, resampled to 22050 Hz, peak-normalised to 0.95 (SPEC.md §1), trimmed of leading and
//! trailing silence, and cut (or zero-padded) into clips of a named configuration's length.
//! Each clip is written as a 16-bit WAV with one manifest line.

use crate::error::{DataError, Result};
use crate::labels::{discover, discover_music, SourceItem};
use crate::manifest::{write_manifest, ClipRecord};
use crate::split::{assign_splits, stable_hash};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smg_audio::{MelConfig, WavEncoding};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bump when the processing below changes, so caches built by older code are rebuilt.
pub const BUILD_VERSION: u32 = 2;

/// Clip length and cutting rules of a named configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    pub name: String,
    /// Mel frames per clip (samples = frames · hop).
    pub frames: usize,
    pub sample_rate: u32,
    pub hop: usize,
    /// At most this many clips are cut from one recording (long ambiences would dominate).
    pub max_pieces: usize,
    /// Leading/trailing audio quieter than this (dB below the peak) is trimmed.
    pub trim_db: f32,
    /// A trailing remainder shorter than this fraction of a clip is dropped (unless it is the
    /// only piece, which is padded).
    pub min_fill: f32,
    /// Tighter caps on clips per recording for some categories (long music tracks would
    /// otherwise dominate the broad corpus).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub category_pieces: BTreeMap<String, usize>,
    /// No category keeps more than this share of all clips (the surplus is dropped, chosen by a
    /// hash of the clip id, so the same clips are kept on every build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_category_share: Option<f64>,
    /// Which recordings: the five packages of the small corpus, or the broad corpus's.
    #[serde(default, skip_serializing_if = "Corpus::is_small")]
    pub corpus: Corpus,
}

/// The recordings a sound-event set is built from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Corpus {
    /// The five packages of `scripts/assets.lock` (≈33 min of audio, drum-heavy).
    #[default]
    Small,
    /// Those plus the packages of `scripts/assets-medium.lock`, with finer categories.
    Broad,
}

impl Corpus {
    fn is_small(&self) -> bool {
        *self == Corpus::Small
    }
}

impl ClipConfig {
    /// The paper's 848 frames (217088 samples, 9.85 s).
    pub fn paper() -> Self {
        Self {
            name: "paper".into(),
            frames: 848,
            sample_rate: 22050,
            hop: 256,
            max_pieces: 3,
            trim_db: 50.0,
            min_fill: 0.5,
            category_pieces: BTreeMap::new(),
            max_category_share: None,
            corpus: Corpus::Small,
        }
    }

    /// The small models' 256 frames (65536 samples, 2.97 s; SPEC.md §10).
    pub fn small() -> Self {
        Self { name: "small".into(), frames: 256, max_pieces: 6, ..Self::paper() }
    }

    /// The broad corpus `sound-medium` (`crate::medium`): the small models' 2.97 s window, up to
    /// 12 clips per recording, 40 per ambience (rain, wind, water, …), 3 per music track, and no
    /// category above 11.5% of the clips.
    pub fn medium() -> Self {
        let mut category_pieces = BTreeMap::from([("game music".to_string(), 3)]);
        for c in ["rain", "wind", "thunder", "water", "fire", "outdoor ambience", "insects", "birds", "crowd and applause"] {
            category_pieces.insert(c.to_string(), 40);
        }
        Self {
            name: "medium".into(),
            max_pieces: 12,
            category_pieces,
            max_category_share: Some(0.115),
            corpus: Corpus::Broad,
            ..Self::small()
        }
    }

    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "small" => Ok(Self::small()),
            "medium" => Ok(Self::medium()),
            other => Err(DataError::Invalid(format!("unknown clip configuration '{other}' (paper, small, medium)"))),
        }
    }

    /// Most clips cut from one recording of `category`.
    pub fn max_pieces_for(&self, category: &str) -> usize {
        self.category_pieces.get(category).copied().unwrap_or(self.max_pieces)
    }

    pub fn clip_samples(&self) -> usize {
        self.frames * self.hop
    }
}

/// Range `[start, end)` of `x` left after dropping leading/trailing 512-sample windows whose
/// peak is more than `db` below the overall peak. Silence gives an empty range.
pub fn trim_range(x: &[f32], db: f32) -> (usize, usize) {
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak <= 0.0 {
        return (0, 0);
    }
    let thr = peak * 10f32.powf(-db / 20.0);
    let win = 512;
    let loud = |w: &[f32]| w.iter().any(|v| v.abs() > thr);
    let n_win = x.len().div_ceil(win);
    let first = (0..n_win).find(|&i| loud(&x[i * win..((i + 1) * win).min(x.len())]));
    let last = (0..n_win).rev().find(|&i| loud(&x[i * win..((i + 1) * win).min(x.len())]));
    match (first, last) {
        (Some(a), Some(b)) => (a * win, ((b + 1) * win).min(x.len())),
        _ => (0, 0),
    }
}

/// Cuts `x` into clips of `len` samples: whole clips first, then the remainder if it fills at
/// least `min_fill` of a clip (or is the only piece); the last piece is zero-padded. Returns
/// (clip, samples of real audio in it).
pub fn cut_pieces(x: &[f32], len: usize, max_pieces: usize, min_fill: f32) -> Vec<(Vec<f32>, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < x.len() && out.len() < max_pieces {
        let real = (x.len() - start).min(len);
        if real < len && !out.is_empty() && (real as f32) < min_fill * len as f32 {
            break;
        }
        let mut clip = x[start..start + real].to_vec();
        clip.resize(len, 0.0);
        out.push((clip, real));
        start += len;
    }
    out
}

/// What a build did.
#[derive(Debug, Default, Clone)]
pub struct BuildReport {
    pub out_dir: PathBuf,
    pub sources: usize,
    pub clips: usize,
    /// Files no labelling rule matched (not used).
    pub unlabelled: Vec<String>,
    /// Files that failed to decode, with the reason (not used).
    pub failed: Vec<(String, String)>,
    /// True when an up-to-date build was found and nothing was done.
    pub up_to_date: bool,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct BuildStamp {
    version: u32,
    config: ClipConfig,
    sources_hash: u64,
}

/// Which data set: the sound-event corpus or the tagged music set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Sound,
    Music,
}

impl SetKind {
    pub fn name(self) -> &'static str {
        match self {
            SetKind::Sound => "sound",
            SetKind::Music => "music",
        }
    }
}

/// Folder of a built data set, e.g. `corpus/sound-small`.
pub fn set_dir(data_dir: &Path, kind: SetKind, cfg: &ClipConfig) -> PathBuf {
    data_dir.join("corpus").join(format!("{}-{}", kind.name(), cfg.name))
}

/// Folder of a built sound-event corpus.
pub fn sound_corpus_dir(data_dir: &Path, cfg: &ClipConfig) -> PathBuf {
    set_dir(data_dir, SetKind::Sound, cfg)
}

fn piece_id(item: &SourceItem, piece: usize) -> String {
    let rel = item.rel.trim_start_matches("deb/").trim_start_matches("music/render/");
    let short: String = rel.rsplit_once('.').map_or(rel, |(a, _)| a).to_string();
    format!("{short}#{piece}")
}

fn file_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect::<String>() + ".wav"
}

/// Builds (or finds up to date) the sound-event corpus for `cfg` under `data_dir/corpus/`.
pub fn build_sound_corpus(data_dir: &Path, cfg: &ClipConfig, progress: bool) -> Result<BuildReport> {
    build_set(data_dir, SetKind::Sound, cfg, progress)
}

/// Builds (or finds up to date) a data set for `cfg` under `data_dir/corpus/<kind>-<config>/`.
/// The music set needs `scripts/render_music.py` to have rendered its sources first.
pub fn build_set(data_dir: &Path, kind: SetKind, cfg: &ClipConfig, progress: bool) -> Result<BuildReport> {
    let (items, unlabelled) = match kind {
        SetKind::Sound if cfg.corpus == Corpus::Broad => {
            let (items, unlabelled, missing) = crate::medium::discover_medium(data_dir)?;
            if !missing.is_empty() {
                return Err(DataError::Missing {
                    what: format!("the broad corpus's packages {} (`smg data fetch --set medium`)", missing.join(", ")),
                    path: data_dir.join("deb"),
                });
            }
            (items, unlabelled)
        }
        SetKind::Sound => discover(data_dir)?,
        SetKind::Music => (discover_music(data_dir)?, Vec::new()),
    };
    let out_dir = set_dir(data_dir, kind, cfg);
    let mut key = String::new();
    for it in &items {
        key.push_str(&format!("{}|{}|{}|{}|{}\n", it.rel, it.group, it.category, it.label, it.tags.join(",")));
    }
    let stamp = BuildStamp { version: BUILD_VERSION, config: cfg.clone(), sources_hash: stable_hash(&key) };
    let stamp_path = out_dir.join("build.json");
    let manifest_path = out_dir.join("manifest.jsonl");
    if manifest_path.is_file() {
        if let Ok(text) = std::fs::read_to_string(&stamp_path) {
            if serde_json::from_str::<BuildStamp>(&text).ok().as_ref() == Some(&stamp) {
                let clips = crate::manifest::read_manifest(&manifest_path)?.len();
                return Ok(BuildReport { out_dir, sources: items.len(), clips, unlabelled, up_to_date: true, ..Default::default() });
            }
        }
    }
    let clips_dir = out_dir.join("clips");
    std::fs::create_dir_all(&clips_dir).map_err(|e| DataError::io(&clips_dir, e))?;
    let splits = assign_splits(items.iter().map(|i| (i.group.as_str(), i.category.as_str())));
    let mel = MelConfig { sample_rate: cfg.sample_rate, hop_length: cfg.hop, ..MelConfig::hifigan() };
    let bar = if progress {
        indicatif::ProgressBar::new(items.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("building {msg} [{bar:30}] {pos}/{len} sources ({eta})")
                .expect("static template")
                .progress_chars("=> "),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_message(format!("{}-{}", kind.name(), cfg.name));
    let results: Vec<std::result::Result<Vec<ClipRecord>, (String, String)>> = items
        .par_iter()
        .map(|it| {
            let r = process_one(data_dir, &clips_dir, it, kind, cfg, &mel, splits[&it.group]).map_err(|e| (it.rel.clone(), e.to_string()));
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut records = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(v) => records.extend(v),
            Err(f) => failed.push(f),
        }
    }
    if let Some(share) = cfg.max_category_share {
        let dropped;
        (records, dropped) = cap_categories(records, share);
        for r in dropped {
            let p = data_dir.join(&r.path);
            std::fs::remove_file(&p).map_err(|e| DataError::io(&p, e))?;
        }
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    write_manifest(&manifest_path, &records)?;
    let mut report = format!("# files not used by this build\n# matched no labelling rule ({}):\n", unlabelled.len());
    unlabelled.iter().for_each(|u| report += &format!("{u}\n"));
    report += &format!("# failed to decode or silent ({}):\n", failed.len());
    failed.iter().for_each(|(f, why)| report += &format!("{f}\t{why}\n"));
    let unused = out_dir.join("unused.txt");
    std::fs::write(&unused, report).map_err(|e| DataError::io(&unused, e))?;
    let text = serde_json::to_string_pretty(&stamp).map_err(|e| DataError::Invalid(e.to_string()))?;
    std::fs::write(&stamp_path, text).map_err(|e| DataError::io(&stamp_path, e))?;
    Ok(BuildReport { out_dir, sources: items.len(), clips: records.len(), unlabelled, failed, up_to_date: false })
}

/// Keeps at most `share` of the kept clips in any category: the largest categories are cut to a
/// common cap (found by fixed-point iteration, since cutting shrinks the total), keeping the
/// clips whose id hashes lowest. Returns (kept, dropped).
pub fn cap_categories(records: Vec<ClipRecord>, share: f64) -> (Vec<ClipRecord>, Vec<ClipRecord>) {
    let mut by_cat: BTreeMap<String, Vec<ClipRecord>> = BTreeMap::new();
    for r in records {
        by_cat.entry(r.category.clone()).or_default().push(r);
    }
    let sizes: Vec<usize> = by_cat.values().map(Vec::len).collect();
    let mut cap = sizes.iter().copied().max().unwrap_or(0);
    loop {
        let total: usize = sizes.iter().map(|&n| n.min(cap)).sum();
        let next = ((share * total as f64).floor() as usize).max(1);
        if next >= cap {
            break;
        }
        cap = next;
    }
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for (_, mut v) in by_cat {
        v.sort_by_key(|r| (stable_hash(&r.id), r.id.clone()));
        let extra = v.split_off(v.len().min(cap));
        kept.extend(v);
        dropped.extend(extra);
    }
    (kept, dropped)
}

fn process_one(
    data_dir: &Path,
    clips_dir: &Path,
    it: &SourceItem,
    kind: SetKind,
    cfg: &ClipConfig,
    mel: &MelConfig,
    split: crate::manifest::Split,
) -> Result<Vec<ClipRecord>> {
    let x = smg_audio::load_mono(&it.path, mel.sample_rate)?;
    let x = smg_audio::peak_normalize(&x, 0.95);
    let (a, b) = trim_range(&x, cfg.trim_db);
    if b - a < cfg.hop * 2 {
        return Err(DataError::Invalid("silent, or shorter than 2 frames after trimming".into()));
    }
    let pieces = cut_pieces(&x[a..b], cfg.clip_samples(), cfg.max_pieces_for(&it.category), cfg.min_fill);
    let mut out = Vec::new();
    for (i, (clip, real)) in pieces.into_iter().enumerate() {
        // Skip near-silent pieces of long recordings (keep the first piece always).
        let rms = (clip[..real].iter().map(|v| v * v).sum::<f32>() / real.max(1) as f32).sqrt();
        if i > 0 && rms < 1e-3 {
            continue;
        }
        let id = piece_id(it, i);
        let name = file_name(&id);
        let path = clips_dir.join(&name);
        smg_audio::write_wav(&path, &clip, mel.sample_rate, WavEncoding::Pcm16)?;
        out.push(ClipRecord {
            path: path.strip_prefix(data_dir).unwrap_or(&path).to_string_lossy().into_owned(),
            id,
            set: kind.name().into(),
            source: it.group.clone(),
            piece: i as u32,
            package: it.package.clone(),
            licence: it.licence.clone(),
            category: it.category.clone(),
            label: it.label.clone(),
            tags: it.tags.clone(),
            captions: it.captions.clone(),
            split,
            sample_rate: mel.sample_rate,
            samples: clip.len(),
            audio_samples: real,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_silence_at_both_ends() {
        let mut x = vec![0.0f32; 4096];
        x.extend((0..2048).map(|i| (i as f32 * 0.1).sin() * 0.5));
        x.extend(vec![1e-5; 4096]);
        let (a, b) = trim_range(&x, 50.0);
        assert_eq!((a, b), (4096, 4096 + 2048));
        assert_eq!(trim_range(&[0.0; 100], 50.0), (0, 0));
    }

    #[test]
    fn cuts_whole_clips_then_a_long_enough_remainder() {
        let x = vec![0.5f32; 250];
        let p = cut_pieces(&x, 100, 10, 0.5);
        assert_eq!(p.len(), 3);
        assert_eq!(p[2].1, 50);
        assert_eq!(p[2].0[60], 0.0);
        assert_eq!(cut_pieces(&x[..240], 100, 10, 0.5).len(), 2);
        let short = cut_pieces(&x[..10], 100, 10, 0.5);
        assert_eq!((short.len(), short[0].1, short[0].0.len()), (1, 10, 100));
        assert_eq!(cut_pieces(&x, 100, 2, 0.5).len(), 2);
    }

    #[test]
    fn category_cap_keeps_every_category_under_its_share_deterministically() {
        let rec = |cat: &str, i: usize| ClipRecord {
            id: format!("{cat}/{i}#0"),
            path: String::new(),
            set: "sound".into(),
            source: format!("{cat}/{i}"),
            piece: 0,
            package: "p".into(),
            licence: "l".into(),
            category: cat.into(),
            label: cat.into(),
            tags: vec![],
            captions: vec![],
            split: crate::manifest::Split::Train,
            sample_rate: 22050,
            samples: 1,
            audio_samples: 1,
        };
        let mut v: Vec<ClipRecord> = (0..500).map(|i| rec("big", i)).collect();
        for c in 0..10 {
            v.extend((0..40).map(|i| rec(&format!("c{c}"), i)));
        }
        let (kept, dropped) = cap_categories(v.clone(), 0.12);
        let big = kept.iter().filter(|r| r.category == "big").count();
        assert!(big as f64 <= 0.12 * kept.len() as f64, "{big} of {}", kept.len());
        assert!(big >= 50, "the cap is not stricter than it needs to be: {big}");
        assert_eq!(kept.len() + dropped.len(), 900);
        assert_eq!(kept.iter().filter(|r| r.category == "c3").count(), 40);
        let (again, _) = cap_categories(v.into_iter().rev().collect(), 0.12);
        let ids = |x: &[ClipRecord]| x.iter().map(|r| r.id.clone()).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(ids(&kept), ids(&again));
    }
}
