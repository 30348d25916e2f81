//! The linear probe of SPEC.md §7 (the paper's representation experiment, MARBLE's protocol):
//! BatchNorm1d → Dropout(0.1) → Linear over frozen clip features, multi-label BCE-with-logits,
//! Adam (lr 1e-3, no weight decay), batches of 64, at most 100 epochs, learning rate halved when
//! validation macro ROC-AUC has not improved for 3 epochs, early stop after 10, and the weights of
//! the best validation epoch kept. Seeded: shuffling, dropout masks and initialisation draw from
//! one `StdRng`.

use crate::metrics::{macro_scores, MacroScores};
use crate::{invalid, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeConfig {
    pub lr: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without a better validation ROC-AUC before stopping.
    pub patience: usize,
    /// Epochs without improvement before the learning rate is multiplied by `lr_factor`.
    pub lr_patience: usize,
    pub lr_factor: f64,
    pub dropout: f64,
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self { lr: 1e-3, batch_size: 64, max_epochs: 100, patience: 10, lr_patience: 3, lr_factor: 0.5, dropout: 0.1, seed: 0 }
    }
}

/// Features `x[i]` (one row per clip) with multi-hot labels `y[i]`.
#[derive(Debug, Clone, Copy)]
pub struct ProbeData<'a> {
    pub x: &'a [Vec<f64>],
    pub y: &'a [Vec<bool>],
}

impl ProbeData<'_> {
    fn check(&self, what: &str, dim: Option<usize>, labels: Option<usize>) -> Result<(usize, usize)> {
        if self.x.is_empty() || self.x.len() != self.y.len() {
            return invalid(format!(
                "{what}: {} feature rows and {} label rows (need the same number, at least 1)",
                self.x.len(),
                self.y.len()
            ));
        }
        let d = dim.unwrap_or(self.x[0].len());
        let l = labels.unwrap_or(self.y[0].len());
        for (i, r) in self.x.iter().enumerate() {
            if r.len() != d {
                return invalid(format!("{what}: feature row {i} has {} values, expected {d}", r.len()));
            }
            if let Some(j) = r.iter().position(|v| !v.is_finite()) {
                return invalid(format!("{what}: feature row {i} has a non-finite value at {j}"));
            }
        }
        if let Some(i) = self.y.iter().position(|r| r.len() != l) {
            return invalid(format!("{what}: label row {i} has {} labels, expected {l}", self.y[i].len()));
        }
        Ok((d, l))
    }
}

/// One epoch of training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid: MacroScores,
    pub lr: f64,
}

/// A fitted probe (eval mode: BatchNorm with running statistics, no dropout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinearProbe {
    pub labels: Vec<String>,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    pub bn_weight: Vec<f32>,
    pub bn_bias: Vec<f32>,
    /// `(dim, labels)` row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub best_epoch: usize,
    pub history: Vec<EpochLog>,
}

const BN_EPS: f64 = 1e-5;

fn rows_tensor(x: &[Vec<f64>], idx: &[usize]) -> candle_core::Result<Tensor> {
    let d = x[idx[0]].len();
    let v: Vec<f32> = idx.iter().flat_map(|&i| x[i].iter().map(|&v| v as f32)).collect();
    Tensor::from_vec(v, (idx.len(), d), &Device::Cpu)
}

fn labels_tensor(y: &[Vec<bool>], idx: &[usize]) -> candle_core::Result<Tensor> {
    let l = y[idx[0]].len();
    let v: Vec<f32> = idx.iter().flat_map(|&i| y[i].iter().map(|&b| b as u8 as f32)).collect();
    Tensor::from_vec(v, (idx.len(), l), &Device::Cpu)
}

/// Mean binary cross-entropy with logits, in the stable form max(z, 0) − z·y + ln(1 + e^−|z|).
fn bce_with_logits(z: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let t = (z.relu()? - z.mul(y)?)?;
    let soft = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (t + soft)?.mean_all()
}

struct Params {
    gamma: Var,
    beta: Var,
    w: Var,
    b: Var,
}

