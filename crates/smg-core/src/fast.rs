//! Candle glue for the CPU inference kernels of `smg-kernels`: a drop-in [`Linear`]
//! with the bias (and optionally an exact GELU) fused into one AVX-512 f32 or AMX bf16 product,
//! taken only where it is safe: CPU tensors in f32 that no autograd graph tracks (inference), with
//! [`smg_kernels::fast_enabled`]. Everywhere else (training, CUDA, other dtypes, `SMG_FAST=0`) the
//! plain candle ops run, which stay the reference the fast path is tested against.
//!
//! The arithmetic of the fast path is [`precision`]: f32 by default; bf16 products (f32
//! accumulation) with `SMG_PRECISION=bf16` or [`set_precision`], on AMX where the machine has it.

use candle_core::{CpuStorage, Module, Result, Storage, Tensor};
pub use smg_kernels::{Act, Precision};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

/// A process-wide [`Precision`], read once from an environment variable unless set first.
struct Setting {
    cell: AtomicU8, // 0: f32, 1: bf16, 2: not yet read from the environment
    env: &'static str,
}

impl Setting {
    const fn new(env: &'static str) -> Self {
        Self { cell: AtomicU8::new(2), env }
    }

    fn get(&self) -> Precision {
        match self.cell.load(Ordering::Relaxed) {
            0 => Precision::F32,
            1 => Precision::Bf16,
            _ => {
                let p = if std::env::var(self.env).as_deref() == Ok("bf16") { Precision::Bf16 } else { Precision::F32 };
                self.set(p);
                p
            }
        }
    }

    fn set(&self, p: Precision) {
        self.cell.store(matches!(p, Precision::Bf16) as u8, Ordering::Relaxed);
    }
}

static PRECISION: Setting = Setting::new("SMG_PRECISION");
static VOCODER_PRECISION: Setting = Setting::new("SMG_VOCODER_PRECISION");
static TRAIN_PRECISION: Setting = Setting::new("SMG_TRAIN_PRECISION");

/// Arithmetic of the fast inference path (default f32; `SMG_PRECISION=bf16` for bf16 products).
pub fn precision() -> Precision {
    PRECISION.get()
}

/// Sets the arithmetic of the fast inference path for the whole process.
pub fn set_precision(p: Precision) {
    PRECISION.set(p)
}

/// Arithmetic of the vocoders' fast convolutions, apart from [`precision`] because the vocoder
/// is where bf16 shows: HiFi-GAN universal's held-out mel-L1 rises from 0.175 to 0.187 with
/// bf16 ResBlocks (16 test clips; `benches/SPEED.md`). Default f32; `SMG_VOCODER_PRECISION=bf16`
/// or [`set_vocoder_precision`] for the faster products.
pub fn vocoder_precision() -> Precision {
    VOCODER_PRECISION.get()
}

/// Sets the arithmetic of the vocoders' fast convolutions for the whole process.
pub fn set_vocoder_precision(p: Precision) {
    VOCODER_PRECISION.set(p)
}

/// Arithmetic of the training products (linear layers and convolutions of
/// [`crate::train_ops`] and [`crate::conv`]): f32 by default, the reference; with
/// `SMG_TRAIN_PRECISION=bf16`, `smg train … --precision bf16` or [`set_train_precision`],
/// bf16 products with f32 sums (weights, gradients and optimiser state stay f32).
pub fn train_precision() -> Precision {
    TRAIN_PRECISION.get()
}

/// Sets the arithmetic of the training products for the whole process.
pub fn set_train_precision(p: Precision) {
    TRAIN_PRECISION.set(p)
}

/// Sets the training precision and says whether it takes effect as asked (bf16 needs the
/// CPU's native bf16 dot product; without it the products stay f32).
pub fn set_train_precision_checked(p: Precision) -> bool {
    set_train_precision(p);
    p == Precision::F32 || train_bf16()
}

/// Whether training products run in bf16 now: asked for ([`train_precision`]) and computed
/// natively by this CPU (the AVX-512 BF16 dot product); otherwise they run in f32.
pub fn train_bf16() -> bool {
    train_precision() == Precision::Bf16 && smg_kernels::dot_bf16::available()
}

