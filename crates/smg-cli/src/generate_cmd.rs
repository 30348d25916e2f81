//! `smg generate`, `smg inpaint`, `smg bwe`: the generator end to end (SPEC.md §3.6–3.7).

use crate::{data_dir, load_tokenizer, repo_dir};
use anyhow::{Context, Result};
use candle_core::Device;
use smg_audio::{GriffinLimConfig, MelTransform, WavEncoding};
use smg_maskgit::{CfgSchedule, Sampler};
use smg_pipeline::{Edit, Pipeline, Vocoder, WindowOptions};
use std::path::PathBuf;

/// Settings shared by the three commands. Sampler flags left out take the generator's preset
/// (`sampler.json` in its folder, [`smg_maskgit::SamplerPreset`]): each shipped generator names
/// the setting measured best for it.
#[derive(clap::Args)]
pub struct SampleArgs {
    /// Decoding iterations (paper: 16). Windows with fewer masked tokens use one per token.
    #[arg(long)]
    steps: Option<usize>,
    /// Gumbel temperature of the re-masking confidence, annealed to 0 (paper: 1.5).
    #[arg(long)]
    temperature: Option<f64>,
    /// How each token is drawn: `temperature:T` (softmax temperature), `categorical` (the
    /// paper's), `top-p:P` (nucleus) or `top-k:K`.
    #[arg(long)]
    draw: Option<smg_maskgit::Draw>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Model size: `small` (shipped), `medium` (where its checkpoints exist) or `auto` (medium
    /// when present, small in quick mode `SMG_QUICK=1`).
    #[arg(long, default_value = "auto")]
    model: String,
    /// Generator folder (default: the shipped generator of `--model`).
    #[arg(long)]
    generator: Option<PathBuf>,
    /// Tokenizer folder (default: the shipped tokenizer of `--model`).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Vocoder: `auto` (HiFi-GAN universal when fetched, else Griffin-Lim), `hifigan`,
    /// `griffin-lim`, `bigvsan` (needs a trained one: give its folder) or the folder of a vocoder
    /// trained by `smg train vocoder`.
    #[arg(long, default_value = "auto")]
    vocoder: String,
    /// Griffin-Lim iterations (when the vocoder is Griffin-Lim).
    #[arg(long, default_value_t = 64)]
    griffin_lim: usize,
}

/// Guidance settings (SPEC.md §3.6); those left out take the generator's preset.
#[derive(clap::Args)]
pub struct GuidanceArgs {
    /// Classifier-free guidance scale (paper: 3; 0 = off).
    #[arg(long)]
    cfg: Option<f64>,
    /// `constant`, `linear` (the paper's warm-up from 0), `linear-from-conditional` (1 → scale)
    /// or `linear-to-conditional` (scale → 1).
    #[arg(long)]
    cfg_schedule: Option<String>,
    /// Guidance rescale φ ∈ [0, 1]: keeps the conditional model's sharpness under guidance
    /// (0 = plain CFG).
    #[arg(long)]
    cfg_rescale: Option<f64>,
}

/// How a whole recording is edited.
#[derive(clap::Args)]
pub struct EditArgs {
    /// Describe what the regenerated part should sound like (text conditioning with guidance);
    /// without it the model fills in unconditionally, as in the paper.
    #[arg(long)]
    prompt: Option<String>,
    /// Crossfade into the recording at each end of the edit, in milliseconds (at most 50).
    #[arg(long, default_value_t = 20.0)]
    crossfade_ms: f64,
    /// Token columns of known context each model window keeps around what it generates.
    #[arg(long, default_value_t = 4)]
    context_columns: usize,
    #[command(flatten)]
    guidance: GuidanceArgs,
}

/// The vocoder `name` names (see [`SampleArgs::vocoder`]).
fn vocoder(name: &str, a: &SampleArgs) -> Result<Vocoder> {
    let gl = || Vocoder::GriffinLim(GriffinLimConfig { n_iter: a.griffin_lim, seed: a.seed, ..Default::default() });
    let hifigan_path = data_dir().join("weights/hifigan_universal.safetensors");
    Ok(match name {
        "auto" if hifigan_path.is_file() => crate::vocoder_cmd::vocoder("hifigan", a.griffin_lim)?,
        "auto" | "griffin-lim" => gl(),
        "hifigan" => crate::vocoder_cmd::vocoder("hifigan", a.griffin_lim)?,
        "bigvsan" => anyhow::bail!("no BigVSAN checkpoint ships with the project: give the folder of one trained by `smg train vocoder --model bigvsan-…` as --vocoder <folder>"),
        dir if std::path::Path::new(dir).is_dir() => crate::vocoder_cmd::trained(std::path::Path::new(dir))?,
        other => anyhow::bail!("--vocoder must be auto, hifigan, griffin-lim, bigvsan or a trained vocoder's folder; {other:?} is none of these"),
    })
}

/// The generator's preset with the flags given on the command line laid over it.
/// Without a prompt (`guided` false) guidance is off, whatever the preset says (SPEC.md §3.7).
fn preset(gdir: &std::path::Path, a: &SampleArgs, g: &GuidanceArgs, guided: bool) -> Result<smg_maskgit::SamplerPreset> {
    let mut p = smg_maskgit::SamplerPreset::for_generator(gdir)?.with_seed(a.seed);
    p.iterations = a.steps.unwrap_or(p.iterations);
    p.temperature = a.temperature.unwrap_or(p.temperature);
    if let Some(d) = a.draw {
        p.draw = d.to_string();
    }
    p.guidance = g.cfg.unwrap_or(p.guidance);
    p.guidance_schedule = g.cfg_schedule.clone().unwrap_or(p.guidance_schedule);
    p.guidance_rescale = g.cfg_rescale.unwrap_or(p.guidance_rescale);
    p.check().map_err(|e| anyhow::anyhow!("sampler settings: {e}"))?;
    if !guided {
        p.guidance = 0.0;
    }
    Ok(p)
}

fn pipeline(a: &SampleArgs, with_text: bool) -> Result<(Pipeline, PathBuf)> {
    let ckpt = repo_dir().join("data/checkpoints");
    let size = smg_pipeline::resolve_size(&a.model, &ckpt);
    let (_, tok, gen) = smg_pipeline::SIZES
        .iter()
        .find(|(s, _, _)| *s == size)
        .with_context(|| format!("--model must be small, medium or auto, not {:?}", a.model))?;
    for (d, what) in [(ckpt.join(tok), "tokenizer"), (ckpt.join(gen), "generator")] {
        if !d.is_dir() && (what == "tokenizer" && a.tokenizer.is_none() || what == "generator" && a.generator.is_none()) {
            anyhow::bail!("no {size} {what}: {} does not exist (not trained or not committed yet)", d.display());
        }
    }
    let gdir = a.generator.clone().unwrap_or_else(|| ckpt.join(gen));
    let text = if with_text {
        Some(
            smg_clap::TextEncoder::load(&data_dir().join("weights/minilm"), &Device::Cpu)
                .context("MiniLM is fetched by `smg data fetch`")?,
        )
    } else {
        None
    };
    let p = Pipeline {
        tokenizer: load_tokenizer(Some(a.tokenizer.clone().unwrap_or_else(|| ckpt.join(tok))))?,
        generator: smg_maskgit::MaskedVit::from_pretrained(&gdir, &Device::Cpu)?,
        text,
        vocoder: vocoder(&a.vocoder, a)?,
        mel: MelTransform::hifigan(),
        device: Device::Cpu,
    };
    Ok((p, gdir))
}

/// The sampler of the generator's preset and the flags, guided when `guided` (SPEC.md §3.6–3.7),
/// and a description of it for the output line.
fn sampler(gdir: &std::path::Path, a: &SampleArgs, g: &GuidanceArgs, guided: bool) -> Result<(Sampler, String)> {
    let p = preset(gdir, a, g, guided)?;
    let s = p.sampler(guided).map_err(|e| anyhow::anyhow!("sampler settings: {e}"))?;
    let file = gdir.join(smg_maskgit::PRESET_FILE);
    let from = if file.is_file() { "the generator's sampler.json" } else { "the built-in preset" };
    let given =
        [a.steps.is_some(), a.temperature.is_some(), a.draw.is_some(), g.cfg.is_some(), g.cfg_schedule.is_some(), g.cfg_rescale.is_some()];
    let flags = if given.iter().any(|&x| x) { " and the flags given" } else { "" };
    Ok((s, format!("; sampler: {}, seed {} ({from}{flags})", p.describe(), a.seed)))
}

/// The guidance that `--cfg SCALE --cfg-schedule NAME --cfg-rescale PHI` name
/// ([`smg_maskgit::guidance_named`]).
pub fn guidance(cfg: f64, schedule: &str, rescale: f64) -> Result<Box<dyn CfgSchedule>> {
    smg_maskgit::guidance_named(cfg, schedule, rescale).map_err(|e| anyhow::anyhow!("--cfg/--cfg-schedule/--cfg-rescale: {e}"))
}

/// A progress bar over model windows (hidden for a single window).
fn bar(what: &str) -> (indicatif::ProgressBar, impl FnMut(usize, usize)) {
    let bar = indicatif::ProgressBar::hidden();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} windows, {elapsed} (ETA {eta})").expect("valid template"),
    );
    bar.set_message(what.to_string());
    let b = bar.clone();
    let f = move |done: usize, total: usize| {
        if total > 1 && b.is_hidden() {
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        b.set_length(total as u64);
        b.set_position(done as u64);
    };
    (bar, f)
}

