//! The captioned corpus as contrastive training data: normalised mels, captions and categories
//! of one split, plus the frozen MiniLM embedding of every caption string (computed once).

use crate::{Result, TextEncoder};
use candle_core::Tensor;
use smg_data::{Dataset, MelCache, Split};
use std::collections::HashMap;

/// Training clips: normalised mels with their captions (one is drawn per step) and categories.
pub struct ClapData<'a> {
    pub mels: &'a [Tensor],
    pub captions: &'a [Vec<String>],
    pub categories: &'a [String],
    /// Frozen text embeddings of every caption string, looked up by text.
    pub text: &'a std::collections::HashMap<String, Tensor>,
}

/// One split of the corpus, owned; [`SplitData::view`] lends it to the trainer.
pub struct SplitData {
    pub indices: Vec<usize>,
    pub mels: Vec<Tensor>,
    pub captions: Vec<Vec<String>>,
    pub categories: Vec<String>,
}

impl SplitData {
    /// Normalised ([−1, 1]) mels, captions and categories of `split`.
    pub fn new(ds: &Dataset, cache: &MelCache, split: Split) -> Result<Self> {
        let indices = ds.split_indices(split);
        let mels =
            indices.iter().map(|&i| smg_audio::norm::log_mel_to_unit_tensor(&cache.mels[i])).collect::<candle_core::Result<Vec<_>>>()?;
        let captions = indices.iter().map(|&i| ds.records[i].captions.clone()).collect();
        let categories = indices.iter().map(|&i| ds.records[i].category.clone()).collect();
        Ok(Self { indices, mels, captions, categories })
    }

    pub fn view<'a>(&'a self, text: &'a HashMap<String, Tensor>) -> ClapData<'a> {
        ClapData { mels: &self.mels, captions: &self.captions, categories: &self.categories, text }
    }
}

/// MiniLM embeddings (each `(384,)`) of every distinct caption of `splits`, batched by 128.
pub fn caption_embeddings(text: &TextEncoder, splits: &[&SplitData]) -> Result<HashMap<String, Tensor>> {
    let mut all: Vec<&str> = splits.iter().flat_map(|s| s.captions.iter().flatten().map(|c| c.as_str())).collect();
    all.sort();
    all.dedup();
    let mut out = HashMap::new();
    for chunk in all.chunks(128) {
        let e = text.embed(chunk)?.embeddings;
        for (i, c) in chunk.iter().enumerate() {
            out.insert(c.to_string(), e.get(i)?);
        }
    }
    Ok(out)
}
