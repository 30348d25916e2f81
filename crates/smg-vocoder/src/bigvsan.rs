//! BigVSAN's generator (SPEC.md §4.2; sony/bigvsan `models.py` `BigVSAN`, which is BigVGAN's
//! generator): HiFi-GAN's upsampling topology with no leaky ReLU, ResBlocks replaced by AMP
//! blocks whose every convolution is preceded by an anti-aliased Snake (`Activation1d`: ×2
//! Kaiser-sinc upsampling, Snake with a per-channel α, Kaiser-sinc low-pass ×2 downsampling),
//! and an anti-aliased Snake before `conv_post`. Tensor names are the official ones
//! (`conv_pre`, `ups.N.0`, `resblocks.N.convs1.M`, `resblocks.N.activations.A.act.alpha`,
//! `activation_post.act.alpha`, `conv_post`), weight norm folded at load, so the official
//! checkpoint converted to safetensors (`scripts/torch2safetensors.py`) loads unchanged.
//!
//! Two forward passes give the same values: [`BigVsan::forward_plain`] on candle ops
//! (differentiable, any device: the training path) and [`BigVsan::forward_fast`] on the CPU
//! kernels (`smg_kernels::{conv1d, snake}`), which `forward` takes at inference on CPU.

use crate::hifigan::{per_item, Conv, Up};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use smg_kernels::snake;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub num_mels: usize,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub upsample_initial_channel: usize,
    /// "1" (AMPBlock1, the default) or "2".
    pub resblock: String,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    /// "snake" or "snakebeta".
    pub activation: String,
    /// α (and β) stored as logarithms.
    pub snake_logscale: bool,
}

impl Config {
    /// `bigvsan_22khz_80band.json`: rates 4-4-2-2-2-2, 1536 initial channels (≈112M parameters).
    pub fn paper() -> Self {
        Self {
            num_mels: 80,
            upsample_rates: vec![4, 4, 2, 2, 2, 2],
            upsample_kernel_sizes: vec![8, 8, 4, 4, 4, 4],
            upsample_initial_channel: 1536,
            resblock: "1".into(),
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            activation: "snake".into(),
            snake_logscale: false,
        }
    }

    /// `bigvsan_base_22khz_80band.json`: HiFi-GAN V1's topology with AMP blocks (≈14M).
    pub fn base() -> Self {
        Self { upsample_rates: vec![8, 8, 2, 2], upsample_kernel_sizes: vec![16, 16, 4, 4], upsample_initial_channel: 512, ..Self::paper() }
    }

    /// A few hundred thousand parameters, for tests and training from scratch on 2 cores.
    pub fn tiny() -> Self {
        Self {
            upsample_rates: vec![8, 8, 4],
            upsample_kernel_sizes: vec![16, 16, 8],
            upsample_initial_channel: 64,
            resblock_kernel_sizes: vec![3, 7],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 2],
            ..Self::paper()
        }
    }

    /// Samples per mel frame (256 for every configuration here).
    pub fn hop(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}

/// `Activation1d(Snake | SnakeBeta)` with its per-channel parameters.
#[derive(Debug, Clone)]
struct Act {
    alpha: Tensor,
    beta: Option<Tensor>,
    logscale: bool,
}

impl Act {
    fn new(ch: usize, cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let init = candle_nn::Init::Const(if cfg.snake_logscale { 0.0 } else { 1.0 });
        let alpha = vb.get_with_hints(ch, "act.alpha", init)?;
        let beta = match cfg.activation.as_str() {
            "snake" => None,
            "snakebeta" => Some(vb.get_with_hints(ch, "act.beta", init)?),
            other => candle_core::bail!("BigVSAN activation must be snake or snakebeta, not {other:?}"),
        };
        Ok(Self { alpha, beta, logscale: cfg.snake_logscale })
    }

    fn params(&self) -> Result<(Tensor, Tensor)> {
        let a = if self.logscale { self.alpha.exp()? } else { self.alpha.clone() };
        let b = match &self.beta {
            Some(b) if self.logscale => b.exp()?,
            Some(b) => b.clone(),
            None => a.clone(),
        };
        Ok((a, b))
    }

