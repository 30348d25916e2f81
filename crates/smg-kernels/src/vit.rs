//! One timm pre-norm transformer block for inference, fused end to end on plain slices:
//! `x += proj(attn(qkv(LN₁ x)))`, `x += fc2(GELU(fc1(LN₂ x)))` (SPEC.md §3.2), updating the
//! residual stream in place.
//!
//! At [`Precision::Bf16`] on AMX nothing but the residual stream and the attention scores is
//! held in f32: each LayerNorm writes its rows straight into the bf16 tiles of the next
//! product, `qkv`'s epilogue writes each head's q, k and v tiles, the attention output goes
//! straight into the tiles of `proj`, `fc1`'s GELU epilogue into the tiles of `fc2`,
//! and `proj` and `fc2` add their output (and bias) onto the residual in their epilogues. At f32
//! (or without AMX) the same block runs through [`PackedWeight::forward`] and [`attention`].

use crate::amx::{self, PackedA};
use crate::attention::{attention_at, attention_heads, Heads};
use crate::{gelu, Act, PackedWeight, Precision, SendPtr};
use rayon::prelude::*;

/// LayerNorm parameters (weight, bias, eps) over the last axis.
#[derive(Debug, Clone)]
pub struct Norm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

impl Norm {
    /// `out = LN(x)` for one row (mean and variance in f32, biased variance, as PyTorch).
    #[inline]
    pub fn row(&self, x: &[f32], out: &mut [f32]) {
        layer_norm_row(x, &self.weight, &self.bias, self.eps, out)
    }

    /// LN of every row of the row-major `rows × d` matrix `x`.
    pub fn rows(&self, x: &[f32]) -> Vec<f32> {
        let d = self.weight.len();
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(o, r)| self.row(r, o));
        out
    }
}

crate::vectorised! {
    /// `out = (x − mean) / √(var + eps) · weight + bias` for one row (mean and variance in f32,
    /// biased variance, as PyTorch's LayerNorm), at the CPU's vector width.
    pub fn layer_norm_row(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
        let n = x.len() as f32;
        let mean = crate::lane_sum(x) / n;
        let mut sq = [0f32; 16];
        let chunks = x.chunks_exact(16);
        let tail: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
        for c in chunks {
            for i in 0..16 {
                sq[i] += (c[i] - mean) * (c[i] - mean);
            }
        }
        let var = (crate::lane_sum(&sq) + tail) / n;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &v), &w), &b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
            *o = (v - mean) * inv * w + b;
        }
    }
}

/// A linear layer: packed weight and bias.
#[derive(Debug)]
pub struct Dense {
    /// Shared with the model's own layer, so the fused path holds no second copy.
    pub weight: std::sync::Arc<PackedWeight>,
    pub bias: Vec<f32>,
}

/// The weights of one block, in timm's order.
#[derive(Debug)]
pub struct Block {
    pub norm1: Norm,
    pub qkv: Dense,
    pub proj: Dense,
    pub norm2: Norm,
    pub fc1: Dense,
    pub fc2: Dense,
    pub heads: usize,
}

/// Runs `blocks` in order over the residual stream `x` of `b` items of `l` rows each. Where the
/// products run in f32 (no AMX) and there are at least two items and two threads, the items are
/// split into one group per thread and each group runs every block in a single-thread pool of its
/// own: no synchronisation inside a product or between blocks, where on 2 cores the `gemm`
/// crate's own threading costs ≈ 8 % of a product's rate (a CFG forward has two items). The
/// results agree with the block-by-block path to rounding.
pub fn forward_blocks(blocks: &[Block], x: &mut [f32], b: usize, l: usize, precision: Precision) {
    let t = crate::threads();
    let amx = blocks.first().is_some_and(|blk| blk.qkv.weight.uses_amx(b * l, precision));
    if b < 2 || t < 2 || amx || x.is_empty() {
        let mut scratch = Scratch::default();
        for blk in blocks {
            blk.forward_with(x, b, l, precision, &mut scratch);
        }
        return;
    }
    let groups = t.min(b);
    let per = b.div_ceil(groups);
    let item = x.len() / b;
    let pools = single_thread_pools(groups);
    x.par_chunks_mut(per * item).zip(pools.par_iter()).for_each(|(xs, pool)| {
        pool.install(|| {
            let mut scratch = Scratch::default();
            for blk in blocks {
                blk.forward_with(xs, xs.len() / item, l, precision, &mut scratch);
            }
        })
    });
}

