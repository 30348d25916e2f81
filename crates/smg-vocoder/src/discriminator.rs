//! The vocoders' discriminators (SPEC.md §4): HiFi-GAN's multi-period (MPD, periods 2-3-5-7-11)
//! and multi-scale (MSD, 3 scales) discriminators, and BigVSAN's MPD and multi-resolution
//! discriminator (MRD) whose last layers are SAN convolutions. Tensor names follow the official
//! modules (`discriminators.N.convs.M`, `conv_post`, `scale`), weight norm (`weight_g`,
//! `weight_v`) is folded when a checkpoint has it; trained from scratch the weights are plain.
//! Every convolution runs through the gemm-backed `smg_core::conv1d` / `conv2d_hw`, so the
//! backward pass is fast on CPU. Deviation: the first MSD scale uses spectral norm in
//! HiFi-GAN; here it is a plain (or weight-normed) convolution like the other two.

use candle_core::{Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use smg_core::conv::conv2d_hw;
use smg_core::conv1d::conv1d;

/// A weight under `vb` of any rank: `g · v / ‖v‖` (norm over all axes but the first) when the
/// checkpoint is weight-normed, else a plain `weight` with PyTorch's default uniform init.
pub(crate) fn weight_any(vb: &VarBuilder, shape: &[usize]) -> Result<Tensor> {
    if vb.contains_tensor("weight_v") {
        let v = vb.get(shape, "weight_v")?;
        let mut gshape = vec![1usize; shape.len()];
        gshape[0] = shape[0];
        let g = vb.get(gshape.as_slice(), "weight_g")?;
        let norm = v.sqr()?.flatten_from(1)?.sum_keepdim(1)?.sqrt()?.reshape(gshape.as_slice())?;
        v.broadcast_mul(&g.broadcast_div(&norm)?)
    } else {
        let fan_in: usize = shape[1..].iter().product();
        let b = 1.0 / (fan_in.max(1) as f64).sqrt();
        vb.get_with_hints(shape, "weight", Init::Uniform { lo: -b, up: b })
    }
}

fn bias(vb: &VarBuilder, cout: usize, fan_in: usize) -> Result<Tensor> {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    vb.get_with_hints(cout, "bias", Init::Uniform { lo: -b, up: b })
}

pub(crate) fn lrelu(x: &Tensor, slope: f64) -> Result<Tensor> {
    smg_core::train_ops::leaky_relu(x, slope)
}

/// A 1-D convolution layer (also the `(k, 1)` 2-D convolutions of the period discriminators,
/// whose weights are stored 4-D).
#[derive(Debug, Clone)]
struct Conv {
    w: Tensor,
    b: Tensor,
    stride: usize,
    pad: usize,
    groups: usize,
}

impl Conv {
    fn new(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, groups: usize, four_d: bool, vb: VarBuilder) -> Result<Self> {
        let w = if four_d { weight_any(&vb, &[cout, cin / groups, k, 1])?.squeeze(3)? } else { weight_any(&vb, &[cout, cin / groups, k])? };
        Ok(Self { w, b: bias(&vb, cout, cin / groups * k)?, stride, pad, groups })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv1d(x, &self.w, Some(&self.b), self.stride, self.pad, 1, self.groups)
    }
}

/// What a discriminator's last layer gives: one logit map, or for a SAN layer in training the
/// pair (function part: gradient to the features only; direction part: gradient to the
/// last layer's direction only) of SAN (Takida et al.; sony/bigvsan `SANConv2d`).
#[derive(Debug, Clone)]
pub enum Logits {
    Plain(Tensor),
    San { fun: Tensor, dir: Tensor },
}

impl Logits {
    /// The logits the generator is trained against (`fun` for SAN).
    pub fn main(&self) -> &Tensor {
        match self {
            Logits::Plain(t) => t,
            Logits::San { fun, .. } => fun,
        }
    }
}

/// SAN last layer: `scale · conv(x + bias_in, w / ‖w‖)`, names `weight`, `scale`, `bias`
/// (the bias is per *input* channel, added before the convolution).
#[derive(Debug, Clone)]
struct SanConv {
    w: Tensor,
    scale: Tensor,
    bias_in: Tensor,
    /// (stride, padding) per spatial axis; 1-D layers use the first.
    stride: (usize, usize),
    pad: (usize, usize),
}

impl SanConv {
    fn new(shape: &[usize], stride: (usize, usize), pad: (usize, usize), vb: VarBuilder) -> Result<Self> {
        let fan_in: usize = shape[1..].iter().product();
        let b = 1.0 / (fan_in as f64).sqrt();
        let w = vb.get_with_hints(shape, "weight", Init::Uniform { lo: -b, up: b })?;
        // The official layer starts with scale = ‖w‖ of the default init: √(fan_in·b²/3) = 1/√3.
        let scale = vb.get_with_hints(shape[0], "scale", Init::Const(1.0 / 3f64.sqrt()))?;
        let bias_in = vb.get_with_hints(shape[1], "bias", Init::Const(0.0))?;
        Ok(Self { w, scale, bias_in, stride, pad })
    }

    fn conv(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        match w.rank() {
            3 => conv1d(x, w, None, self.stride.0, self.pad.0, 1, 1),
            _ => conv2d_hw(x, w, None, self.stride, self.pad),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Logits> {
        let cin = self.bias_in.dim(0)?;
        let mut shape = vec![1, cin];
        shape.resize(x.rank(), 1);
        let x = x.broadcast_add(&self.bias_in.reshape(shape.as_slice())?)?;
        let norm = self.w.sqr()?.flatten_from(1)?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        let mut nshape = vec![self.w.dim(0)?];
        nshape.resize(self.w.rank(), 1);
        let w = self.w.broadcast_div(&norm.reshape(nshape.as_slice())?)?;
        let mut sshape = vec![1, self.w.dim(0)?];
        sshape.resize(x.rank(), 1);
        let scale = self.scale.reshape(sshape.as_slice())?;
        if train {
            let fun = self.conv(&x, &w.detach())?.broadcast_mul(&scale)?;
            let dir = self.conv(&x.detach(), &w)?.broadcast_mul(&scale.detach())?;
            Ok(Logits::San { fun, dir })
        } else {
            Ok(Logits::Plain(self.conv(&x, &w)?.broadcast_mul(&scale)?))
        }
    }
}

#[derive(Debug, Clone)]
enum Post {
    Plain(Conv),
    Plain2d(Tensor, Tensor),
    San(SanConv),
}

/// One discriminator's verdict on a batch: its logits and the feature maps of every layer
/// (for the feature-matching loss).
#[derive(Debug, Clone)]
pub struct Verdict {
    pub logits: Logits,
    pub fmaps: Vec<Tensor>,
}

/// `x[..., T−2−i]` mirrored padding of `(B, T)` (PyTorch `mode="reflect"`), differentiable.
pub fn reflect_pad(x: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    let t = x.dim(D::Minus1)?;
    if left >= t || right >= t {
        candle_core::bail!("reflect padding of {left}/{right} needs more than {t} samples");
    }
    let mut idx: Vec<u32> = (1..=left).rev().map(|i| i as u32).collect();
    idx.extend(0..t as u32);
    idx.extend((0..right).map(|i| (t - 2 - i) as u32));
    x.index_select(&Tensor::new(idx.as_slice(), x.device())?, x.rank() - 1)
}

/// HiFi-GAN `DiscriminatorP` (kernel 5, stride 3; channels 32-128-512-1024-1024) over the
/// waveform folded into `period` columns; the `(5, 1)` 2-D convolutions run as 1-D ones over
/// each column.
#[derive(Debug, Clone)]
pub struct PeriodDisc {
    period: usize,
    convs: Vec<Conv>,
    post: Post,
}

/// `c / div` (at least 1), for the narrowed discriminators of tests and CPU runs.
fn narrow(c: usize, div: usize) -> usize {
    (c / div.max(1)).max(1)
}

/// The largest power-of-two divisor of `groups` that divides both channel counts.
fn fit_groups(groups: usize, cin: usize, cout: usize) -> usize {
    let mut g = groups;
    while g > 1 && (!cin.is_multiple_of(g) || !cout.is_multiple_of(g)) {
        g /= 2;
    }
    g.max(1)
}

impl PeriodDisc {
    fn new(period: usize, san: bool, div: usize, vb: VarBuilder) -> Result<Self> {
        let ch = [1, narrow(32, div), narrow(128, div), narrow(512, div), narrow(1024, div), narrow(1024, div)];
        let convs = (0..5)
            .map(|i| Conv::new(ch[i], ch[i + 1], 5, if i < 4 { 3 } else { 1 }, 2, 1, true, vb.pp(format!("convs.{i}"))))
            .collect::<Result<_>>()?;
        let post = if san {
            Post::San(SanConv::new(&[1, ch[5], 3, 1], (1, 1), (1, 1), vb.pp("conv_post"))?.squeeze_4d()?)
        } else {
            Post::Plain(Conv::new(ch[5], 1, 3, 1, 1, 1, true, vb.pp("conv_post"))?)
        };
        Ok(Self { period, convs, post })
    }

    fn forward(&self, y: &Tensor, train: bool) -> Result<Verdict> {
        let (b, t) = y.dims2()?;
        let p = self.period;
        let y = if t % p != 0 { reflect_pad(y, 0, p - t % p)? } else { y.clone() };
        let h = y.dim(1)? / p;
        let mut x = y.reshape((b, h, p))?.transpose(1, 2)?.reshape((b * p, 1, h))?;
        let mut fmaps = Vec::new();
        for c in &self.convs {
            x = lrelu(&c.forward(&x)?, 0.1)?;
            fmaps.push(x.clone());
        }
        let logits = post_forward(&self.post, &x, train)?;
        fmaps.push(logits.main().clone());
        Ok(Verdict { logits, fmaps })
    }
}

impl SanConv {
    /// The period discriminators' SAN layer is stored as `(1, 1024, 3, 1)`; it runs 1-D.
    fn squeeze_4d(self) -> Result<Self> {
        Ok(Self { w: self.w.squeeze(3)?, ..self })
    }
}

fn post_forward(post: &Post, x: &Tensor, train: bool) -> Result<Logits> {
    Ok(match post {
        Post::Plain(c) => Logits::Plain(c.forward(x)?),
        Post::Plain2d(w, b) => Logits::Plain(conv2d_hw(x, w, Some(b), (1, 1), (1, 1))?),
        Post::San(s) => s.forward(x, train)?,
    })
}

/// HiFi-GAN `DiscriminatorS`: grouped 1-D convolutions (kernel 41) over the raw waveform.
#[derive(Debug, Clone)]
pub struct ScaleDisc {
    convs: Vec<Conv>,
    post: Conv,
}

impl ScaleDisc {
    fn new(div: usize, vb: VarBuilder) -> Result<Self> {
        // (cin, cout, k, stride, groups, padding)
        let spec = [
            (1, 128, 15, 1, 1, 7),
            (128, 128, 41, 2, 4, 20),
            (128, 256, 41, 2, 16, 20),
            (256, 512, 41, 4, 16, 20),
            (512, 1024, 41, 4, 16, 20),
            (1024, 1024, 41, 1, 16, 20),
            (1024, 1024, 5, 1, 1, 2),
        ];
        let convs = spec
            .iter()
            .enumerate()
            .map(|(i, &(ci, co, k, s, g, p))| {
                let ci = if i == 0 { 1 } else { narrow(ci, div) };
                let co = narrow(co, div);
                Conv::new(ci, co, k, s, p, fit_groups(g, ci, co), false, vb.pp(format!("convs.{i}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self { convs, post: Conv::new(narrow(1024, div), 1, 3, 1, 1, 1, false, vb.pp("conv_post"))? })
    }

    fn forward(&self, y: &Tensor) -> Result<Verdict> {
        let mut x = y.unsqueeze(1)?;
        let mut fmaps = Vec::new();
        for c in &self.convs {
            x = lrelu(&c.forward(&x)?, 0.1)?;
            fmaps.push(x.clone());
        }
        let x = self.post.forward(&x)?;
        fmaps.push(x.clone());
        Ok(Verdict { logits: Logits::Plain(x), fmaps })
    }
}

/// BigVGAN `DiscriminatorR`: 2-D convolutions over the linear magnitude STFT (rectangular
/// window of `win` samples, reflect padding `(n_fft − hop)/2`, not centred) at one resolution.
#[derive(Debug, Clone)]
pub struct ResolutionDisc {
    n_fft: usize,
    hop: usize,
    /// `(2·(n_fft/2+1), 1, win)`: cos and −sin rows over the window's support.
    basis: Tensor,
    convs: Vec<(Tensor, Tensor, (usize, usize), (usize, usize))>,
    post: Post,
}

impl ResolutionDisc {
    fn new((n_fft, hop, win): (usize, usize, usize), san: bool, div: usize, vb: VarBuilder) -> Result<Self> {
        let basis = dft_basis(n_fft, &vec![1.0; win], vb.device())?;
        // (cin, cout, kh, kw, stride_w, pad_w)
        let spec = [(1, 32, 3, 9, 1, 4), (32, 32, 3, 9, 2, 4), (32, 32, 3, 9, 2, 4), (32, 32, 3, 9, 2, 4), (32, 32, 3, 3, 1, 1)];
        let convs = spec
            .iter()
            .enumerate()
            .map(|(i, &(ci, co, kh, kw, sw, pw))| {
                let (ci, co) = (if i == 0 { 1 } else { narrow(ci, div) }, narrow(co, div));
                let vb = vb.pp(format!("convs.{i}"));
                Ok((weight_any(&vb, &[co, ci, kh, kw])?, bias(&vb, co, ci * kh * kw)?, (1, sw), (1, pw)))
            })
            .collect::<Result<_>>()?;
        let post = if san {
            Post::San(SanConv::new(&[1, narrow(32, div), 3, 3], (1, 1), (1, 1), vb.pp("conv_post"))?)
        } else {
            let vbp = vb.pp("conv_post");
            Post::Plain2d(weight_any(&vbp, &[1, narrow(32, div), 3, 3])?, bias(&vbp, 1, narrow(32, div) * 9)?)
        };
        Ok(Self { n_fft, hop, basis, convs, post })
    }

    /// `(B, T)` → magnitude `(B, 1, n_fft/2+1, frames)`.
    pub fn spectrogram(&self, y: &Tensor) -> Result<Tensor> {
        let pad = (self.n_fft - self.hop) / 2;
        magnitude(&reflect_pad(y, pad, pad)?, &self.basis, self.n_fft, self.hop, 0.0)?.unsqueeze(1)
    }

    fn forward(&self, y: &Tensor, train: bool) -> Result<Verdict> {
        let mut x = self.spectrogram(y)?;
        let mut fmaps = Vec::new();
        for (w, b, s, p) in &self.convs {
            x = lrelu(&conv2d_hw(&x, w, Some(b), *s, *p)?, 0.1)?;
            fmaps.push(x.clone());
        }
        let logits = post_forward(&self.post, &x, train)?;
        fmaps.push(logits.main().clone());
        Ok(Verdict { logits, fmaps })
    }
}

/// `(2F, 1, window.len())` DFT rows `w[i]·cos(2π f (i+off)/n)` and `−w[i]·sin(…)` for the
/// `window` centred in `n_fft` (as `torch.stft` pads a shorter window), F = n_fft/2 + 1.
pub fn dft_basis(n_fft: usize, window: &[f32], device: &candle_core::Device) -> Result<Tensor> {
    let (f, win) = (n_fft / 2 + 1, window.len());
    let off = (n_fft - win) / 2;
    let mut v = vec![0f32; 2 * f * win];
    for k in 0..f {
        for i in 0..win {
            let ang = std::f64::consts::TAU * (k * ((i + off) % n_fft)) as f64 / n_fft as f64;
            v[k * win + i] = window[i] * ang.cos() as f32;
            v[(f + k) * win + i] = -window[i] * ang.sin() as f32;
        }
    }
    Tensor::from_vec(v, (2 * f, 1, win), device)
}

/// Magnitude `sqrt(re² + im² + eps)` `(B, F, frames)` of an already padded `(B, T)` signal: frame
/// `m` covers `[m·hop, m·hop + n_fft)`, the basis's window sits at offset `(n_fft − win)/2`.
pub fn magnitude(padded: &Tensor, basis: &Tensor, n_fft: usize, hop: usize, eps: f64) -> Result<Tensor> {
    let (_, t) = padded.dims2()?;
    let (two_f, _, win) = basis.dims3()?;
    let f = two_f / 2;
    if t < n_fft {
        candle_core::bail!("spectrogram: {t} samples are fewer than n_fft = {n_fft}");
    }
    let frames = (t - n_fft) / hop + 1;
    let off = (n_fft - win) / 2;
    let x = padded.narrow(1, off, (frames - 1) * hop + win)?.unsqueeze(1)?;
    let spec = conv1d(&x, basis, None, hop, 0, 1, 1)?;
    let (re, im) = (spec.narrow(1, 0, f)?, spec.narrow(1, f, f)?);
    let power = (re.sqr()? + im.sqr()?)?;
    // eps keeps the gradient of the square root finite where the spectrum is exactly zero.
    (power + eps.max(1e-12))?.sqrt()
}

/// The discriminator set of a vocoder: MPD plus MSD (HiFi-GAN) or MRD with SAN (BigVSAN).
#[derive(Debug, Clone)]
pub struct Discriminators {
    pub mpd: Vec<PeriodDisc>,
    pub msd: Vec<ScaleDisc>,
    pub mrd: Vec<ResolutionDisc>,
    pub san: bool,
    pool: Tensor,
}

/// HiFi-GAN's and BigVSAN's periods.
pub const PERIODS: [usize; 5] = [2, 3, 5, 7, 11];
/// BigVSAN's MRD resolutions (n_fft, hop, win).
pub const RESOLUTIONS: [(usize, usize, usize); 3] = [(1024, 120, 600), (2048, 240, 1200), (512, 50, 240)];

impl Discriminators {
    /// HiFi-GAN: `mpd.discriminators.N`, `msd.discriminators.N` (LSGAN losses). `div` narrows
    /// every hidden width (1 = the official sizes; tests and short CPU runs use more).
    pub fn hifigan(div: usize, vb: VarBuilder) -> Result<Self> {
        let mpd = PERIODS
            .iter()
            .enumerate()
            .map(|(i, &p)| PeriodDisc::new(p, false, div, vb.pp(format!("mpd.discriminators.{i}"))))
            .collect::<Result<_>>()?;
        let msd = (0..3).map(|i| ScaleDisc::new(div, vb.pp(format!("msd.discriminators.{i}")))).collect::<Result<_>>()?;
        let pool = Tensor::full(0.25f32, (1, 1, 4), vb.device())?;
        Ok(Self { mpd, msd, mrd: Vec::new(), san: false, pool })
    }

    /// BigVSAN: `mpd.discriminators.N`, `mrd.discriminators.N`, SAN last layers.
    pub fn bigvsan(div: usize, vb: VarBuilder) -> Result<Self> {
        let mpd = PERIODS
            .iter()
            .enumerate()
            .map(|(i, &p)| PeriodDisc::new(p, true, div, vb.pp(format!("mpd.discriminators.{i}"))))
            .collect::<Result<_>>()?;
        let mrd = RESOLUTIONS
            .iter()
            .enumerate()
            .map(|(i, &r)| ResolutionDisc::new(r, true, div, vb.pp(format!("mrd.discriminators.{i}"))))
            .collect::<Result<_>>()?;
        let pool = Tensor::full(0.25f32, (1, 1, 4), vb.device())?;
        Ok(Self { mpd, msd: Vec::new(), mrd, san: true, pool })
    }

    /// Every sub-discriminator's verdict on waveforms `(B, T)`; `train` selects SAN's
    /// two-part output for the discriminator's own loss.
    pub fn forward(&self, y: &Tensor, train: bool) -> Result<Vec<Verdict>> {
        let mut out = Vec::new();
        for d in &self.mpd {
            out.push(d.forward(y, train)?);
        }
        let mut x = y.clone();
        for (i, d) in self.msd.iter().enumerate() {
            if i > 0 {
                // AvgPool1d(4, 2, padding 2), padding counted in the mean.
                x = conv1d(&x.unsqueeze(1)?, &self.pool, None, 2, 2, 1, 1)?.squeeze(1)?;
            }
            out.push(d.forward(&x)?);
        }
        for d in &self.mrd {
            out.push(d.forward(y, train)?);
        }
        Ok(out)
    }
}
