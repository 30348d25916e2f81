//! `smg eval vocoder`: held-out clips resynthesised from their mel by each vocoder, scored by
//! mel-L1 against the input mel, with each vocoder's real-time factor (issue 6).

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
    /// Comma-separated vocoders to score: griffin-lim, hifigan.
    #[arg(long, default_value = "griffin-lim,hifigan")]
    vocoders: String,
    /// Griffin-Lim iterations.
    #[arg(long, default_value_t = 64)]
    griffin_lim_iters: usize,
    /// Also write the scores as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The vocoder called `name` (`hifigan` is the universal checkpoint).
pub fn vocoder(name: &str, gl_iters: usize) -> Result<Vocoder> {
    Ok(match name {
        "griffin-lim" => Vocoder::GriffinLim(GriffinLimConfig { n_iter: gl_iters, ..Default::default() }),
        "hifigan" => Vocoder::HifiGan(Box::new(
            smg_vocoder::HifiGan::load_v1(&data_dir().join("weights/hifigan_universal.safetensors"), &Device::Cpu).context("HiFi-GAN universal is fetched by `smg data fetch`")?,
        )),
        other => anyhow::bail!("unknown vocoder '{other}' (griffin-lim, hifigan)"),
    })
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
    let mut idx = ds.split_indices(split);
    if a.limit > 0 && idx.len() > a.limit {
        let step = idx.len() as f64 / a.limit as f64;
        idx = (0..a.limit).map(|i| idx[(i as f64 * step) as usize]).collect();
    }
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
