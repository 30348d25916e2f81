//! HiFi-GAN generator (SPEC.md §4.1; jik876/hifi-gan `Generator`, `ResBlock1`/`ResBlock2`) in the
//! house style: one `Config` with the V1/V2/V3 constructors, `new(cfg, vb)` reading the original
//! tensor names (`conv_pre`, `ups.N`, `resblocks.N.convs1.M`, `conv_post`) with weight norm
//! (`weight_g`, `weight_v`) folded at load, or plain `weight` tensors, and `impl Module`.
//! Input: natural-log mel `(B, 80, T)` (the project's mel, SPEC.md §1); output `(B, T·256)`.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use smg_kernels::conv1d as kernels;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub num_mels: usize,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub upsample_initial_channel: usize,
    /// "1" (V1, V2) or "2" (V3).
    pub resblock: String,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
}

impl Config {
    /// V1 (13.9M parameters): the universal checkpoint's configuration.
    pub fn v1() -> Self {
        Self {
            num_mels: 80,
            upsample_rates: vec![8, 8, 2, 2],
            upsample_kernel_sizes: vec![16, 16, 4, 4],
            upsample_initial_channel: 512,
            resblock: "1".into(),
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
        }
    }
    /// V2: V1 with 128 initial channels.
    pub fn v2() -> Self {
        Self { upsample_initial_channel: 128, ..Self::v1() }
    }
    /// V3: rates 8-8-4, ResBlock2 with dilations (1, 2).
    pub fn v3() -> Self {
        Self {
            upsample_rates: vec![8, 8, 4],
            upsample_kernel_sizes: vec![16, 16, 8],
            upsample_initial_channel: 256,
            resblock: "2".into(),
            resblock_kernel_sizes: vec![3, 5, 7],
            resblock_dilation_sizes: vec![vec![1, 2], vec![2, 6], vec![3, 12]],
            ..Self::v1()
        }
    }
    /// A few-thousand-parameter V1 topology (rates 8-8-4, 32 channels, two ResBlock1 kernels)
    /// for tests and smoke runs.
    pub fn tiny() -> Self {
        Self {
            upsample_rates: vec![8, 8, 4],
            upsample_kernel_sizes: vec![16, 16, 8],
            upsample_initial_channel: 32,
            resblock_kernel_sizes: vec![3, 7],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 2],
            ..Self::v1()
        }
    }
    /// Samples per mel frame (product of the upsampling rates; 256 for all three).
    pub fn hop(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}

/// Runs `f(item, frames)` on the f32 values of each `(num_mels, T)` item of a `(B, num_mels, T)`
/// CPU mel and stacks the waveforms into `(B, samples)`: the driver of the generators' fast paths.
pub(crate) fn per_item(mel: &Tensor, num_mels: usize, name: &str, f: impl Fn(&[f32], usize) -> Result<Vec<f32>>) -> Result<Tensor> {
    let (b, c, t) = mel.dims3()?;
    if c != num_mels {
        candle_core::bail!("{name} expects {num_mels} mel bands, got {c}");
    }
    let mels = smg_core::fast::with_f32(mel, |v| v.to_vec())?;
    let mut out = Vec::new();
    for item in mels.chunks(c * t.max(1)).take(b) {
        out.extend(f(item, t)?);
    }
    let samples = out.len() / b.max(1);
    Tensor::from_vec(out, (b, samples), mel.device())
}