    /// Candle ops (differentiable): the two 12-tap filters as sums of shifted slices, split
    /// into their even and odd phases.
    fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        let (up, down) = snake::default_filters();
        let xp = x.pad_with_same(D::Minus1, 5, 5)?;
        let phase = |taps: &[usize], offset: usize| -> Result<Tensor> {
            let mut acc: Option<Tensor> = None;
            for (q, &j) in taps.iter().enumerate() {
                let term = (xp.narrow(2, offset - q, t)? * (2.0 * up[j] as f64))?;
                acc = Some(match acc {
                    Some(a) => (a + term)?,
                    None => term,
                });
            }
            Ok(acc.expect("six taps"))
        };
        let even = phase(&[1, 3, 5, 7, 9, 11], 7)?;
        let odd = phase(&[0, 2, 4, 6, 8, 10], 8)?;
        let z = Tensor::stack(&[even, odd], 3)?.reshape((b, c, 2 * t))?;
        let (alpha, beta) = self.params()?;
        let (alpha, beta) = (alpha.reshape((1, c, 1))?, beta.reshape((1, c, 1))?);
        let z = (&z + z.broadcast_mul(&alpha)?.sin()?.sqr()?.broadcast_div(&(beta + 1e-9)?)?)?;
        let zp = z.pad_with_same(D::Minus1, 5, 7)?.reshape((b, c, t + 6, 2))?;
        let (ze, zo) = (zp.narrow(3, 0, 1)?.squeeze(3)?, zp.narrow(3, 1, 1)?.squeeze(3)?);
        let mut y: Option<Tensor> = None;
        for q in 0..6 {
            let term = ((ze.narrow(2, q, t)? * down[2 * q] as f64)? + (zo.narrow(2, q, t)? * down[2 * q + 1] as f64)?)?;
            y = Some(match y {
                Some(a) => (a + term)?,
                None => term,
            });
        }
        Ok(y.expect("six taps"))
    }

    fn forward_fast(&self, x: &[f32], c: usize, t: usize) -> Result<Vec<f32>> {
        let (a, b) = self.params()?;
        let (up, down) = snake::default_filters();
        Ok(snake::anti_aliased_snake(x, c, t, &a.to_vec1::<f32>()?, &b.to_vec1::<f32>()?, &up, &down))
    }
}

/// AMPBlock1 (pairs of convolutions, the second undilated) or AMPBlock2 (single convolutions).
#[derive(Debug, Clone)]
struct AmpBlock {
    convs1: Vec<Conv>,
    /// Empty for AMPBlock2.
    convs2: Vec<Conv>,
    acts: Vec<Act>,
}

