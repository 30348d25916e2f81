//! VGGish (Hershey et al. 2017) as packaged by torchvggish (`harritaylor/torchvggish`), the
//! default embedder of the FAD reference (SPEC.md §6). No VGGish weights can be had on these
//! machines; a user who has them converts `vggish-10086976.pth` to safetensors (with
//! `scripts/torch2safetensors.py`) and the tensor names load as they are: `features.{0,3,6,8,
//! 11,13}` (3×3 convs) and `embeddings.{0,2,4}` (the 4096-4096-128 MLP).
//!
//! Input: 16 kHz mono; STFT with a 400-sample periodic Hann window, hop 160, FFT 512, no padding;
//! magnitude; 64 HTK-mel bands 125–7500 Hz with triangles in the mel domain and the DC bin
//! zeroed (`mel_features.spectrogram_to_mel_matrix`); `log(mel + 0.01)`; framed into
//! non-overlapping 96-frame (0.96 s) examples. The final ReLU and the PCA post-processing are
//! left out, as the FAD reference does (`use_activation=False`, `use_pca=False`).

use crate::{check_clip, invalid, Embedder, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use ndarray::Array2;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use smg_core::conv::Conv2d;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub sample_rate: u32,
    pub window: usize,
    pub hop: usize,
    pub n_fft: usize,
    pub n_mels: usize,
    pub f_min: f64,
    pub f_max: f64,
    pub log_offset: f32,
    /// Frames per example (0.96 s at 100 frames per second).
    pub example_frames: usize,
    /// Convolution widths, `0` standing for max-pooling, as torchvggish's `make_layers`.
    pub layers: Vec<usize>,
    pub hidden: usize,
    pub dim: usize,
}

impl Config {
    /// torchvggish's VGGish.
    pub fn official() -> Self {
        Self {
            sample_rate: 16000,
            window: 400,
            hop: 160,
            n_fft: 512,
            n_mels: 64,
            f_min: 125.0,
            f_max: 7500.0,
            log_offset: 0.01,
            example_frames: 96,
            layers: vec![64, 0, 128, 0, 256, 256, 0, 512, 512, 0],
            hidden: 4096,
            dim: 128,
        }
    }

    /// Height × width of the feature map entering the MLP: the example halved once per pooling.
    fn final_hw(&self) -> (usize, usize) {
        let pools = self.layers.iter().filter(|&&l| l == 0).count() as u32;
        (self.example_frames >> pools, self.n_mels >> pools)
    }
}

/// torchvggish's `spectrogram_to_mel_matrix`: `(n_fft/2 + 1, n_mels)`, HTK mel
/// `1127·ln(1 + f/700)`, triangles in mel between linearly spaced mel edges, DC row zeroed.
pub fn vggish_mel_matrix(cfg: &Config) -> Array2<f32> {
    let mel = |f: f64| 1127.0 * (1.0 + f / 700.0).ln();
    let bins = cfg.n_fft / 2 + 1;
    let nyquist = cfg.sample_rate as f64 / 2.0;
    let spec_mel: Vec<f64> = (0..bins).map(|k| mel(nyquist * k as f64 / (bins - 1) as f64)).collect();
    let (lo, hi) = (mel(cfg.f_min), mel(cfg.f_max));
    let edges: Vec<f64> = (0..cfg.n_mels + 2).map(|i| lo + (hi - lo) * i as f64 / (cfg.n_mels + 1) as f64).collect();
    let mut w = Array2::<f32>::zeros((bins, cfg.n_mels));
    for m in 0..cfg.n_mels {
        let (a, c, b) = (edges[m], edges[m + 1], edges[m + 2]);
        for k in 1..bins {
            let v = ((spec_mel[k] - a) / (c - a)).min((b - spec_mel[k]) / (b - c)).max(0.0);
            w[[k, m]] = v as f32;
        }
    }
    w
}

