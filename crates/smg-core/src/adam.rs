//! Adam / AdamW with its state exposed as named tensors, so a checkpoint can hold it and a resumed
//! run continues exactly (candle's own optimisers keep their moments private).
//!
//! On CPU f32 tensors the update runs in place: the moments and then the weight in one pass each
//! ([`step`](Adam::step)), the gradient norm in one pass per gradient and the clipping folded into
//! the moments ([`step_clipped`](Adam::step_clipped)). Composed of candle ops it is a dozen
//! element-wise ops per variable, each allocating its output and waking candle's thread pool.
//! Elsewhere (CUDA, `SMG_FAST=0`) the same update runs as candle ops, the reference the tests
//! compare against.

use crate::fast::{cpu_custom_ops, cpu_f32, with_f32};
use candle_core::{backprop::GradStore, CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};
use rayon::prelude::*;
use std::collections::HashMap;

/// Values per rayon task of the in-place passes.
const CHUNK: usize = 1 << 15;

fn f32_mut<'a>(s: &'a mut CpuStorage, l: &Layout, op: &str) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{op}: f32 only") };
    let (a, b) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{op}: contiguous tensor expected")))?;
    Ok(&mut v[a..b])
}

/// `m ← β·m + (1 − β)·(s·g)` (first moment) or, with `square`, `v ← β·v + (1 − β)·(s·g)²`.
struct Moment {
    beta: f32,
    scale: f32,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (m, g) = (f32_mut(s1, l1, "adam-moment")?, cpu_f32(s2, l2, "adam-moment")?);
        if m.len() != g.len() {
            candle_core::bail!("adam-moment: {} moments for {} gradients", m.len(), g.len());
        }
        let (b, c, s, square) = (self.beta, 1.0 - self.beta, self.scale, self.square);
        m.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(m, g)| {
            if square {
                m.iter_mut().zip(g).for_each(|(m, &g)| *m = *m * b + (g * s) * (g * s) * c);
            } else {
                m.iter_mut().zip(g).for_each(|(m, &g)| *m = *m * b + g * s * c);
            }
        });
        Ok(())
    }
}

/// `w ← w·decay − lr·(m/c1) / (√(v/c2) + ε)`.
struct Update {
    decay: f32,
    lr: f32,
    c1: f32,
    c2: f32,
    eps: f32,
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "adam-update"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<()> {
        let w = f32_mut(s1, l1, "adam-update")?;
        let (m, v) = (cpu_f32(s2, l2, "adam-update")?, cpu_f32(s3, l3, "adam-update")?);
        if m.len() != w.len() || v.len() != w.len() {
            candle_core::bail!("adam-update: {} weights, {} and {} moments", w.len(), m.len(), v.len());
        }
        let Update { decay, lr, c1, c2, eps } = *self;
        w.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK))).for_each(|(w, (m, v))| {
            for ((w, &m), &v) in w.iter_mut().zip(m).zip(v) {
                *w = *w * decay - (m / c1) / ((v / c2).sqrt() + eps) * lr;
            }
        });
        Ok(())
    }
}

#[derive(Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 = plain Adam.
    pub weight_decay: f64,
    pub step: usize,
    vars: Vec<(String, Var, Tensor, Tensor)>,
    /// Variables exempt from weight decay (biases, norms, embeddings by the caller's rule).
    no_decay: Vec<bool>,
}

impl Adam {
    /// Optimises `vars` (name, Var) with Adam(β1, β2), no weight decay (SPEC.md §2.3).
    pub fn new(vars: Vec<(String, Var)>, lr: f64, beta1: f64, beta2: f64) -> Result<Self> {
        let vars = vars
            .into_iter()
            .map(|(n, v)| {
                // Two tensors (not one shared): the fast path updates them in place.
                let (m, s) = (v.as_tensor().zeros_like()?, v.as_tensor().zeros_like()?);
                Ok((n, v, m, s))
            })
            .collect::<Result<Vec<_>>>()?;
        let no_decay = vec![false; vars.len()];
        Ok(Self { lr, beta1, beta2, eps: 1e-8, weight_decay: 0.0, step: 0, vars, no_decay })
    }

    /// AdamW: [`Adam::new`] with decoupled weight decay `wd`.
    pub fn adamw(vars: Vec<(String, Var)>, lr: f64, beta1: f64, beta2: f64, wd: f64) -> Result<Self> {
        let mut a = Self::new(vars, lr, beta1, beta2)?;
        a.weight_decay = wd;
        Ok(a)
    }

