//! Adam / AdamW with its state exposed as named tensors, so a checkpoint can hold it and a resumed
//! run continues exactly (candle's own optimisers keep their moments private).

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use std::collections::HashMap;

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
                let z = v.as_tensor().zeros_like()?;
                Ok((n, v, z.clone(), z))
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

    /// Scales every gradient so their joint L2 norm is at most `max_norm`; returns the norm
    /// before clipping.
    pub fn clip_grad_norm(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        let mut total = 0f64;
        for (_, var, _, _) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        let norm = total.sqrt();
        if norm > max_norm && norm.is_finite() {
            let s = max_norm / (norm + 1e-6);
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
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        for ((_, var, m, v), &no_decay) in self.vars.iter_mut().zip(&self.no_decay) {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            *m = ((&*m * b1)? + (g * (1.0 - b1))?)?;
            *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + self.eps)?)?;
            let w = if self.weight_decay > 0.0 && !no_decay {
                (var.as_tensor() * (1.0 - self.lr * self.weight_decay))?
            } else {
                var.as_tensor().clone()
            };
            var.set(&(w - (update * self.lr)?)?)?;
        }
        Ok(())
    }

    /// Moments as named tensors (`<prefix>.m.<var>`, `<prefix>.v.<var>`) for a checkpoint.
    pub fn state(&self, prefix: &str) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (n, _, m, v) in &self.vars {
            out.insert(format!("{prefix}.m.{n}"), m.clone());
            out.insert(format!("{prefix}.v.{n}"), v.clone());
        }
        out
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
                *slot = t.clone();
            }
        }
        self.step = step;
        Ok(())
    }
}
