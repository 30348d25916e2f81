//! SpecVQGAN (SPEC.md §2): the convolutional VQGAN of taming-transformers as configured by
//! SpecVQGAN's VGGSound codebook (no LPAPS), in candle. Tensor names follow the PyTorch modules
//! (`encoder.down.0.block.1.conv1.weight`, `quantize.embedding.weight`, …) so an official
//! checkpoint converted to safetensors loads unchanged.
//!
//! Layout: a mel "image" (B, 1, H = n_mels, W = frames), row 0 the lowest mel band. Four
//! pad-then-stride-2 downsamplings give a (H/16, W/16) token grid: 80×848 → 5×53 = 265 tokens.

use crate::fused::GroupNormAct;
use crate::quantizer::{Quantized, VectorQuantizer};
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use smg_core::conv::Conv2d;

/// Every size of the tokenizer; `paper()` and `small()` are the named configurations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub ch: usize,
    pub ch_mult: Vec<usize>,
    pub num_res_blocks: usize,
    /// Attention blocks sit where the running time resolution is in this list.
    pub attn_resolutions: Vec<usize>,
    /// Time frames of the training clip (taming's `resolution`; `curr_res` tracks the time axis).
    pub resolution: usize,
    pub in_channels: usize,
    pub out_ch: usize,
    pub z_channels: usize,
    pub embed_dim: usize,
    pub n_embed: usize,
    /// GroupNorm groups (32 in taming; fewer for narrow small models).
    pub num_groups: usize,
    pub n_mels: usize,
    /// EMA codebook updates with dead-code restarts instead of the plain codebook loss.
    pub ema: bool,
    pub ema_decay: f64,
    /// Commitment weight β (taming legacy form: on the codebook term; SPEC.md §2.2).
    pub beta: f64,
    /// Decoder widths per level (`ch` × these, finest first) when they differ from the
    /// encoder's `ch_mult`: a wider decoder on the same codes. `None`: the encoder's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_ch_mult: Option<Vec<usize>>,
    /// Res blocks per decoder level, minus one (taming's `num_res_blocks`), when they differ
    /// from the encoder's. `None`: `num_res_blocks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_res_blocks: Option<usize>,
}

impl Config {
    /// SpecVQGAN's VGGSound codebook configuration (72.1M parameters; 80×848 → 5×53 tokens).
    pub fn paper() -> Self {
        Self {
            ch: 128,
            ch_mult: vec![1, 1, 2, 2, 4],
            num_res_blocks: 2,
            attn_resolutions: vec![53],
            resolution: 848,
            in_channels: 1,
            out_ch: 1,
            z_channels: 256,
            embed_dim: 256,
            n_embed: 1024,
            num_groups: 32,
            n_mels: 80,
            ema: false,
            ema_decay: 0.99,
            beta: 0.25,
            decoder_ch_mult: None,
            decoder_res_blocks: None,
        }
    }

    /// Sized for 2 CPU cores (SPEC.md §10): channels 16-32-32-64-64, one res block per level,
    /// 512 codes × 64, EMA codebook with restarts; 80×256 → 5×16 = 80 tokens.
    pub fn small() -> Self {
        Self {
            ch: 8,
            ch_mult: vec![1, 2, 4, 8, 8],
            num_res_blocks: 1,
            attn_resolutions: vec![16],
            resolution: 256,
            z_channels: 64,
            embed_dim: 64,
            n_embed: 512,
            num_groups: 8,
            ema: true,
            ..Self::paper()
        }
    }

    /// Sized for ≈12 hours of 2 CPU cores on the broad corpus: channels 16-32-64-128-128, one
    /// res block per level, attention at the lowest level, 1024 codes × 64 (EMA); 80×256 → 5×16.
    pub fn medium() -> Self {
        Self { ch: 16, n_embed: 1024, num_groups: 16, ..Self::small() }
    }

