//! The representation experiment (SPEC.md §7, the paper's Table 8) at the project's scale: a
//! linear probe for the music set's tags (genre / rhythm, instrument, meter, tempo, mode: our
//! stand-in for MagnaTagATune) on frozen clip features: the masked ViT's block outputs
//! (unmasked tokens, null condition, mean over tokens, block chosen on validation), beside
//! log-mel statistics and aiSFX embeddings for context.

use crate::Result;
use candle_core::{DType, Tensor};
use smg_data::{Dataset, Split};
use smg_eval::{LinearProbe, MacroScores, ProbeConfig, ProbeData};
use smg_maskgit::MaskedVit;
use smg_tokenizer::SpecVqGan;

/// Tags with at least `min_count` positives among the training clips, sorted.
pub fn tag_vocabulary(ds: &Dataset, min_count: usize) -> Vec<String> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for i in ds.split_indices(Split::Train) {
        for t in &ds.records[i].tags {
            *counts.entry(t.clone()).or_default() += 1;
        }
    }
    counts.into_iter().filter(|(_, c)| *c >= min_count).map(|(t, _)| t).collect()
}

/// Multi-hot rows over `vocab` for clips `idx`.
pub fn multi_hot(ds: &Dataset, idx: &[usize], vocab: &[String]) -> Vec<Vec<bool>> {
    idx.iter().map(|&i| vocab.iter().map(|t| ds.records[i].tags.contains(t)).collect()).collect()
}

/// Masked-ViT features of clips given as tokenizer-range mels `(80, T)` tensors: one matrix per
/// block, `[block][clip][dim]`.
pub fn maskgit_features(tok: &SpecVqGan, vit: &MaskedVit, unit_mels: &[Tensor]) -> Result<Vec<Vec<Vec<f64>>>> {
    let mut per_block: Vec<Vec<Vec<f64>>> = vec![vec![]; vit.config.depth];
    for chunk in unit_mels.chunks(32) {
        let x = Tensor::stack(chunk, 0)?.to_device(vit.device())?;
        let g = tok.encode(&x)?;
        let b = g.dim(0)?;
        let tokens = g.reshape((b, ()))?;
        let null = Tensor::zeros((b, vit.config.cond_dim), DType::F32, vit.device())?;
        for (k, f) in vit.block_features(&tokens, &null)?.into_iter().enumerate() {
            per_block[k].extend(f.to_dtype(DType::F64)?.to_vec2::<f64>()?);
        }
    }
    Ok(per_block)
}

/// One line of the probe table.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProbeRow {
    pub features: String,
    pub dim: usize,
    /// The masked-ViT block used (chosen on validation), for ViT features.
    pub block: Option<usize>,
    pub valid: MacroScores,
    pub test: MacroScores,
    pub best_epoch: usize,
    pub epochs: usize,
    /// Validation ROC-AUC of every block tried (ViT features only).
    pub block_valid_auc: Vec<f64>,
    /// Validation ROC-AUC after each epoch of the reported probe.
    pub valid_curve: Vec<f64>,
}

/// Features of the three splits of one kind (each `[clip][dim]`), with labels.
pub struct SplitFeatures {
    pub train: Vec<Vec<f64>>,
    pub valid: Vec<Vec<f64>>,
    pub test: Vec<Vec<f64>>,
}

/// Multi-hot labels of the three splits.
pub struct SplitLabels {
    pub vocab: Vec<String>,
    pub train: Vec<Vec<bool>>,
    pub valid: Vec<Vec<bool>>,
    pub test: Vec<Vec<bool>>,
}

/// Trains the probe on one feature set and scores it on the test split.
pub fn probe_row(
    name: &str,
    f: &SplitFeatures,
    y: &SplitLabels,
    cfg: &ProbeConfig,
    show_progress: bool,
) -> Result<(ProbeRow, LinearProbe)> {
    let p = LinearProbe::fit(ProbeData { x: &f.train, y: &y.train }, ProbeData { x: &f.valid, y: &y.valid }, &y.vocab, cfg, show_progress)?;
    let test = p.evaluate(ProbeData { x: &f.test, y: &y.test })?;
    let valid = p.history[p.best_epoch - 1].valid.clone();
    let row = ProbeRow {
        features: name.into(),
        dim: f.train[0].len(),
        block: None,
        valid,
        test,
        best_epoch: p.best_epoch,
        epochs: p.history.len(),
        block_valid_auc: vec![],
        valid_curve: p.history.iter().map(|h| h.valid.roc_auc).collect(),
    };
    Ok((row, p))
}

/// The probe on every block's features; the block with the best validation ROC-AUC is reported.
pub fn probe_best_block(name: &str, blocks: &[SplitFeatures], y: &SplitLabels, cfg: &ProbeConfig, show_progress: bool) -> Result<ProbeRow> {
    let mut best: Option<ProbeRow> = None;
    let mut aucs = vec![];
    for (k, f) in blocks.iter().enumerate() {
        let (mut row, _) = probe_row(name, f, y, cfg, show_progress)?;
        row.block = Some(k);
        aucs.push(row.valid.roc_auc);
        if best.as_ref().is_none_or(|b| row.valid.roc_auc > b.valid.roc_auc) {
            best = Some(row);
        }
    }
    let mut best = best.ok_or_else(|| crate::PipelineError::Invalid("no blocks to probe".into()))?;
    best.block_valid_auc = aucs;
    Ok(best)
}

