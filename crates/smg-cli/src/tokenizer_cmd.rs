//! `smg train tokenizer`: SpecVQGAN on the sound-event corpus (SPEC.md §2.3), jointly or its
//! decoder alone against a discriminator, seeded and resumable.

use crate::data_dir;
use anyhow::{bail, Context, Result};
use smg_audio::MelTransform;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct TokenizerTrainArgs {
    /// `small` (trains on 2 CPU cores), `medium` (the broad corpus, ≈12 h on 2 cores) or `paper`.
    #[arg(long, default_value = "small")]
    config: String,
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on random time crops of this many frames (multiple of 16; 0 = whole clips).
    #[arg(long, default_value_t = 128)]
    crop: usize,
    /// First step with the adversarial loss.
    #[arg(long, default_value_t = 30001)]
    disc_start: usize,
    /// Weight of the adversarial (hinge) term in the generator's loss (SpecVQGAN: 0.8).
    #[arg(long, default_value_t = 0.8)]
    disc_weight: f64,
    /// Width of the patch discriminator's first layer (SpecVQGAN: 64; it doubles per layer).
    #[arg(long, default_value_t = 16)]
    disc_ndf: usize,
    /// Balance the adversarial term against the L1 term: its gradient at the reconstruction is
    /// scaled to the L1 gradient's norm times --disc-weight (SpecVQGAN's weight is fixed).
    #[arg(long)]
    disc_adaptive: bool,
    /// Weight of the feature-matching term from --disc-start on: L1 between the
    /// discriminator's hidden activations on each clip and on its reconstruction (0 = off).
    #[arg(long, default_value_t = 0.0)]
    feature_matching: f64,
    /// Start from this trained tokenizer (a folder with config.json + tokenizer.safetensors)
    /// instead of a random initialisation; ignored when --resume continues a run.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Train only the decoder, with the encoder and codebook frozen (needs --init): every clip
    /// keeps its codes, so generators trained on this tokenizer keep working with the result.
    #[arg(long, requires = "init")]
    decoder_only: bool,
    /// Decoder widths per level, finest first, as multiples of the configuration's base width
    /// (e.g. 2,2,4,8,8); default: the encoder's. With --decoder-only the decoder starts fresh
    /// on the --init tokenizer's codes.
    #[arg(long, value_delimiter = ',')]
    decoder_width: Option<Vec<usize>>,
    /// Res blocks per decoder level, minus one (taming's num_res_blocks); default: the encoder's.
    #[arg(long)]
    decoder_blocks: Option<usize>,
    /// Validate (and checkpoint) every this many steps.
    #[arg(long, default_value_t = 100)]
    val_every: usize,
    /// Checkpoint every this many steps (default: at each validation). Validation reconstructs
    /// every held-out clip, so long runs validate less often than they checkpoint.
    #[arg(long)]
    ckpt_every: Option<usize>,
    /// Start a cosine learning-rate decay to 0 (at --steps) from this step.
    #[arg(long)]
    lr_decay_from: Option<usize>,
    /// Output folder (checkpoint, metrics.jsonl, exported tokenizer); default <data>/runs/tokenizer-<config>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run checkpointed in the output folder.
    #[arg(long)]
    resume: bool,
}

fn tokenizer_dir(config: &str) -> PathBuf {
    data_dir().join("runs").join(format!("tokenizer-{config}"))
}

pub fn train(a: &TokenizerTrainArgs) -> Result<()> {
    use smg_data::{ClipConfig, Dataset, Split};
    let config = a.config.as_str();
    let Some(mut model_cfg) = smg_tokenizer::Config::by_name(config) else {
        bail!("unknown tokenizer configuration '{config}' (small, medium, paper)")
    };
    model_cfg.decoder_ch_mult = a.decoder_width.clone();
    model_cfg.decoder_res_blocks = a.decoder_blocks;
    if let Err(e) = model_cfg.validate() {
        bail!("--decoder-width: {e}");
    }
    if a.disc_ndf == 0 {
        bail!("--disc-ndf must be at least 1");
    }
    for (flag, w) in [("--disc-weight", a.disc_weight), ("--feature-matching", a.feature_matching)] {
        if !(w.is_finite() && w >= 0.0) {
            bail!("{flag} must be a finite weight of at least 0, not {w}");
        }
    }
    let clip = ClipConfig::by_name(config)?;
    let ds = Dataset::open_sound(&data_dir(), &clip)?;
    let mt = MelTransform::hifigan();
    eprintln!("computing (or loading cached) mels of {} clips", ds.records.len());
    let cache = ds.mels(&mt, true)?;
    let norm = |i: usize| smg_audio::norm::log_mel_to_unit_tensor(&cache.mels[i]);
    let train = ds.split_indices(Split::Train).into_iter().map(norm).collect::<candle_core::Result<Vec<_>>>()?;
    let valid = ds.split_indices(Split::Valid).into_iter().map(norm).collect::<candle_core::Result<Vec<_>>>()?;
    let device = smg_core::best_device();
    eprintln!("training on {} ({} train / {} valid clips)", device, train.len(), valid.len());
    let cfg = smg_tokenizer::TrainConfig {
        steps: a.steps,
        batch_size: a.batch,
        lr: a.lr,
        seed: a.seed,
        disc_start: a.disc_start,
        disc_weight: a.disc_weight,
        disc_ndf: a.disc_ndf,
        disc_adaptive: a.disc_adaptive,
        feature_matching: a.feature_matching,
        decoder_only: a.decoder_only,
        crop_frames: a.crop,
        lr_decay_start: a.lr_decay_from,
        val_every: a.val_every,
        ckpt_every: a.ckpt_every.unwrap_or(a.val_every),
        ..Default::default()
    };
    let out = a.out.clone().unwrap_or_else(|| tokenizer_dir(config));
    let mut t = smg_tokenizer::Trainer::new(&model_cfg, cfg, &out, a.resume, &device.device)?;
    if t.step > 0 {
        eprintln!("resuming at step {}", t.step);
    } else if let Some(init) = &a.init {
        t.init_from(init).with_context(|| format!("starting from the tokenizer in {}", init.display()))?;
        eprintln!("starting from the tokenizer in {}", init.display());
    }
    let m = t.fit(&train, &valid, true)?;
    if let Some(last) = m.iter().rev().find(|m| m.val_l1.is_some()) {
        eprintln!(
            "step {}: held-out normalised-mel L1 {:.4}, {} of {} codes used on the held-out split",
            last.step + 1,
            last.val_l1.unwrap_or(0.0),
            last.val_codes_used.unwrap_or(0),
            model_cfg.n_embed
        );
    }
    t.export(&out)?;
    eprintln!("checkpoint and exported tokenizer ({}): {}", smg_tokenizer::pretrained::WEIGHTS_FILE, out.display());
    Ok(())
}