    /// The named configurations: `small`, `medium`, `paper`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "small" => Some(Self::small()),
            "medium" => Some(Self::medium()),
            "paper" => Some(Self::paper()),
            _ => None,
        }
    }

    /// Downsampling factor per axis (2^(levels − 1)).
    pub fn factor(&self) -> usize {
        1 << (self.ch_mult.len() - 1)
    }

    /// The decoder's widths per level (finest first): `decoder_ch_mult` or the encoder's.
    pub fn decoder_mult(&self) -> &[usize] {
        self.decoder_ch_mult.as_deref().unwrap_or(&self.ch_mult)
    }

    /// The decoder's res blocks per level, minus one: `decoder_res_blocks` or the encoder's.
    pub fn decoder_blocks(&self) -> usize {
        self.decoder_res_blocks.unwrap_or(self.num_res_blocks)
    }

    /// The same encoder and codebook (so the same codes for every clip) with another decoder.
    pub fn same_codes(&self, other: &Self) -> bool {
        let strip = |c: &Self| Self { decoder_ch_mult: None, decoder_res_blocks: None, ..c.clone() };
        strip(self) == strip(other)
    }

    /// Checks what `new` would otherwise panic or fail obscurely on: levels, widths and groups.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mult = self.decoder_mult();
        if self.ch_mult.is_empty() || mult.len() != self.ch_mult.len() {
            return Err(format!(
                "the decoder needs one width per level: {} levels in ch_mult, {} in decoder_ch_mult",
                self.ch_mult.len(),
                mult.len()
            ));
        }
        for m in self.ch_mult.iter().chain(mult) {
            let c = self.ch * m;
            if c == 0 || !c.is_multiple_of(self.num_groups) {
                return Err(format!("width {c} (ch {} × {m}) is not a positive multiple of num_groups {}", self.ch, self.num_groups));
            }
        }
        Ok(())
    }

    /// Token grid (rows, columns) for a mel of `n_mels` × `frames` (frames padded up to a
    /// multiple of the factor).
    pub fn grid(&self, frames: usize) -> (usize, usize) {
        (self.n_mels / self.factor(), frames.div_ceil(self.factor()))
    }
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, vb: VarBuilder) -> Result<Conv2d> {
    Conv2d::load(cin, cout, k, stride, pad, vb)
}

/// `Normalize(C)` of taming (GroupNorm, eps 1e-6), fused with the swish that follows it.
fn norm_swish(groups: usize, c: usize, vb: VarBuilder) -> Result<GroupNormAct> {
    GroupNormAct::new(groups, c, 1e-6, true, vb)
}

/// GN → swish → conv3×3 → GN → swish → conv3×3, plus a 1×1 `nin_shortcut` when widths differ.
#[derive(Debug, Clone)]
pub struct ResnetBlock {
    pub(crate) norm1: GroupNormAct,
    pub(crate) conv1: Conv2d,
    pub(crate) norm2: GroupNormAct,
    pub(crate) conv2: Conv2d,
    pub(crate) nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn new(cin: usize, cout: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: norm_swish(groups, cin, vb.pp("norm1"))?,
            conv1: conv(cin, cout, 3, 1, 1, vb.pp("conv1"))?,
            norm2: norm_swish(groups, cout, vb.pp("norm2"))?,
            conv2: conv(cout, cout, 3, 1, 1, vb.pp("conv2"))?,
            nin_shortcut: if cin != cout { Some(conv(cin, cout, 1, 1, 0, vb.pp("nin_shortcut"))?) } else { None },
        })
    }

    /// The block composed of its layers' own ops (inference, other devices; the reference for
    /// the fused training node of `fused_block`).
    pub fn forward_composed(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward(x)?)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?)?;
        match &self.nin_shortcut {
            Some(s) => s.forward(x)? + h,
            None => x + h,
        }
    }
}

impl Module for ResnetBlock {
    /// Training on the CPU in f32: one fused autograd node (`fused_block`); else the composed layers.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match crate::fused_block::forward(x, self)? {
            Some(y) => Ok(y),
            None => self.forward_composed(x),
        }
    }
}

/// Single-head self-attention over all H·W positions (1×1 q, k, v, proj_out), residual.
#[derive(Debug, Clone)]
pub struct AttnBlock {
    norm: GroupNormAct,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
}