/// A weight-normed (or plain) weight: `g · v / ‖v‖` with the norm over all axes but the first.
pub(crate) fn weight(vb: &VarBuilder, shape: (usize, usize, usize)) -> Result<Tensor> {
    if vb.contains_tensor("weight_v") {
        let v = vb.get(shape, "weight_v")?;
        let g = vb.get((shape.0, 1, 1), "weight_g")?;
        let norm = v.sqr()?.sum_keepdim(2)?.sum_keepdim(1)?.sqrt()?;
        v.broadcast_mul(&g.broadcast_div(&norm)?)
    } else {
        // HiFi-GAN's `init_weights`: N(0, 0.01) for a model trained from scratch.
        vb.get_with_hints(shape, "weight", candle_nn::Init::Randn { mean: 0.0, stdev: 0.01 })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Conv {
    pub(crate) w: Tensor,
    pub(crate) b: Tensor,
    padding: usize,
    dilation: usize,
    /// The same layer prepared for the CPU inference kernel, on first use.
    fast: Arc<OnceLock<kernels::Conv1d>>,
}

impl Conv {
    pub(crate) fn new(cin: usize, cout: usize, k: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            w: weight(&vb, (cout, cin, k))?,
            b: vb.get(cout, "bias")?,
            padding: (k * dilation - dilation) / 2,
            dilation,
            fast: Default::default(),
        })
    }

    pub(crate) fn kernel(&self) -> Result<&kernels::Conv1d> {
        if let Some(k) = self.fast.get() {
            return Ok(k);
        }
        let (cout, cin, k) = self.w.dims3()?;
        let c = kernels::Conv1d::new(self.w.flatten_all()?.to_vec1()?, self.b.to_vec1()?, cin, cout, k, self.dilation, self.padding);
        Ok(self.fast.get_or_init(|| c))
    }
}

impl Conv {
    /// The candle op (differentiable).
    pub(crate) fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)
    }
}

impl Module for Conv {
    /// candle's `conv1d` at inference; under autograd the im2col + gemm convolution of
    /// `smg_core::conv1d`, whose backward pass is fast on CPU (vocoder training).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.track_op() || self.w.track_op() {
            return smg_core::conv1d::conv1d(x, &self.w, Some(&self.b), 1, self.padding, self.dilation, 1);
        }
        x.conv1d(&self.w, self.padding, 1, self.dilation, 1)?.broadcast_add(&self.b.reshape((1, (), 1))?)
    }
}

fn lrelu(x: &Tensor, slope: f64) -> Result<Tensor> {
    smg_core::train_ops::leaky_relu(x, slope)
}

#[derive(Debug, Clone)]
struct ResBlock {
    convs1: Vec<Conv>,
    /// Empty for ResBlock2.
    convs2: Vec<Conv>,
}

impl ResBlock {
    fn new(kind: &str, ch: usize, k: usize, dilations: &[usize], vb: VarBuilder) -> Result<Self> {
        let name1 = if kind == "1" { "convs1" } else { "convs" };
        let convs1 =
            dilations.iter().enumerate().map(|(i, &d)| Conv::new(ch, ch, k, d, vb.pp(format!("{name1}.{i}")))).collect::<Result<_>>()?;
        let convs2 = if kind == "1" {
            (0..dilations.len()).map(|i| Conv::new(ch, ch, k, 1, vb.pp(format!("convs2.{i}")))).collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Self { convs1, convs2 })
    }
}

impl Module for ResBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, c1) in self.convs1.iter().enumerate() {
            let mut xt = c1.forward(&lrelu(&x, 0.1)?)?;
            if let Some(c2) = self.convs2.get(i) {
                xt = c2.forward(&lrelu(&xt, 0.1)?)?;
            }
            x = (xt + x)?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Up {
    pub(crate) w: Tensor,
    pub(crate) b: Tensor,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    fast: Arc<OnceLock<kernels::ConvTranspose1d>>,
}

impl Up {
    /// `ConvTranspose1d(cin → cout, k, stride u, padding (k − u)/2)`, weight-normed or plain.
    pub(crate) fn new(cin: usize, cout: usize, k: usize, u: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Up { w: weight(&vb, (cin, cout, k))?, b: vb.get(cout, "bias")?, stride: u, padding: (k - u) / 2, fast: Default::default() })
    }

