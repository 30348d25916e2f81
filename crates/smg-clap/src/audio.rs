//! The audio branch: a small CNN over the project's normalised mel, projected into the 384-d
//! MiniLM space (the role of CLAP's audio tower, SPEC.md §5).
//!
//! Why a CNN and not a ViT: the corpus is about a thousand short clips and training runs on 2 CPU
//! cores; a convolutional stack has the right inductive bias (local time–frequency patterns,
//! translation in time) for that little data, takes any clip length (global pooling over time),
//! and costs a few milliseconds per clip. Each stage halves both axes: a stride-2 3×3 conv, then a
//! residual 3×3 conv, SiLU after each. The frequency rows that remain are kept (flattened into the
//! channels) so the embedding knows *where* in the spectrum energy sits; time is pooled by mean
//! and max. A two-layer MLP (`proj.0`, `proj.2`, GELU between, as in CLAP's projection) maps to
//! the text space, then L2 normalisation.

use crate::{l2_normalize, Result};
use candle_core::{Module, Tensor};
use candle_nn::{linear, VarBuilder};
use serde::{Deserialize, Serialize};
use smg_core::conv::Conv2d;
use smg_core::fast::Linear;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioEncoderConfig {
    pub n_mels: usize,
    /// Channels of each stage (each stage halves frequency and time).
    pub channels: Vec<usize>,
    pub hidden: usize,
    /// Output width (must equal the text embedding's, 384 for MiniLM).
    pub dim: usize,
}

impl AudioEncoderConfig {
    /// The configuration trained here: 4 stages 16-32-64-128 (≈1.15M parameters).
    pub fn small() -> Self {
        Self { n_mels: 80, channels: vec![16, 32, 64, 128], hidden: 512, dim: crate::TEXT_DIM }
    }

    /// Twice the small branch's width (channels 32-64-128-256, hidden 768), for the broad corpus.
    pub fn medium() -> Self {
        Self { channels: vec![32, 64, 128, 256], hidden: 768, ..Self::small() }
    }

    fn factor(&self) -> usize {
        1 << self.channels.len()
    }
}

#[derive(Debug, Clone)]
struct Stage {
    down: Conv2d,
    conv: Conv2d,
}

#[derive(Debug, Clone)]
pub struct AudioEncoder {
    pub config: AudioEncoderConfig,
    stages: Vec<Stage>,
    proj0: Linear,
    proj2: Linear,
}

impl AudioEncoder {
    pub fn new(cfg: &AudioEncoderConfig, vb: VarBuilder) -> Result<Self> {
        let mut stages = Vec::new();
        let mut cin = 1;
        for (i, &c) in cfg.channels.iter().enumerate() {
            let vb = vb.pp(format!("stages.{i}"));
            stages.push(Stage { down: Conv2d::load(cin, c, 3, 2, 1, vb.pp("down"))?, conv: Conv2d::load(c, c, 3, 1, 1, vb.pp("conv"))? });
            cin = c;
        }
        let rows = cfg.n_mels.div_ceil(cfg.factor());
        let feat = 2 * cin * rows;
        Ok(Self {
            config: cfg.clone(),
            stages,
            proj0: fast_linear(linear(feat, cfg.hidden, vb.pp("proj.0"))?),
            proj2: fast_linear(linear(cfg.hidden, cfg.dim, vb.pp("proj.2"))?),
        })
    }

    /// Unnormalised projection of normalised mels `(B, n_mels, T)`, T ≥ 16 frames.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let (_, bands, t) = mel.dims3()?;
        if bands != self.config.n_mels {
            return Err(crate::ClapError::Invalid(format!("mel has {bands} bands, the audio encoder expects {}", self.config.n_mels)));
        }
        if t < self.config.factor() {
            return Err(crate::ClapError::Invalid(format!("clip of {t} frames is too short (at least {})", self.config.factor())));
        }
        let mut h = mel.unsqueeze(1)?;
        for s in &self.stages {
            h = smg_core::train_ops::silu(&s.down.forward(&h)?)?;
            h = (&h + smg_core::train_ops::silu(&s.conv.forward(&h)?)?)?;
        }
        let (b, c, r, w) = h.dims4()?;
        let h = h.reshape((b, c * r, w))?;
        let pooled = Tensor::cat(&[h.mean(2)?, h.max(2)?], 1)?;
        Ok(self.proj2.forward(&self.proj0.forward_act(&pooled, smg_core::fast::Act::Gelu)?)?)
    }

    /// Unit-norm embeddings `(B, dim)` of normalised mels `(B, n_mels, T)`.
    pub fn embed(&self, mel: &Tensor) -> Result<Tensor> {
        l2_normalize(&self.forward(mel)?)
    }
}

pub const WEIGHTS_FILE: &str = "audio_encoder.safetensors";
pub const CONFIG_FILE: &str = "audio_encoder.json";

/// Writes an audio encoder (`audio.*` tensors and `logit_scale`) and its configuration to
/// `dir`, atomically.
pub fn save_pretrained(tensors: &std::collections::HashMap<String, Tensor>, cfg: &AudioEncoderConfig, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let w_tmp = dir.join(format!("{WEIGHTS_FILE}.partial"));
    candle_core::safetensors::save(tensors, &w_tmp)?;
    let c_tmp = dir.join(format!("{CONFIG_FILE}.partial"));
    let json = serde_json::to_string_pretty(cfg).map_err(|e| crate::ClapError::Format(e.to_string()))?;
    std::fs::write(&c_tmp, json + "\n")?;
    std::fs::rename(&w_tmp, dir.join(WEIGHTS_FILE))?;
    std::fs::rename(&c_tmp, dir.join(CONFIG_FILE))?;
    Ok(())
}

impl AudioEncoder {
    /// Loads an encoder written by [`save_pretrained`] (or a training folder's checkpoint); a
    /// missing or mis-shaped tensor is an error that names it.
    pub fn from_pretrained(dir: &std::path::Path, device: &candle_core::Device) -> Result<Self> {
        let (cfg, weights) = if dir.join(CONFIG_FILE).is_file() {
            let text = std::fs::read_to_string(dir.join(CONFIG_FILE))?;
            let cfg: AudioEncoderConfig =
                serde_json::from_str(&text).map_err(|e| crate::ClapError::Format(format!("{}: {e}", dir.join(CONFIG_FILE).display())))?;
            (cfg, dir.join(WEIGHTS_FILE))
        } else if smg_core::checkpoint::exists(dir) {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(smg_core::checkpoint::STATE_FILE))?)
                .map_err(|e| crate::ClapError::Format(e.to_string()))?;
            let cfg: AudioEncoderConfig =
                serde_json::from_value(v["model"].clone()).map_err(|e| crate::ClapError::Format(e.to_string()))?;
            (cfg, dir.join(smg_core::checkpoint::TENSORS_FILE))
        } else {
            return Err(crate::ClapError::MissingFile(dir.join(CONFIG_FILE)));
        };
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], candle_core::DType::F32, device)? };
        Self::new(&cfg, vb.pp("audio")).map_err(|e| crate::ClapError::Format(format!("{}: {e}", weights.display())))
    }
}

/// The same layer as one autograd node in training and the fused kernel at inference
/// (`smg_core::fast::Linear`; weights under the same names).
fn fast_linear(l: candle_nn::Linear) -> Linear {
    Linear::new(l.weight().clone(), l.bias().cloned())
}