impl AttnBlock {
    pub fn new(c: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: GroupNormAct::new(groups, c, 1e-6, false, vb.pp("norm"))?,
            q: conv(c, c, 1, 1, 0, vb.pp("q"))?,
            k: conv(c, c, 1, 1, 0, vb.pp("k"))?,
            v: conv(c, c, 1, 1, 0, vb.pp("v"))?,
            proj_out: conv(c, c, 1, 1, 0, vb.pp("proj_out"))?,
        })
    }
}

impl Module for AttnBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = self.norm.forward(x)?;
        let q = self.q.forward(&n)?.reshape((b, c, h * w))?.transpose(1, 2)?; // (b, hw, c)
        let k = self.k.forward(&n)?.reshape((b, c, h * w))?; // (b, c, hw)
        let v = self.v.forward(&n)?.reshape((b, c, h * w))?;
        let att = (q.contiguous()?.matmul(&k.contiguous()?)? * (c as f64).powf(-0.5))?; // (b, hw_q, hw_k)
        let att = smg_core::ops::softmax_last_dim(&att)?;
        let out = v.contiguous()?.matmul(&att.transpose(1, 2)?.contiguous()?)?; // (b, c, hw_q)
        x + self.proj_out.forward(&out.reshape((b, c, h, w))?)?
    }
}

/// Zero-pad right and bottom by one, then conv3×3 stride 2 (taming `Downsample`).
#[derive(Debug, Clone)]
pub struct Downsample {
    conv: Conv2d,
}

impl Module for Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.conv.weight().track_op() {
            // Training: one node on the direct kernels (`smg_core::conv_down`).
            return smg_core::conv_down::conv2d_down(x, self.conv.weight(), self.conv.bias());
        }
        let x = x.pad_with_zeros(D::Minus1, 0, 1)?.pad_with_zeros(D::Minus2, 0, 1)?;
        self.conv.forward(&x)
    }
}

/// Nearest ×2 then conv3×3 (taming `Upsample`).
#[derive(Debug, Clone)]
pub struct Upsample {
    conv: Conv2d,
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        self.conv.forward(&x.upsample_nearest2d(h * 2, w * 2)?)
    }
}

#[derive(Debug, Clone)]
struct Level {
    blocks: Vec<ResnetBlock>,
    attns: Vec<AttnBlock>,
}

impl Level {
    fn forward(&self, mut h: Tensor) -> Result<Tensor> {
        for (i, b) in self.blocks.iter().enumerate() {
            h = b.forward(&h)?;
            if let Some(a) = self.attns.get(i) {
                h = a.forward(&h)?;
            }
        }
        Ok(h)
    }
}

/// Mel image → z (B, z_channels, H/16, W/16).
#[derive(Debug, Clone)]
pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<(Level, Option<Downsample>)>,
    mid: (ResnetBlock, AttnBlock, ResnetBlock),
    norm_out: GroupNormAct,
    conv_out: Conv2d,
}