/// Whether this machine runs the bf16 products on AMX tiles (else bf16 requests run in f32).
pub fn amx_available() -> bool {
    smg_kernels::amx::available()
}

/// Whether `x` may take the CPU custom ops that also train (im2col convolutions, the fused
/// GroupNorm): a CPU f32 tensor with the kernels on. Elsewhere (CUDA, other dtypes, `SMG_FAST=0`)
/// candle's own ops run, so the switch forced off reproduces on the CPU the path a GPU takes.
pub fn cpu_custom_ops(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && smg_kernels::fast_enabled()
}

/// Whether `x` may take a fast kernel: CPU, f32, outside any autograd graph, fast path on.
pub fn eligible(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && !x.track_op() && smg_kernels::fast_enabled()
}

/// A three-input custom op's gradients `[dx, dw, db]` as tensors shaped like its inputs
/// `[x, w, b]`, on their device (what `CustomOp3::bwd` returns).
pub fn grads_like(inputs: [&Tensor; 3], grads: [Vec<f32>; 3]) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let [dx, dw, db] = grads;
    let t = |v: Vec<f32>, like: &Tensor| Tensor::from_vec(v, like.shape(), like.device()).map(Some);
    Ok((t(dx, inputs[0])?, t(dw, inputs[1])?, t(db, inputs[2])?))
}

/// The f32 values of a contiguous CPU storage as a custom op's `cpu_fwd` receives it; `op`
/// names the op in the error for another dtype or a strided layout.
pub fn cpu_f32<'a>(s: &'a CpuStorage, l: &candle_core::Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{op}: f32 only") };
    let (a, b) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{op}: contiguous input expected")))?;
    Ok(&v[a..b])
}

/// `bias`, or zeros of length `n` where there is none (for ops that always take a bias).
pub fn bias_or_zeros(bias: Option<&Tensor>, n: usize, like: &Tensor) -> Result<Tensor> {
    match bias {
        Some(b) => Ok(b.clone()),
        None => Tensor::zeros(n, like.dtype(), like.device()),
    }
}

/// Runs `f` on the f32 contents of a contiguous CPU tensor without copying them.
pub fn with_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else { candle_core::bail!("fast path: expected an f32 CPU tensor") };
    let (a, b) = layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("fast path: contiguous tensor expected".into()))?;
    Ok(f(&v[a..b]))
}

/// [`with_f32`] over several tensors at once: `f` gets their contents in the order given.
pub fn with_f32s<const N: usize, R>(ts: [&Tensor; N], f: impl FnOnce([&[f32]; N]) -> R) -> Result<R> {
    let ts = ts.map(|t| t.contiguous());
    let mut owned = Vec::with_capacity(N);
    for t in ts {
        owned.push(t?);
    }
    let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices: [&[f32]; N] = [&[]; N];
    for (slot, (storage, layout)) in slices.iter_mut().zip(&guards) {
        let Storage::Cpu(CpuStorage::F32(v)) = &**storage else { candle_core::bail!("fast path: expected an f32 CPU tensor") };
        let (a, b) = layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("fast path: contiguous tensor expected".into()))?;
        *slot = &v[a..b];
    }
    Ok(f(slices))
}