fn write_mono(out: &std::path::Path, audio: &[f32], what: &str) -> Result<()> {
    smg_audio::write_wav(out, audio, 22050, WavEncoding::Pcm16)?;
    eprintln!("wrote {} ({:.2} s, 22050 Hz mono, 16-bit PCM){what}", out.display(), audio.len() as f64 / 22050.0);
    Ok(())
}

pub fn generate(prompt: &str, g: &GuidanceArgs, duration: Option<f64>, output: &std::path::Path, a: &SampleArgs) -> Result<()> {
    let (p, gdir) = pipeline(a, true)?;
    let (s, how_sampled) = sampler(&gdir, a, g, true)?;
    let cond = p.condition(Some(prompt))?;
    let window = (p.frames() * p.mel.config.hop_length) as f64 / p.mel.config.sample_rate as f64;
    let d = duration.unwrap_or(window);
    let (b, mut f) = bar("generating");
    let audio = p.generate_long(&cond, d, &s, &WindowOptions::default(), &mut f)?;
    b.finish_and_clear();
    let windows = b.length().unwrap_or(1);
    let how = if windows > 1 { format!("; {windows} windows of {window:.2} s, each continuing the last") } else { String::new() };
    write_mono(output, &audio, &format!(", vocoder {}{how}{how_sampled}", p.vocoder.name()))
}

