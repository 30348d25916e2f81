//! Multinomial logistic regression on standardised features: the independent judge of generated audio
//! (trained on real training clips, it says which category a generated clip sounds like).
//! Convex, initialised at zero and fitted by full-batch Adam, so it is deterministic.

use crate::{invalid, Result};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogisticConfig {
    /// L2 penalty on the weights (not the biases), added to the mean cross-entropy as `l2/2·‖W‖²`.
    pub l2: f64,
    pub iterations: usize,
    pub lr: f64,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self { l2: 1e-3, iterations: 600, lr: 0.05 }
    }
}

/// A fitted classifier: feature standardisation plus weights `(dim + 1, classes)` (last row bias).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogisticRegression {
    pub classes: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Row-major `(dim + 1) × classes`.
    pub weights: Vec<f64>,
    pub final_loss: f64,
}

fn check_rows(x: &[Vec<f64>], dim: Option<usize>) -> Result<usize> {
    let d = dim.unwrap_or_else(|| x.first().map_or(0, |r| r.len()));
    for (i, r) in x.iter().enumerate() {
        if r.len() != d {
            return invalid(format!("feature row {i} has {} values, expected {d}", r.len()));
        }
        if let Some(j) = r.iter().position(|v| !v.is_finite()) {
            return invalid(format!("feature row {i} has a non-finite value at {j}"));
        }
    }
    Ok(d)
}

impl LogisticRegression {
    /// Fits on rows `x` with labels `y` (names; the class list is their sorted distinct set).
    pub fn fit(x: &[Vec<f64>], y: &[String], cfg: &LogisticConfig) -> Result<Self> {
        if x.is_empty() || x.len() != y.len() {
            return invalid(format!("need as many labels as feature rows (at least one), got {} rows and {} labels", x.len(), y.len()));
        }
        let d = check_rows(x, None)?;
        let mut classes: Vec<String> = y.to_vec();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 {
            return invalid("a classifier needs at least 2 classes");
        }
        let n = x.len();
        let mean: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
        let std: Vec<f64> = (0..d).map(|j| (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64).sqrt().max(1e-8)).collect();
        let mut model = Self { classes, mean, std, weights: vec![], final_loss: f64::NAN };
        let xs = model.design(x);
        let c = model.classes.len();
        let target = DMatrix::from_fn(n, c, |i, k| (model.classes[k] == y[i]) as u8 as f64);
        let mut w = DMatrix::<f64>::zeros(d + 1, c);
        let (mut m1, mut m2) = (w.clone(), w.clone());
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        for it in 1..=cfg.iterations {
            let p = softmax_rows(&(&xs * &w));
            let mut g = xs.transpose() * (&p - &target) / n as f64;
            for i in 0..d {
                for k in 0..c {
                    g[(i, k)] += cfg.l2 * w[(i, k)];
                }
            }
            m1 = &m1 * b1 + &g * (1.0 - b1);
            m2 = &m2 * b2 + g.component_mul(&g) * (1.0 - b2);
            let (c1, c2) = (1.0 - b1.powi(it as i32), 1.0 - b2.powi(it as i32));
            w -= m1.zip_map(&m2, |a, b| cfg.lr * (a / c1) / ((b / c2).sqrt() + eps));
        }
        let p = softmax_rows(&(&xs * &w));
        let ce = -(0..n).map(|i| (0..c).map(|k| target[(i, k)] * p[(i, k)].max(1e-300).ln()).sum::<f64>()).sum::<f64>() / n as f64;
        model.final_loss = ce + 0.5 * cfg.l2 * w.rows(0, d).norm_squared();
        model.weights = (0..=d).flat_map(|i| (0..c).map(move |k| (i, k))).map(|(i, k)| w[(i, k)]).collect();
        Ok(model)
    }

    fn design(&self, x: &[Vec<f64>]) -> DMatrix<f64> {
        let d = self.mean.len();
        DMatrix::from_fn(x.len(), d + 1, |i, j| if j == d { 1.0 } else { (x[i][j] - self.mean[j]) / self.std[j] })
    }

    /// Class probabilities `(rows, classes)`, row-major per input row.
    pub fn predict_proba(&self, x: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        check_rows(x, Some(self.mean.len()))?;
        let c = self.classes.len();
        let w = DMatrix::from_row_slice(self.mean.len() + 1, c, &self.weights);
        let p = softmax_rows(&(self.design(x) * w));
        Ok((0..x.len()).map(|i| p.row(i).iter().copied().collect()).collect())
    }

    /// The most probable class name of each row.
    pub fn predict(&self, x: &[Vec<f64>]) -> Result<Vec<String>> {
        Ok(self
            .predict_proba(x)?
            .iter()
            .map(|p| {
                let k = p.iter().enumerate().fold(0, |b, (k, v)| if *v > p[b] { k } else { b });
                self.classes[k].clone()
            })
            .collect())
    }

    /// Fraction of rows whose prediction equals the label.
    pub fn accuracy(&self, x: &[Vec<f64>], y: &[String]) -> Result<f64> {
        if x.len() != y.len() || x.is_empty() {
            return invalid(format!("{} rows but {} labels", x.len(), y.len()));
        }
        let p = self.predict(x)?;
        Ok(p.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64)
    }
}

fn softmax_rows(z: &DMatrix<f64>) -> DMatrix<f64> {
    let mut p = z.clone();
    for mut row in p.row_iter_mut() {
        let m = row.max();
        row.apply(|v| *v = (*v - m).exp());
        let s = row.sum();
        row /= s;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn blobs(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<String>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let centres = [[0.0, 0.0, 5.0], [3.0, 0.0, 5.0], [0.0, 3.0, 5.0]];
        let mut x = vec![];
        let mut y = vec![];
        for i in 0..n {
            let k = i % 3;
            x.push((0..3).map(|j| centres[k][j] + rng.random_range(-1.0..1.0)).collect());
            y.push(format!("c{k}"));
        }
        (x, y)
    }

    #[test]
    fn separates_blobs_and_is_deterministic() {
        let (x, y) = blobs(300, 1);
        let m = LogisticRegression::fit(&x, &y, &LogisticConfig::default()).unwrap();
        let (xt, yt) = blobs(150, 2);
        assert!(m.accuracy(&xt, &yt).unwrap() > 0.95);
        let m2 = LogisticRegression::fit(&x, &y, &LogisticConfig::default()).unwrap();
        assert_eq!(m.weights, m2.weights);
        let p = m.predict_proba(&xt[..1]).unwrap();
        assert!((p[0].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_input_is_named() {
        let (x, y) = blobs(9, 1);
        assert!(LogisticRegression::fit(&x, &y[..3], &LogisticConfig::default()).is_err());
        let one = vec!["a".to_string(); 9];
        assert!(LogisticRegression::fit(&x, &one, &LogisticConfig::default()).is_err());
        let m = LogisticRegression::fit(&x, &y, &LogisticConfig::default()).unwrap();
        assert!(m.predict(&[vec![1.0]]).unwrap_err().to_string().contains("expected 3"));
        assert!(m.predict(&[vec![1.0, f64::INFINITY, 0.0]]).is_err());
    }
}
