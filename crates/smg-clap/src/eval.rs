//! Held-out scores of the conditioning space: text→audio retrieval recall@1/@5 and
//! zero-shot category classification, each next to its chance level.

use crate::corpus::ClapData;
use crate::{AudioEncoder, Result, TextEncoder};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClapScores {
    pub clips: usize,
    /// Distinct captions used as queries (a clip's first caption, its label).
    pub queries: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_1_chance: f64,
    pub recall_at_5_chance: f64,
    pub categories: usize,
    /// Accuracy of argmax over "the sound of a {category}" prompts.
    pub zero_shot_accuracy: f64,
    pub zero_shot_chance: f64,
}

/// The zero-shot prompt of a category.
pub fn category_prompt(category: &str) -> String {
    format!("the sound of a {category}")
}

/// Unit-norm embeddings of many clips, in batches of 64.
pub fn embed_clips(model: &AudioEncoder, mels: &[Tensor]) -> Result<Tensor> {
    let mut out = Vec::new();
    for chunk in mels.chunks(64) {
        out.push(model.embed(&Tensor::stack(chunk, 0)?)?);
    }
    Ok(Tensor::cat(&out, 0)?)
}

/// Probability that a random ranking of `n` items puts one of `p` positives in the top `k`.
fn chance_at(n: usize, p: usize, k: usize) -> f64 {
    let mut miss = 1.0;
    for i in 0..k.min(n) {
        miss *= (n - p).saturating_sub(i) as f64 / (n - i) as f64;
    }
    1.0 - miss
}

/// Retrieval and zero-shot scores of `model` on `data` (text embeddings from `data.text`,
/// category prompts embedded with `text`).
pub fn score(model: &AudioEncoder, text: &TextEncoder, data: &ClapData) -> Result<ClapScores> {
    let n = data.mels.len();
    let audio = embed_clips(model, data.mels)?.to_device(&candle_core::Device::Cpu)?;
    // Retrieval: one query per distinct label; hit when a clip with that label ranks in the top k.
    let mut labels: Vec<&String> = data.captions.iter().filter_map(|c| c.first()).collect();
    labels.sort();
    labels.dedup();
    let (mut r1, mut r5, mut c1, mut c5) = (0f64, 0f64, 0f64, 0f64);
    for q in &labels {
        let e = data.text.get(*q).ok_or_else(|| crate::ClapError::Invalid(format!("no text embedding for '{q}'")))?;
        let sims: Vec<f32> = audio.matmul(&e.to_device(&candle_core::Device::Cpu)?.unsqueeze(1)?)?.squeeze(1)?.to_vec1()?;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]));
        let pos = |i: usize| data.captions[i].first() == Some(*q);
        r1 += order.iter().take(1).any(|&i| pos(i)) as u8 as f64;
        r5 += order.iter().take(5).any(|&i| pos(i)) as u8 as f64;
        let p = (0..n).filter(|&i| pos(i)).count();
        c1 += chance_at(n, p, 1);
        c5 += chance_at(n, p, 5);
    }
    let nq = labels.len().max(1) as f64;
    // Zero-shot classification over the categories present.
    let mut cats: Vec<&String> = data.categories.iter().collect();
    cats.sort();
    cats.dedup();
    let prompts: Vec<String> = cats.iter().map(|c| category_prompt(c)).collect();
    let refs: Vec<&str> = prompts.iter().map(|s| s.as_str()).collect();
    let t = text.embed(&refs)?.embeddings.to_device(&candle_core::Device::Cpu)?;
    let pred: Vec<u32> = audio.matmul(&t.t()?)?.argmax(1)?.to_vec1()?;
    let correct = pred.iter().zip(data.categories).filter(|(&p, c)| cats[p as usize] == *c).count();
    Ok(ClapScores {
        clips: n,
        queries: labels.len(),
        recall_at_1: r1 / nq,
        recall_at_5: r5 / nq,
        recall_at_1_chance: c1 / nq,
        recall_at_5_chance: c5 / nq,
        categories: cats.len(),
        zero_shot_accuracy: correct as f64 / n.max(1) as f64,
        zero_shot_chance: 1.0 / cats.len().max(1) as f64,
    })
}