    /// Candle ops. candle's `conv_transpose1d` has no backward pass, so under autograd the same
    /// values come from a `conv1d` over the input with `stride − 1` zeros between samples and the
    /// kernel flipped and transposed (padding `k − 1 − p`).
    pub(crate) fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        let b = self.b.reshape((1, (), 1))?;
        let (_, _, k) = self.w.dims3()?;
        if !(x.track_op() || self.w.track_op()) || k < self.padding + 1 {
            return x.conv_transpose1d(&self.w, self.padding, 0, self.stride, 1, 1)?.broadcast_add(&b);
        }
        let (bs, c, t) = x.dims3()?;
        let s = self.stride;
        let stuffed = if s == 1 {
            x.clone()
        } else {
            let z = Tensor::zeros((bs, c, t, s - 1), x.dtype(), x.device())?;
            Tensor::cat(&[&x.unsqueeze(3)?, &z], 3)?.reshape((bs, c, t * s))?.narrow(2, 0, (t - 1) * s + 1)?
        };
        let w = self.w.transpose(0, 1)?.contiguous()?.flip(&[2])?.contiguous()?;
        smg_core::conv1d::conv1d(&stuffed, &w, Some(&self.b), 1, k - 1 - self.padding, 1, 1)
    }

    pub(crate) fn kernel(&self) -> Result<&kernels::ConvTranspose1d> {
        if let Some(k) = self.fast.get() {
            return Ok(k);
        }
        let (cin, cout, k) = self.w.dims3()?;
        let c = kernels::ConvTranspose1d::new(
            &self.w.flatten_all()?.to_vec1::<f32>()?,
            self.b.to_vec1()?,
            cin,
            cout,
            k,
            self.stride,
            self.padding,
        );
        Ok(self.fast.get_or_init(|| c))
    }
}

#[derive(Debug, Clone)]
pub struct HifiGan {
    pub config: Config,
    conv_pre: Conv,
    ups: Vec<Up>,
    resblocks: Vec<ResBlock>,
    conv_post: Conv,
}

impl HifiGan {
    /// Reads the generator under `vb` (the converted universal checkpoint keeps it under
    /// `generator.`: pass `vb.pp("generator")`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let c0 = cfg.upsample_initial_channel;
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        for (i, (&u, &k)) in cfg.upsample_rates.iter().zip(&cfg.upsample_kernel_sizes).enumerate() {
            let (cin, cout) = (c0 >> i, c0 >> (i + 1));
            ups.push(Up::new(cin, cout, k, u, vb.pp(format!("ups.{i}")))?);
            for (j, (&rk, d)) in cfg.resblock_kernel_sizes.iter().zip(&cfg.resblock_dilation_sizes).enumerate() {
                let n = i * cfg.resblock_kernel_sizes.len() + j;
                resblocks.push(ResBlock::new(&cfg.resblock, cout, rk, d, vb.pp(format!("resblocks.{n}")))?);
            }
        }
        let last = c0 >> cfg.upsample_rates.len();
        Ok(Self {
            config: cfg.clone(),
            conv_pre: Conv::new(cfg.num_mels, c0, 7, 1, vb.pp("conv_pre"))?,
            ups,
            resblocks,
            conv_post: Conv::new(last, 1, 7, 1, vb.pp("conv_post"))?,
        })
    }
}

impl Module for HifiGan {
    /// `(B, 80, T)` natural-log mel → `(B, T·hop)` waveform in [−1, 1].
    /// On CPU at inference this runs [`HifiGan::forward_fast`]; elsewhere (autograd, CUDA,
    /// `SMG_FAST=0`) [`HifiGan::forward_plain`].
    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        if smg_core::fast::eligible(mel) && !self.conv_pre.w.track_op() {
            return self.forward_fast(mel);
        }
        self.forward_plain(mel)
    }
}