/// The VGGish log-mel front end.
#[derive(Clone)]
pub struct FrontEnd {
    pub config: Config,
    window: Vec<f32>,
    mel: Array2<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl FrontEnd {
    pub fn new(config: &Config) -> Self {
        let window =
            (0..config.window).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / config.window as f64).cos()) as f32).collect();
        Self {
            config: config.clone(),
            window,
            mel: vggish_mel_matrix(config),
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(config.n_fft),
        }
    }

    /// Log-mel `(frames, n_mels)` of 16 kHz audio: `1 + (len − 400) / 160` frames.
    pub fn log_mel(&self, samples: &[f32]) -> Array2<f32> {
        let c = &self.config;
        let frames = if samples.len() < c.window { 0 } else { 1 + (samples.len() - c.window) / c.hop };
        let mut out = Array2::<f32>::zeros((frames, c.n_mels));
        let (mut buf, mut spec) = (self.fft.make_input_vec(), self.fft.make_output_vec());
        for t in 0..frames {
            buf.iter_mut().for_each(|b| *b = 0.0);
            for (i, w) in self.window.iter().enumerate() {
                buf[i] = samples[t * c.hop + i] * w;
            }
            self.fft.process(&mut buf, &mut spec).expect("planner sizes");
            for m in 0..c.n_mels {
                let e: f32 = spec.iter().enumerate().map(|(k, z)| z.norm() * self.mel[[k, m]]).sum();
                out[[t, m]] = (e + c.log_offset).ln();
            }
        }
        out
    }

    /// Examples `(n, 1, 96, 64)` (a partial last example is dropped, as torchvggish's `frame`).
    pub fn examples(&self, samples: &[f32], device: &Device) -> Result<Tensor> {
        let c = &self.config;
        let lm = self.log_mel(samples);
        let n = lm.dim().0 / c.example_frames;
        if n == 0 {
            return invalid(format!(
                "VGGish needs at least {:.2} s of audio for one example, the clip has {:.2} s",
                (c.window + (c.example_frames - 1) * c.hop) as f64 / c.sample_rate as f64,
                samples.len() as f64 / c.sample_rate as f64
            ));
        }
        let data: Vec<f32> = lm.iter().take(n * c.example_frames * c.n_mels).copied().collect();
        Ok(Tensor::from_vec(data, (n, 1, c.example_frames, c.n_mels), device)?)
    }
}

/// The VGG network: `(n, 1, 96, 64)` → `(n, 128)`.
#[derive(Debug, Clone)]
pub struct VggishNet {
    convs: Vec<Option<Conv2d>>,
    fc: [Linear; 3],
}

impl VggishNet {
    pub fn new(cfg: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let mut convs = vec![];
        let (mut cin, mut idx) = (1, 0);
        for &l in &cfg.layers {
            if l == 0 {
                convs.push(None);
                idx += 1;
            } else {
                let v = vb.pp(format!("features.{idx}"));
                convs.push(Some(Conv2d::new(v.get((l, cin, 3, 3), "weight")?, Some(v.get(l, "bias")?), 1, 1)));
                cin = l;
                idx += 2; // conv + ReLU
            }
        }
        let (h, w) = cfg.final_hw();
        let e = vb.pp("embeddings");
        let fc = [
            candle_nn::linear(cin * h * w, cfg.hidden, e.pp("0"))?,
            candle_nn::linear(cfg.hidden, cfg.hidden, e.pp("2"))?,
            candle_nn::linear(cfg.hidden, cfg.dim, e.pp("4"))?,
        ];
        Ok(Self { convs, fc })
    }
}

impl Module for VggishNet {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for c in &self.convs {
            h = match c {
                Some(c) => c.forward(&h)?.relu()?,
                None => h.max_pool2d(2)?,
            };
        }
        // torchvggish flattens in NHWC order: transpose(1, 3) then transpose(1, 2).
        let n = h.dim(0)?;
        let h = h.permute((0, 2, 3, 1))?.contiguous()?.reshape((n, ()))?;
        let h = self.fc[0].forward(&h)?.relu()?;
        let h = self.fc[1].forward(&h)?.relu()?;
        self.fc[2].forward(&h)
    }
}

/// The VGGish embedder.
pub struct Vggish {
    pub config: Config,
    pub front: FrontEnd,
    pub net: VggishNet,
    device: Device,
}

impl Vggish {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let device = vb.device().clone();
        Ok(Self { config: cfg.clone(), front: FrontEnd::new(cfg), net: VggishNet::new(cfg, vb)?, device })
    }

    /// Reads torchvggish weights converted to safetensors.
    pub fn load(path: &std::path::Path, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return invalid(format!(
                "{}: no VGGish weights (none can be downloaded here; convert torchvggish's vggish-10086976.pth with scripts/torch2safetensors.py, or use --embedder aisfx)",
                path.display()
            ));
        }
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device)? };
        Self::new(&Config::official(), vb)
    }
}

impl Embedder for Vggish {
    fn name(&self) -> &str {
        "vggish"
    }
    fn dim(&self) -> usize {
        self.config.dim
    }
    fn embed(&self, samples: &[f32], sample_rate: u32) -> Result<Vec<Vec<f64>>> {
        check_clip(samples, sample_rate)?;
        let x = smg_audio::resample(samples, sample_rate, self.config.sample_rate)?;
        let ex = self.front.examples(&x, &self.device)?;
        Ok(self.net.forward(&ex)?.to_dtype(DType::F64)?.to_vec2::<f64>()?)
    }
}
