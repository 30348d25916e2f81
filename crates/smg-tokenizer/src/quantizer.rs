//! The codebook quantiser of SPEC.md §2.2: nearest code by squared L2, straight-through
//! estimator, taming's legacy loss `mean((sg[zq] − z)²) + β·mean((zq − sg[z])²)`.
//!
//! Switchable EMA mode (van den Oord et al. 2017, appendix; used at small size because the plain
//! codebook collapses, SPEC.md §10): the codebook follows exponential moving averages of the
//! encoder outputs assigned to each code, the loss is the commitment term only, and codes whose
//! usage falls below a threshold are restarted from random encoder outputs of the batch.

use candle_core::{DType, Module, Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder};
use rand::Rng;

#[derive(Debug, Clone)]
pub struct VectorQuantizer {
    pub n_embed: usize,
    pub dim: usize,
    pub beta: f64,
    pub ema: bool,
    pub decay: f64,
    /// `quantize.embedding.weight`, (n_embed, dim).
    pub weight: Tensor,
    /// EMA state (`quantize.ema_cluster_size`, `quantize.ema_embed_sum`), EMA mode only.
    pub ema_cluster_size: Option<Tensor>,
    pub ema_embed_sum: Option<Tensor>,
}

/// Result of quantising a batch in training.
#[derive(Debug)]
pub struct Quantized {
    /// Straight-through quantised latents (B, dim, H, W).
    pub zq: Tensor,
    /// Codes (B, H, W), u32.
    pub indices: Tensor,
    /// Codebook + commitment loss (plain) or commitment loss (EMA), scalar.
    pub loss: Tensor,
    /// Encoder outputs, flattened (N, dim), detached: used by the EMA update.
    pub z_flat: Tensor,
    /// Codes, flattened (N,), u32.
    pub idx_flat: Tensor,
}

/// Codebook usage of a set of assignments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Distinct codes used.
    pub used: usize,
    /// exp(entropy) of the code distribution.
    pub perplexity: f64,
}

/// Counts per code and usage statistics of flattened code indices.
pub fn usage(idx_flat: &[u32], n_embed: usize) -> (Vec<u64>, Usage) {
    let mut counts = vec![0u64; n_embed];
    for &i in idx_flat {
        counts[i as usize] += 1;
    }
    let n = idx_flat.len().max(1) as f64;
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum();
    let used = counts.iter().filter(|&&c| c > 0).count();
    (counts, Usage { used, perplexity: h.exp() })
}

impl VectorQuantizer {
    pub fn new(n_embed: usize, dim: usize, beta: f64, ema: bool, decay: f64, vb: VarBuilder) -> Result<Self> {
        let b = 1.0 / n_embed as f64;
        let weight = vb.get_with_hints((n_embed, dim), "embedding.weight", Init::Uniform { lo: -b, up: b })?;
        let (cs, es) = if ema {
            (
                Some(vb.get_with_hints(n_embed, "ema_cluster_size", Init::Const(0.0))?),
                Some(vb.get_with_hints((n_embed, dim), "ema_embed_sum", Init::Const(0.0))?),
            )
        } else {
            (None, None)
        };
        Ok(Self { n_embed, dim, beta, ema, decay, weight, ema_cluster_size: cs, ema_embed_sum: es })
    }

    /// (B, dim, H, W) → (B·H·W, dim), rows in (b, h, w) order.
    fn flatten(z: &Tensor) -> Result<(Tensor, (usize, usize, usize))> {
        let (b, c, h, w) = z.dims4()?;
        Ok((z.permute((0, 2, 3, 1))?.reshape((b * h * w, c))?, (b, h, w)))
    }

    /// Nearest code of each row of `z_flat` by ‖z‖² + ‖e‖² − 2 z·e.
    fn nearest(&self, z_flat: &Tensor) -> Result<Tensor> {
        let e = &self.weight;
        let d = (z_flat.sqr()?.sum_keepdim(1)?.broadcast_add(&e.sqr()?.sum(1)?.unsqueeze(0)?)? - (z_flat.matmul(&e.t()?)? * 2.0)?)?;
        d.argmin(D::Minus1)
    }

    /// Codes (B, H, W) of latents (B, dim, H, W).
    pub fn indices(&self, z: &Tensor) -> Result<Tensor> {
        let (zf, (b, h, w)) = Self::flatten(z)?;
        self.nearest(&zf)?.reshape((b, h, w))
    }