impl LinearProbe {
    /// Trains on `train`, selecting the epoch by macro ROC-AUC on `valid`.
    pub fn fit(train: ProbeData, valid: ProbeData, labels: &[String], cfg: &ProbeConfig, show_progress: bool) -> Result<Self> {
        let (d, l) = train.check("train", None, Some(labels.len()))?;
        valid.check("valid", Some(d), Some(l))?;
        if train.x.len() < 2 {
            return invalid("the probe needs at least 2 training rows (BatchNorm)");
        }
        if cfg.batch_size < 2 || cfg.max_epochs == 0 || !(0.0..1.0).contains(&cfg.dropout) || cfg.lr.is_nan() || cfg.lr <= 0.0 {
            return invalid(format!(
                "bad probe settings: batch {} (≥ 2), epochs {} (≥ 1), dropout {} ([0, 1)), lr {} (> 0)",
                cfg.batch_size, cfg.max_epochs, cfg.dropout, cfg.lr
            ));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let bound = 1.0 / (d as f64).sqrt();
        let mut uni = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect() };
        let dev = Device::Cpu;
        let w0 = uni(d * l);
        let b0 = uni(l);
        let p = Params {
            gamma: Var::from_tensor(&Tensor::ones(d, DType::F32, &dev)?)?,
            beta: Var::from_tensor(&Tensor::zeros(d, DType::F32, &dev)?)?,
            w: Var::from_tensor(&Tensor::from_vec(w0, (d, l), &dev)?)?,
            b: Var::from_tensor(&Tensor::from_vec(b0, l, &dev)?)?,
        };
        let mut opt = AdamW::new(
            vec![p.gamma.clone(), p.beta.clone(), p.w.clone(), p.b.clone()],
            ParamsAdamW { lr: cfg.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
        )?;
        let (mut rmean, mut rvar) = (vec![0f32; d], vec![1f32; d]);
        let mut probe = Self {
            labels: labels.to_vec(),
            running_mean: rmean.clone(),
            running_var: rvar.clone(),
            bn_weight: vec![],
            bn_bias: vec![],
            weight: vec![],
            bias: vec![],
            best_epoch: 0,
            history: vec![],
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x5eed);
        let (mut best, mut best_plateau, mut bad, mut bad_lr, mut lr) = (f64::NEG_INFINITY, f64::NEG_INFINITY, 0, 0, cfg.lr);
        let bar = if show_progress { indicatif::ProgressBar::new(cfg.max_epochs as u64) } else { indicatif::ProgressBar::hidden() };
        let n = train.x.len();
        for epoch in 1..=cfg.max_epochs {
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let (mut loss_sum, mut seen) = (0.0, 0);
            for chunk in order.chunks(cfg.batch_size).filter(|c| c.len() >= 2) {
                let (x, y) = (rows_tensor(train.x, chunk)?, labels_tensor(train.y, chunk)?);
                let bsz = chunk.len();
                let mu = x.mean_keepdim(0)?;
                let xc = x.broadcast_sub(&mu)?;
                let var = xc.sqr()?.mean_keepdim(0)?;
                let h = xc
                    .broadcast_div(&(var.clone() + BN_EPS)?.sqrt()?)?
                    .broadcast_mul(&p.gamma.as_tensor().unsqueeze(0)?)?
                    .broadcast_add(&p.beta.as_tensor().unsqueeze(0)?)?;
                let h = if cfg.dropout > 0.0 {
                    let keep = 1.0 - cfg.dropout;
                    let m: Vec<f32> = (0..bsz * d).map(|_| if rng.random::<f64>() < keep { (1.0 / keep) as f32 } else { 0.0 }).collect();
                    h.mul(&Tensor::from_vec(m, (bsz, d), &dev)?)?
                } else {
                    h
                };
                let z = h.matmul(p.w.as_tensor())?.broadcast_add(&p.b.as_tensor().unsqueeze(0)?)?;
                let loss = bce_with_logits(&z, &y)?;
                opt.backward_step(&loss)?;
                loss_sum += loss.to_scalar::<f32>()? as f64 * bsz as f64;
                seen += bsz;
                let (mu, var) = (mu.squeeze(0)?.to_vec1::<f32>()?, var.squeeze(0)?.to_vec1::<f32>()?);
                let unbias = bsz as f32 / (bsz as f32 - 1.0);
                for j in 0..d {
                    rmean[j] = 0.9 * rmean[j] + 0.1 * mu[j];
                    rvar[j] = 0.9 * rvar[j] + 0.1 * var[j] * unbias;
                }
            }
            let current = Self {
                running_mean: rmean.clone(),
                running_var: rvar.clone(),
                bn_weight: p.gamma.as_tensor().to_vec1()?,
                bn_bias: p.beta.as_tensor().to_vec1()?,
                weight: p.w.as_tensor().flatten_all()?.to_vec1()?,
                bias: p.b.as_tensor().to_vec1()?,
                ..probe.clone()
            };
            let v = current.evaluate(valid)?;
            let auc = v.roc_auc;
            probe.history.push(EpochLog { epoch, train_loss: loss_sum / seen.max(1) as f64, valid: v, lr });
            bar.set_message(format!("valid ROC-AUC {auc:.4}"));
            bar.inc(1);
            if auc > best {
                best = auc;
                let history = std::mem::take(&mut probe.history);
                probe = Self { best_epoch: epoch, history, ..current };
                bad = 0;
            } else {
                bad += 1;
            }
            // ReduceLROnPlateau(mode max, threshold 1e-4 relative).
            if auc > best_plateau * (1.0 + 1e-4 * best_plateau.signum()) {
                best_plateau = auc;
                bad_lr = 0;
            } else {
                bad_lr += 1;
                if bad_lr > cfg.lr_patience {
                    lr *= cfg.lr_factor;
                    opt.set_learning_rate(lr);
                    bad_lr = 0;
                }
            }
            if bad >= cfg.patience {
                break;
            }
        }
        bar.finish_and_clear();
        Ok(probe)
    }

    /// Label probabilities (sigmoid of the logits) for each row.
    pub fn predict(&self, x: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        let d = self.running_mean.len();
        let l = self.labels.len();
        let mut out = Vec::with_capacity(x.len());
        for (i, r) in x.iter().enumerate() {
            if r.len() != d {
                return invalid(format!("feature row {i} has {} values, the probe takes {d}", r.len()));
            }
            let h: Vec<f64> = (0..d)
                .map(|j| {
                    (r[j] - self.running_mean[j] as f64) / (self.running_var[j] as f64 + BN_EPS).sqrt() * self.bn_weight[j] as f64
                        + self.bn_bias[j] as f64
                })
                .collect();
            out.push(
                (0..l)
                    .map(|k| {
                        let z = self.bias[k] as f64 + (0..d).map(|j| h[j] * self.weight[j * l + k] as f64).sum::<f64>();
                        1.0 / (1.0 + (-z).exp())
                    })
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Macro ROC-AUC and mAP on `data`.
    pub fn evaluate(&self, data: ProbeData) -> Result<MacroScores> {
        data.check("evaluation", Some(self.running_mean.len()), Some(self.labels.len()))?;
        macro_scores(&self.predict(data.x)?, data.y)
    }
}

/// Mean over the last axis of `(B, N, D)` hidden states, for features (helper for callers that
/// hold candle tensors).
pub fn mean_tokens(h: &Tensor) -> candle_core::Result<Vec<Vec<f64>>> {
    h.mean(D::Minus2)?.to_dtype(DType::F64)?.to_vec2()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 labels, each "on" when one of three feature directions is large; 8 noisy features.
    fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<bool>>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut x = vec![];
        let mut y = vec![];
        for _ in 0..n {
            let r: Vec<f64> = (0..8).map(|_| rng.random_range(-1.0..1.0) * 3.0 + 10.0).collect();
            y.push(vec![r[0] > 10.5, r[1] + r[2] > 20.0, r[3] < 8.0]);
            x.push(r);
        }
        (x, y)
    }

    #[test]
    fn learns_separable_labels_deterministically_and_keeps_the_best_epoch() {
        let (xt, yt) = data(400, 1);
        let (xv, yv) = data(120, 2);
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let cfg = ProbeConfig { max_epochs: 100, lr: 1e-2, ..Default::default() };
        let (tr, va) = (ProbeData { x: &xt, y: &yt }, ProbeData { x: &xv, y: &yv });
        let p = LinearProbe::fit(tr, va, &labels, &cfg, false).unwrap();
        let s = p.evaluate(va).unwrap();
        assert!(s.roc_auc > 0.95 && s.labels_used == 3, "{s:?}");
        let best = p.history.iter().map(|h| h.valid.roc_auc).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(p.history[p.best_epoch - 1].valid.roc_auc, best);
        assert!((s.roc_auc - best).abs() < 1e-9, "the kept weights are the best epoch's");
        assert!(p.history[0].train_loss > p.history.last().unwrap().train_loss);
        let q = LinearProbe::fit(tr, va, &labels, &cfg, false).unwrap();
        assert_eq!(p.weight, q.weight, "same seed, same probe");
    }

    #[test]
    fn bad_input_is_named() {
        let (x, y) = data(10, 1);
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let d = ProbeData { x: &x, y: &y };
        let e = LinearProbe::fit(ProbeData { x: &x[..3], y: &y }, d, &labels, &ProbeConfig::default(), false).unwrap_err();
        assert!(e.to_string().contains("3 feature rows and 10 label rows"), "{e}");
        let e = LinearProbe::fit(d, d, &labels[..2], &ProbeConfig::default(), false).unwrap_err();
        assert!(e.to_string().contains("expected 2"), "{e}");
        let bad = ProbeConfig { dropout: 1.5, ..Default::default() };
        assert!(LinearProbe::fit(d, d, &labels, &bad, false).unwrap_err().to_string().contains("dropout"));
        let mut xn = x.clone();
        xn[4][2] = f64::NAN;
        assert!(LinearProbe::fit(ProbeData { x: &xn, y: &y }, d, &labels, &ProbeConfig::default(), false)
            .unwrap_err()
            .to_string()
            .contains("row 4"));
    }
}
