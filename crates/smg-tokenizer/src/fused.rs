//! GroupNorm (+ optional swish) as one CPU custom op with a hand-written backward pass.
//! candle composes GroupNorm from broadcast ops whose forward and backward passes dominate the
//! tokenizer's training step on CPU; this op computes the same values (tested against the plain
//! composition, which stays as the reference and the path for other devices).

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;
use smg_core::fast::{cpu_f32, with_f32s};

/// `GroupNorm(groups, C, eps)` with weights `weight`/`bias` (taming names), then swish if asked.
#[derive(Debug, Clone)]
pub struct GroupNormAct {
    pub weight: Tensor,
    pub bias: Tensor,
    pub groups: usize,
    pub eps: f64,
    pub swish: bool,
}

impl GroupNormAct {
    pub fn new(groups: usize, channels: usize, eps: f64, swish: bool, vb: VarBuilder) -> Result<Self> {
        if !channels.is_multiple_of(groups) {
            candle_core::bail!("GroupNorm: {channels} channels do not split into {groups} groups");
        }
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            groups,
            eps,
            swish,
        })
    }

    /// The plain candle composition (reference; used off the CPU).
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let xg = x.reshape((b, self.groups, c / self.groups * h * w))?;
        let mean = xg.mean_keepdim(2)?;
        let xc = xg.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(2)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?.reshape((b, c, h, w))?;
        let y = xn.broadcast_mul(&self.weight.reshape((1, c, 1, 1))?)?.broadcast_add(&self.bias.reshape((1, c, 1, 1))?)?;
        if self.swish {
            candle_nn::ops::silu(&y)
        } else {
            Ok(y)
        }
    }
}

impl GroupNormAct {
    /// The op on plain slices, for a fused block's own forward and backward passes.
    pub(crate) fn op(&self) -> Op {
        Op { groups: self.groups, eps: self.eps, swish: self.swish }
    }
}

impl Module for GroupNormAct {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !smg_core::fast::cpu_custom_ops(x) {
            return self.forward_reference(x);
        }
        x.contiguous()?.apply_op3(&self.weight.contiguous()?, &self.bias.contiguous()?, self.op())
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    groups: usize,
    eps: f64,
    swish: bool,
}

#[inline(always)]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + smg_kernels::attention::exp(-v))
}

impl Op {
    /// GroupNorm (+ swish) of `x (b, c, hw)` with per-channel `w`, `bias`.
    pub(crate) fn forward(&self, x: &[f32], w: &[f32], bias: &[f32], b: usize, c: usize, hw: usize) -> Vec<f32> {
        let st = self.stats(x, b, c, hw);
        let cg = c / self.groups;
        let mut out = smg_kernels::uninit_f32(x.len());
        out.par_chunks_mut(hw).enumerate().for_each(|(bc, o)| {
            let ch = bc % c;
            let (mean, rstd) = st[(bc / c) * self.groups + ch / cg];
            let (g, bb) = (w[ch] * rstd, bias[ch] - mean * rstd * w[ch]);
            channel_forward(&x[bc * hw..(bc + 1) * hw], o, g, bb, self.swish);
        });
        out
    }

    /// Gradients `(dx, dw, dbias)` of [`Op::forward`] from its input and the output gradient.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward(
        &self,
        xs: &[f32],
        ws: &[f32],
        bs: &[f32],
        gs: &[f32],
        b: usize,
        c: usize,
        hw: usize,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let st = self.stats(xs, b, c, hw);
        let cg = c / self.groups;
        let n = cg * hw;
        // Per group: du = dy · swish'(u) and dx̂ = du·w into `dx`, per-channel sums for dw and db,
        // group sums of dx̂ and dx̂·x̂; then dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)).
        let mut dxs = smg_kernels::uninit_f32(xs.len());
        let per_group: Vec<(Vec<f32>, Vec<f32>)> = dxs
            .par_chunks_mut(n)
            .enumerate()
            .map(|(bg, dx)| {
                let (mean, rstd) = st[bg];
                let (bi, gi) = (bg / self.groups, bg % self.groups);
                let (mut dw, mut db) = (vec![0f32; cg], vec![0f32; cg]);
                let (mut s1, mut s2) = (0f64, 0f64);
                for j in 0..cg {
                    let ch = gi * cg + j;
                    let base = (bi * c + ch) * hw;
                    let (xr, gr, dr) = (&xs[base..base + hw], &gs[base..base + hw], &mut dx[j * hw..(j + 1) * hw]);
                    let [sw, sb, t1, t2] = channel_backward(xr, gr, dr, mean, rstd, ws[ch], bs[ch], self.swish);
                    dw[j] = sw as f32;
                    db[j] = sb as f32;
                    s1 += t1;
                    s2 += t2;
                }
                let (m1, m2) = ((s1 / n as f64) as f32, (s2 / n as f64) as f32);
                for j in 0..cg {
                    let base = (bi * c + gi * cg + j) * hw;
                    channel_input_grad(&mut dx[j * hw..(j + 1) * hw], &xs[base..base + hw], mean, rstd, m1, m2);
                }
                (dw, db)
            })
            .collect();
        let mut dw = vec![0f32; c];
        let mut db = vec![0f32; c];
        for (bg, (gw, gb)) in per_group.into_iter().enumerate() {
            let gi = bg % self.groups;
            for j in 0..cg {
                dw[gi * cg + j] += gw[j];
                db[gi * cg + j] += gb[j];
            }
        }
        (dxs, dw, db)
    }

    /// Per (batch, group): mean and 1/std (two passes, 16 f32 lanes per pass so that they
    /// vectorise, lanes summed in f64).
    fn stats(&self, x: &[f32], b: usize, c: usize, hw: usize) -> Vec<(f32, f32)> {
        let cg = c / self.groups;
        let n = cg * hw;
        (0..b * self.groups)
            .into_par_iter()
            .map(|bg| {
                let seg = &x[bg * n..(bg + 1) * n];
                let mean = (sum_lanes(seg) / n as f64) as f32;
                let var = squared_deviation_lanes(seg, mean) / n as f64;
                (mean, (1.0 / (var + self.eps).sqrt()) as f32)
            })
            .collect()
    }
}