impl Encoder {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let g = cfg.num_groups;
        let n = cfg.ch_mult.len();
        let mut curr_res = cfg.resolution;
        let mut down = Vec::new();
        let mut block_in = cfg.ch;
        for i in 0..n {
            let vbl = vb.pp(format!("down.{i}"));
            block_in = cfg.ch * if i == 0 { 1 } else { cfg.ch_mult[i - 1] };
            let block_out = cfg.ch * cfg.ch_mult[i];
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for j in 0..cfg.num_res_blocks {
                blocks.push(ResnetBlock::new(block_in, block_out, g, vbl.pp(format!("block.{j}")))?);
                block_in = block_out;
                if cfg.attn_resolutions.contains(&curr_res) {
                    attns.push(AttnBlock::new(block_in, g, vbl.pp(format!("attn.{j}")))?);
                }
            }
            let ds = if i != n - 1 {
                curr_res /= 2;
                Some(Downsample { conv: conv(block_in, block_in, 3, 2, 0, vbl.pp("downsample.conv"))? })
            } else {
                None
            };
            down.push((Level { blocks, attns }, ds));
        }
        let vm = vb.pp("mid");
        Ok(Self {
            conv_in: conv(cfg.in_channels, cfg.ch, 3, 1, 1, vb.pp("conv_in"))?,
            down,
            mid: (
                ResnetBlock::new(block_in, block_in, g, vm.pp("block_1"))?,
                AttnBlock::new(block_in, g, vm.pp("attn_1"))?,
                ResnetBlock::new(block_in, block_in, g, vm.pp("block_2"))?,
            ),
            norm_out: norm_swish(g, block_in, vb.pp("norm_out"))?,
            conv_out: conv(block_in, cfg.z_channels, 3, 1, 1, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        for (level, ds) in &self.down {
            h = level.forward(h)?;
            if let Some(d) = ds {
                h = d.forward(&h)?;
            }
        }
        let h = self.mid.2.forward(&self.mid.1.forward(&self.mid.0.forward(&h)?)?)?;
        self.conv_out.forward(&self.norm_out.forward(&h)?)
    }
}

/// z → mel image (no output activation).
#[derive(Debug, Clone)]
pub struct Decoder {
    conv_in: Conv2d,
    mid: (ResnetBlock, AttnBlock, ResnetBlock),
    /// Indexed like PyTorch's `up` (level 0 = finest); applied from the last to the first.
    up: Vec<(Level, Option<Upsample>)>,
    norm_out: GroupNormAct,
    conv_out: Conv2d,
}

impl Decoder {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let g = cfg.num_groups;
        let mult = cfg.decoder_mult();
        let n = mult.len();
        let mut block_in = cfg.ch * mult[n - 1];
        let mut curr_res = cfg.resolution / cfg.factor();
        let vm = vb.pp("mid");
        let conv_in = conv(cfg.z_channels, block_in, 3, 1, 1, vb.pp("conv_in"))?;
        let mid = (
            ResnetBlock::new(block_in, block_in, g, vm.pp("block_1"))?,
            AttnBlock::new(block_in, g, vm.pp("attn_1"))?,
            ResnetBlock::new(block_in, block_in, g, vm.pp("block_2"))?,
        );
        let mut up: Vec<Option<(Level, Option<Upsample>)>> = (0..n).map(|_| None).collect();
        for i in (0..n).rev() {
            let vbl = vb.pp(format!("up.{i}"));
            let block_out = cfg.ch * mult[i];
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for j in 0..=cfg.decoder_blocks() {
                blocks.push(ResnetBlock::new(block_in, block_out, g, vbl.pp(format!("block.{j}")))?);
                block_in = block_out;
                if cfg.attn_resolutions.contains(&curr_res) {
                    attns.push(AttnBlock::new(block_in, g, vbl.pp(format!("attn.{j}")))?);
                }
            }
            let us = if i != 0 {
                curr_res *= 2;
                Some(Upsample { conv: conv(block_in, block_in, 3, 1, 1, vbl.pp("upsample.conv"))? })
            } else {
                None
            };
            up[i] = Some((Level { blocks, attns }, us));
        }
        Ok(Self {
            conv_in,
            mid,
            up: up.into_iter().map(|l| l.expect("every level built")).collect(),
            norm_out: norm_swish(g, block_in, vb.pp("norm_out"))?,
            conv_out: conv(block_in, cfg.out_ch, 3, 1, 1, vb.pp("conv_out"))?,
        })
    }

    /// The last layer (for GAN weight balancing or inspection).
    pub fn conv_out(&self) -> &Conv2d {
        &self.conv_out
    }
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let h = self.conv_in.forward(z)?;
        let mut h = self.mid.2.forward(&self.mid.1.forward(&self.mid.0.forward(&h)?)?)?;
        for (level, us) in self.up.iter().rev() {
            h = level.forward(h)?;
            if let Some(u) = us {
                h = u.forward(&h)?;
            }
        }
        self.conv_out.forward(&self.norm_out.forward(&h)?)
    }
}

/// The whole tokenizer: encoder → quant_conv → quantise → post_quant_conv → decoder.
#[derive(Debug, Clone)]
pub struct SpecVqGan {
    pub config: Config,
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub quantize: VectorQuantizer,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
}

