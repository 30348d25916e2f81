//! aiSFX (`aisfx==0.1.2`, Ma et al., ISMIR 2022): a 4-block VGG-style CNN trained across nine
//! sound-effects libraries, used here as the embedding network of FAD-aisfx (ASSETS.md).
//! Tensor names are those of the package's `CrossNet` checkpoint (`embedding_net.conv_blockN.
//! {conv1,conv2,bn1,bn2}`); the classification heads (`fc.*`) are not needed and not read.
//!
//! Preprocessing reproduces the package's librosa path (`spectrogram_librosa.py` + `inference.py`):
//! 44.1 kHz, peak-normalised, STFT 2048 / hop 1024 with a periodic Hann window on a zero-padded
//! centred signal, power spectrum, 96 HTK mel bands 0–22050 Hz each normalised to unit sum,
//! `log10(1e4·x + 1)`, divided by 9.457798957824707 (the paper's "original" min–max), cut into
//! blocks of 100 frames (2.3 s) with hop 50, dropping a partial last block. The network takes
//! `(blocks, frames, bands)`; the package's librosa path hands it `(bands, frames)` untransposed,
//! which is a bug (its Essentia path, the one of the paper, is time-major), so we feed time-major.

use crate::{check_clip, invalid, Embedder, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use ndarray::Array2;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use smg_core::conv::Conv2d;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop: usize,
    pub n_mels: usize,
    /// Frames per embedding block and the hop between blocks.
    pub block: usize,
    pub block_hop: usize,
    /// The maximum of the min–max spectrogram normalisation (the minimum is 0).
    pub norm_max: f32,
    /// Channels of the first block; they double in each of the next three.
    pub width: usize,
}

impl Config {
    /// The released model ("X-Sequential-CE").
    pub fn official() -> Self {
        Self { sample_rate: 44100, n_fft: 2048, hop: 1024, n_mels: 96, block: 100, block_hop: 50, norm_max: 9.457_799, width: 64 }
    }

    /// Embedding width: 8 × the first block's channels (512 for the released model).
    pub fn dim(&self) -> usize {
        self.width * 8
    }
}

/// HTK-scale triangular filters `(n_mels, n_fft/2 + 1)`, triangles in Hz between mel-spaced
/// edges, as `librosa.filters.mel(htk=True, norm=None)`.
pub fn htk_mel_filterbank(sr: u32, n_fft: usize, n_mels: usize, f_min: f64, f_max: f64) -> Array2<f32> {
    let hz_to_mel = |f: f64| 2595.0 * (1.0 + f / 700.0).log10();
    let mel_to_hz = |m: f64| 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    let n_freq = n_fft / 2 + 1;
    let (lo, hi) = (hz_to_mel(f_min), hz_to_mel(f_max));
    let edges: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut w = Array2::<f32>::zeros((n_mels, n_freq));
    for m in 0..n_mels {
        let (a, c, b) = (edges[m], edges[m + 1], edges[m + 2]);
        for k in 0..n_freq {
            let f = k as f64 * sr as f64 / n_fft as f64;
            w[[m, k]] = ((f - a) / (c - a)).min((b - f) / (b - c)).max(0.0) as f32;
        }
    }
    w
}

/// The aiSFX spectrogram front end (see the module docs).
#[derive(Clone)]
pub struct FrontEnd {
    pub config: Config,
    window: Vec<f32>,
    filters: Array2<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl FrontEnd {
    pub fn new(config: &Config) -> Self {
        let mut filters = htk_mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, 0.0, config.sample_rate as f64 / 2.0);
        for mut row in filters.rows_mut() {
            let s: f32 = row.iter().map(|v| v.abs()).sum();
            if s > f32::MIN_POSITIVE {
                row.mapv_inplace(|v| v / s);
            }
        }
        let window =
            (0..config.n_fft).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / config.n_fft as f64).cos()) as f32).collect();
        Self { config: config.clone(), window, filters, fft: RealFftPlanner::<f32>::new().plan_fft_forward(config.n_fft) }
    }

    /// Normalised log-mel `(frames, n_mels)` of mono audio already at the model's sample rate.
    pub fn spectrogram(&self, samples: &[f32]) -> Array2<f32> {
        let c = &self.config;
        let peak = samples.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if peak == 0.0 { 1.0 } else { 1.0 / peak };
        let pad = c.n_fft / 2;
        let mut x = vec![0f32; samples.len() + 2 * pad];
        for (d, s) in x[pad..].iter_mut().zip(samples) {
            *d = s * scale;
        }
        let frames = 1 + (x.len() - c.n_fft) / c.hop;
        let mut out = Array2::<f32>::zeros((frames, c.n_mels));
        let (mut buf, mut spec) = (self.fft.make_input_vec(), self.fft.make_output_vec());
        let mut power = vec![0f32; spec.len()];
        for t in 0..frames {
            let s = t * c.hop;
            for ((b, v), w) in buf.iter_mut().zip(&x[s..s + c.n_fft]).zip(&self.window) {
                *b = v * w;
            }
            self.fft.process(&mut buf, &mut spec).expect("planner sizes");
            for (p, z) in power.iter_mut().zip(&spec) {
                *p = z.norm_sqr();
            }
            for (m, row) in self.filters.rows().into_iter().enumerate() {
                let e: f32 = row.iter().zip(&power).map(|(a, b)| a * b).sum();
                out[[t, m]] = (e * 1e4 + 1.0).log10() / c.norm_max;
            }
        }
        out
    }

    /// Start frames of the blocks of a `frames`-long spectrogram: `floor((T − block)/hop) + 1`
    /// blocks, or one zero-padded block when `T < block` (the package's `blocking`).
    pub fn block_starts(&self, frames: usize) -> Vec<usize> {
        let c = &self.config;
        let n = if frames < c.block { 1 } else { (frames - c.block) / c.block_hop + 1 };
        (0..n).map(|i| i * c.block_hop).collect()
    }

    /// The network input `(blocks, block, n_mels)` for mono audio at the model's sample rate.
    pub fn blocks(&self, samples: &[f32], device: &Device) -> Result<Tensor> {
        let c = &self.config;
        let spec = self.spectrogram(samples);
        let (t, m) = spec.dim();
        let starts = self.block_starts(t);
        let mut data = vec![0f32; starts.len() * c.block * m];
        for (i, &s) in starts.iter().enumerate() {
            for f in 0..c.block.min(t - s) {
                for b in 0..m {
                    data[(i * c.block + f) * m + b] = spec[[s + f, b]];
                }
            }
        }
        Ok(Tensor::from_vec(data, (starts.len(), c.block, m), device)?)
    }
}

