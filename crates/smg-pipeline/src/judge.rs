//! The independent judge of generated audio (the generation criterion of SPEC.md §10): a
//! multinomial logistic regression on mel statistics (per-band mean and spread) or on the
//! embeddings of an audio network (aiSFX), trained on real training clips, says which category
//! a clip sounds like; a Fréchet distance on the same features says how far a set of clips
//! lies from real held-out audio. Neither touches the conditioning encoder, so the judge
//! cannot be fooled by a generator that merely pleases CLAP.

use crate::{Pipeline, Result};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use smg_eval::{band_mean_std, frechet_distance, Gaussian, LogisticConfig, LogisticRegression};
use smg_maskgit::Sampler;

/// The judge's features of a natural-log mel `(80, T)`: per-band mean and standard deviation
/// over time ([`smg_eval::band_mean_std`], 160 numbers), computed on the tokenizer's unit range
/// so real clips and decoder outputs (clamped to [−1, 1]) are described on the same scale.
pub fn judge_features(log_mel: &Array2<f32>) -> Result<Vec<f64>> {
    let unit = smg_audio::norm::to_tokenizer_range(log_mel);
    let (n_mels, frames) = unit.dim();
    let v: Vec<f32> = unit.iter().copied().collect();
    Ok(band_mean_std(&v, n_mels, frames)?)
}

/// Loudness of each frame (dB, [`smg_eval::frame_loudness_db`]) of a natural-log mel `(80, T)`
/// and its sustain: the share of frames within 20 dB of the loudest one and 20 dB above the
/// mel's −100 dB floor ([`smg_eval::sustain`]; near 1 for sound lasting the clip, 1/T for one click).
pub fn loudness_and_sustain(log_mel: &Array2<f32>) -> Result<(Vec<f64>, f64)> {
    let v: Vec<f32> = log_mel.iter().copied().collect();
    let db = smg_eval::frame_loudness_db(&v, log_mel.nrows())?;
    let share = smg_eval::sustain(&db, 20.0, -100.0)?;
    Ok((db, share))
}

/// Span of a natural-log mel `(80, T)`: the share of the clip from its first to its last frame
/// within 20 dB of the loudest one ([`smg_eval::span`]; near 1 when the sound goes on through
/// the clip, pauses included, small for one transient).
pub fn loud_span(log_mel: &Array2<f32>) -> Result<f64> {
    let v: Vec<f32> = log_mel.iter().copied().collect();
    let db = smg_eval::frame_loudness_db(&v, log_mel.nrows())?;
    Ok(smg_eval::span(&db, 20.0, -100.0)?)
}

/// Mean sustain ([`loudness_and_sustain`]) of many clips.
pub fn mean_sustain(mels: &[Array2<f32>]) -> Result<f64> {
    let mut total = 0.0;
    for m in mels {
        total += loudness_and_sustain(m)?.1;
    }
    Ok(total / mels.len().max(1) as f64)
}

/// Features of many mels.
pub fn judge_features_all(mels: &[Array2<f32>]) -> Result<Vec<Vec<f64>>> {
    mels.iter().map(judge_features).collect()
}

/// The judge's features from an audio embedding network instead (e.g. aiSFX, SPEC.md §6): each
/// mel is vocoded by the pipeline's vocoder and embedded, one mean embedding per clip. Every set
/// (real training, real held-out, reconstructions, generated) passes the same vocoder, so the
/// judge compares what the mels hold, not vocoder artefacts.
pub fn embedding_features_all(
    p: &Pipeline,
    embedder: &dyn smg_embed::Embedder,
    mels: &[Array2<f32>],
    mut progress: impl FnMut(),
) -> Result<Vec<Vec<f64>>> {
    let sr = p.mel.config.sample_rate;
    mels.iter()
        .map(|m| {
            let audio = p.vocoder.synthesize(&p.mel, m)?;
            let e = embedder.embed_mean(&audio, sr)?;
            progress();
            Ok(e)
        })
        .collect()
}

/// [`embedding_features_all`] for clips with stable ids (real corpus clips), kept in `file`
/// (safetensors, one f64 vector per id): ids found there are read back, the others are computed
/// and the file rewritten atomically. The caller names a file per embedder and vocoder setting.
pub fn embedding_features_cached(
    p: &Pipeline,
    embedder: &dyn smg_embed::Embedder,
    file: &std::path::Path,
    ids: &[String],
    mels: &[Array2<f32>],
    mut progress: impl FnMut(),
) -> Result<Vec<Vec<f64>>> {
    use candle_core::{Device, Tensor};
    let mut map = candle_core::safetensors::load(file, &Device::Cpu).unwrap_or_default();
    let missing: Vec<usize> = (0..ids.len()).filter(|&i| !map.contains_key(&ids[i])).collect();
    if !missing.is_empty() {
        let todo: Vec<Array2<f32>> = missing.iter().map(|&i| mels[i].clone()).collect();
        let feats = embedding_features_all(p, embedder, &todo, &mut progress)?;
        for (&i, f) in missing.iter().zip(feats) {
            map.insert(ids[i].clone(), Tensor::new(f, &Device::Cpu)?);
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(candle_core::Error::from)?;
        }
        let tmp = file.with_extension("partial");
        candle_core::safetensors::save(&map, &tmp)?;
        std::fs::rename(&tmp, file).map_err(candle_core::Error::from)?;
    }
    ids.iter().map(|id| Ok(map[id].to_vec1::<f64>()?)).collect()
}