/// `n` single-thread pools, made once and kept (more are added when a caller wants more).
fn single_thread_pools(n: usize) -> Vec<std::sync::Arc<rayon::ThreadPool>> {
    static POOLS: std::sync::Mutex<Vec<std::sync::Arc<rayon::ThreadPool>>> = std::sync::Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    while pools.len() < n {
        let i = pools.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| format!("smg-vit-{i}"))
            .build()
            .expect("a thread for the ViT blocks");
        pools.push(std::sync::Arc::new(pool));
    }
    pools[..n].to_vec()
}

/// `residual[r][c] += block[r][c] + bias[c]` for one finished 32 × 32 product block.
///
/// # Safety
/// The block's part of `res` (row stride `n`) must be written by this task alone.
#[inline]
unsafe fn add_block(res: SendPtr<f32>, rows: usize, n: usize, block: &[f32; 1024], m0: usize, n0: usize, bias: &[f32]) {
    let cols = 32.min(n.saturating_sub(n0));
    for r in 0..32.min(rows.saturating_sub(m0)) {
        let dst = std::slice::from_raw_parts_mut(res.0.add((m0 + r) * n + n0), cols);
        for ((d, &s), &b) in dst.iter_mut().zip(&block[r * 32..r * 32 + cols]).zip(&bias[n0..n0 + cols]) {
            *d += s + b;
        }
    }
}

/// Buffers of the AMX path kept from one block to the next (allocating and zeroing them per
/// block cost ≈ 1 ms of a paper block's ≈ 7).
#[derive(Debug, Default)]
pub struct Scratch {
    a: Option<PackedA>,
    g: Option<PackedA>,
    heads: Option<Heads>,
}

impl Scratch {
    /// The tile operand `slot` as `m × k`, reused when it already has that shape (its zero
    /// padding is never written, so it stays zero).
    fn take(slot: &mut Option<PackedA>, m: usize, k: usize) -> PackedA {
        match slot.take() {
            Some(a) if a.m == m && a.k == k => a,
            _ => PackedA::zeros(m, k),
        }
    }
}

impl Block {
    /// Runs the block on the residual stream `x` (`b·l × d`, row-major, `l` tokens per item).
    pub fn forward(&self, x: &mut [f32], b: usize, l: usize, precision: Precision) {
        self.forward_with(x, b, l, precision, &mut Scratch::default())
    }

    /// [`Block::forward`] reusing `scratch` (pass the same one to every block of a model).
    pub fn forward_with(&self, x: &mut [f32], b: usize, l: usize, precision: Precision, scratch: &mut Scratch) {
        let (m, d) = (b * l, self.norm1.weight.len());
        assert_eq!(x.len(), m * d, "residual stream is not {b}·{l} × {d}");
        let hd = d / self.heads;
        if self.qkv.weight.uses_amx(m, precision) && amx::available() {
            self.forward_amx(x, b, l, hd, scratch);
            return;
        }
        let h = self.norm1.rows(x);
        let qkv = self.qkv.weight.forward(&h, m, Some(&self.qkv.bias), Act::None, precision);
        let a = attention_at(&qkv, b, l, self.heads, hd, precision);
        let o = self.proj.weight.forward(&a, m, Some(&self.proj.bias), Act::None, precision);
        x.par_iter_mut().zip(o.par_iter()).for_each(|(x, o)| *x += o);
        let h = self.norm2.rows(x);
        let g = self.fc1.weight.forward(&h, m, Some(&self.fc1.bias), Act::Gelu, precision);
        let o = self.fc2.weight.forward(&g, m, Some(&self.fc2.bias), Act::None, precision);
        x.par_iter_mut().zip(o.par_iter()).for_each(|(x, o)| *x += o);
    }
}

fn tiles(w: &PackedWeight) -> &amx::PackedB {
    w.tiles().expect("AMX tiles")
}