smg_kernels::vectorised! {
    /// One channel of the forward pass: `o = u` or `u · sigmoid(u)` with `u = x·g + b`;
    /// compiled for AVX-512 and for AVX2 + FMA, chosen at run time (`smg_kernels::isa`).
    fn channel_forward(x: &[f32], o: &mut [f32], g: f32, b: f32, swish: bool) {
        if swish {
            for (o, &v) in o.iter_mut().zip(x) {
                let u = v * g + b;
                *o = u * sigmoid(u);
            }
        } else {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = v * g + b;
            }
        }
    }
}

smg_kernels::vectorised! {
    /// The input gradient of one channel from `dx̂` (in `dx`): `rstd·(dx̂ − m1 − x̂·m2)` with
    /// `x̂ = (x − mean)·rstd`, vectorised as [`channel_forward`].
    fn channel_input_grad(dx: &mut [f32], x: &[f32], mean: f32, rstd: f32, m1: f32, m2: f32) {
        for (dv, &xv) in dx.iter_mut().zip(x) {
            *dv = rstd * (*dv - m1 - (xv - mean) * rstd * m2);
        }
    }
}

smg_kernels::vectorised! {
    /// Σ xᵢ in 16 f32 lanes (summed in f64), vectorised as [`channel_forward`].
    fn sum_lanes(xs: &[f32]) -> f64 {
        lanes(xs, |v| v)
    }
}

smg_kernels::vectorised! {
    /// Σ (xᵢ − mean)² in 16 f32 lanes (summed in f64), vectorised as [`channel_forward`].
    fn squared_deviation_lanes(xs: &[f32], mean: f32) -> f64 {
        lanes(xs, |v| (v - mean) * (v - mean))
    }
}

/// Σ f(xᵢ) in 16 f32 lanes, the lanes and the tail summed in f64.
#[inline(always)]
fn lanes(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v) as f64).sum();
    for ch in chunks {
        for i in 0..16 {
            acc[i] += f(ch[i]);
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail
}

impl CustomOp3 for Op {
    fn name(&self) -> &'static str {
        "group-norm-act"
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
        let (x, w, bias) = (cpu_f32(s1, l1, "GroupNormAct")?, cpu_f32(s2, l2, "GroupNormAct")?, cpu_f32(s3, l3, "GroupNormAct")?);
        let (b, c, h, wd) = l1.shape().dims4()?;
        let out = self.forward(x, w, bias, b, c, h * wd);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, wd) = x.dims4()?;
        let (dxs, dw, db) = with_f32s([x, w, bias, grad], |[xs, ws, bs, gs]| self.backward(xs, ws, bs, gs, b, c, h * wd))?;
        let dev = x.device();
        Ok((Some(Tensor::from_vec(dxs, (b, c, h, wd), dev)?), Some(Tensor::from_vec(dw, c, dev)?), Some(Tensor::from_vec(db, c, dev)?)))
    }
}

smg_kernels::vectorised! {
    /// One channel of the backward pass: writes `dx̂ = du·w` into `dr` (with `du = dy · swish'(u)`,
    /// `u = x̂·w + b`) and returns `[Σ du·x̂, Σ du, Σ dx̂, Σ dx̂·x̂]`, in 16 lanes per sum; compiled
    /// for AVX-512 and for AVX2 + FMA, chosen at run time (`smg_kernels::isa`).
    #[allow(clippy::too_many_arguments)]
    fn channel_backward(xr: &[f32], gr: &[f32], dr: &mut [f32], mean: f32, rstd: f32, w: f32, b: f32, swish: bool) -> [f64; 4] {
        channel_backward_body(xr, gr, dr, mean, rstd, w, b, swish)
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn channel_backward_body(xr: &[f32], gr: &[f32], dr: &mut [f32], mean: f32, rstd: f32, w: f32, b: f32, swish: bool) -> [f64; 4] {
    #[inline(always)]
    fn one(x: f32, g: f32, mean: f32, rstd: f32, w: f32, b: f32, swish: bool) -> (f32, f32, f32) {
        let xh = (x - mean) * rstd;
        let du = if swish {
            let u = xh * w + b;
            let sg = sigmoid(u);
            g * (sg * (1.0 + u * (1.0 - sg)))
        } else {
            g
        };
        (xh, du, du * w)
    }
    let mut acc = [[0f32; 16]; 4];
    let n16 = xr.len() / 16 * 16;
    for ((xc, gc), dc) in xr[..n16].chunks_exact(16).zip(gr[..n16].chunks_exact(16)).zip(dr[..n16].chunks_exact_mut(16)) {
        for l in 0..16 {
            let (xh, du, d) = one(xc[l], gc[l], mean, rstd, w, b, swish);
            dc[l] = d;
            acc[0][l] += du * xh;
            acc[1][l] += du;
            acc[2][l] += d;
            acc[3][l] += d * xh;
        }
    }
    let mut out = acc.map(|a| a.iter().map(|&v| v as f64).sum::<f64>());
    for k in n16..xr.len() {
        let (xh, du, d) = one(xr[k], gr[k], mean, rstd, w, b, swish);
        dr[k] = d;
        out[0] += (du * xh) as f64;
        out[1] += du as f64;
        out[2] += d as f64;
        out[3] += (d * xh) as f64;
    }
    out
}