/// `candle_nn::Linear` (PyTorch layout and names, `weight (out, in)`, `bias (out)`) whose
/// inference forward is one fused kernel; the weight is prepared on first use and shared by clones.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
    packed: Arc<OnceLock<Arc<smg_kernels::PackedWeight>>>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { inner: candle_nn::Linear::new(weight, bias), packed: Arc::new(OnceLock::new()) }
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }

    /// The weight prepared for the kernels of `smg-kernels` (on first call; shared by clones).
    pub fn packed(&self) -> Result<Arc<smg_kernels::PackedWeight>> {
        if let Some(p) = self.packed.get() {
            return Ok(p.clone());
        }
        let (n, k) = self.weight().dims2()?;
        let p = Arc::new(smg_kernels::PackedWeight::new(self.weight().flatten_all()?.to_vec1::<f32>()?, n, k));
        let _ = self.packed.set(p);
        Ok(self.packed.get().expect("just set").clone())
    }

    /// The weight and bias for the fused kernels (`smg_kernels::vit::Dense`); a missing bias is zero.
    pub fn dense(&self) -> Result<smg_kernels::vit::Dense> {
        let weight = self.packed()?;
        let bias = match self.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; weight.n],
        };
        Ok(smg_kernels::vit::Dense { weight, bias })
    }

    /// Whether the weights are plain inference tensors on the CPU (no autograd variable).
    pub fn is_frozen_cpu(&self) -> bool {
        !self.weight().track_op() && self.bias().is_none_or(|b| !b.track_op()) && self.weight().device().is_cpu()
    }

    fn fast_ok(&self, x: &Tensor) -> bool {
        eligible(x) && self.is_frozen_cpu()
    }

    /// `act(x · Wᵀ + b)` over the last axis of `x`.
    pub fn forward_act(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        if !self.fast_ok(x) {
            // Training (or off the fast path): differentiable ops with one-pass backward.
            let y = crate::train_ops::linear(x, self.weight(), self.bias())?;
            return match act {
                Act::None => Ok(y),
                Act::Gelu => crate::train_ops::gelu(&y),
            };
        }
        let (n, k) = self.weight().dims2()?;
        let dims = x.dims().to_vec();
        let Some((&kx, lead)) = dims.split_last() else { candle_core::bail!("linear: scalar input") };
        if kx != k {
            candle_core::bail!("linear: input width {kx}, the weight expects {k}");
        }
        let m: usize = lead.iter().product();
        let packed = self.packed()?;
        let bias = match self.bias() {
            Some(b) => Some(b.to_vec1::<f32>()?),
            None => None,
        };
        let y = with_f32(x, |xs| packed.forward(xs, m, bias.as_deref(), act, precision()))?;
        let mut shape = lead.to_vec();
        shape.push(n);
        Tensor::from_vec(y, shape, x.device())
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Act::None)
    }
}

/// Multi-head self-attention from timm's packed `qkv (B, L, 3·D)` to `(B, L, D)` (heads
/// concatenated, before the output projection), by the fused kernel of
/// `smg_kernels::attention`. `None` when `qkv` is not [`eligible`]: the caller runs its own ops.
pub fn attention(qkv: &Tensor, heads: usize) -> Result<Option<Tensor>> {
    if !eligible(qkv) {
        return Ok(None);
    }
    let (b, l, d3) = qkv.dims3()?;
    if d3 % (3 * heads) != 0 {
        candle_core::bail!("attention: qkv width {d3} does not split into 3 × {heads} heads");
    }
    let hd = d3 / 3 / heads;
    let out = with_f32(qkv, |v| smg_kernels::attention::attention(v, b, l, heads, hd))?;
    Ok(Some(Tensor::from_vec(out, (b, l, heads * hd), qkv.device())?))
}

/// Exact GELU; the fast kernel at inference on CPU.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !eligible(x) {
        return x.gelu_erf();
    }
    let mut v = with_f32(x, |s| s.to_vec())?;
    use rayon::prelude::*;
    v.par_chunks_mut(4096).for_each(smg_kernels::gelu::gelu_inplace);
    Tensor::from_vec(v, x.shape(), x.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fast_linear_matches_candle_and_stays_differentiable() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.1, (48, 40), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, 48, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 37, 40), &dev).unwrap();
        let lin = Linear::new(w.clone(), Some(b.clone()));
        let plain = candle_nn::Linear::new(w, Some(b));
        for act in [Act::None, Act::Gelu] {
            let want = plain.forward(&x).unwrap();
            let want = if act == Act::Gelu { want.gelu_erf().unwrap() } else { want };
            set_precision(Precision::F32);
            let got = lin.forward_act(&x, act).unwrap();
            let d = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-5, "{act:?} f32: {d}");
            set_precision(Precision::Bf16);
            let got = lin.forward_act(&x, act).unwrap();
            let d = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            set_precision(Precision::F32);
            assert!(d < 0.03, "{act:?} bf16: {d}");
        }
        // Under autograd the plain ops run, so gradients reach the input.
        let xv = Var::from_tensor(&x).unwrap();
        let y = lin.forward_act(xv.as_tensor(), Act::Gelu).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(xv.as_tensor()).is_some());
        let g2 = gelu_erf(&x).unwrap();
        let d = (&g2 - &x.gelu_erf().unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "gelu {d}");
    }
}