/// The clip indices of the three splits, each cut to at most `max_per_split` (spread evenly over
/// the split, so every category keeps some clips) when given.
pub fn split_indices(ds: &Dataset, max_per_split: Option<usize>) -> [Vec<usize>; 3] {
    [Split::Train, Split::Valid, Split::Test].map(|s| {
        let idx = ds.split_indices(s);
        match max_per_split {
            Some(m) if m < idx.len() => (0..m).map(|k| idx[k * idx.len() / m]).collect(),
            _ => idx,
        }
    })
}

/// Which features [`probe_experiment`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Features {
    /// The masked ViT's block outputs (best block on validation).
    MaskGit,
    /// Log-mel statistics (245 numbers, no network).
    MelStats,
    /// aiSFX embeddings (512-d, mean over blocks).
    Aisfx,
}

impl Features {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "maskgit" => Ok(Self::MaskGit),
            "mel" => Ok(Self::MelStats),
            "aisfx" => Ok(Self::Aisfx),
            o => Err(crate::PipelineError::Invalid(format!("unknown features {o:?}: use maskgit, mel or aisfx"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub features: Vec<Features>,
    /// Cut each split to this many clips (quick runs); `None` uses all.
    pub max_per_split: Option<usize>,
    /// Tags need this many positive training clips to be probed.
    pub min_tag_count: usize,
    pub probe: ProbeConfig,
    pub progress: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            features: vec![Features::MaskGit, Features::MelStats, Features::Aisfx],
            max_per_split: None,
            min_tag_count: 10,
            probe: ProbeConfig::default(),
            progress: false,
        }
    }
}

/// What [`probe_experiment`] measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProbeReport {
    pub tags: Vec<String>,
    /// Clips in train / valid / test.
    pub clips: [usize; 3],
    pub rows: Vec<ProbeRow>,
}

/// The whole representation experiment on a tagged dataset (the music set): features of each
/// kind for the three splits, one probe per kind (per block for the ViT), test scores.
pub fn probe_experiment(
    ds: &Dataset,
    tok: &SpecVqGan,
    vit: &MaskedVit,
    aisfx: Option<&smg_embed::Aisfx>,
    opts: &ProbeOptions,
) -> Result<ProbeReport> {
    use smg_embed::Embedder;
    let bad = |m: String| crate::PipelineError::Invalid(m);
    let vocab = tag_vocabulary(ds, opts.min_tag_count);
    if vocab.is_empty() {
        return Err(bad(format!("no tag has {} positive training clips in {}", opts.min_tag_count, ds.dir.display())));
    }
    let splits = split_indices(ds, opts.max_per_split);
    let [ytr, yva, yte] = [0, 1, 2].map(|k| multi_hot(ds, &splits[k], &vocab));
    let y = SplitLabels { vocab: vocab.clone(), train: ytr, valid: yva, test: yte };
    let needs_mels = opts.features.iter().any(|f| matches!(f, Features::MaskGit | Features::MelStats));
    let cache = if needs_mels { Some(ds.mels(&smg_audio::MelTransform::hifigan(), opts.progress)?) } else { None };
    let mut rows = vec![];
    for &kind in &opts.features {
        match kind {
            Features::MaskGit => {
                let cache = cache.as_ref().expect("loaded above");
                let mut per_split = vec![];
                for idx in &splits {
                    let units = idx
                        .iter()
                        .map(|&i| smg_audio::norm::log_mel_to_unit_tensor(&cache.mels[i]))
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    per_split.push(maskgit_features(tok, vit, &units)?);
                }
                let blocks: Vec<SplitFeatures> = (0..vit.config.depth)
                    .map(|b| SplitFeatures {
                        train: per_split[0][b].clone(),
                        valid: per_split[1][b].clone(),
                        test: per_split[2][b].clone(),
                    })
                    .collect();
                rows.push(probe_best_block("SpecMaskGIT (masked ViT)", &blocks, &y, &opts.probe, opts.progress)?);
            }
            Features::MelStats => {
                let cache = cache.as_ref().expect("loaded above");
                let f = |idx: &Vec<usize>| -> Result<Vec<Vec<f64>>> {
                    idx.iter()
                        .map(|&i| {
                            let (b, t) = cache.mels[i].dims2()?;
                            let v = cache.mels[i].flatten_all()?.to_vec1::<f32>()?;
                            Ok(smg_eval::mel_statistics(&v, b, t)?)
                        })
                        .collect()
                };
                let sf = SplitFeatures { train: f(&splits[0])?, valid: f(&splits[1])?, test: f(&splits[2])? };
                rows.push(probe_row("log-mel statistics", &sf, &y, &opts.probe, opts.progress)?.0);
            }
            Features::Aisfx => {
                let a = aisfx.ok_or_else(|| bad("aisfx features need the aisfx weights (`smg data fetch`)".into()))?;
                let f = |idx: &Vec<usize>| -> Result<Vec<Vec<f64>>> {
                    idx.iter().map(|&i| Ok(a.embed_mean(&ds.audio(i)?, ds.records[i].sample_rate)?)).collect()
                };
                let sf = SplitFeatures { train: f(&splits[0])?, valid: f(&splits[1])?, test: f(&splits[2])? };
                rows.push(probe_row("aiSFX embeddings", &sf, &y, &opts.probe, opts.progress)?.0);
            }
        }
    }
    Ok(ProbeReport { tags: vocab, clips: [0, 1, 2].map(|k| splits[k].len()), rows })
}
