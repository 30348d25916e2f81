//! `smg embed …` and `smg train clap`: the conditioning model from the command line.

use crate::{data_dir, repo_dir};
use anyhow::{bail, Context, Result};
use smg_audio::{MelConfig, MelTransform};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum EmbedCommand {
    /// MiniLM sentence embedding of each prompt (one JSON array per line).
    Text {
        #[arg(required = true)]
        prompts: Vec<String>,
    },
    /// Held-out scores of the audio branch: text→audio recall@1/@5 and zero-shot accuracy.
    Eval {
        /// valid or test.
        #[arg(long, default_value = "test")]
        split: String,
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Corpus whose held-out clips and captions are scored: `small` or `medium`.
        #[arg(long, default_value = "small")]
        corpus: String,
    },
    /// Audio-branch embedding of an audio file (a JSON array; first 256 frames ≈ 2.97 s).
    Audio {
        audio: PathBuf,
        /// Trained audio encoder folder (default: the shipped one).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct ClapTrainArgs {
    /// `small` (the small corpus, `AudioEncoderConfig::small()`) or `medium` (the broad corpus,
    /// `AudioEncoderConfig::medium()`).
    #[arg(long, default_value = "small")]
    config: String,
    #[arg(long, default_value_t = 1200)]
    steps: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 100)]
    val_every: usize,
    /// Output folder (checkpoint, metrics.jsonl, exported encoder); default <data>/runs/clap-<config>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run checkpointed in the output folder.
    #[arg(long)]
    resume: bool,
}

/// Where the fetched MiniLM lives.
pub fn minilm_dir() -> PathBuf {
    data_dir().join("weights/minilm")
}

/// The audio encoder shipped with the checkout (trained by this project, see its TRAINING.md).
pub fn shipped_clap_dir() -> PathBuf {
    repo_dir().join("data/checkpoints/clap-small")
}

fn text_encoder() -> Result<smg_clap::TextEncoder> {
    smg_clap::TextEncoder::load(&minilm_dir(), &candle_core::Device::Cpu)
        .with_context(|| "MiniLM is fetched by `smg data fetch` (or scripts/setup.sh)".to_string())
}

fn print_row(t: &candle_core::Tensor) -> Result<()> {
    let v: Vec<f32> = t.to_vec1()?;
    println!("[{}]", v.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(","));
    Ok(())
}

pub fn embed(cmd: EmbedCommand) -> Result<()> {
    match cmd {
        EmbedCommand::Text { prompts } => {
            let enc = text_encoder()?;
            let refs: Vec<&str> = prompts.iter().map(|s| s.as_str()).collect();
            let out = enc.embed(&refs)?;
            for i in &out.truncated {
                eprintln!(
                    "note: prompt {} has {} word pieces; only the first {} are used",
                    i + 1,
                    out.token_counts[*i],
                    smg_clap::MAX_TOKENS
                );
            }
            for i in 0..prompts.len() {
                print_row(&out.embeddings.get(i)?)?;
            }
        }
        EmbedCommand::Eval { split, checkpoint, corpus } => {
            let split = crate::eval_cmd::parse_split(&split)?;
            let model = smg_clap::AudioEncoder::from_pretrained(&checkpoint.unwrap_or_else(shipped_clap_dir), &candle_core::Device::Cpu)?;
            let (ds, cache) = crate::eval_cmd::open_corpus(&corpus)?;
            let data = smg_clap::corpus::SplitData::new(&ds, &cache, split)?;
            let text = text_encoder()?;
            let emb = smg_clap::corpus::caption_embeddings(&text, &[&data])?;
            let s = smg_clap::eval::score(&model, &text, &data.view(&emb))?;
            println!("{} clips, {} caption queries", s.clips, s.queries);
            println!("text->audio recall@1 {:.3} (chance {:.3})", s.recall_at_1, s.recall_at_1_chance);
            println!("text->audio recall@5 {:.3} (chance {:.3})", s.recall_at_5, s.recall_at_5_chance);
            println!(
                "zero-shot category accuracy {:.3} over {} categories (chance {:.3})",
                s.zero_shot_accuracy, s.categories, s.zero_shot_chance
            );
        }
        EmbedCommand::Audio { audio, checkpoint } => {
            let dir = checkpoint.unwrap_or_else(shipped_clap_dir);
            let model = smg_clap::AudioEncoder::from_pretrained(&dir, &candle_core::Device::Cpu)?;
            let mel = clip_mel(&audio, 256)?;
            print_row(&model.embed(&mel.unsqueeze(0)?)?.get(0)?)?;
        }
    }
    Ok(())
}