/// Two 3×3 convolutions, each followed by (eval-mode) BatchNorm and ReLU, then max-pooling.
/// BatchNorm is folded into the convolution when the weights are read.
#[derive(Debug, Clone)]
struct ConvBlock {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: bool,
}

fn conv_bn(cin: usize, cout: usize, conv: &str, bn: &str, vb: &VarBuilder) -> candle_core::Result<Conv2d> {
    let w = vb.get((cout, cin, 3, 3), &format!("{conv}.weight"))?;
    let vb = vb.pp(bn);
    let (g, b) = (vb.get(cout, "weight")?, vb.get(cout, "bias")?);
    let (mean, var) = (vb.get(cout, "running_mean")?, vb.get(cout, "running_var")?);
    let s = g.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    let w = w.broadcast_mul(&s.reshape((cout, 1, 1, 1))?)?;
    let bias = (b - mean.mul(&s)?)?;
    Ok(Conv2d::new(w, Some(bias), 1, 1))
}

impl ConvBlock {
    fn new(cin: usize, cout: usize, pool: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self { conv1: conv_bn(cin, cout, "conv1", "bn1", &vb)?, conv2: conv_bn(cout, cout, "conv2", "bn2", &vb)?, pool })
    }
}

impl Module for ConvBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.conv2.forward(&self.conv1.forward(x)?.relu()?)?.relu()?;
        if self.pool {
            x.max_pool2d(2)
        } else {
            Ok(x)
        }
    }
}

/// The embedding CNN: `(B, frames, bands)` → `(B, 8·width)`: four conv blocks (the last without
/// pooling), mean over bands, max over time.
#[derive(Debug, Clone)]
pub struct EmbeddingNet {
    blocks: Vec<ConvBlock>,
}

impl EmbeddingNet {
    pub fn new(cfg: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let w = cfg.width;
        let chans = [(1, w), (w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)];
        let blocks = chans
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| ConvBlock::new(a, b, i < 3, vb.pp(format!("conv_block{}", i + 1))))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { blocks })
    }
}

impl Module for EmbeddingNet {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.unsqueeze(1)?;
        for b in &self.blocks {
            h = b.forward(&h)?;
        }
        h.mean(D::Minus1)?.max(D::Minus1)
    }
}

/// The aiSFX embedder: front end + network on one device.
pub struct Aisfx {
    pub config: Config,
    pub front: FrontEnd,
    pub net: EmbeddingNet,
    device: Device,
}

impl Aisfx {
    /// Builds the model from weights under the checkpoint's names (`embedding_net.…`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let device = vb.device().clone();
        Ok(Self { config: cfg.clone(), front: FrontEnd::new(cfg), net: EmbeddingNet::new(cfg, vb.pp("embedding_net"))?, device })
    }

    /// Reads the released weights (`scripts/convert_weights.sh` writes `aisfx.safetensors`).
    pub fn load(path: &std::path::Path, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return invalid(format!("{}: no aisfx weights here (`smg data fetch` downloads and converts them)", path.display()));
        }
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device)? };
        Self::new(&Config::official(), vb)
    }
}

impl Embedder for Aisfx {
    fn name(&self) -> &str {
        "aisfx"
    }
    fn dim(&self) -> usize {
        self.config.dim()
    }
    fn embed(&self, samples: &[f32], sample_rate: u32) -> Result<Vec<Vec<f64>>> {
        check_clip(samples, sample_rate)?;
        let x = smg_audio::resample(samples, sample_rate, self.config.sample_rate)?;
        let blocks = self.front.blocks(&x, &self.device)?;
        let e = self.net.forward(&blocks)?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        Ok(e)
    }
}