/// One set of clips as the judge sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetScore {
    pub name: String,
    pub clips: usize,
    /// Fraction assigned to the intended category.
    pub accuracy: f64,
    /// Fréchet distance of the set's features to the reference (real held-out) set.
    pub frechet: f64,
    /// Mean over the categories present of the per-category accuracy (each category counts
    /// once however many clips it has). For a category-balanced set it equals `accuracy`; for
    /// a set in the held-out mix it is the figure to compare a balanced set with. Absent in
    /// reports written before it existed.
    #[serde(default)]
    pub balanced_accuracy: Option<f64>,
    /// Per intended category: clips, how many the judge put there, and its most frequent
    /// wrong answer.
    #[serde(default)]
    pub per_category: Vec<CategoryScore>,
    /// For a category-balanced generated set: its per-category accuracies weighted by how
    /// many held-out clips each category has ([`mix_weighted_accuracy`]), the figure to compare
    /// with the real clips' and the reconstructions' plain accuracy.
    #[serde(default)]
    pub mix_weighted_accuracy: Option<f64>,
    /// Mean over the clips of the share of frames within 20 dB of each clip's loudest frame
    /// ([`mean_sustain`]): near 1 for sound that lasts the clip, small for one transient.
    /// Absent in reports written before it existed.
    #[serde(default)]
    pub sustain: Option<f64>,
}

/// How the judge read the clips of one intended category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryScore {
    pub category: String,
    pub clips: usize,
    pub correct: usize,
    /// The category most often chosen instead (None when every clip was judged right).
    pub confused_with: Option<String>,
}

impl CategoryScore {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.clips.max(1) as f64
    }
}

/// The per-category accuracies of `set` weighted by the clip counts of `mix` (e.g. the real
/// held-out set's own scores): what `set` would score if its prompts came in `mix`'s category
/// proportions. Categories of `mix` missing from `set` count as 0; None when `mix` is empty.
pub fn mix_weighted_accuracy(set: &[CategoryScore], mix: &[CategoryScore]) -> Option<f64> {
    let n: usize = mix.iter().map(|c| c.clips).sum();
    (n > 0).then(|| {
        mix.iter().map(|m| m.clips as f64 * set.iter().find(|s| s.category == m.category).map_or(0.0, CategoryScore::accuracy)).sum::<f64>()
            / n as f64
    })
}

/// Per-category scores of `predicted` against `labels` (sorted by category name) and their
/// mean accuracy, the balanced accuracy.
pub fn category_scores(predicted: &[String], labels: &[String]) -> (Vec<CategoryScore>, f64) {
    use std::collections::BTreeMap;
    let mut by: BTreeMap<&str, (usize, usize, BTreeMap<&str, usize>)> = BTreeMap::new();
    for (p, y) in predicted.iter().zip(labels) {
        let e = by.entry(y.as_str()).or_default();
        e.0 += 1;
        if p == y {
            e.1 += 1;
        } else {
            *e.2.entry(p.as_str()).or_default() += 1;
        }
    }
    let scores: Vec<CategoryScore> = by
        .into_iter()
        .map(|(c, (n, k, wrong))| CategoryScore {
            category: c.to_string(),
            clips: n,
            correct: k,
            // Most frequent wrong answer; ties go to the first name alphabetically.
            confused_with: wrong
                .iter()
                .fold(None::<(&str, usize)>, |b, (w, m)| match b {
                    Some((_, bm)) if bm >= *m => b,
                    _ => Some((w, *m)),
                })
                .map(|(w, _)| w.to_string()),
        })
        .collect();
    let balanced = scores.iter().map(CategoryScore::accuracy).sum::<f64>() / scores.len().max(1) as f64;
    (scores, balanced)
}

/// The fitted classifier plus the reference Gaussian of real held-out features.
pub struct Judge {
    pub classifier: LogisticRegression,
    /// The L2 penalty picked on the validation set.
    pub l2: f64,
    pub valid_accuracy: f64,
    pub reference: Gaussian,
}

