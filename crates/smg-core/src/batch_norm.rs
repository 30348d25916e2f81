//! Batch normalisation of `(B, C, H, W)` activations in training mode (PyTorch's `BatchNorm2d`
//! with batch statistics) as one autograd node on CPU f32.
//!
//! candle-nn's `BatchNorm::forward_train` is a dozen candle ops (transpose, contiguous copy, two
//! means, subtraction, square, square root, division, scale and shift, transpose back), each an
//! activation-sized buffer forward and a zero-filled gradient buffer plus an addition backward:
//! the tokenizer's PatchGAN discriminator (SPEC.md §2.3) runs three of them per pass and three
//! passes per step. Here forward and backward are one pass each over the planes (the batch
//! statistics computed once, before the forward pass, and kept for the backward one), channel
//! sums in f64 in a fixed order (results do not depend on the thread count).

use crate::fast::{cpu_f32, with_f32s};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, Var};
use rayon::prelude::*;

/// `(x − mean) / sqrt(var + eps) · weight + bias` with the batch's per-channel mean and biased
/// variance over `(B, H, W)`, for `x (B, C, H, W)` (any rank ≥ 2: dimensions after the second
/// are flattened), and the running statistics updated as PyTorch does:
/// `running = (1 − momentum) · running + momentum · batch` with the unbiased variance.
/// CPU f32 only ([`crate::fast::cpu_custom_ops`]); other devices keep candle-nn's op.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    (running_mean, running_var): (&Var, &Var),
    momentum: f64,
    eps: f64,
) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() < 2 {
        candle_core::bail!("batch norm: input of shape {dims:?} has no channel dimension");
    }
    let (b, c) = (dims[0], dims[1]);
    let hw: usize = dims[2..].iter().product();
    for (t, name) in
        [(weight, "weight"), (bias, "bias"), (running_mean.as_tensor(), "running mean"), (running_var.as_tensor(), "running variance")]
    {
        if t.elem_count() != c {
            candle_core::bail!("batch norm: {name} has {} values for {c} channels", t.elem_count());
        }
    }
    let n = b * hw;
    if n < 2 {
        candle_core::bail!("batch norm in training mode needs more than one value per channel, got {dims:?}");
    }
    let x = x.contiguous()?;
    let (mean, var) = with_f32s([&x], |[xs]| channel_stats(xs, b, c, hw))?;
    // Mean and 1 / sqrt(var + eps) per channel, computed once for the forward and backward pass.
    let stats = mean.iter().zip(&var).map(|(&m, &v)| (m as f32, (1.0 / (v + eps).sqrt()) as f32)).collect();
    let y = x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, BatchNormOp { b, c, hw, stats })?;
    let dev = x.device();
    let unbiased = n as f64 / (n - 1) as f64;
    let m = Tensor::from_vec(mean.iter().map(|&v| v as f32).collect::<Vec<_>>(), c, dev)?;
    let v = Tensor::from_vec(var.iter().map(|&v| (v * unbiased) as f32).collect::<Vec<_>>(), c, dev)?;
    running_mean.set(&((running_mean.as_tensor() * (1.0 - momentum))? + (m * momentum)?)?)?;
    running_var.set(&((running_var.as_tensor() * (1.0 - momentum))? + (v * momentum)?)?)?;
    Ok(y)
}

/// `Σ f(xᵢ)` (and `Σ g(xᵢ, yᵢ)`) in f64 over eight interleaved partial sums added in a fixed
/// order: deterministic, and without one long chain of dependent additions (a single f64
/// accumulator cannot be vectorised and waits on each addition's latency).
#[inline]
fn sum2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> (f64, f64)) -> (f64, f64) {
    let (mut a, mut b) = ([0f64; 8], [0f64; 8]);
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (xs, ys) in xc.zip(yc) {
        for l in 0..8 {
            let (p, q) = f(xs[l], ys[l]);
            a[l] += p;
            b[l] += q;
        }
    }
    for (l, (&u, &v)) in xr.iter().zip(yr).enumerate() {
        let (p, q) = f(u, v);
        a[l] += p;
        b[l] += q;
    }
    (a.iter().sum(), b.iter().sum())
}

/// Per-channel mean and biased variance (two passes, f64 sums, items in order).
fn channel_stats(x: &[f32], b: usize, c: usize, hw: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (b * hw) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..b).map(move |i| &x[(i * c + ch) * hw..(i * c + ch + 1) * hw]);
            let mean = planes().map(|p| sum2(p, p, |v, _| (v as f64, 0.0)).0).sum::<f64>() / n;
            let var = planes().map(|p| sum2(p, p, |v, _| ((v as f64 - mean).powi(2), 0.0)).0).sum::<f64>() / n;
            (mean, var)
        })
        .unzip()
}

