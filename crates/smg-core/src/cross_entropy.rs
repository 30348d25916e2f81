//! Label-smoothed cross-entropy over rows of logits (SPEC.md §3.5: ε = 0.1 on the masked
//! positions) as one autograd node on CPU f32.
//!
//! Composed of candle ops (log-softmax, gather, two means) the loss is eight nodes over the
//! whole `(rows, vocab)` logits, each with its own output and, in the backward pass, its own
//! zero-filled and accumulated gradient buffer. Here one pass per row gives the loss (and the
//! argmax accuracy) and one pass writes the logits' gradient,
//! `(softmax − (1 − ε)·onehot(y) − ε / V) / rows`. Checked against the composition below.

use crate::fast::{cpu_custom_ops, cpu_f32, with_f32s};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Rows per rayon task.
const ROWS: usize = 64;

/// Mean over the rows of `logits (R, V)` of the label-smoothed (ε = `eps`) cross-entropy
/// against `targets` (R class indices), `(1 − ε)·(−log p_y) + ε·mean_j(−log p_j)`, and the
/// fraction of rows whose argmax is the target. One node on CPU f32; candle's ops elsewhere.
pub fn cross_entropy_smoothed(logits: &Tensor, targets: &[u32], eps: f64) -> Result<(Tensor, f32)> {
    let (r, v) = logits.dims2()?;
    if targets.len() != r {
        candle_core::bail!("cross-entropy: {} targets for {r} rows of logits", targets.len());
    }
    if r == 0 {
        candle_core::bail!("cross-entropy: no rows");
    }
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= v) {
        candle_core::bail!("cross-entropy: target {bad} outside the {v} classes");
    }
    if !(0.0..=1.0).contains(&eps) {
        candle_core::bail!("cross-entropy: label smoothing {eps} outside [0, 1]");
    }
    if !cpu_custom_ops(logits) {
        return composed(logits, targets, eps);
    }
    let correct = Arc::new(Mutex::new(0usize));
    let op = CrossEntropy { targets: targets.to_vec(), v, eps: eps as f32, correct: correct.clone(), shifts: Mutex::new(None) };
    let loss = logits.contiguous()?.apply_op1(op)?;
    let hits = *correct.lock().expect("cross-entropy state");
    Ok((loss, hits as f32 / r as f32))
}

/// The same loss composed of candle's ops (the reference, and the path off the CPU).
fn composed(logits: &Tensor, targets: &[u32], eps: f64) -> Result<(Tensor, f32)> {
    let y = Tensor::new(targets, logits.device())?;
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    let smooth = logp.mean(1)?.neg()?;
    let loss = ((nll * (1.0 - eps))? + (smooth * eps)?)?.mean_all()?;
    let acc = logits.argmax(1)?.eq(&y)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()?;
    Ok((loss, acc))
}

struct CrossEntropy {
    targets: Vec<u32>,
    v: usize,
    eps: f32,
    /// Rows whose argmax is the target (written by the forward pass).
    correct: Arc<Mutex<usize>>,
    /// Each row's `max + log Σ exp(x − max)` from the forward pass, so that the backward pass
    /// takes one exponential per logit (recomputed if a second backward pass asks).
    shifts: Mutex<Option<Vec<f32>>>,
}