impl Block {
    fn forward_amx(&self, x: &mut [f32], b: usize, l: usize, hd: usize, scratch: &mut Scratch) {
        let m = b * l;
        let d = self.norm1.weight.len();
        let (f, n3) = (self.fc1.weight.n, self.qkv.weight.n);
        // LN₁ → qkv, whose epilogue stores q, k, v straight into each head's tile operands.
        let mut a = Scratch::take(&mut scratch.a, m, d);
        a.fill_rows(|r, out| self.norm1.row(&x[r * d..(r + 1) * d], out));
        let mut heads = match scratch.heads.take() {
            Some(h) if h.fits(b, l, self.heads, hd) => h,
            _ => Heads::zeros(b, l, self.heads, hd),
        };
        {
            let w = heads.writer();
            let qb = &self.qkv.bias;
            amx::matmul_packed(&a, tiles(&self.qkv.weight), |blk, m0, n0| {
                let mut row = [0f32; 32];
                let cols = 32.min(n3.saturating_sub(n0));
                for r in 0..32.min(m.saturating_sub(m0)) {
                    row[..cols].iter_mut().zip(&blk[r * 32..r * 32 + cols]).zip(&qb[n0..n0 + cols]).for_each(|((d, &s), &b)| *d = s + b);
                    // Safety: each (m0, n0) block is written by exactly one task.
                    unsafe { w.put(m0 + r, n0, &row[..cols]) };
                }
            });
        }
        // Attention → the tiles of proj's input (reusing LN₁'s buffer).
        {
            let w = a.writer();
            // Safety: every (row, head) segment is handed over exactly once.
            attention_heads(&heads, &|r, c0, vals: &[f32]| unsafe { w.put_row(r, c0, vals) });
        }
        scratch.heads = Some(heads);
        let res = SendPtr(x.as_mut_ptr());
        // Safety (both residual epilogues): each block of x is touched by one task.
        amx::matmul_packed(&a, tiles(&self.proj.weight), |blk, m0, n0| unsafe { add_block(res, m, d, blk, m0, n0, &self.proj.bias) });
        a.fill_rows(|r, out| {
            let res = res;
            self.norm2.row(unsafe { std::slice::from_raw_parts(res.0.add(r * d), d) }, out)
        });
        let mut g = Scratch::take(&mut scratch.g, m, f);
        {
            let w = g.writer();
            let fb = &self.fc1.bias;
            amx::matmul_packed(&a, tiles(&self.fc1.weight), |blk, m0, n0| {
                let mut row = [0f32; 32];
                let cols = 32.min(f.saturating_sub(n0));
                for r in 0..32.min(m.saturating_sub(m0)) {
                    gelu::bias_gelu(&blk[r * 32..r * 32 + cols], &fb[n0..n0 + cols], &mut row[..cols]);
                    // Safety: each (m0, n0) block is written by exactly one task.
                    unsafe { w.put_row(m0 + r, n0, &row[..cols]) };
                }
            });
        }
        amx::matmul_packed(&g, tiles(&self.fc2.weight), |blk, m0, n0| unsafe { add_block(res, m, d, blk, m0, n0, &self.fc2.bias) });
        scratch.a = Some(a);
        scratch.g = Some(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64, scale: f32) -> Vec<f32> {
        crate::test_data(len, seed).into_iter().map(|v| v * scale).collect()
    }

    fn block(d: usize, f: usize, heads: usize) -> Block {
        let dense = |n: usize, k: usize, seed: u64| Dense {
            weight: std::sync::Arc::new(PackedWeight::new(data(n * k, seed, (1.0 / k as f32).sqrt()), n, k)),
            bias: data(n, seed + 100, 0.1),
        };
        let norm =
            |seed: u64| Norm { weight: data(d, seed, 0.5).iter().map(|v| 1.0 + v).collect(), bias: data(d, seed + 1, 0.1), eps: 1e-6 };
        Block {
            norm1: norm(1),
            qkv: dense(3 * d, d, 2),
            proj: dense(d, d, 3),
            norm2: norm(4),
            fc1: dense(f, d, 5),
            fc2: dense(d, f, 6),
            heads,
        }
    }

    /// The fused block against the same block written out op by op in f64.
    #[test]
    fn fused_block_matches_unfused_reference() {
        let (b, l, d, f, heads) = (2, 37, 64, 128, 2);
        let blk = block(d, f, heads);
        let x0 = data(b * l * d, 9, 1.0);
        let reference = {
            let mut x = x0.clone();
            let h = blk.norm1.rows(&x);
            let dense = |w: &Dense, x: &[f32], k: usize, gelu: bool| -> Vec<f32> {
                let n = w.weight.n;
                let wf = w.weight.weight();
                let mut y = vec![0f32; b * l * n];
                for r in 0..b * l {
                    for c in 0..n {
                        let v = (0..k).map(|t| x[r * k + t] as f64 * wf[c * k + t] as f64).sum::<f64>() + w.bias[c] as f64;
                        y[r * n + c] = if gelu { crate::gelu::gelu(v as f32) } else { v as f32 };
                    }
                }
                y
            };
            let qkv = dense(&blk.qkv, &h, d, false);
            let a = crate::attention::attention(&qkv, b, l, heads, d / heads);
            let o = dense(&blk.proj, &a, d, false);
            x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
            let h = blk.norm2.rows(&x);
            let g = dense(&blk.fc1, &h, d, true);
            let o = dense(&blk.fc2, &g, f, false);
            x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
            x
        };
        for (p, tol) in [(Precision::F32, 1e-4f32), (Precision::Bf16, 0.05)] {
            let mut x = x0.clone();
            blk.forward(&mut x, b, l, p);
            let e = x.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(e < tol, "{p:?}: max abs diff {e}");
        }
    }
}
