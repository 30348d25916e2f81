//! SpecMaskGIT end to end (SPEC.md §3.6–3.7): the data flow
//! `text → embedding → sampler → tokens → tokenizer decoder → mel → vocoder → wav`, and the
//! zero-shot tasks that start the sampler from a partly masked token grid of real audio.
//! Each stage stays a plain call on the library crates; this crate only wires them.

use candle_core::{Device, Tensor};
use ndarray::Array2;
use smg_audio::{GriffinLimConfig, MelTransform};
use smg_clap::TextEncoder;
use smg_maskgit::tasks::{apply_mask, Grid};
use smg_maskgit::{MaskedVit, Sampler};
use smg_tokenizer::SpecVqGan;

pub mod judge;
pub mod represent;
pub mod resynth;
pub mod rows;
pub mod windowed;

pub use windowed::{Edit, Region, WindowOptions, WindowSteps};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Audio(#[from] smg_audio::AudioError),
    #[error(transparent)]
    Clap(#[from] smg_clap::ClapError),
    #[error(transparent)]
    MaskGit(#[from] smg_maskgit::MaskGitError),
    #[error(transparent)]
    Eval(#[from] smg_eval::EvalError),
    #[error(transparent)]
    Embed(#[from] smg_embed::EmbedError),
    #[error(transparent)]
    Data(#[from] smg_data::DataError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, PipelineError>;

/// How mels become waveforms. Griffin-Lim always works; HiFi-GAN and BigVSAN sound better.
#[derive(Debug, Clone)]
pub enum Vocoder {
    GriffinLim(GriffinLimConfig),
    /// A HiFi-GAN generator (e.g. the universal checkpoint, whose mel is the project's).
    HifiGan(Box<smg_vocoder::HifiGan>),
    /// A BigVSAN generator (the official 22 kHz 80-band checkpoints share the project's mel).
    BigVsan(Box<smg_vocoder::BigVsan>),
}

impl Vocoder {
    /// A short name for tables and titles.
    pub fn name(&self) -> &'static str {
        match self {
            Vocoder::GriffinLim(_) => "Griffin-Lim",
            Vocoder::HifiGan(_) => "HiFi-GAN",
            Vocoder::BigVsan(_) => "BigVSAN",
        }
    }

    /// Waveform (22 050 Hz) of a natural-log mel `(80, T)`.
    pub fn synthesize(&self, mt: &MelTransform, log_mel: &Array2<f32>) -> Result<Vec<f32>> {
        match self {
            Vocoder::GriffinLim(cfg) => Ok(smg_audio::mel_to_audio(mt, log_mel, cfg)?),
            Vocoder::HifiGan(g) => Ok(g.synthesize(&smg_audio::array_to_tensor(log_mel, &candle_core::Device::Cpu)?)?),
            Vocoder::BigVsan(g) => Ok(g.synthesize(&smg_audio::array_to_tensor(log_mel, &candle_core::Device::Cpu)?)?),
        }
    }
}

/// What a generation produced, every stage kept for display.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Token grids `(B, rows, cols)`.
    pub tokens: Tensor,
    /// The starting grids (masked positions = the mask id), `(B, rows, cols)`.
    pub start: Tensor,
    /// Natural-log mels `(80, T)`, one per item.
    pub mels: Vec<Array2<f32>>,
    /// Waveforms at 22 050 Hz.
    pub audio: Vec<Vec<f32>>,
    pub history: Vec<smg_maskgit::Step>,
}

pub struct Pipeline {
    pub tokenizer: SpecVqGan,
    pub generator: MaskedVit,
    pub text: Option<TextEncoder>,
    pub vocoder: Vocoder,
    pub mel: MelTransform,
    pub device: Device,
}

/// Checkpoint folders of each named model size under `data/checkpoints`: (tokenizer, generator).
pub const SIZES: [(&str, &str, &str); 2] =
    [("small", "tokenizer-small", "maskgit-small"), ("medium", "tokenizer-medium", "maskgit-medium")];

/// The model size `"auto"` stands for: `"medium"` where both medium checkpoints exist in
/// `checkpoints` and quick mode is off (`SMG_QUICK` unset, empty or `0`), else `"small"`. Other
/// names are returned as given.
pub fn resolve_size<'a>(size: &'a str, checkpoints: &std::path::Path) -> &'a str {
    if size != "auto" {
        return size;
    }
    let quick = std::env::var("SMG_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let medium =
        SIZES.iter().find(|s| s.0 == "medium").is_some_and(|(_, t, g)| checkpoints.join(t).is_dir() && checkpoints.join(g).is_dir());
    if medium && !quick {
        "medium"
    } else {
        "small"
    }
}

/// The sampler preset of the shipped generator of one size (`sampler.json` in its folder under
/// `checkpoints`, see [`smg_maskgit::SamplerPreset`]); `"auto"` as in [`resolve_size`].
pub fn sampler_preset(size: &str, checkpoints: &std::path::Path) -> Result<smg_maskgit::SamplerPreset> {
    let size = resolve_size(size, checkpoints);
    let (_, _, gen) = SIZES
        .iter()
        .find(|(s, _, _)| *s == size)
        .ok_or_else(|| PipelineError::Invalid(format!("unknown model size {size:?}: {} or auto", SIZES.map(|s| s.0).join(", "))))?;
    Ok(smg_maskgit::SamplerPreset::for_generator(&checkpoints.join(gen))?)
}

impl Pipeline {
    /// The shipped models of one size (`"small"`, `"medium"` where those checkpoints exist, or
    /// `"auto"`: medium when present outside quick mode, see [`resolve_size`])
    /// from `checkpoints` (the checkout's `data/checkpoints`), with the MiniLM text encoder when
    /// it has been fetched into `data` (else text-to-audio is refused, the zero-shot tasks work)
    /// and the best vocoder found there: HiFi-GAN universal, else Griffin-Lim.
    pub fn pretrained(size: &str, checkpoints: &std::path::Path, data: &std::path::Path, device: &Device) -> Result<Self> {
        let size = resolve_size(size, checkpoints);
        let (_, tok, gen) = SIZES
            .iter()
            .find(|(s, _, _)| *s == size)
            .ok_or_else(|| PipelineError::Invalid(format!("unknown model size {size:?}: {} or auto", SIZES.map(|s| s.0).join(", "))))?;
        let (tok, gen) = (checkpoints.join(tok), checkpoints.join(gen));
        for d in [&tok, &gen] {
            if !d.is_dir() {
                return Err(PipelineError::Invalid(format!(
                    "no {size} models: {} does not exist (not trained or not committed yet)",
                    d.display()
                )));
            }
        }
        let minilm = data.join("weights/minilm");
        let text = if minilm.is_dir() { Some(TextEncoder::load(&minilm, device)?) } else { None };
        let hifigan = data.join("weights/hifigan_universal.safetensors");
        let vocoder = if hifigan.is_file() {
            Vocoder::HifiGan(Box::new(
                smg_vocoder::HifiGan::load_v1(&hifigan, &Device::Cpu)
                    .map_err(|e| PipelineError::Invalid(format!("{}: {e}", hifigan.display())))?,
            ))
        } else {
            Vocoder::GriffinLim(GriffinLimConfig::default())
        };
        Ok(Pipeline {
            tokenizer: SpecVqGan::from_pretrained(&tok, device).map_err(|e| PipelineError::Invalid(format!("{}: {e}", tok.display())))?,
            generator: MaskedVit::from_pretrained(&gen, device)?,
            text,
            vocoder,
            mel: MelTransform::hifigan(),
            device: device.clone(),
        })
    }

    /// The same pipeline with another vocoder.
    pub fn with_vocoder(self, vocoder: Vocoder) -> Self {
        Pipeline { vocoder, ..self }
    }

    /// Frames of the clips the generator was trained on (token columns × downsampling).
    pub fn frames(&self) -> usize {
        self.generator.config.cols * self.tokenizer.config.factor()
    }

    pub fn grid(&self) -> Grid {
        Grid { rows: self.generator.config.rows, cols: self.generator.config.cols, factor: self.tokenizer.config.factor() }
    }

    /// Token grids `(B, N)` or `(B, rows, cols)` → natural-log mels `(80, T)` through the
    /// tokenizer's decoder (no vocoder).
    pub fn decode_mels(&self, tokens: &Tensor) -> Result<Vec<Array2<f32>>> {
        let b = tokens.dim(0)?;
        let grids = tokens.reshape((b, self.generator.config.rows, self.generator.config.cols))?;
        let unit = self.tokenizer.decode(&grids)?.clamp(-1f32, 1f32)?;
        (0..b).map(|i| Ok(smg_audio::norm::to_vocoder_range(&smg_audio::tensor_to_array(&unit.get(i)?)?))).collect()
    }

    /// Token grids `(B, N)` → log-mels and waveforms.
    fn render(&self, tokens: &Tensor, start: Tensor, history: Vec<smg_maskgit::Step>) -> Result<Generated> {
        let (b, _) = tokens.dims2()?;
        let (rows, cols) = (self.generator.config.rows, self.generator.config.cols);
        let mels = self.decode_mels(tokens)?;
        let audio = mels.iter().map(|m| self.vocoder.synthesize(&self.mel, m)).collect::<Result<Vec<_>>>()?;
        Ok(Generated { tokens: tokens.reshape((b, rows, cols))?, start: start.reshape((b, rows, cols))?, mels, audio, history })
    }

    /// Text → token grids `(B, N)` only (no decoding): the generator's part of
    /// [`Pipeline::text_to_audio`], for evaluations that judge mels or tokens.
    pub fn text_to_tokens(&self, prompts: &[&str], sampler: &Sampler) -> Result<smg_maskgit::SampleOutput> {
        let text = self.text.as_ref().ok_or_else(|| PipelineError::Invalid("text-to-audio needs the text encoder (MiniLM)".into()))?;
        let cond = text.embed(prompts)?.embeddings.to_device(&self.device)?;
        let start = Tensor::full(self.generator.config.mask_id(), (prompts.len(), self.generator.config.seq_len()), &self.device)?;
        Ok(sampler.sample(&self.generator, &start, &cond)?)
    }

    /// Text-to-audio: each prompt is embedded by the text branch and decoded from a fully
    /// masked grid with `sampler` (the paper: 16 iterations, CFG 3 with linear warm-up).
    pub fn text_to_audio(&self, prompts: &[&str], sampler: &Sampler) -> Result<Generated> {
        let out = self.text_to_tokens(prompts, sampler)?;
        let start = Tensor::full(self.generator.config.mask_id(), out.tokens.dims2()?, &self.device)?;
        self.render(&out.tokens, start, out.history)
    }

    /// Tokens `(1, N)` of a waveform, fitted (cropped or padded) to the generator's clip length.
    pub fn encode_audio(&self, samples: &[f32]) -> Result<(Tensor, Array2<f32>)> {
        let x = smg_audio::fit_to_frames(&smg_audio::peak_normalize(samples, 0.95), self.frames(), self.mel.config.hop_length, 0)?;
        let log_mel = self.mel.log_mel(&x)?;
        let unit = smg_audio::array_to_tensor(&smg_audio::norm::to_tokenizer_range(&log_mel), &self.device)?;
        let t = self.tokenizer.encode(&unit.unsqueeze(0)?)?;
        Ok((t.flatten_from(1)?, log_mel))
    }

    /// Regenerates the token positions `mask` (grid order) of `samples` unconditionally
    /// (SPEC.md §3.7: null condition, Gumbel 1.5, 16 iterations); every other token is kept.
    pub fn fill(&self, samples: &[f32], mask: &[bool], sampler: &Sampler) -> Result<Generated> {
        let (tokens, _) = self.encode_audio(samples)?;
        let start = apply_mask(&tokens, mask, self.generator.config.mask_id())?;
        // The null condition makes the conditional and unconditional passes identical, so
        // guidance has no effect here; `Guidance::Off` skips the second pass.
        let null = Tensor::zeros((1, self.generator.config.cond_dim), candle_core::DType::F32, &self.device)?;
        let out = sampler.sample(&self.generator, &start, &null)?;
        self.render(&out.tokens, start, out.history)
    }

    /// Time inpainting of `[from_s, to_s)` seconds.
    pub fn inpaint(&self, samples: &[f32], from_s: f64, to_s: f64, sampler: &Sampler) -> Result<Generated> {
        let g = self.grid();
        let (c0, c1) = g.columns_for(&self.mel.config, from_s, to_s)?;
        self.fill(samples, &g.time_mask(c0, c1), sampler)
    }

    /// Bandwidth extension: regenerates every token row above `cutoff_hz`; with `lfr`, the
    /// input's spectrum below the cut-off replaces the output's (low-frequency replacement).
    pub fn bandwidth_extension(&self, samples: &[f32], cutoff_hz: f64, lfr: bool, sampler: &Sampler) -> Result<Generated> {
        let g = self.grid();
        let row = g.first_row_above(&self.mel.config, cutoff_hz)?;
        let mut out = self.fill(samples, &g.band_mask(row), sampler)?;
        if lfr {
            let x = smg_audio::fit_to_frames(&smg_audio::peak_normalize(samples, 0.95), self.frames(), self.mel.config.hop_length, 0)?;
            out.audio[0] = low_frequency_replacement(&self.mel, &x, &out.audio[0], cutoff_hz)?;
        }
        Ok(out)
    }
}

/// LFR (SPEC.md §3.7): the STFT of `generated` above `cutoff_hz` with the STFT of `input` below
/// it, back to a waveform of the generated length.
pub fn low_frequency_replacement(mt: &MelTransform, input: &[f32], generated: &[f32], cutoff_hz: f64) -> Result<Vec<f32>> {
    let cfg = &mt.config;
    let stft = smg_audio::stft::Stft::new(cfg.n_fft, cfg.hop_length);
    let n = generated.len();
    let mut x = input.to_vec();
    x.resize(n, 0.0);
    let a = stft.forward(&x)?;
    let mut y = stft.forward(generated)?;
    let bin_hz = cfg.sample_rate as f64 / cfg.n_fft as f64;
    let cut = ((cutoff_hz / bin_hz).round() as usize).min(y.dim().0);
    for k in 0..cut {
        for t in 0..y.dim().1.min(a.dim().1) {
            y[[k, t]] = a[[k, t]];
        }
    }
    Ok(stft.inverse(&y, n))
}
