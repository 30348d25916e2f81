//! `smg eval sustain`: does a prompt give sound lasting the clip, or one transient? Each prompt is
//! generated with several seeds and scored by its sustain (the share of frames within 20 dB of
//! the clip's loudest frame, `judge::loudness_and_sustain`; SPEC.md §10) and its span (the share
//! of the clip from the first to the last such frame, `judge::loud_span`: a dog barking every
//! half second spans the clip with a sustain of ≈ 0.3).

use anyhow::{bail, Context, Result};
use smg_maskgit::{Gumbel, Sampler};
use smg_pipeline::judge;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SustainEvalArgs {
    /// Prompts to generate (default: four everyday sounds that go on).
    prompts: Vec<String>,
    /// Seeds per prompt (0, 1, …).
    #[arg(long, default_value_t = 8)]
    seeds: u64,
    /// Constant CFG scale (0: no guidance).
    #[arg(long, default_value_t = 3.0)]
    cfg: f64,
    /// Guidance rescale φ ∈ [0, 1] (0: plain CFG; the small generator's preset uses 1).
    #[arg(long, default_value_t = 0.0)]
    cfg_rescale: f64,
    /// Gumbel temperature of the re-masking confidence, annealed to 0 (paper: 1.5).
    #[arg(long, default_value_t = 1.5)]
    temperature: f64,
    /// How each token is drawn: `categorical` (the paper's), `temperature:T` (the small
    /// generator's preset uses 0.8), `top-p:P` or `top-k:K`.
    #[arg(long, default_value = "categorical")]
    draw: smg_maskgit::Draw,
    /// Generator folder (default: the shipped small generator).
    #[arg(long)]
    generator: Option<PathBuf>,
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Also write the table as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Sustain of one prompt over its seeds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PromptSustain {
    pub prompt: String,
    pub sustain: Vec<f64>,
    pub span: Vec<f64>,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub mean_span: f64,
}

pub const DEFAULT_PROMPTS: [&str; 4] = ["a dog barking", "a church bell", "a man speaking", "a car passing"];

pub fn run(a: &SustainEvalArgs) -> Result<()> {
    if a.seeds == 0 || a.seeds > 1000 {
        bail!("--seeds must be between 1 and 1000, not {}", a.seeds);
    }
    if !(0.0..=20.0).contains(&a.cfg) {
        bail!("--cfg must be between 0 and 20, not {}", a.cfg);
    }
    if !(0.0..=20.0).contains(&a.temperature) {
        bail!("--temperature must be between 0 and 20, not {}", a.temperature);
    }
    let mut s = Sampler {
        guidance: crate::generate_cmd::guidance(a.cfg, "constant", a.cfg_rescale)?,
        temperature: Box::new(Gumbel::Annealed(a.temperature)),
        draw: Box::new(a.draw),
        ..Default::default()
    };
    let prompts: Vec<String> =
        if a.prompts.is_empty() { DEFAULT_PROMPTS.iter().map(|s| s.to_string()).collect() } else { a.prompts.clone() };
    let p = crate::eval_cmd::text_pipeline(a.generator.clone(), a.tokenizer.clone())?;
    let mut rows = Vec::new();
    for prompt in &prompts {
        let (mut sustain, mut span) = (Vec::new(), Vec::new());
        for seed in 0..a.seeds {
            s.seed = seed;
            let out = p.text_to_tokens(&[prompt.as_str()], &s)?;
            let mel = p.decode_mels(&out.tokens)?.remove(0);
            sustain.push(judge::loudness_and_sustain(&mel)?.1);
            span.push(judge::loud_span(&mel)?);
        }
        let mean = sustain.iter().sum::<f64>() / sustain.len() as f64;
        let min = sustain.iter().copied().fold(f64::INFINITY, f64::min);
        let max = sustain.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean_span = span.iter().sum::<f64>() / span.len() as f64;
        rows.push(PromptSustain { prompt: prompt.clone(), sustain, span, mean, min, max, mean_span });
    }
    let gdir = a.generator.as_ref().map_or("the shipped small generator".to_string(), |g| g.display().to_string());
    println!(
        "generator {gdir}; {} seeds per prompt, CFG {} (constant, rescale {}), Gumbel {} annealed, {} draws",
        a.seeds, a.cfg, a.cfg_rescale, a.temperature, a.draw
    );
    println!("| prompt | mean sustain | min | max | mean span |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!("| {} | {:.2} | {:.2} | {:.2} | {:.2} |", r.prompt, r.mean, r.min, r.max, r.mean_span);
    }
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_string_pretty(&rows)? + "\n").with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
