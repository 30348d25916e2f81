//! The manifest: one JSON object per line per clip, shared by the sound-event corpus and the
//! tagged music set. Paths are relative to the data folder so a corpus can move.

use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;

/// Which part of the data a clip belongs to. Splits are by source recording: no piece of one
/// recording is in two splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(Split::Train),
            "valid" | "val" | "validation" => Ok(Split::Valid),
            "test" => Ok(Split::Test),
            other => Err(DataError::Invalid(format!("unknown split '{other}' (train, valid, test)"))),
        }
    }
}

/// One clip of a built data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRecord {
    /// Unique id, e.g. `scratch/Animal/Dog1#0`.
    pub id: String,
    /// The clip's WAV, relative to the data folder.
    pub path: String,
    /// `"sound"` (sound events) or `"music"` (tagged music set).
    pub set: String,
    /// The original recording, relative to the data folder; the split key.
    pub source: String,
    /// Which piece of the source this clip is (0-based).
    pub piece: u32,
    /// Debian or PyPI package the recording came from.
    pub package: String,
    pub licence: String,
    /// Coarse class (one of the corpus categories) for classification and captions.
    pub category: String,
    /// Fine label in words, e.g. "female cough".
    pub label: String,
    /// Multi-label tags (category, package folder, words of the label; genre, meter... for music).
    pub tags: Vec<String>,
    /// Several phrasings written from the labels.
    pub captions: Vec<String>,
    pub split: Split,
    pub sample_rate: u32,
    /// Samples in the clip file (frames · hop).
    pub samples: usize,
    /// Samples of real audio before any zero padding.
    pub audio_samples: usize,
}

/// Writes records as JSON lines, atomically.
pub fn write_manifest(path: &Path, records: &[ClipRecord]) -> Result<()> {
    let tmp = path.with_extension("jsonl.partial");
    {
        let f = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut w = std::io::BufWriter::new(f);
        for r in records {
            serde_json::to_writer(&mut w, r).map_err(|e| DataError::Invalid(e.to_string()))?;
            w.write_all(b"\n").map_err(|e| DataError::io(&tmp, e))?;
        }
        w.flush().map_err(|e| DataError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// Reads a JSON-lines manifest; errors name the file and line.
pub fn read_manifest(path: &Path) -> Result<Vec<ClipRecord>> {
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| DataError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: ClipRecord = serde_json::from_str(&line).map_err(|e| DataError::Manifest {
            path: path.to_path_buf(),
            line: i + 1,
            detail: e.to_string(),
        })?;
        out.push(r);
    }
    Ok(out)
}
