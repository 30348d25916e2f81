//! Reading a built data set: the manifest, the clips, a mel cache in safetensors shards keyed by
//! the configuration that made it, and seeded shuffled batches.

use crate::build::{set_dir, ClipConfig, SetKind, BUILD_VERSION};
use crate::error::{DataError, Result};
use crate::manifest::{read_manifest, ClipRecord, Split};
use crate::split::stable_hash;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use smg_audio::MelTransform;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A built data set: its folder and manifest.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub data_dir: PathBuf,
    pub dir: PathBuf,
    pub config: ClipConfig,
    pub records: Vec<ClipRecord>,
}

/// Clips per cache shard.
const SHARD: usize = 256;

impl Dataset {
    /// Opens the sound-event corpus built for `cfg` (see `smg data build`).
    pub fn open_sound(data_dir: &Path, cfg: &ClipConfig) -> Result<Self> {
        Self::open(data_dir, SetKind::Sound, cfg)
    }

    /// Opens a built data set (see `smg data build`).
    pub fn open(data_dir: &Path, kind: SetKind, cfg: &ClipConfig) -> Result<Self> {
        let dir = set_dir(data_dir, kind, cfg);
        let manifest = dir.join("manifest.jsonl");
        if !manifest.is_file() {
            return Err(DataError::Missing {
                what: format!("the '{}-{}' data set (run `smg data build --config {}`)", kind.name(), cfg.name, cfg.name),
                path: manifest,
            });
        }
        Ok(Self { data_dir: data_dir.to_path_buf(), records: read_manifest(&manifest)?, dir, config: cfg.clone() })
    }

    /// Indices of the clips of one split, in manifest order.
    pub fn split_indices(&self, split: Split) -> Vec<usize> {
        (0..self.records.len()).filter(|&i| self.records[i].split == split).collect()
    }

    /// Sorted category names.
    pub fn categories(&self) -> Vec<String> {
        let mut c: Vec<String> = self.records.iter().map(|r| r.category.clone()).collect();
        c.sort();
        c.dedup();
        c
    }

    /// The mono samples of one clip.
    pub fn audio(&self, i: usize) -> Result<Vec<f32>> {
        let r = &self.records[i];
        let a = smg_audio::load(self.data_dir.join(&r.path))?;
        Ok(a.to_mono())
    }

    /// The clip's samples with its event repeated through the window when the generator's
    /// training rows fill it (`crate::fill`); `None` when the clip is used as cut.
    pub fn filled_audio(&self, i: usize) -> Result<Option<Vec<f32>>> {
        let r = &self.records[i];
        if !crate::fill::wants_fill(r) {
            return Ok(None);
        }
        let x = self.audio(i)?;
        Ok(Some(crate::fill::fill_window(&x, r.audio_samples, r.sample_rate, crate::fill::fill_seed(r))))
    }

    /// Folder of the mel cache for `mt`: the key covers the mel settings, the build version and
    /// the manifest, so a change in any of them makes a new cache.
    pub fn mel_cache_dir(&self, mt: &MelTransform) -> PathBuf {
        let mut key = serde_json::to_string(&mt.config).unwrap_or_default();
        key += &format!("|v{BUILD_VERSION}|");
        for r in &self.records {
            key += &r.id;
        }
        self.dir.join("cache").join(format!("mel-{:016x}", stable_hash(&key)))
    }

    /// Log-mels (n_mels, frames) of every clip, computed once and kept in safetensors shards;
    /// later calls read the shards. Shows a progress bar while building when `progress`.
    pub fn mels(&self, mt: &MelTransform, progress: bool) -> Result<MelCache> {
        let dir = self.mel_cache_dir(mt);
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let n_shards = self.records.len().div_ceil(SHARD);
        let bar = if progress { indicatif::ProgressBar::new(self.records.len() as u64) } else { indicatif::ProgressBar::hidden() };
        let mut mels = Vec::with_capacity(self.records.len());
        for s in 0..n_shards {
            let path = dir.join(format!("shard-{s:04}.safetensors"));
            let range = s * SHARD..((s + 1) * SHARD).min(self.records.len());
            if let Ok(map) = candle_core::safetensors::load(&path, &Device::Cpu) {
                if range.clone().all(|i| map.contains_key(&self.records[i].id)) {
                    for i in range.clone() {
                        mels.push(map[&self.records[i].id].clone());
                    }
                    bar.inc(range.len() as u64);
                    continue;
                }
            }
            let mut map = HashMap::new();
            for i in range.clone() {
                let m = mt.log_mel(&self.audio(i)?)?;
                let t = smg_audio::array_to_tensor(&m, &Device::Cpu)?;
                map.insert(self.records[i].id.clone(), t.clone());
                mels.push(t);
                bar.inc(1);
            }
            let tmp = path.with_extension("partial");
            candle_core::safetensors::save(&map, &tmp)?;
            std::fs::rename(&tmp, &path).map_err(|e| DataError::io(&path, e))?;
        }
        bar.finish_and_clear();
        Ok(MelCache { dir, mels })
    }
}

/// Cached log-mels, one (n_mels, frames) tensor per clip in manifest order.
#[derive(Debug, Clone)]
pub struct MelCache {
    pub dir: PathBuf,
    pub mels: Vec<Tensor>,
}

impl MelCache {
    /// Stacks the mels of `indices` into (B, n_mels, frames) on `device`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Tensor> {
        let ts: Vec<&Tensor> = indices.iter().map(|&i| &self.mels[i]).collect();
        Ok(Tensor::stack(&ts, 0)?.to_device(device)?)
    }
}

/// `indices` shuffled by a seeded RNG; `epoch` gives a different but reproducible order.
pub fn shuffled(indices: &[usize], seed: u64, epoch: u64) -> Vec<usize> {
    let mut v = indices.to_vec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    v.shuffle(&mut rng);
    v
}

/// Batches of indices for one epoch: shuffled with (`seed`, `epoch`), the last partial batch kept.
pub fn batches(indices: &[usize], batch_size: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    shuffled(indices, seed, epoch).chunks(batch_size.max(1)).map(|c| c.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffling_is_seeded_and_complete() {
        let idx: Vec<usize> = (0..100).collect();
        let a = shuffled(&idx, 7, 0);
        assert_eq!(a, shuffled(&idx, 7, 0));
        assert_ne!(a, shuffled(&idx, 7, 1));
        assert_ne!(a, shuffled(&idx, 8, 0));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, idx);
        let b = batches(&idx, 32, 7, 0);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![32, 32, 32, 4]);
    }
}