    /// Codebook vectors of codes (B, H, W) as latents (B, dim, H, W).
    pub fn lookup(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, h, w) = tokens.dims3()?;
        let max = tokens.to_dtype(DType::U32)?.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max as usize >= self.n_embed {
            candle_core::bail!("token {max} is out of range: the codebook has {} codes", self.n_embed);
        }
        let flat = tokens.to_dtype(DType::U32)?.flatten_all()?;
        candle_nn::Embedding::new(self.weight.clone(), self.dim)
            .forward(&flat)?
            .reshape((b, h, w, self.dim))?
            .permute((0, 3, 1, 2))?
            .contiguous()
    }

    /// Quantise for training: straight-through latents, codes and loss (see the module doc).
    pub fn forward_train(&self, z: &Tensor) -> Result<Quantized> {
        let (zf, (b, h, w)) = Self::flatten(z)?;
        let idx = self.nearest(&zf.detach())?;
        let zq_flat = self.weight.index_select(&idx, 0)?;
        let commit = (zq_flat.detach() - &zf)?.sqr()?.mean_all()?;
        let loss = if self.ema {
            (commit * self.beta)?
        } else {
            let codebook = (&zq_flat - zf.detach())?.sqr()?.mean_all()?;
            (commit + (codebook * self.beta)?)?
        };
        let zq = (&zf + (zq_flat - &zf)?.detach())?; // straight-through
        let zq = zq.reshape((b, h, w, self.dim))?.permute((0, 3, 1, 2))?.contiguous()?;
        Ok(Quantized { zq, indices: idx.reshape((b, h, w))?, loss, z_flat: zf.detach(), idx_flat: idx })
    }

    /// EMA codebook update and dead-code restarts (EMA mode). `vars` are the model's Vars for
    /// `(embedding.weight, ema_cluster_size, ema_embed_sum)`. Codes whose EMA count falls below
    /// `restart_below` are re-seeded from random rows of the batch. Returns how many restarted.
    pub fn ema_update(&self, vars: (&Var, &Var, &Var), q: &Quantized, restart_below: f64, rng: &mut impl Rng) -> Result<usize> {
        let (w_var, cs_var, es_var) = vars;
        let n = q.idx_flat.dim(0)?;
        let dev = q.z_flat.device();
        let onehot = {
            let idx: Vec<u32> = q.idx_flat.to_vec1()?;
            let mut m = vec![0f32; n * self.n_embed];
            for (r, &i) in idx.iter().enumerate() {
                m[r * self.n_embed + i as usize] = 1.0;
            }
            Tensor::from_vec(m, (n, self.n_embed), dev)?
        };
        let counts = onehot.sum(0)?; // (K,)
        let sums = onehot.t()?.matmul(&q.z_flat)?; // (K, dim)
        let d = self.decay;
        let mut cs = ((cs_var.as_tensor() * d)? + (counts * (1.0 - d))?)?;
        let mut es = ((es_var.as_tensor() * d)? + (sums * (1.0 - d))?)?;
        // Dead-code restarts from encoder outputs.
        let cs_vec: Vec<f32> = cs.to_vec1()?;
        let dead: Vec<usize> = (0..self.n_embed).filter(|&k| (cs_vec[k] as f64) < restart_below).collect();
        if !dead.is_empty() {
            let rows: Vec<u32> = dead.iter().map(|_| rng.random_range(0..n as u32)).collect();
            let picked = q.z_flat.index_select(&Tensor::new(rows.as_slice(), dev)?, 0)?;
            let ids = Tensor::new(dead.iter().map(|&k| k as u32).collect::<Vec<_>>().as_slice(), dev)?;
            let mut cs_new = cs_vec.clone();
            for &k in &dead {
                cs_new[k] = 1.0;
            }
            cs = Tensor::from_vec(cs_new, self.n_embed, dev)?;
            // embed_sum rows of dead codes := picked (a count of 1 times the new code)
            let mask = {
                let mut m = vec![1f32; self.n_embed];
                dead.iter().for_each(|&k| m[k] = 0.0);
                Tensor::from_vec(m, (self.n_embed, 1), dev)?
            };
            let zeros = Tensor::zeros((self.n_embed, self.dim), DType::F32, dev)?;
            let scattered = zeros.index_add(&ids, &picked, 0)?;
            es = (es.broadcast_mul(&mask)? + scattered)?;
        }
        let total = cs.sum_all()?.to_scalar::<f32>()? as f64;
        let eps = 1e-5;
        let smoothed = ((&cs + eps)? / (total + self.n_embed as f64 * eps))? * total;
        let weight = es.broadcast_div(&smoothed?.unsqueeze(1)?)?;
        w_var.set(&weight)?;
        cs_var.set(&cs)?;
        es_var.set(&es)?;
        Ok(dead.len())
    }
}