/// Row maximum, its first index and `log Σ exp(x − max)`.
fn row_stats(x: &[f32]) -> (f32, usize, f32) {
    let (mut m, mut at) = (f32::NEG_INFINITY, 0);
    for (j, &v) in x.iter().enumerate() {
        if v > m {
            (m, at) = (v, j);
        }
    }
    let s: f32 = x.iter().map(|&v| (v - m).exp()).sum();
    (m, at, s.ln())
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s, l, "cross-entropy")?;
        let (v, eps) = (self.v, self.eps as f64);
        // Per task: (loss sum in f64, hits), summed in task order (bit-reproducible).
        let mut shifts = vec![0f32; self.targets.len()];
        let parts: Vec<(f64, usize)> = x
            .par_chunks(ROWS * v)
            .zip(self.targets.par_chunks(ROWS).zip(shifts.par_chunks_mut(ROWS)))
            .map(|(rows, (ys, sh))| {
                let (mut loss, mut hits) = (0f64, 0usize);
                for ((row, &y), sh) in rows.chunks_exact(v).zip(ys).zip(sh) {
                    let (m, at, lse) = row_stats(row);
                    *sh = m + lse;
                    let lse = *sh as f64;
                    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / v as f64;
                    loss += lse - (1.0 - eps) * row[y as usize] as f64 - eps * mean;
                    hits += usize::from(at == y as usize);
                }
                (loss, hits)
            })
            .collect();
        let (loss, hits) = parts.iter().fold((0f64, 0usize), |(a, h), &(b, k)| (a + b, h + k));
        *self.correct.lock().expect("cross-entropy state") = hits;
        *self.shifts.lock().expect("cross-entropy state") = Some(shifts);
        let mean = (loss / self.targets.len() as f64) as f32;
        if !mean.is_finite() {
            candle_core::bail!("cross-entropy: the loss is {mean} (non-finite logits)");
        }
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (v, eps) = (self.v, self.eps);
        let r = self.targets.len();
        let mut dx = smg_kernels::uninit_f32(r * v);
        let saved = self.shifts.lock().expect("cross-entropy state").take();
        with_f32s([x, grad], |[xs, g]| {
            let shifts = saved.unwrap_or_else(|| xs.chunks_exact(v).map(row_stats).map(|(m, _, lse)| m + lse).collect());
            let scale = g[0] / r as f32;
            let (hit, rest) = ((1.0 - eps) * scale, eps / v as f32 * scale);
            let work =
                dx.par_chunks_mut(ROWS * v).zip(xs.par_chunks(ROWS * v)).zip(self.targets.par_chunks(ROWS).zip(shifts.par_chunks(ROWS)));
            work.for_each(|((d, rows), (ys, sh))| {
                for (((d, row), &y), &shift) in d.chunks_exact_mut(v).zip(rows.chunks_exact(v)).zip(ys).zip(sh) {
                    d.iter_mut().zip(row).for_each(|(d, &x)| *d = (x - shift).exp() * scale - rest);
                    d[y as usize] -= hit;
                }
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn loss_accuracy_and_gradient_match_candle_ops() {
        let (r, v) = (150, 37);
        let x = Var::from_tensor(&(crate::test_util::rand(&[r, v], 3) * 4.0).unwrap()).unwrap();
        let targets: Vec<u32> = (0..r as u32).map(|i| (i * 7 + i / 3) % v as u32).collect();
        for eps in [0.0, 0.1, 1.0] {
            let (fused, acc) = cross_entropy_smoothed(x.as_tensor(), &targets, eps).unwrap();
            let (want, want_acc) = composed(x.as_tensor(), &targets, eps).unwrap();
            let (a, b) = (fused.to_scalar::<f32>().unwrap(), want.to_scalar::<f32>().unwrap());
            assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "ε {eps}: loss {a} against {b}");
            assert_eq!(acc, want_acc, "ε {eps}: accuracy");
            let gf = (fused * 3.0).unwrap().backward().unwrap();
            let gr = (want * 3.0).unwrap().backward().unwrap();
            let (ga, gb) = (gf.get(x.as_tensor()).unwrap(), gr.get(x.as_tensor()).unwrap());
            let d = (ga - gb).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-6, "ε {eps}: gradients differ by {d}");
        }
    }

    #[test]
    fn bad_targets_are_named() {
        let x = crate::test_util::rand(&[4, 5], 1);
        let e = cross_entropy_smoothed(&x, &[0, 1, 2, 5], 0.1).unwrap_err().to_string();
        assert!(e.contains("target 5"), "{e}");
        let e = cross_entropy_smoothed(&x, &[0, 1], 0.1).unwrap_err().to_string();
        assert!(e.contains("2 targets for 4 rows"), "{e}");
    }
}