impl Judge {
    /// Fits the classifier on real training clips, choosing the L2 penalty (1e-3 … 1e-1) by
    /// accuracy on the validation clips; `reference` are the real held-out features that
    /// Fréchet distances are measured against.
    pub fn fit(train: (&[Vec<f64>], &[String]), valid: (&[Vec<f64>], &[String]), reference: &[Vec<f64>]) -> Result<Self> {
        let mut best: Option<(f64, f64, LogisticRegression)> = None;
        for l2 in [1e-3, 1e-2, 1e-1] {
            let m = LogisticRegression::fit(train.0, train.1, &LogisticConfig { l2, ..Default::default() })?;
            let acc = m.accuracy(valid.0, valid.1)?;
            if best.as_ref().is_none_or(|b| acc > b.1) {
                best = Some((l2, acc, m));
            }
        }
        let (l2, valid_accuracy, classifier) = best.expect("three candidates were fitted");
        Ok(Self { classifier, l2, valid_accuracy, reference: Gaussian::fit(reference)? })
    }

    /// 1 / number of categories.
    pub fn chance(&self) -> f64 {
        1.0 / self.classifier.classes.len() as f64
    }

    /// Accuracy (overall, balanced and per category) against `labels` and Fréchet distance to
    /// the reference.
    pub fn score(&self, name: &str, features: &[Vec<f64>], labels: &[String]) -> Result<SetScore> {
        let accuracy = self.classifier.accuracy(features, labels)?;
        let (per_category, balanced) = category_scores(&self.classifier.predict(features)?, labels);
        Ok(SetScore {
            name: name.to_string(),
            clips: features.len(),
            accuracy,
            frechet: frechet_distance(&Gaussian::fit(features)?, &self.reference)?,
            balanced_accuracy: Some(balanced),
            per_category,
            mix_weighted_accuracy: None,
            sustain: None,
        })
    }
}

/// `per_category` prompts for each category, cycling through that category's captions
/// (`(category, caption)` pairs, in a fixed order), so every category is prompted equally often.
pub fn balanced_prompts(captions: &[(String, String)], per_category: usize) -> Vec<(String, String)> {
    let mut cats: Vec<&String> = captions.iter().map(|c| &c.0).collect();
    cats.sort();
    cats.dedup();
    let mut out = Vec::new();
    for cat in cats {
        let mine: Vec<&(String, String)> = captions.iter().filter(|c| &c.0 == cat).collect();
        out.extend((0..per_category).map(|i| mine[i % mine.len()].clone()));
    }
    out
}

/// `per_clip` prompts for every held-out clip, cycling through that clip's captions
/// (`captions[i]` = (category, the clip's captions)): the generated set then has the category
/// mix of the held-out set itself, so a Fréchet distance to that set compares like with like
/// (a category-balanced set is measured against a reference that is not balanced, and the
/// more faithfully a sampler follows its prompts, the more that mismatch costs it).
pub fn matched_prompts(clips: &[(String, Vec<String>)], per_clip: usize) -> Vec<(String, String)> {
    clips
        .iter()
        .filter(|(_, caps)| !caps.is_empty())
        .flat_map(|(cat, caps)| (0..per_clip).map(move |i| (cat.clone(), caps[i % caps.len()].clone())))
        .collect()
}