    /// Exempts the variables whose name satisfies `f` from weight decay (AdamW practice: no
    /// decay on biases and normalisation parameters).
    pub fn set_no_decay(&mut self, f: impl Fn(&str) -> bool) {
        self.no_decay = self.vars.iter().map(|(n, ..)| f(n)).collect();
    }

    /// The joint L2 norm of the gradients of the optimised variables (summed in f64).
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        for (_, var, _, _) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                total += if cpu_custom_ops(g) {
                    with_f32(g, |g| g.par_chunks(CHUNK).map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>()).sum::<f64>())?
                } else {
                    g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?
                };
            }
        }
        Ok(total.sqrt())
    }

    /// The factor that brings a gradient norm down to `max_norm` (1 when it is already below,
    /// or not finite).
    fn clip_scale(norm: f64, max_norm: f64) -> f64 {
        if norm > max_norm && norm.is_finite() {
            max_norm / (norm + 1e-6)
        } else {
            1.0
        }
    }

    /// Scales every gradient so their joint L2 norm is at most `max_norm`; returns the norm
    /// before clipping. ([`Adam::step_clipped`] does both without rewriting the gradients.)
    pub fn clip_grad_norm(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        let s = Self::clip_scale(norm, max_norm);
        if s != 1.0 {
            for (_, var, _, _) in &self.vars {
                if let Some(g) = grads.remove(var.as_tensor()) {
                    grads.insert(var.as_tensor(), (g * s)?);
                }
            }
        }
        Ok(norm)
    }

    /// One update from `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_scaled(grads, 1.0)
    }

    /// Gradient clipping to a joint L2 norm of `max_norm`, then one update, with the clipping
    /// scale applied inside the update (the gradients are not rewritten); returns the norm
    /// before clipping. The same result as [`Adam::clip_grad_norm`] then [`Adam::step`].
    pub fn step_clipped(&mut self, grads: &GradStore, max_norm: f64) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        self.step_scaled(grads, Self::clip_scale(norm, max_norm))?;
        Ok(norm)
    }

    /// One update with every gradient multiplied by `scale`.
    fn step_scaled(&mut self, grads: &GradStore, scale: f64) -> Result<()> {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        for ((_, var, m, v), &no_decay) in self.vars.iter_mut().zip(&self.no_decay) {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let decay = if self.weight_decay > 0.0 && !no_decay { 1.0 - self.lr * self.weight_decay } else { 1.0 };
            let w = var.as_tensor();
            if cpu_custom_ops(w) && cpu_custom_ops(g) {
                let g = g.contiguous()?;
                m.inplace_op2(&g, &Moment { beta: b1 as f32, scale: scale as f32, square: false })?;
                v.inplace_op2(&g, &Moment { beta: b2 as f32, scale: scale as f32, square: true })?;
                let up = Update { decay: decay as f32, lr: self.lr as f32, c1: c1 as f32, c2: c2 as f32, eps: self.eps as f32 };
                w.inplace_op3(m, v, &up)?;
                continue;
            }
            let g = if scale != 1.0 { (g * scale)? } else { g.clone() };
            *m = ((&*m * b1)? + (&g * (1.0 - b1))?)?;
            *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + self.eps)?)?;
            let w = if decay != 1.0 { (w * decay)? } else { w.clone() };
            var.set(&(w - (update * self.lr)?)?)?;
        }
        Ok(())
    }

    /// Moments as named tensors (`<prefix>.m.<var>`, `<prefix>.v.<var>`) for a checkpoint:
    /// copies, since later steps update the moments in place.
    pub fn state(&self, prefix: &str) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (n, _, m, v) in &self.vars {
            out.insert(format!("{prefix}.m.{n}"), m.copy()?);
            out.insert(format!("{prefix}.v.{n}"), v.copy()?);
        }
        Ok(out)
    }

    /// Restores moments written by [`Adam::state`]; names a missing or mis-shaped tensor.
    pub fn load_state(&mut self, prefix: &str, map: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (n, _, m, v) in self.vars.iter_mut() {
            for (kind, slot) in [("m", &mut *m), ("v", &mut *v)] {
                let key = format!("{prefix}.{kind}.{n}");
                let t = map.get(&key).ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks optimiser tensor {key}")))?;
                if t.dims() != slot.dims() {
                    candle_core::bail!("optimiser tensor {key} has shape {:?}, expected {:?}", t.dims(), slot.dims());
                }
                // A copy of its own: later steps update the moments in place.
                *slot = t.to_dtype(slot.dtype())?.to_device(slot.device())?.contiguous()?.copy()?;
            }
        }
        self.step = step;
        Ok(())
    }
}
