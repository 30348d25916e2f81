//! `smg train maskgit`: the generator on the tokenized corpus, conditioned on the audio branch's
//! embeddings (as the paper trains on CLAP audio embeddings, SPEC.md §3.5, §5).

use crate::{data_dir, load_tokenizer};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use smg_audio::MelTransform;
use smg_pipeline::rows;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MaskGitTrainArgs {
    /// `small` (3 blocks × 128 on 2.97 s clips; trains on 2 CPU cores), `medium` (6 blocks × 256;
    /// give it the medium --tokenizer and --clap) or `paper` (24 blocks × 768 on 9.85 s clips;
    /// give it a paper-size --tokenizer).
    #[arg(long, default_value = "small")]
    config: String,
    #[arg(long, default_value_t = 2400)]
    steps: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 200)]
    val_every: usize,
    /// Tokenizer folder (default: the shipped small tokenizer).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Audio-branch folder (default: the shipped one).
    #[arg(long)]
    clap: Option<PathBuf>,
    /// Output folder; default <data>/runs/maskgit-small.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    resume: bool,
    /// What the generator is conditioned on while training: the audio branch's embedding of each
    /// clip (the paper's choice, SPEC.md §3.5), the MiniLM embedding of each of its captions, or
    /// both (default: one row per clip and one per caption; see `cond_rows`).
    #[arg(long, value_enum, default_value_t = CondSource::Mix)]
    cond: CondSource,
    /// Masked positions carry the learned mask token instead of the conditioning embedding
    /// (the paper's "without conditional mask" ablation, Table 1).
    #[arg(long)]
    no_conditional_mask: bool,
    /// Repeat short recordings of ongoing sounds (animals, voices, vehicles, bells, weather…)
    /// through the window of their training rows, with seeded pauses, so that prompts for them
    /// give sound lasting the clip (`smg_data::fill`; held-out rows stay as cut).
    #[arg(long)]
    fill_sustained: bool,
    /// Start from the weights of an exported generator (same configuration) instead of a random
    /// initialisation, with a fresh optimiser and schedule (fine-tuning). Ignored when --resume
    /// finds a checkpoint.
    #[arg(long)]
    init: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum CondSource {
    Audio,
    Text,
    Mix,
}

impl From<CondSource> for rows::CondSource {
    fn from(c: CondSource) -> Self {
        match c {
            CondSource::Audio => rows::CondSource::Audio,
            CondSource::Text => rows::CondSource::Text,
            CondSource::Mix => rows::CondSource::Mix,
        }
    }
}