impl HifiGan {
    /// The straightforward port on candle's `conv1d` / `conv_transpose1d` (differentiable, any
    /// device): the reference for the fast path and the baseline of `cargo bench --bench vocoder`.
    pub fn forward_plain(&self, mel: &Tensor) -> Result<Tensor> {
        let nk = self.config.resblock_kernel_sizes.len();
        let mut x = self.conv_pre.forward(mel)?;
        for (i, up) in self.ups.iter().enumerate() {
            x = lrelu(&x, 0.1)?;
            x = up.forward_plain(&x)?;
            let mut xs = self.resblocks[i * nk].forward(&x)?;
            for j in 1..nk {
                xs = (xs + self.resblocks[i * nk + j].forward(&x)?)?;
            }
            x = (xs / nk as f64)?;
        }
        let x = self.conv_post.forward(&lrelu(&x, 0.01)?)?.tanh()?;
        x.squeeze(D::Minus2)
    }
}

impl HifiGan {
    /// The forward pass on the CPU inference kernels (`smg_kernels::conv1d`): the same layers
    /// with each leaky ReLU fused into the convolution after it and each ResBlock sum into the
    /// convolution before it. Used by `forward` at inference on CPU.
    pub fn forward_fast(&self, mel: &Tensor) -> Result<Tensor> {
        let nk = self.config.resblock_kernel_sizes.len();
        // The ResBlock convolutions (most of the work) take bf16 products on AMX when the
        // vocoder's precision is bf16 (`SMG_VOCODER_PRECISION=bf16`).
        let prec = smg_core::fast::vocoder_precision();
        per_item(mel, self.config.num_mels, "HiFi-GAN", |item, t| {
            let pre = self.conv_pre.kernel()?;
            let mut x = pre.forward(item, t, None, None);
            let mut len = pre.out_len(t);
            for (i, up) in self.ups.iter().enumerate() {
                let u = up.kernel()?;
                x = u.forward(&x, len, Some(0.1));
                len = u.out_len(len);
                let mut sum: Option<Vec<f32>> = None;
                for rb in &self.resblocks[i * nk..(i + 1) * nk] {
                    let mut h = x.clone();
                    for (j, c1) in rb.convs1.iter().enumerate() {
                        h = match rb.convs2.get(j) {
                            Some(c2) => {
                                let xt = c1.kernel()?.forward_at(&h, len, Some(0.1), None, prec);
                                c2.kernel()?.forward_at(&xt, len, Some(0.1), Some(&h), prec)
                            }
                            None => c1.kernel()?.forward_at(&h, len, Some(0.1), Some(&h), prec),
                        };
                    }
                    match sum.as_mut() {
                        Some(s) => s.iter_mut().zip(&h).for_each(|(s, h)| *s += h),
                        None => sum = Some(h),
                    }
                }
                x = sum.unwrap_or(x);
                let inv = 1.0 / nk as f32;
                x.iter_mut().for_each(|v| *v *= inv);
            }
            let post = self.conv_post.kernel()?;
            let mut y = post.forward(&x, len, Some(0.01), None);
            y.iter_mut().for_each(|v| *v = v.tanh());
            Ok(y)
        })
    }

    /// The converted official checkpoint (e.g. `<data>/weights/hifigan_universal.safetensors`,
    /// generator under `generator.`), V1 configuration.
    pub fn load_v1(path: &std::path::Path, device: &candle_core::Device) -> Result<Self> {
        Self::load(path, &Config::v1(), device)
    }

    /// A converted or trained checkpoint of configuration `cfg` (generator at the top level or
    /// under `generator.`; weight-normed or plain weights).
    pub fn load(path: &std::path::Path, cfg: &Config, device: &candle_core::Device) -> Result<Self> {
        if !path.is_file() {
            candle_core::bail!("{}: missing (fetched by `smg data fetch`)", path.display());
        }
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], candle_core::DType::F32, device)? };
        let vb = if vb.contains_tensor("generator.conv_pre.bias") { vb.pp("generator") } else { vb };
        Self::new(cfg, vb)
    }

    /// Waveform of one natural-log mel `(80, T)`.
    pub fn synthesize(&self, log_mel: &Tensor) -> Result<Vec<f32>> {
        self.forward(&log_mel.unsqueeze(0)?)?.squeeze(0)?.to_vec1()
    }
}
