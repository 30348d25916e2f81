//! `smg generate`, `smg inpaint`, `smg bwe`: the generator end to end (SPEC.md §3.6–3.7).

use crate::{data_dir, load_tokenizer, repo_dir};
use anyhow::{Context, Result};
use candle_core::Device;
use smg_audio::{GriffinLimConfig, MelTransform, WavEncoding};
use smg_maskgit::{CfgSchedule, Guidance, Gumbel, Rescaled, Sampler};
use smg_pipeline::{Pipeline, Vocoder};
use std::path::PathBuf;

/// Settings shared by the three commands.
#[derive(clap::Args)]
pub struct SampleArgs {
    /// Decoding iterations (paper: 16).
    #[arg(long, default_value_t = 16)]
    steps: usize,
    /// Gumbel temperature of the re-masking confidence, annealed to 0 (paper: 1.5).
    #[arg(long, default_value_t = 1.5)]
    temperature: f64,
    /// How each token is drawn: `categorical` (the paper's), `top-p:P` (nucleus),
    /// `top-k:K` or `temperature:T` (softmax temperature).
    #[arg(long, default_value = "categorical")]
    draw: smg_maskgit::Draw,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Generator folder (default: the shipped small generator).
    #[arg(long)]
    generator: Option<PathBuf>,
    /// Tokenizer folder (default: the shipped small tokenizer).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Griffin-Lim iterations of the vocoder.
    #[arg(long, default_value_t = 64)]
    griffin_lim: usize,
}

fn pipeline(a: &SampleArgs, with_text: bool) -> Result<Pipeline> {
    let gdir = a.generator.clone().unwrap_or_else(|| repo_dir().join("data/checkpoints/maskgit-small"));
    let text = if with_text {
        Some(smg_clap::TextEncoder::load(&data_dir().join("weights/minilm"), &Device::Cpu).context("MiniLM is fetched by `smg data fetch`")?)
    } else {
        None
    };
    Ok(Pipeline {
        tokenizer: load_tokenizer(a.tokenizer.clone())?,
        generator: smg_maskgit::MaskedVit::from_pretrained(&gdir, &Device::Cpu)?,
        text,
        vocoder: Vocoder::GriffinLim(GriffinLimConfig { n_iter: a.griffin_lim, seed: a.seed, ..Default::default() }),
        mel: MelTransform::hifigan(),
        device: Device::Cpu,
    })
}

fn sampler(a: &SampleArgs, guidance: Box<dyn CfgSchedule>) -> Sampler {
    Sampler { iterations: a.steps, guidance, temperature: Box::new(Gumbel::Annealed(a.temperature)), draw: Box::new(a.draw), seed: a.seed, ..Default::default() }
}

/// The guidance that `--cfg SCALE --cfg-schedule NAME --cfg-rescale PHI` name (SPEC.md §3.6;
/// scale 0 = off): `constant`, `linear` (0 → scale, the paper's warm-up),
/// `linear-from-conditional` (1 → scale) or `linear-to-conditional` (scale → 1), with guidance
/// rescale φ ∈ [0, 1] (`smg_maskgit::Rescaled`; 0 = plain CFG).
pub fn guidance(cfg: f64, schedule: &str, rescale: f64) -> Result<Box<dyn CfgSchedule>> {
    let g = match (cfg, schedule) {
        (c, _) if c == 0.0 => return Ok(Box::new(Guidance::Off)),
        (c, "constant") => Guidance::Constant(c),
        (c, "linear") => Guidance::Linear(c),
        (c, "linear-from-conditional") => Guidance::LinearFromConditional(c),
        (c, "linear-to-conditional") => Guidance::LinearToConditional(c),
        (_, s) => anyhow::bail!("--cfg-schedule must be constant, linear, linear-from-conditional or linear-to-conditional, not {s:?}"),
    };
    if !(0.0..=1.0).contains(&rescale) {
        anyhow::bail!("--cfg-rescale must be in [0, 1], not {rescale}");
    }
    Ok(if rescale > 0.0 { Box::new(Rescaled { guidance: g, phi: rescale }) } else { Box::new(g) })
}

fn write(out: &std::path::Path, audio: &[f32]) -> Result<()> {
    smg_audio::write_wav(out, audio, 22050, WavEncoding::Pcm16)?;
    eprintln!("wrote {} ({:.2} s)", out.display(), audio.len() as f64 / 22050.0);
    Ok(())
}

pub fn generate(prompt: &str, g: Box<dyn CfgSchedule>, output: &std::path::Path, a: &SampleArgs) -> Result<()> {
    let p = pipeline(a, true)?;
    let out = p.text_to_audio(&[prompt], &sampler(a, g))?;
    write(output, &out.audio[0])
}

pub fn inpaint(audio: &std::path::Path, from: f64, to: f64, output: &std::path::Path, a: &SampleArgs) -> Result<()> {
    let p = pipeline(a, false)?;
    let x = smg_audio::load_mono(audio, 22050)?;
    let out = p.inpaint(&x, from, to, &sampler(a, Box::new(Guidance::Off)))?;
    write(output, &out.audio[0])
}

pub fn bwe(audio: &std::path::Path, cutoff: f64, lfr: bool, output: &std::path::Path, a: &SampleArgs) -> Result<()> {
    let p = pipeline(a, false)?;
    let x = smg_audio::load_mono(audio, 22050)?;
    let out = p.bandwidth_extension(&x, cutoff, lfr, &sampler(a, Box::new(Guidance::Off)))?;
    write(output, &out.audio[0])
}
