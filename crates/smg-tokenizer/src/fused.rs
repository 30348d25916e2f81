//! GroupNorm (+ optional swish) as one CPU custom op with a hand-written backward pass.
//! candle composes GroupNorm from broadcast ops whose forward and backward passes dominate the
//! tokenizer's training step on CPU; this op computes the same values (tested against the plain
//! composition, which stays as the reference and the path for other devices).

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

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

impl Module for GroupNormAct {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !smg_core::fast::cpu_custom_ops(x) {
            return self.forward_reference(x);
        }
        let op = Op { groups: self.groups, eps: self.eps, swish: self.swish };
        x.contiguous()?.apply_op3(&self.weight.contiguous()?, &self.bias.contiguous()?, op)
    }
}

#[derive(Debug, Clone, Copy)]
struct Op {
    groups: usize,
    eps: f64,
    swish: bool,
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("GroupNormAct: f32 only") };
    let (a, b) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("GroupNormAct: contiguous input expected".into()))?;
    Ok(&v[a..b])
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl Op {
    /// Per (batch, group): mean and 1/std.
    fn stats(&self, x: &[f32], b: usize, c: usize, hw: usize) -> Vec<(f32, f32)> {
        let cg = c / self.groups;
        let n = cg * hw;
        (0..b * self.groups)
            .into_par_iter()
            .map(|bg| {
                let seg = &x[bg * n..(bg + 1) * n];
                let mean = seg.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let var = seg.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
                (mean as f32, (1.0 / (var + self.eps).sqrt()) as f32)
            })
            .collect()
    }
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
        let (x, w, bias) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (b, c, h, wd) = l1.shape().dims4()?;
        let hw = h * wd;
        let st = self.stats(x, b, c, hw);
        let cg = c / self.groups;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(hw).enumerate().for_each(|(bc, o)| {
            let ch = bc % c;
            let (mean, rstd) = st[(bc / c) * self.groups + ch / cg];
            let (g, bb) = (w[ch] * rstd, bias[ch] - mean * rstd * w[ch]);
            let xs = &x[bc * hw..(bc + 1) * hw];
            for (o, &v) in o.iter_mut().zip(xs) {
                let u = v * g + bb;
                *o = if self.swish { u * sigmoid(u) } else { u };
            }
        });
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
        let hw = h * wd;
        let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let ws: Vec<f32> = w.to_vec1()?;
        let bs: Vec<f32> = bias.to_vec1()?;
        let gs: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let st = self.stats(&xs, b, c, hw);
        let cg = c / self.groups;
        let n = cg * hw;
        // du = dy · swish'(u); per channel sums for dw, db; per group sums for dx.
        let mut dxs = vec![0f32; xs.len()];
        let per_group: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = dxs
            .par_chunks_mut(n)
            .enumerate()
            .map(|(bg, dx)| {
                let (mean, rstd) = st[bg];
                let (bi, gi) = (bg / self.groups, bg % self.groups);
                let mut dw = vec![0f32; cg];
                let mut db = vec![0f32; cg];
                let mut dxhat = vec![0f32; n];
                let mut xhat = vec![0f32; n];
                let (mut s1, mut s2) = (0f64, 0f64);
                for j in 0..cg {
                    let ch = gi * cg + j;
                    let base = (bi * c + ch) * hw;
                    for k in 0..hw {
                        let xh = (xs[base + k] - mean) * rstd;
                        let u = xh * ws[ch] + bs[ch];
                        let du = if self.swish {
                            let sg = sigmoid(u);
                            gs[base + k] * (sg * (1.0 + u * (1.0 - sg)))
                        } else {
                            gs[base + k]
                        };
                        dw[j] += du * xh;
                        db[j] += du;
                        let d = du * ws[ch];
                        dxhat[j * hw + k] = d;
                        xhat[j * hw + k] = xh;
                        s1 += d as f64;
                        s2 += (d * xh) as f64;
                    }
                }
                let (m1, m2) = ((s1 / n as f64) as f32, (s2 / n as f64) as f32);
                for i in 0..n {
                    dx[i] = rstd * (dxhat[i] - m1 - xhat[i] * m2);
                }
                (dw, db, vec![bi as f32, gi as f32])
            })
            .collect();
        let mut dw = vec![0f32; c];
        let mut db = vec![0f32; c];
        for (gw, gb, id) in per_group {
            let gi = id[1] as usize;
            for j in 0..cg {
                dw[gi * cg + j] += gw[j];
                db[gi * cg + j] += gb[j];
            }
        }
        let dev = x.device();
        Ok((Some(Tensor::from_vec(dxs, (b, c, h, wd), dev)?), Some(Tensor::from_vec(dw, c, dev)?), Some(Tensor::from_vec(db, c, dev)?)))
    }
}
