//! `smg eval vocoder`: held-out clips resynthesised from their mel by each vocoder, scored by
//! mel-L1 against the input mel, with each vocoder's real-time factor; `smg train vocoder`:
//! fine-tuning the universal HiFi-GAN, or training HiFi-GAN / BigVSAN from scratch.

use crate::data_dir;
use anyhow::{Context, Result};
use candle_core::Device;
use smg_audio::{GriffinLimConfig, MelTransform};
use smg_data::{ClipConfig, Dataset, Split};
use smg_pipeline::resynth::{self, VocoderScore};
use smg_pipeline::Vocoder;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct VocoderEvalArgs {
    /// Held-out split: test or valid.
    #[arg(long, default_value = "test")]
    split: String,
    /// At most this many clips (evenly spread over the split); 0 = all.
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Comma-separated vocoders to score: griffin-lim, hifigan (universal), trained:<folder>
    /// (what `smg train vocoder` wrote: its export or training folder).
    #[arg(long, default_value = "griffin-lim,hifigan")]
    vocoders: String,
    /// Griffin-Lim iterations.
    #[arg(long, default_value_t = 64)]
    griffin_lim_iters: usize,
    /// Also write the scores as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The vocoder called `name` (`hifigan` is the universal checkpoint, `trained:<dir>` one that
/// `smg train vocoder` wrote).
pub fn vocoder(name: &str, gl_iters: usize) -> Result<Vocoder> {
    if let Some(dir) = name.strip_prefix("trained:") {
        return trained(std::path::Path::new(dir));
    }
    Ok(match name {
        "griffin-lim" => Vocoder::GriffinLim(GriffinLimConfig { n_iter: gl_iters, ..Default::default() }),
        "hifigan" => Vocoder::HifiGan(Box::new(
            smg_vocoder::HifiGan::load_v1(&data_dir().join("weights/hifigan_universal.safetensors"), &Device::Cpu)
                .context("HiFi-GAN universal is fetched by `smg data fetch`")?,
        )),
        other => anyhow::bail!("unknown vocoder '{other}' (griffin-lim, hifigan, trained:<folder>)"),
    })
}

/// A generator trained by `smg train vocoder` (export folder or training folder).
pub fn trained(dir: &std::path::Path) -> Result<Vocoder> {
    let g = smg_vocoder::Generator::load_trained(dir, &Device::Cpu)
        .with_context(|| format!("loading the trained vocoder in {}", dir.display()))?;
    Ok(match g {
        smg_vocoder::Generator::HifiGan(g) => Vocoder::HifiGan(Box::new(g)),
        smg_vocoder::Generator::BigVsan(g) => Vocoder::BigVsan(Box::new(g)),
    })
}

#[derive(clap::Args)]
pub struct VocoderTrainArgs {
    /// hifigan-v1 | hifigan-v2 | hifigan-v3 | hifigan-tiny | bigvsan-base | bigvsan-paper | bigvsan-tiny.
    #[arg(long, default_value = "hifigan-v1")]
    model: String,
    /// Start from these generator weights (.safetensors; `universal` = the fetched HiFi-GAN
    /// universal checkpoint, for fine-tuning); omit to train from scratch.
    #[arg(long)]
    init: Option<String>,
    #[arg(long, default_value_t = 200)]
    steps: usize,
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Samples per training segment (multiple of 256; HiFi-GAN 8192).
    #[arg(long, default_value_t = 8192)]
    segment: usize,
    /// Learning rate (from scratch: HiFi-GAN 2e-4, BigVSAN 1e-4; fine-tuning: 5e-6, since
    /// Adam's first steps move every weight by about the learning rate).
    #[arg(long)]
    lr: Option<f64>,
    /// Linear learning-rate warm-up steps (default: 0 from scratch, a quarter of --steps when
    /// fine-tuning).
    #[arg(long)]
    warmup: Option<usize>,
    /// Learning rate × this after every epoch.
    #[arg(long, default_value_t = 0.999)]
    lr_decay: f64,
    /// First step with the adversarial and feature-matching terms in the generator's loss
    /// (default: 0 from scratch, half of --steps when fine-tuning).
    #[arg(long)]
    gan_start: Option<usize>,
    /// Divide the discriminators' widths by this (1 = official sizes).
    #[arg(long, default_value_t = 1)]
    disc_width_div: usize,
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Validate (held-out mel-L1) and checkpoint every this many steps.
    #[arg(long, default_value_t = 50)]
    val_every: usize,
    /// Held-out clips used for validation (evenly spread over the valid split).
    #[arg(long, default_value_t = 16)]
    val_clips: usize,
    /// Output folder (checkpoint, metrics.jsonl, export/); default <data>/runs/vocoder-<model>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run checkpointed in the output folder.
    #[arg(long)]
    resume: bool,
}

fn generator_config(name: &str) -> Result<smg_vocoder::GeneratorConfig> {
    use smg_vocoder::{BigVsanConfig as B, GeneratorConfig as G, HifiGanConfig as H};
    Ok(match name {
        "hifigan-v1" => G::Hifigan(H::v1()),
        "hifigan-v2" => G::Hifigan(H::v2()),
        "hifigan-v3" => G::Hifigan(H::v3()),
        "hifigan-tiny" => G::Hifigan(H::tiny()),
        "bigvsan-paper" => G::Bigvsan(B::paper()),
        "bigvsan-base" => G::Bigvsan(B::base()),
        "bigvsan-tiny" => G::Bigvsan(B::tiny()),
        other => anyhow::bail!("unknown --model {other:?} (hifigan-v1|v2|v3|tiny, bigvsan-paper|base|tiny)"),
    })
}

/// Evenly spread `limit` of `idx` (all when `limit` is 0 or larger).
fn spread(mut idx: Vec<usize>, limit: usize) -> Vec<usize> {
    if limit > 0 && idx.len() > limit {
        let step = idx.len() as f64 / limit as f64;
        idx = (0..limit).map(|i| idx[(i as f64 * step) as usize]).collect();
    }
    idx
}

pub fn train(a: &VocoderTrainArgs) -> Result<()> {
    let gcfg = generator_config(&a.model)?;
    let bigvsan = matches!(gcfg, smg_vocoder::GeneratorConfig::Bigvsan(_));
    let init = match a.init.as_deref() {
        Some("universal") => Some(data_dir().join("weights/hifigan_universal.safetensors")),
        Some(p) => Some(PathBuf::from(p)),
        None => None,
    };
    if let Some(p) = &init {
        anyhow::ensure!(p.is_file(), "{}: no such checkpoint (the universal one is fetched by `smg data fetch`)", p.display());
    }
    let ds = Dataset::open_sound(&data_dir(), &ClipConfig::small())?;
    let mt = MelTransform::hifigan();
    let cache = ds.mels(&mt, true)?;
    let train_idx = ds.split_indices(Split::Train);
    let val_idx = spread(ds.split_indices(Split::Valid), a.val_clips);
    let train = train_idx.iter().map(|&i| ds.audio(i)).collect::<std::result::Result<Vec<_>, _>>()?;
    let valid: Vec<_> = val_idx.iter().map(|&i| cache.mels[i].clone()).collect();
    let cfg = smg_vocoder::TrainConfig {
        steps: a.steps,
        batch_size: a.batch,
        segment: a.segment,
        lr: a.lr.unwrap_or(if init.is_some() {
            5e-6
        } else if bigvsan {
            1e-4
        } else {
            2e-4
        }),
        gan_start: a.gan_start.unwrap_or(if init.is_some() { a.steps / 2 } else { 0 }),
        lr_decay: a.lr_decay,
        warmup: a.warmup.unwrap_or(if init.is_some() { a.steps / 4 } else { 0 }),
        grad_clip: bigvsan.then_some(1000.0),
        seed: a.seed,
        val_every: a.val_every,
        ckpt_every: a.val_every,
        disc_width_div: a.disc_width_div,
        ..Default::default()
    };
    let out = a.out.clone().unwrap_or_else(|| data_dir().join(format!("runs/vocoder-{}", a.model)));
    let device = smg_core::best_device();
    let mut t = smg_vocoder::Trainer::new(&gcfg, cfg, &out, a.resume, init.as_deref(), &device.device)?;
    eprintln!(
        "training {} ({:.2}M generator / {:.2}M discriminator parameters) on {device}: {} train clips, {} held-out clips, from step {}",
        a.model,
        t.generator_params() as f64 / 1e6,
        t.discriminator_params() as f64 / 1e6,
        train.len(),
        valid.len(),
        t.step
    );
    let m = t.fit(&train, &valid, true)?;
    t.export(&out.join("export"))?;
    let first = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default();
    let vals: Vec<f64> = first.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["val_mel_l1"].as_f64()).collect();
    if let (Some(v0), Some(v1)) = (vals.first(), vals.last()) {
        eprintln!("held-out mel-L1 (natural-log mel): {v0:.4} at the start, {v1:.4} at step {}", t.step);
    }
    if let Some(last) = m.last() {
        eprintln!(
            "last batch: mel-L1 {:.4}, feature matching {:.4}, adversarial {:.4}, discriminator {:.4}",
            last.mel_l1, last.feature_matching, last.g_adv, last.d_loss
        );
    }
    eprintln!(
        "checkpoint: {}; generator: {} (`smg eval vocoder --vocoders trained:{}`)",
        out.display(),
        out.join("export").display(),
        out.join("export").display()
    );
    Ok(())
}