/// Output of a training forward pass.
#[derive(Debug)]
pub struct Forward {
    pub reconstruction: Tensor,
    pub quantized: Quantized,
}

impl SpecVqGan {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        Ok(Self {
            encoder: Encoder::new(cfg, vb.pp("encoder"))?,
            decoder: Decoder::new(cfg, vb.pp("decoder"))?,
            quantize: VectorQuantizer::new(cfg.n_embed, cfg.embed_dim, cfg.beta, cfg.ema, cfg.ema_decay, vb.pp("quantize"))?,
            quant_conv: conv(cfg.z_channels, cfg.embed_dim, 1, 1, 0, vb.pp("quant_conv"))?,
            post_quant_conv: conv(cfg.embed_dim, cfg.z_channels, 1, 1, 0, vb.pp("post_quant_conv"))?,
            config: cfg.clone(),
        })
    }

    /// Pads the time axis of a (B, 1, n_mels, T) image up to a multiple of 16 with −1 (the
    /// normalised silence floor); returns the padded image and the original T.
    pub fn pad_time(&self, x: &Tensor) -> Result<(Tensor, usize)> {
        let (b, c, h, t) = x.dims4()?;
        if h != self.config.n_mels {
            candle_core::bail!("mel has {h} bands, the tokenizer expects {}", self.config.n_mels);
        }
        let f = self.config.factor();
        let padded = t.div_ceil(f) * f;
        if padded == t {
            return Ok((x.clone(), t));
        }
        let pad = Tensor::full(-1f32, (b, c, h, padded - t), x.device())?.to_dtype(x.dtype())?;
        Ok((Tensor::cat(&[x, &pad], 3)?, t))
    }

    /// Continuous latents before quantisation, (B, embed_dim, rows, cols).
    pub fn encode_latent(&self, x: &Tensor) -> Result<Tensor> {
        self.quant_conv.forward(&self.encoder.forward(x)?)
    }

    /// Normalised mels (B, n_mels, T) in [−1, 1] → token grid (B, rows, cols) of u32, row 0 the
    /// lowest mel band, column = time (SPEC.md §2.2 order). T is padded to a multiple of 16.
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor> {
        let (x, _) = self.pad_time(&mel.unsqueeze(1)?)?;
        let z = self.encode_latent(&x)?;
        self.quantize.indices(&z)
    }

    /// Token grid (B, rows, cols) → normalised mels (B, n_mels, cols·16).
    pub fn decode(&self, tokens: &Tensor) -> Result<Tensor> {
        let zq = self.quantize.lookup(tokens)?;
        self.decoder.forward(&self.post_quant_conv.forward(&zq)?)?.squeeze(1)
    }

    /// Training pass on (B, 1, n_mels, T) images with T a multiple of 16: reconstruction and
    /// the quantiser's loss and statistics.
    pub fn forward_train(&self, x: &Tensor) -> Result<Forward> {
        let z = self.encode_latent(x)?;
        let q = self.quantize.forward_train(&z)?;
        let reconstruction = self.decoder.forward(&self.post_quant_conv.forward(&q.zq)?)?;
        Ok(Forward { reconstruction, quantized: q })
    }

    /// Training pass that reaches only the decoder (and `post_quant_conv`): the encoder and
    /// codebook run without gradient, so the codes of every clip stay what they were and a
    /// generator trained on them stays valid (decoder fine-tuning, e.g. adversarial; SPEC.md §2.3).
    pub fn forward_decoder_train(&self, x: &Tensor) -> Result<Forward> {
        let z = self.encode_latent(x)?.detach();
        let mut q = self.quantize.forward_train(&z)?;
        q.zq = q.zq.detach();
        let reconstruction = self.decoder.forward(&self.post_quant_conv.forward(&q.zq)?)?;
        Ok(Forward { reconstruction, quantized: q })
    }

    /// Number of parameters of a model built with this configuration.
    pub fn parameter_count(cfg: &Config) -> Result<usize> {
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &candle_core::Device::Cpu);
        Self::new(cfg, vb)?;
        let n = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        Ok(n)
    }
}