/// Normalised mel of an audio file, peak-normalised, fitted (cropped or padded) to `frames`.
fn clip_mel(path: &Path, frames: usize) -> Result<candle_core::Tensor> {
    let cfg = MelConfig::hifigan();
    let x = smg_audio::prepare_clip(path, &cfg, Some(frames), 0)?;
    let unit = smg_audio::norm::to_tokenizer_range(&MelTransform::new(cfg).log_mel(&x)?);
    Ok(smg_audio::array_to_tensor(&unit, &candle_core::Device::Cpu)?)
}

pub fn train(a: &ClapTrainArgs) -> Result<()> {
    use smg_data::{ClipConfig, Dataset, Split};
    let enc_cfg = match a.config.as_str() {
        "small" => smg_clap::AudioEncoderConfig::small(),
        "medium" => smg_clap::AudioEncoderConfig::medium(),
        c => bail!("--config must be small or medium, not {c:?}"),
    };
    let ds = Dataset::open_sound(&data_dir(), &ClipConfig::by_name(&a.config)?)?;
    eprintln!("computing (or loading cached) mels of {} clips", ds.records.len());
    let cache = ds.mels(&MelTransform::hifigan(), true)?;
    let train = smg_clap::corpus::SplitData::new(&ds, &cache, Split::Train)?;
    let valid = smg_clap::corpus::SplitData::new(&ds, &cache, Split::Valid)?;
    let text = text_encoder()?;
    eprintln!("embedding the captions with MiniLM");
    let emb = smg_clap::corpus::caption_embeddings(&text, &[&train, &valid])?;
    let cfg = smg_clap::ClapTrainConfig {
        steps: a.steps,
        batch_size: a.batch,
        lr: a.lr,
        seed: a.seed,
        val_every: a.val_every,
        ..Default::default()
    };
    if a.batch < 2 {
        bail!("--batch must be at least 2 for a contrastive loss");
    }
    let out = a.out.clone().unwrap_or_else(|| data_dir().join(format!("runs/clap-{}", a.config)));
    let device = smg_core::best_device();
    eprintln!("training on {} ({} train / {} valid clips, {} captions)", device, train.mels.len(), valid.mels.len(), emb.len());
    let mut t = smg_clap::ClapTrainer::new(&enc_cfg, cfg, &out, a.resume, &device.device)?;
    if t.step > 0 {
        eprintln!("resuming at step {}", t.step);
    }
    let m = t.fit(&train.view(&emb), Some((&valid.view(&emb), &text)), true)?;
    if let Some(s) = m.iter().rev().find_map(|m| m.val.clone()) {
        eprintln!(
            "held-out: recall@1 {:.3} (chance {:.3}), recall@5 {:.3} (chance {:.3}) over {} captions; zero-shot accuracy {:.3} over {} categories (chance {:.3})",
            s.recall_at_1, s.recall_at_1_chance, s.recall_at_5, s.recall_at_5_chance, s.queries, s.zero_shot_accuracy, s.categories, s.zero_shot_chance
        );
    }
    t.export(&out)?;
    eprintln!("checkpoint and exported audio encoder: {}", out.display());
    Ok(())
}