/// Generates one clip per prompt (batches of `batch`, batch `k` with seed `seed + k`, so a run is
/// reproducible) and returns the mels (decoder output, no vocoder) in prompt order.
pub fn generate_mels(
    p: &Pipeline,
    prompts: &[(String, String)],
    sampler: &mut Sampler,
    seed: u64,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Array2<f32>>> {
    let mut mels = Vec::with_capacity(prompts.len());
    for (k, chunk) in prompts.chunks(batch.max(1)).enumerate() {
        sampler.seed = seed + k as u64;
        let texts: Vec<&str> = chunk.iter().map(|c| c.1.as_str()).collect();
        let out = p.text_to_tokens(&texts, sampler)?;
        mels.extend(p.decode_mels(&out.tokens)?);
        progress(chunk.len());
    }
    Ok(mels)
}

/// `n` unconditional clips (null condition), batch `k` seeded `seed + k`: the floor a
/// conditional generator should rise above.
pub fn generate_unconditional_mels(p: &Pipeline, n: usize, sampler: &mut Sampler, seed: u64, batch: usize) -> Result<Vec<Array2<f32>>> {
    let cfg = &p.generator.config;
    let mut mels = Vec::with_capacity(n);
    for (k, start) in (0..n).step_by(batch.max(1)).enumerate() {
        let b = batch.max(1).min(n - start);
        sampler.seed = seed + k as u64;
        let tokens = candle_core::Tensor::full(cfg.mask_id(), (b, cfg.seq_len()), &p.device)?;
        let null = candle_core::Tensor::zeros((b, cfg.cond_dim), candle_core::DType::F32, &p.device)?;
        mels.extend(p.decode_mels(&sampler.sample(&p.generator, &tokens, &null)?.tokens)?);
    }
    Ok(mels)
}

/// Tokenizer reconstructions (encode → decode) of natural-log mels, in batches of 16: the
/// ceiling a generator over these tokens can reach.
pub fn reconstruct_mels(p: &Pipeline, mels: &[Array2<f32>]) -> Result<Vec<Array2<f32>>> {
    let mut out = Vec::with_capacity(mels.len());
    for chunk in mels.chunks(16) {
        let units = chunk
            .iter()
            .map(|m| smg_audio::array_to_tensor(&smg_audio::norm::to_tokenizer_range(m), &p.device))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let tokens = p.tokenizer.encode(&candle_core::Tensor::stack(&units, 0)?)?;
        out.extend(p.decode_mels(&tokens)?);
    }
    Ok(out)
}

/// The categories of `per_category` the judge names in more than twice `chance` of their clips
/// (the per-category criterion of SPEC.md §10), sorted.
pub fn above_twice_chance(per_category: &[CategoryScore], chance: f64) -> Vec<String> {
    let mut v: Vec<String> =
        per_category.iter().filter(|c| c.clips > 0 && c.accuracy() > 2.0 * chance).map(|c| c.category.clone()).collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_balanced_and_cycle() {
        let caps: Vec<(String, String)> =
            [("dog", "a"), ("cat", "b"), ("dog", "c")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let p = balanced_prompts(&caps, 3);
        let got: Vec<(&str, &str)> = p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, vec![("cat", "b"), ("cat", "b"), ("cat", "b"), ("dog", "a"), ("dog", "c"), ("dog", "a")]);
    }

    #[test]
    fn matched_prompts_keep_the_clip_mix() {
        let clips = vec![
            ("dog".to_string(), vec!["a".to_string(), "b".to_string()]),
            ("dog".to_string(), vec!["c".to_string()]),
            ("cat".to_string(), vec![]),
            ("cat".to_string(), vec!["d".to_string()]),
        ];
        let p = matched_prompts(&clips, 3);
        let got: Vec<(&str, &str)> = p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("dog", "a"),
                ("dog", "b"),
                ("dog", "a"),
                ("dog", "c"),
                ("dog", "c"),
                ("dog", "c"),
                ("cat", "d"),
                ("cat", "d"),
                ("cat", "d")
            ]
        );
    }

    #[test]
    fn category_scores_count_each_category_once() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // dog: 3 of 4 right (once taken for a cat); cat: 0 of 1 (taken for a bird); bird: 1 of 1.
        let labels = s(&["dog", "dog", "dog", "dog", "cat", "bird"]);
        let pred = s(&["dog", "cat", "dog", "dog", "bird", "bird"]);
        let (per, balanced) = category_scores(&pred, &labels);
        let got: Vec<(&str, usize, usize, Option<&str>)> =
            per.iter().map(|c| (c.category.as_str(), c.clips, c.correct, c.confused_with.as_deref())).collect();
        assert_eq!(got, vec![("bird", 1, 1, None), ("cat", 1, 0, Some("bird")), ("dog", 4, 3, Some("cat"))]);
        // (1 + 0 + 0.75) / 3, while the overall accuracy is 4 / 6.
        assert!((balanced - 1.75 / 3.0).abs() < 1e-12);
        // A set judged right on every dog and every bird but no cat, weighted by that mix:
        // (4·1 + 1·0 + 1·1) / 6; a category the set lacks counts as 0.
        let set = vec![
            CategoryScore { category: "dog".into(), clips: 20, correct: 20, confused_with: None },
            CategoryScore { category: "cat".into(), clips: 20, correct: 0, confused_with: Some("dog".into()) },
            CategoryScore { category: "bird".into(), clips: 20, correct: 20, confused_with: None },
        ];
        assert!((mix_weighted_accuracy(&set, &per).unwrap() - 5.0 / 6.0).abs() < 1e-12);
        assert!((mix_weighted_accuracy(&set[..1], &per).unwrap() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(mix_weighted_accuracy(&set, &[]), None);
        // Chance 1/3: dog (1.0) and bird (1.0) are above 2/3, cat (0) is not; 0.75 is above 2/3.
        assert_eq!(above_twice_chance(&set, 1.0 / 3.0), s(&["bird", "dog"]));
        assert_eq!(above_twice_chance(&per, 1.0 / 3.0), s(&["bird", "dog"]));
        assert!(above_twice_chance(&per, 0.4).len() == 1, "0.75 is not above 0.8");
    }
}
