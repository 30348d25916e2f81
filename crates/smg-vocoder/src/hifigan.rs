//! HiFi-GAN generator (SPEC.md §4.1; jik876/hifi-gan `Generator`, `ResBlock1`/`ResBlock2`) in the
//! house style: one `Config` with the V1/V2/V3 constructors, `new(cfg, vb)` reading the original
//! tensor names (`conv_pre`, `ups.N`, `resblocks.N.convs1.M`, `conv_post`) with weight norm
//! (`weight_g`, `weight_v`) folded at load, or plain `weight` tensors, and `impl Module`.
//! Input: natural-log mel `(B, 80, T)` (the project's mel, SPEC.md §1); output `(B, T·256)`.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

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
    /// Samples per mel frame (product of the upsampling rates; 256 for all three).
    pub fn hop(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}

/// A weight-normed (or plain) weight: `g · v / ‖v‖` with the norm over all axes but the first.
fn weight(vb: &VarBuilder, shape: (usize, usize, usize)) -> Result<Tensor> {
    if vb.contains_tensor("weight_v") {
        let v = vb.get(shape, "weight_v")?;
        let g = vb.get((shape.0, 1, 1), "weight_g")?;
        let norm = v.sqr()?.sum_keepdim(2)?.sum_keepdim(1)?.sqrt()?;
        v.broadcast_mul(&g.broadcast_div(&norm)?)
    } else {
        vb.get(shape, "weight")
    }
}

#[derive(Debug, Clone)]
struct Conv {
    w: Tensor,
    b: Tensor,
    padding: usize,
    dilation: usize,
}

impl Conv {
    fn new(cin: usize, cout: usize, k: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { w: weight(&vb, (cout, cin, k))?, b: vb.get(cout, "bias")?, padding: (k * dilation - dilation) / 2, dilation })
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv1d(&self.w, self.padding, 1, self.dilation, 1)?.broadcast_add(&self.b.reshape((1, (), 1))?)
    }
}

fn lrelu(x: &Tensor, slope: f64) -> Result<Tensor> {
    let neg = (x.minimum(0f32)? * slope)?;
    x.maximum(0f32)? + neg
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
        let convs1 = dilations.iter().enumerate().map(|(i, &d)| Conv::new(ch, ch, k, d, vb.pp(format!("{name1}.{i}")))).collect::<Result<_>>()?;
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
struct Up {
    w: Tensor,
    b: Tensor,
    stride: usize,
    padding: usize,
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
            let vbu = vb.pp(format!("ups.{i}"));
            ups.push(Up { w: weight(&vbu, (cin, cout, k))?, b: vbu.get(cout, "bias")?, stride: u, padding: (k - u) / 2 });
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
    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let nk = self.config.resblock_kernel_sizes.len();
        let mut x = self.conv_pre.forward(mel)?;
        for (i, up) in self.ups.iter().enumerate() {
            x = lrelu(&x, 0.1)?;
            x = x.conv_transpose1d(&up.w, up.padding, 0, up.stride, 1, 1)?.broadcast_add(&up.b.reshape((1, (), 1))?)?;
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
    /// The converted official checkpoint (e.g. `<data>/weights/hifigan_universal.safetensors`,
    /// generator under `generator.`), V1 configuration.
    pub fn load_v1(path: &std::path::Path, device: &candle_core::Device) -> Result<Self> {
        if !path.is_file() {
            candle_core::bail!("{}: missing (fetched by `smg data fetch`)", path.display());
        }
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], candle_core::DType::F32, device)? };
        let vb = if vb.contains_tensor("generator.conv_pre.bias") { vb.pp("generator") } else { vb };
        Self::new(&Config::v1(), vb)
    }

    /// Waveform of one natural-log mel `(80, T)`.
    pub fn synthesize(&self, log_mel: &Tensor) -> Result<Vec<f32>> {
        self.forward(&log_mel.unsqueeze(0)?)?.squeeze(0)?.to_vec1()
    }
}