struct BatchNormOp {
    b: usize,
    c: usize,
    hw: usize,
    /// Per channel: the batch mean and 1 / sqrt(var + eps).
    stats: Vec<(f32, f32)>,
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, bias) = (cpu_f32(s1, l1, "batch norm")?, cpu_f32(s2, l2, "batch norm")?, cpu_f32(s3, l3, "batch norm")?);
        let st = &self.stats;
        let mut y = smg_kernels::uninit_f32(x.len());
        y.par_chunks_mut(self.hw).zip(x.par_chunks(self.hw)).enumerate().for_each(|(p, (out, src))| {
            let ch = p % self.c;
            let (m, r) = st[ch];
            let (scale, shift) = (r * w[ch], bias[ch] - m * r * w[ch]);
            out.iter_mut().zip(src).for_each(|(o, &v)| *o = v * scale + shift);
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    /// `dβ = Σ dy`, `dγ = Σ dy · x̂`, `dx = γ · rstd / n · (n · dy − Σ dy − x̂ · Σ dy · x̂)`.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, hw) = (self.b, self.c, self.hw);
        let (dx, dw, db) = with_f32s([x, w, grad], |[xs, ws, dy]| {
            let st = &self.stats;
            let sums: Vec<(f64, f64)> = (0..c)
                .into_par_iter()
                .map(|ch| {
                    let (m, r) = st[ch];
                    (0..b).fold((0f64, 0f64), |(s, sx), i| {
                        let at = (i * c + ch) * hw..(i * c + ch + 1) * hw;
                        let (p, q) = sum2(&xs[at.clone()], &dy[at], |v, g| (g as f64, g as f64 * ((v - m) * r) as f64));
                        (s + p, sx + q)
                    })
                })
                .collect();
            let n = (b * hw) as f32;
            let mut dx = smg_kernels::uninit_f32(xs.len());
            dx.par_chunks_mut(hw).enumerate().for_each(|(p, out)| {
                let ch = p % c;
                let ((m, r), (s, sx)) = (st[ch], sums[ch]);
                let (mean_dy, mean_dyx) = (s as f32 / n, sx as f32 / n);
                let k = ws[ch] * r;
                let at = p * hw..(p + 1) * hw;
                for ((o, &v), &g) in out.iter_mut().zip(&xs[at.clone()]).zip(&dy[at]) {
                    *o = k * (g - mean_dy - (v - m) * r * mean_dyx);
                }
            });
            let dw: Vec<f32> = sums.iter().map(|&(_, sx)| sx as f32).collect();
            let db: Vec<f32> = sums.iter().map(|&(s, _)| s as f32).collect();
            (dx, dw, db)
        })?;
        crate::fast::grads_like([x, w, bias], [dx, dw, db])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, ModuleT};

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        d / b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1e-6)
    }

    /// Output, all three gradients and both running statistics equal candle-nn's
    /// `BatchNorm::forward_train` (the reference) on random inputs.
    #[test]
    fn matches_candle_nn_batch_norm() {
        let dev = Device::Cpu;
        let (b, c, h, w) = (3, 5, 4, 7);
        let x = Var::from_tensor(&(Tensor::randn(0.3f32, 2.0, (b, c, h, w), &dev).unwrap())).unwrap();
        let weight = Var::from_tensor(&Tensor::randn(1f32, 0.2, c, &dev).unwrap()).unwrap();
        let bias = Var::from_tensor(&Tensor::randn(0f32, 0.2, c, &dev).unwrap()).unwrap();
        let (rm0, rv0) = (Tensor::randn(0f32, 0.1, c, &dev).unwrap(), Tensor::ones(c, DType::F32, &dev).unwrap());
        let reference = candle_nn::BatchNorm::new(
            c,
            rm0.copy().unwrap(),
            rv0.copy().unwrap(),
            weight.as_tensor().clone(),
            bias.as_tensor().clone(),
            1e-5,
        )
        .unwrap();
        let want = reference.forward_t(x.as_tensor(), true).unwrap();
        let (rm, rv) = (Var::from_tensor(&rm0.copy().unwrap()).unwrap(), Var::from_tensor(&rv0.copy().unwrap()).unwrap());
        let y = batch_norm_train(x.as_tensor(), weight.as_tensor(), bias.as_tensor(), (&rm, &rv), 0.1, 1e-5).unwrap();
        assert!(max_rel(&y, &want) < 1e-5, "output");
        assert!(max_rel(rm.as_tensor(), reference.running_mean()) < 1e-5, "running mean");
        assert!(max_rel(rv.as_tensor(), reference.running_var()) < 1e-5, "running variance");
        let probe = Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).unwrap();
        let g = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gw = (&want * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (v, name) in [(&x, "x"), (&weight, "weight"), (&bias, "bias")] {
            let r = max_rel(g.get(v.as_tensor()).unwrap(), gw.get(v.as_tensor()).unwrap());
            assert!(r < 1e-4, "gradient of {name}: {r}");
        }
    }

    #[test]
    fn rejects_a_single_value_per_channel() {
        let dev = Device::Cpu;
        let x = Tensor::ones((1, 2, 1, 1), DType::F32, &dev).unwrap();
        let ones = Tensor::ones(2, DType::F32, &dev).unwrap();
        let (rm, rv) = (Var::zeros(2, DType::F32, &dev).unwrap(), Var::ones(2, DType::F32, &dev).unwrap());
        let e = batch_norm_train(&x, &ones, &ones, (&rm, &rv), 0.1, 1e-5).unwrap_err().to_string();
        assert!(e.contains("more than one value"), "{e}");
    }
}