pub fn run(a: &VocoderEvalArgs) -> Result<()> {
    let split = match a.split.as_str() {
        "test" => Split::Test,
        "valid" => Split::Valid,
        s => anyhow::bail!("--split must be test or valid, not {s:?}"),
    };
    let mt = MelTransform::hifigan();
    let ds = Dataset::open_sound(&data_dir(), &ClipConfig::small())?;
    let cache = ds.mels(&mt, true)?;
    let idx = spread(ds.split_indices(split), a.limit);
    let mels = idx.iter().map(|&i| smg_audio::tensor_to_array(&cache.mels[i])).collect::<smg_audio::Result<Vec<_>>>()?;
    let mut scores: Vec<VocoderScore> = Vec::new();
    for name in a.vocoders.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let v = vocoder(name, a.griffin_lim_iters)?;
        let bar = indicatif::ProgressBar::new(mels.len() as u64).with_message(name.to_string());
        bar.set_style(indicatif::ProgressStyle::with_template("{msg:>12} {bar:30} {pos}/{len} {eta}").expect("template"));
        scores.push(resynth::score(name, &v, &mt, &mels, || bar.inc(1))?);
        bar.finish_and_clear();
    }
    println!("| vocoder | clips ({} split) | mel-L1 (natural-log mel) | ± s.e. | real-time factor |", a.split);
    println!("|---|---|---|---|---|");
    for s in &scores {
        println!("| {} | {} | {:.4} | {:.4} | {:.3} |", s.vocoder, s.clips, s.mel_l1, s.mel_l1_se, s.real_time_factor);
    }
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_string_pretty(&scores)? + "\n").with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
