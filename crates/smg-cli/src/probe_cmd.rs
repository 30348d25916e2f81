//! `smg probe`: the representation experiment (SPEC.md §7, paper Table 8) on the music set:
//! linear probes for its tags on frozen masked-ViT features, log-mel statistics and aiSFX.

use crate::{data_dir, load_tokenizer};
use anyhow::{Context, Result};
use candle_core::Device;
use smg_pipeline::represent::{probe_experiment, Features, ProbeOptions, ProbeReport};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ProbeArgs {
    /// Feature sets to compare, comma-separated: maskgit, mel, aisfx.
    #[arg(long, default_value = "maskgit,mel,aisfx")]
    features: String,
    /// Generator folder (default: the shipped small generator).
    #[arg(long)]
    generator: Option<PathBuf>,
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Tags need this many positive training clips.
    #[arg(long, default_value_t = 10)]
    min_tag_count: usize,
    /// Use at most this many clips per split (quick runs).
    #[arg(long)]
    max_clips: Option<usize>,
    #[arg(long, default_value_t = 100)]
    max_epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: &ProbeArgs) -> Result<()> {
    let features = a.features.split(',').map(|s| Features::parse(s.trim())).collect::<std::result::Result<Vec<_>, _>>()?;
    let ds = smg_data::Dataset::open(&data_dir(), smg_data::SetKind::Music, &smg_data::ClipConfig::small())
        .context("the music set is built by `smg data build --config small`")?;
    let tok = load_tokenizer(a.tokenizer.clone())?;
    let vit = smg_maskgit::MaskedVit::from_pretrained(
        &a.generator.clone().unwrap_or_else(|| crate::repo_dir().join("data/checkpoints/maskgit-small")),
        &Device::Cpu,
    )?;
    let aisfx = if features.contains(&Features::Aisfx) {
        Some(smg_embed::Aisfx::load(&data_dir().join("weights/aisfx.safetensors"), &Device::Cpu)?)
    } else {
        None
    };
    let opts = ProbeOptions {
        features,
        max_per_split: a.max_clips,
        min_tag_count: a.min_tag_count,
        probe: smg_eval::ProbeConfig { max_epochs: a.max_epochs, seed: a.seed, ..Default::default() },
        progress: true,
    };
    let r = probe_experiment(&ds, &tok, &vit, aisfx.as_ref(), &opts)?;
    print_report(&r);
    if let Some(o) = &a.out {
        std::fs::write(o, serde_json::to_string_pretty(&r)? + "\n")?;
    }
    Ok(())
}

fn print_report(r: &ProbeReport) {
    println!("{} tags; clips train / valid / test: {} / {} / {}", r.tags.len(), r.clips[0], r.clips[1], r.clips[2]);
    println!("| features | dim | block | test ROC-AUC | test mAP | valid ROC-AUC | best epoch / epochs | tags scored |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in &r.rows {
        let block = row.block.map_or("–".to_string(), |b| format!("{} of {}", b + 1, row.block_valid_auc.len()));
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {} / {} | {} |",
            row.features,
            row.dim,
            block,
            row.test.roc_auc,
            row.test.average_precision,
            row.valid.roc_auc,
            row.best_epoch,
            row.epochs,
            row.test.labels_used
        );
    }
}
