//! Fréchet distance between two Gaussians fitted to embedding sets (SPEC.md §6):
//! FD = ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^{1/2}, with the trace term computed as
//! Σᵢ √max(λᵢ, 0) over the eigenvalues of the symmetric PSD matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2}
//! (Σ₁^{1/2} by symmetric eigendecomposition); it has the same eigenvalues as Σ₁Σ₂, so this equals
//! scipy's `sqrtm` route without complex arithmetic.

use crate::{invalid, Result};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Mean and unbiased (N−1) covariance of a set of embeddings.
#[derive(Debug, Clone)]
pub struct Gaussian {
    pub mean: DVector<f64>,
    pub cov: DMatrix<f64>,
    /// How many embeddings it was fitted to.
    pub count: usize,
}

impl Gaussian {
    /// Fits `rows` (each one embedding, all the same length; at least 2).
    pub fn fit(rows: &[Vec<f64>]) -> Result<Self> {
        let n = rows.len();
        if n < 2 {
            return invalid(format!("a Fréchet distance needs at least 2 embeddings per set, got {n}"));
        }
        let d = rows[0].len();
        if d == 0 {
            return invalid("embeddings are empty");
        }
        for (i, r) in rows.iter().enumerate() {
            if r.len() != d {
                return invalid(format!("embedding {i} has {} values, the first has {d}", r.len()));
            }
            if let Some(j) = r.iter().position(|v| !v.is_finite()) {
                return invalid(format!("embedding {i} has a non-finite value at {j}"));
            }
        }
        let x = DMatrix::from_fn(n, d, |i, j| rows[i][j]);
        let mean = DVector::from_fn(d, |j, _| x.column(j).mean());
        let centered = DMatrix::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
        let cov = centered.transpose() * &centered / (n as f64 - 1.0);
        Ok(Self { mean, cov, count: n })
    }
}

fn sym_sqrt(m: &DMatrix<f64>) -> DMatrix<f64> {
    let e = SymmetricEigen::new(m.clone());
    let s = e.eigenvalues.map(|l| l.max(0.0).sqrt());
    &e.eigenvectors * DMatrix::from_diagonal(&s) * e.eigenvectors.transpose()
}

/// The Fréchet distance between two fitted Gaussians of the same dimension.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    if a.mean.len() != b.mean.len() {
        return invalid(format!("embedding sizes differ: {} vs {}", a.mean.len(), b.mean.len()));
    }
    let diff = (&a.mean - &b.mean).norm_squared();
    let r = sym_sqrt(&a.cov);
    let mut m = &r * &b.cov * &r;
    m = (&m + m.transpose()) * 0.5;
    let tr_sqrt: f64 = SymmetricEigen::new(m).eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
    Ok(diff + a.cov.trace() + b.cov.trace() - 2.0 * tr_sqrt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dimensional_closed_form() {
        // FD of 1-D Gaussians = (m1-m2)^2 + (s1 - s2)^2
        let a = Gaussian::fit(&[vec![0.0], vec![2.0]]).unwrap(); // mean 1, var 2
        let b = Gaussian::fit(&[vec![3.0], vec![3.0], vec![6.0]]).unwrap(); // mean 4, var 3
        let fd = frechet_distance(&a, &b).unwrap();
        let want = 9.0 + (2f64.sqrt() - 3f64.sqrt()).powi(2);
        assert!((fd - want).abs() < 1e-12, "{fd} vs {want}");
    }

    #[test]
    fn identical_sets_are_at_zero_and_bad_input_is_named() {
        let rows: Vec<Vec<f64>> = (0..20).map(|i| vec![(i as f64).sin(), (i as f64 * 0.7).cos(), i as f64 * 0.1]).collect();
        let g = Gaussian::fit(&rows).unwrap();
        assert!(frechet_distance(&g, &g).unwrap().abs() < 1e-9);
        assert!(Gaussian::fit(&rows[..1]).is_err());
        assert!(Gaussian::fit(&[vec![1.0], vec![f64::NAN]]).unwrap_err().to_string().contains("embedding 1"));
        let h = Gaussian::fit(&[vec![1.0], vec![2.0]]).unwrap();
        assert!(frechet_distance(&g, &h).is_err());
    }
}