pub fn train(a: &MaskGitTrainArgs) -> Result<()> {
    use smg_data::{ClipConfig, Dataset, Split};
    if a.batch == 0 || a.steps == 0 {
        bail!("--batch and --steps must be positive");
    }
    let tok = load_tokenizer(a.tokenizer.clone())?;
    let clap = smg_clap::AudioEncoder::from_pretrained(&a.clap.clone().unwrap_or_else(crate::clap_cmd::shipped_clap_dir), &Device::Cpu)?;
    let (Ok(clip_cfg), Some(base)) = (ClipConfig::by_name(&a.config), smg_maskgit::Config::by_name(&a.config)) else {
        bail!("--config must be small, medium or paper, not {:?}", a.config)
    };
    let ds = Dataset::open_sound(&data_dir(), &clip_cfg)?;
    let cache = ds.mels(&MelTransform::hifigan(), true)?;
    let mut mels = cache.mels.iter().map(smg_audio::norm::log_mel_to_unit_tensor).collect::<candle_core::Result<Vec<_>>>()?;
    if a.fill_sustained {
        let mt = MelTransform::hifigan();
        let mut filled = 0;
        for i in ds.split_indices(Split::Train) {
            if let Some(x) = ds.filled_audio(i)? {
                mels[i] = smg_audio::norm::log_mel_to_unit_tensor(&smg_audio::array_to_tensor(&mt.log_mel(&x)?, &Device::Cpu)?)?;
                filled += 1;
            }
        }
        eprintln!("filled the window of {filled} short training clips of ongoing sounds");
    }
    eprintln!("tokenizing {} clips and embedding them with the audio branch", mels.len());
    let text = if a.cond == CondSource::Audio {
        None
    } else {
        Some(
            smg_clap::TextEncoder::load(&data_dir().join("weights/minilm"), &Device::Cpu)
                .context("MiniLM is fetched by `smg data fetch`")?,
        )
    };
    let split_rows = |split: Split| -> Result<(Tensor, Tensor)> {
        let idx = ds.split_indices(split);
        let (t, c) = rows::tokens_and_embeddings(&tok, &clap, &mels, &idx)?;
        let caps: Vec<Vec<String>> = idx.iter().map(|&i| ds.records[i].captions.clone()).collect();
        Ok(rows::cond_rows(a.cond.into(), &t, &c, &caps, text.as_ref())?)
    };
    let out = a.out.clone().unwrap_or_else(|| data_dir().join(format!("runs/maskgit-{}", a.config)));
    // Tokens and embeddings are computed once per run folder and cached beside the checkpoint.
    let fill = if a.fill_sustained { "-filled" } else { "" };
    let cache = out.join(format!("rows-{:?}{fill}.safetensors", a.cond).to_lowercase());
    let rows = if a.resume && cache.is_file() {
        eprintln!("reading cached tokens and embeddings from {}", cache.display());
        candle_core::safetensors::load(&cache, &Device::Cpu)?
    } else {
        let (tt, tc) = split_rows(Split::Train)?;
        let (vt, vc) = split_rows(Split::Valid)?;
        let m: std::collections::HashMap<String, Tensor> =
            [("train_tokens", tt), ("train_cond", tc), ("valid_tokens", vt), ("valid_cond", vc)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        std::fs::create_dir_all(&out)?;
        candle_core::safetensors::save(&m, &cache)?;
        m
    };
    let get = |k: &str| rows.get(k).cloned().with_context(|| format!("{} lacks {k}: delete it to recompute", cache.display()));
    let (tt, tc, vt, vc) = (get("train_tokens")?, get("train_cond")?, get("valid_tokens")?, get("valid_cond")?);
    let (rows, cols) = tok.config.grid(clip_cfg.frames);
    let model_cfg = smg_maskgit::Config { vocab: tok.config.n_embed, rows, cols, conditional_mask: !a.no_conditional_mask, ..base };
    let cfg = smg_maskgit::train::TrainConfig {
        steps: a.steps,
        batch_size: a.batch,
        lr: a.lr,
        seed: a.seed,
        val_every: a.val_every,
        ..Default::default()
    };
    let device = smg_core::best_device();
    eprintln!(
        "training on {} ({} train / {} valid rows of {rows}x{cols} tokens, conditioned on {:?})",
        device,
        tt.dim(0)?,
        vt.dim(0)?,
        a.cond
    );
    let mut t = smg_maskgit::train::Trainer::new(&model_cfg, cfg, &out, a.resume, &device.device)?;
    if t.step > 0 {
        eprintln!("resuming at step {}", t.step);
    } else if let Some(init) = &a.init {
        t.init_from(init)?;
        eprintln!("starting from the weights in {}", init.display());
    }
    let train = smg_maskgit::train::TokenData { tokens: &tt, cond: &tc };
    let valid = smg_maskgit::train::TokenData { tokens: &vt, cond: &vc };
    let m = t.fit_until(&train, Some(&valid), a.steps, true)?;
    if let Some(v) = m.iter().rev().find_map(|m| m.val.clone()) {
        let s: Vec<String> = v.iter().map(|r| format!("{:.1}: {:.3}", r.ratio, r.accuracy)).collect();
        eprintln!("held-out masked-token accuracy by masking ratio: {}", s.join(", "));
    }
    t.export(&out)?;
    eprintln!("checkpoint and exported generator: {}", out.display());
    Ok(())
}