impl AmpBlock {
    fn new(cfg: &Config, ch: usize, k: usize, dilations: &[usize], vb: VarBuilder) -> Result<Self> {
        let one = cfg.resblock == "1";
        let name1 = if one { "convs1" } else { "convs" };
        let convs1: Vec<Conv> =
            dilations.iter().enumerate().map(|(i, &d)| Conv::new(ch, ch, k, d, vb.pp(format!("{name1}.{i}")))).collect::<Result<_>>()?;
        let convs2: Vec<Conv> = if one {
            (0..dilations.len()).map(|i| Conv::new(ch, ch, k, 1, vb.pp(format!("convs2.{i}")))).collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        let acts = (0..convs1.len() + convs2.len()).map(|i| Act::new(ch, cfg, vb.pp(format!("activations.{i}")))).collect::<Result<_>>()?;
        Ok(Self { convs1, convs2, acts })
    }

    /// Activation index of the first and second convolution of layer `i` (AMPBlock1 interleaves
    /// them: `activations[::2]` before `convs1`, `activations[1::2]` before `convs2`).
    fn act_index(&self, i: usize) -> (usize, usize) {
        if self.convs2.is_empty() {
            (i, i)
        } else {
            (2 * i, 2 * i + 1)
        }
    }

    fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, c1) in self.convs1.iter().enumerate() {
            let (a1, a2) = self.act_index(i);
            let mut xt = c1.forward_plain(&self.acts[a1].forward_plain(&x)?)?;
            if let Some(c2) = self.convs2.get(i) {
                xt = c2.forward_plain(&self.acts[a2].forward_plain(&xt)?)?;
            }
            x = (xt + x)?;
        }
        Ok(x)
    }

    fn forward_fast(&self, x: &[f32], c: usize, t: usize) -> Result<Vec<f32>> {
        let mut x = x.to_vec();
        for (i, c1) in self.convs1.iter().enumerate() {
            let (a1, a2) = self.act_index(i);
            let h = self.acts[a1].forward_fast(&x, c, t)?;
            x = match self.convs2.get(i) {
                Some(c2) => {
                    let xt = c1.kernel()?.forward(&h, t, None, None);
                    let h2 = self.acts[a2].forward_fast(&xt, c, t)?;
                    c2.kernel()?.forward(&h2, t, None, Some(&x))
                }
                None => c1.kernel()?.forward(&h, t, None, Some(&x)),
            };
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub struct BigVsan {
    pub config: Config,
    conv_pre: Conv,
    ups: Vec<Up>,
    resblocks: Vec<AmpBlock>,
    activation_post: Act,
    conv_post: Conv,
}

impl BigVsan {
    /// Reads the generator under `vb` (official names; weight-normed or plain weights).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if cfg.resblock_kernel_sizes.len() != cfg.resblock_dilation_sizes.len()
            || cfg.upsample_rates.len() != cfg.upsample_kernel_sizes.len()
        {
            candle_core::bail!("BigVSAN config: kernel and dilation / rate lists differ in length");
        }
        let c0 = cfg.upsample_initial_channel;
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        for (i, (&u, &k)) in cfg.upsample_rates.iter().zip(&cfg.upsample_kernel_sizes).enumerate() {
            let (cin, cout) = (c0 >> i, c0 >> (i + 1));
            ups.push(Up::new(cin, cout, k, u, vb.pp(format!("ups.{i}.0")))?);
            for (j, (&rk, d)) in cfg.resblock_kernel_sizes.iter().zip(&cfg.resblock_dilation_sizes).enumerate() {
                let n = i * cfg.resblock_kernel_sizes.len() + j;
                resblocks.push(AmpBlock::new(cfg, cout, rk, d, vb.pp(format!("resblocks.{n}")))?);
            }
        }
        let last = c0 >> cfg.upsample_rates.len();
        Ok(Self {
            config: cfg.clone(),
            conv_pre: Conv::new(cfg.num_mels, c0, 7, 1, vb.pp("conv_pre"))?,
            ups,
            resblocks,
            activation_post: Act::new(last, cfg, vb.pp("activation_post"))?,
            conv_post: Conv::new(last, 1, 7, 1, vb.pp("conv_post"))?,
        })
    }

    /// Loads a converted checkpoint (`.safetensors`; the generator at the top level or under
    /// `generator.`), naming a missing file or tensor.
    pub fn load(path: &std::path::Path, cfg: &Config, device: &candle_core::Device) -> Result<Self> {
        if !path.is_file() {
            candle_core::bail!(
                "{}: no such BigVSAN checkpoint (convert the official generator with scripts/torch2safetensors.py)",
                path.display()
            );
        }
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], candle_core::DType::F32, device)? };
        let vb = if vb.contains_tensor("generator.conv_pre.bias") { vb.pp("generator") } else { vb };
        Self::new(cfg, vb)
    }

    /// Candle ops, differentiable, any device.
    pub fn forward_plain(&self, mel: &Tensor) -> Result<Tensor> {
        let nk = self.config.resblock_kernel_sizes.len();
        let mut x = self.conv_pre.forward_plain(mel)?;
        for (i, up) in self.ups.iter().enumerate() {
            x = up.forward_plain(&x)?;
            let mut xs = self.resblocks[i * nk].forward_plain(&x)?;
            for j in 1..nk {
                xs = (xs + self.resblocks[i * nk + j].forward_plain(&x)?)?;
            }
            x = (xs / nk as f64)?;
        }
        let x = self.conv_post.forward_plain(&self.activation_post.forward_plain(&x)?)?.tanh()?;
        x.squeeze(D::Minus2)
    }

    /// The CPU inference kernels (same values as [`BigVsan::forward_plain`] to ~1e-5).
    pub fn forward_fast(&self, mel: &Tensor) -> Result<Tensor> {
        let nk = self.config.resblock_kernel_sizes.len();
        per_item(mel, self.config.num_mels, "BigVSAN", |item, t| {
            let pre = self.conv_pre.kernel()?;
            let mut x = pre.forward(item, t, None, None);
            let (mut ch, mut len) = (pre.cout, pre.out_len(t));
            for (i, up) in self.ups.iter().enumerate() {
                let u = up.kernel()?;
                x = u.forward(&x, len, None);
                (ch, len) = (u.cout, u.out_len(len));
                let mut sum = self.resblocks[i * nk].forward_fast(&x, ch, len)?;
                for rb in &self.resblocks[i * nk + 1..(i + 1) * nk] {
                    sum.iter_mut().zip(rb.forward_fast(&x, ch, len)?).for_each(|(s, h)| *s += h);
                }
                let inv = 1.0 / nk as f32;
                x = sum.into_iter().map(|v| v * inv).collect();
            }
            let h = self.activation_post.forward_fast(&x, ch, len)?;
            Ok(self.conv_post.kernel()?.forward(&h, len, None, None).into_iter().map(f32::tanh).collect())
        })
    }

    /// Waveform of one natural-log mel `(80, T)`.
    pub fn synthesize(&self, log_mel: &Tensor) -> Result<Vec<f32>> {
        self.forward(&log_mel.unsqueeze(0)?)?.squeeze(0)?.to_vec1()
    }
}

impl Module for BigVsan {
    /// `(B, 80, T)` natural-log mel → `(B, T·hop)`; the CPU kernels at inference on CPU.
    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        if smg_core::fast::eligible(mel) && !self.conv_pre.w.track_op() {
            return self.forward_fast(mel);
        }
        self.forward_plain(mel)
    }
}
