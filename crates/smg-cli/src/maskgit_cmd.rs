//! `smg train maskgit`: the generator on the tokenized corpus, conditioned on the audio branch's
//! embeddings (as the paper trains on CLAP audio embeddings, SPEC.md §3.5, §5).

use crate::{data_dir, load_tokenizer};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use smg_audio::MelTransform;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MaskGitTrainArgs {
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
}

/// Token grids `(N, rows·cols)` and audio embeddings `(N, 384)` of the clips `idx`.
pub fn tokens_and_embeddings(
    tok: &smg_tokenizer::SpecVqGan,
    clap: &smg_clap::AudioEncoder,
    mels: &[Tensor],
    idx: &[usize],
) -> Result<(Tensor, Tensor)> {
    let (mut t, mut c) = (Vec::new(), Vec::new());
    for chunk in idx.chunks(32) {
        let x = Tensor::stack(&chunk.iter().map(|&i| mels[i].clone()).collect::<Vec<_>>(), 0)?;
        let g = tok.encode(&x)?;
        let (b, r, k) = g.dims3()?;
        t.push(g.reshape((b, r * k))?);
        c.push(clap.embed(&x)?);
    }
    Ok((Tensor::cat(&t, 0)?, Tensor::cat(&c, 0)?))
}

pub fn train(a: &MaskGitTrainArgs) -> Result<()> {
    use smg_data::{ClipConfig, Dataset, Split};
    if a.batch == 0 || a.steps == 0 {
        bail!("--batch and --steps must be positive");
    }
    let tok = load_tokenizer(a.tokenizer.clone())?;
    let clap = smg_clap::AudioEncoder::from_pretrained(&a.clap.clone().unwrap_or_else(crate::clap_cmd::shipped_clap_dir), &Device::Cpu)?;
    let ds = Dataset::open_sound(&data_dir(), &ClipConfig::small())?;
    let cache = ds.mels(&MelTransform::hifigan(), true)?;
    let mels = cache.mels.iter().map(smg_audio::norm::log_mel_to_unit_tensor).collect::<candle_core::Result<Vec<_>>>()?;
    eprintln!("tokenizing {} clips and embedding them with the audio branch", mels.len());
    let (tt, tc) = tokens_and_embeddings(&tok, &clap, &mels, &ds.split_indices(Split::Train))?;
    let (vt, vc) = tokens_and_embeddings(&tok, &clap, &mels, &ds.split_indices(Split::Valid))?;
    let (rows, cols) = tok.config.grid(ClipConfig::small().frames);
    let model_cfg = smg_maskgit::Config { vocab: tok.config.n_embed, rows, cols, ..smg_maskgit::Config::small() };
    let cfg = smg_maskgit::train::TrainConfig { steps: a.steps, batch_size: a.batch, lr: a.lr, seed: a.seed, val_every: a.val_every, ..Default::default() };
    let out = a.out.clone().unwrap_or_else(|| data_dir().join("runs/maskgit-small"));
    let device = smg_core::best_device();
    eprintln!("training on {} ({} train / {} valid grids of {rows}x{cols})", device, tt.dim(0)?, vt.dim(0)?);
    let mut t = smg_maskgit::train::Trainer::new(&model_cfg, cfg, &out, a.resume, &device.device)?;
    if t.step > 0 {
        eprintln!("resuming at step {}", t.step);
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