fn options(e: &EditArgs) -> Result<WindowOptions> {
    if !(0.0..=50.0).contains(&e.crossfade_ms) {
        anyhow::bail!("--crossfade-ms must be between 0 and 50, not {}", e.crossfade_ms);
    }
    Ok(WindowOptions { context_columns: e.context_columns, crossfade_s: e.crossfade_ms / 1000.0, ..Default::default() })
}

/// Sampler and condition of an edit: the prompt's embedding with guidance, or the null
/// condition without (guidance has no effect there, SPEC.md §3.7).
fn edit_setup(e: &EditArgs, a: &SampleArgs) -> Result<(Pipeline, (Sampler, String), candle_core::Tensor)> {
    let (p, gdir) = pipeline(a, e.prompt.is_some())?;
    let s = sampler(&gdir, a, &e.guidance, e.prompt.is_some())?;
    let cond = p.condition(e.prompt.as_deref())?;
    Ok((p, s, cond))
}

fn write_edit(output: &std::path::Path, input: &smg_audio::Audio, edit: &Edit, what: &str) -> Result<()> {
    let enc = input.sample_format.wav_encoding();
    smg_audio::write_wav_channels(output, &edit.audio.channels, edit.audio.sample_rate, enc)?;
    let same = if input.sample_format == smg_audio::SampleFormat::Decoded { "" } else { ", as the input" };
    let mut line = format!(
        "wrote {} ({:.3} s, {} Hz, {} channel{}, {} WAV{same}){what}",
        output.display(),
        edit.audio.duration_s(),
        edit.audio.sample_rate,
        edit.audio.channels.len(),
        if edit.audio.channels.len() == 1 { "" } else { "s" },
        enc.describe(),
    );
    if input.sample_format == smg_audio::SampleFormat::Decoded {
        line.push_str(&format!("; the input is {}, written as WAV holding its decoded samples exactly", input.format));
    }
    for n in &edit.notes {
        line.push_str("; ");
        line.push_str(n);
    }
    eprintln!("{line}");
    Ok(())
}

pub fn inpaint(audio: &std::path::Path, from: f64, to: f64, output: &std::path::Path, e: &EditArgs, a: &SampleArgs) -> Result<()> {
    let (p, (s, how_sampled), cond) = edit_setup(e, a)?;
    let input = smg_audio::load(audio)?;
    let (b, mut f) = bar("inpainting");
    let edit = p.inpaint_recording(&input, from, to, &cond, &s, &options(e)?, &mut f)?;
    b.finish_and_clear();
    let sr = input.sample_rate as f64;
    let what = format!(
        "; regenerated {from}–{to} s in {} window{} ({}), samples {:.3}–{:.3} s changed (crossfades included), the rest is the input's",
        edit.windows,
        if edit.windows == 1 { "" } else { "s" },
        p.vocoder.name(),
        edit.changed.0 as f64 / sr,
        edit.changed.1 as f64 / sr
    );
    write_edit(output, &input, &edit, &(what + &how_sampled))
}

pub fn bwe(audio: &std::path::Path, cutoff: f64, lfr: bool, output: &std::path::Path, e: &EditArgs, a: &SampleArgs) -> Result<()> {
    let (p, (s, how_sampled), cond) = edit_setup(e, a)?;
    let input = smg_audio::load(audio)?;
    let (b, mut f) = bar("bandwidth extension");
    let edit = p.bandwidth_extension_recording(&input, cutoff, lfr, &cond, &s, &options(e)?, &mut f)?;
    b.finish_and_clear();
    let mut what = format!(
        "; regenerated above {cutoff} Hz in {} window{} ({})",
        edit.windows,
        if edit.windows == 1 { "" } else { "s" },
        p.vocoder.name()
    );
    if lfr {
        what.push_str(", the input's band below the cut-off kept in each channel");
    }
    if (input.sample_rate as f64) < 2.0 * p.mel.config.f_max {
        what.push_str(&format!(
            "; at {} Hz the file cannot hold anything above {} Hz: resample it to 22050 Hz first to hear the whole extension",
            input.sample_rate,
            input.sample_rate / 2
        ));
    }
    write_edit(output, &input, &edit, &(what + &how_sampled))
}
