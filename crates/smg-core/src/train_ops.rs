//! Differentiable CPU ops for training the transformer blocks, each one pass forward and one
//! pass backward instead of a chain of candle's elementwise and broadcast ops: the bias of a
//! linear layer, LayerNorm, exact GELU and multi-head softmax attention over a packed `qkv`.
//!
//! Composed from candle ops, these dominate a training step on CPU: a broadcast bias or norm
//! weight has its gradient summed over leading axes (candle's strided reduction), LayerNorm and
//! softmax are ten ops each way, and every op allocates its output. Each function here takes the
//! custom op on CPU f32 tensors ([`crate::fast::cpu_custom_ops`]) and candle's composition
//! elsewhere (CUDA, other dtypes, `SMG_FAST=0`), which is also the reference the tests compare
//! values and gradients against.

use crate::fast::{cpu_custom_ops, cpu_f32, with_f32, with_f32s};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use smg_kernels::dot_bf16::{self, Operand};

/// Rows of at least this many values go to one rayon task.
const CHUNK_VALUES: usize = 1 << 14;

fn rows_per_task(n: usize) -> usize {
    CHUNK_VALUES.div_ceil(n.max(1)).max(1)
}

/// Sums per-task partial vectors in task order (a fixed order: bit-reproducible results,
/// which rayon's `reduce` tree does not promise).
fn sum_in_order(parts: Vec<Vec<f32>>, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    for p in parts {
        out.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    out
}

/// Column sums of a row-major `(rows, n)` slice.
fn column_sums(g: &[f32], n: usize) -> Vec<f32> {
    let per = rows_per_task(n) * n;
    let parts = g
        .par_chunks(per)
        .map(|c| {
            let mut s = vec![0f32; n];
            for row in c.chunks_exact(n) {
                s.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
            }
            s
        })
        .collect();
    sum_in_order(parts, n)
}

// ------------------------------------------------------------------ bias

struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, b) = (cpu_f32(s1, l1, "add-bias")?, cpu_f32(s2, l2, "add-bias")?);
        let n = b.len();
        let mut out = y.to_vec();
        out.par_chunks_mut(rows_per_task(n) * n).for_each(|c| {
            for row in c.chunks_exact_mut(n) {
                row.iter_mut().zip(b).for_each(|(o, &b)| *o += b);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _y: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = b.elem_count();
        let db = with_f32(grad, |g| column_sums(g, n))?;
        Ok((Some(grad.clone()), Some(Tensor::from_vec(db, n, b.device())?)))
    }
}

/// `y + b` with `b (N)` broadcast over the rows of `y (…, N)`; the bias gradient is one pass of
/// column sums.
pub fn add_bias(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !cpu_custom_ops(y) || !cpu_custom_ops(b) {
        return y.broadcast_add(b);
    }
    if y.dim(D::Minus1)? != b.elem_count() {
        candle_core::bail!("add-bias: rows of {} values, bias of {}", y.dim(D::Minus1)?, b.elem_count());
    }
    y.contiguous()?.apply_op2(&b.contiguous()?, AddBias)
}

/// `y (m × n) = x (m × k) · Wᵀ + b` with `W (n × k)`: the product in the orientation the `gemm`
/// crate packs with contiguous copies (or bf16 dot products, [`crate::fast::train_bf16`]), then
/// the bias.
pub(crate) fn linear_forward(x: &[f32], w: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    linear_forward_then(x, w, b, (m, n, k), None, |_: usize, _: &mut [f32], _: Option<&mut [f32]>| {})
}

/// [`linear_forward`], then `then(row, values, second)` on each finished row of `y` (bias
/// added; the same row of `second` where given) in the same pass as the bias: a residual added,
/// an activation written beside the pre-activation, without more passes over memory.
pub(crate) fn linear_forward_then<E>(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    second: Option<&mut [f32]>,
    then: E,
) -> Vec<f32>
where
    E: Fn(usize, &mut [f32], Option<&mut [f32]>) + Sync,
{
    let mut y = smg_kernels::uninit_f32(m * n);
    let epilogue = |r: usize, v: &mut [f32], s: Option<&mut [f32]>| {
        v.iter_mut().zip(b).for_each(|(o, &b)| *o += b);
        then(r, v, s);
    };
    if crate::fast::train_bf16() {
        dot_bf16::gemm(m, n, k, &mut y, Operand::plain(x), Operand::t(w));
    } else {
        let wt = smg_kernels::matmul::transpose(w, n, k);
        smg_kernels::matmul::gemm_nn(m, n, k, &mut y, x, &wt);
    }
    // One pass over whole rows in order (as the hardware prefetcher likes it): run as an
    // epilogue of each 32-column AMX unit, the same work read and wrote a tall strip of 32
    // columns per unit and was slower.
    let rows = rows_per_task(n);
    match second {
        Some(s) => y.par_chunks_mut(rows * n).zip(s.par_chunks_mut(rows * n)).enumerate().for_each(|(t, (c, s))| {
            for (i, (row, srow)) in c.chunks_exact_mut(n).zip(s.chunks_exact_mut(n)).enumerate() {
                epilogue(t * rows + i, row, Some(srow));
            }
        }),
        None => y.par_chunks_mut(rows * n).enumerate().for_each(|(t, c)| {
            for (i, row) in c.chunks_exact_mut(n).enumerate() {
                epilogue(t * rows + i, row, None);
            }
        }),
    }
    y
}

/// Gradients of [`linear_forward`] from `dy (m × n)`: `dx = dY · W`, `dW = dYᵀ · x` (with `dY`
/// transposed first in f32), `db` by column sums.
pub(crate) fn linear_backward(dy: &[f32], w: &[f32], x: &[f32], m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = smg_kernels::uninit_f32(m * k);
    let mut dw = smg_kernels::uninit_f32(n * k);
    if crate::fast::train_bf16() {
        dot_bf16::gemm(m, k, n, &mut dx, Operand::plain(dy), Operand::plain(w));
        dot_bf16::gemm(n, k, m, &mut dw, Operand::t(dy), Operand::plain(x));
    } else {
        smg_kernels::matmul::gemm_nn(m, k, n, &mut dx, dy, w);
        let dyt = smg_kernels::matmul::transpose(dy, m, n);
        smg_kernels::matmul::gemm_nn(n, k, m, &mut dw, &dyt, x);
    }
    (dx, dw, column_sums(dy, n))
}

/// [`linear_backward`], then `then(row, values)` on each finished row of `dx`: the backward
/// pass of an element-wise function applied before this layer, in place on the product.
pub(crate) fn linear_backward_then<E>(
    dy: &[f32],
    w: &[f32],
    x: &[f32],
    (m, n, k): (usize, usize, usize),
    then: E,
) -> (Vec<f32>, Vec<f32>, Vec<f32>)
where
    E: Fn(usize, &mut [f32]) + Sync,
{
    let (mut dx, dw, db) = linear_backward(dy, w, x, m, n, k);
    let rows = rows_per_task(k);
    dx.par_chunks_mut(rows * k).enumerate().for_each(|(t, c)| {
        for (i, row) in c.chunks_exact_mut(k).enumerate() {
            then(t * rows + i, row);
        }
    });
    (dx, dw, db)
}

/// A linear layer `(x, W, b) → x·Wᵀ + b` over the last axis of `x` as one autograd node (no
/// reshape, product and bias nodes, each of which candle's backward gives its own zeroed and
/// accumulated gradient buffer). Every product runs through `smg_kernels::matmul::gemm_nn` in
/// the orientation the `gemm` crate packs with contiguous copies: forward `x · Wᵀ`, backward
/// `dx = dY · W` and `dW = dYᵀ · x` (with `dY` transposed first), `db` by column sums.
struct LinearOp;

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "linear"
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
        let (x, w, b) = (cpu_f32(s1, l1, "linear")?, cpu_f32(s2, l2, "linear")?, cpu_f32(s3, l3, "linear")?);
        let (n, k) = l2.shape().dims2()?;
        let y = linear_forward(x, w, b, x.len() / k.max(1), n, k);
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("checked by linear()") = n;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, k) = w.dims2()?;
        let m = x.elem_count() / k.max(1);
        // The gradient, weight and input are read where they lie (no copies).
        let (dx, dw, db) = with_f32s([grad, w, x], |[dy, ws, xs]| linear_backward(dy, ws, xs, m, n, k))?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, (n, k), dev)?),
            Some(Tensor::from_vec(db, b.shape(), dev)?),
        ))
    }
}

/// `x · Wᵀ + b` over the last axis: one node with gemm-oriented products on CPU f32 (see
/// `LinearOp`), elsewhere one 2-D matmul (so the weight's gradient is one product, not a sum
/// over a broadcast batch) plus [`add_bias`].
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    if cpu_custom_ops(x) && cpu_custom_ops(w) && b.is_none_or(cpu_custom_ops) {
        let (n, k) = w.dims2()?;
        if x.rank() == 0 || x.dim(D::Minus1)? != k {
            candle_core::bail!("linear: input {:?}, weight {n} × {k}", x.dims());
        }
        let b = crate::fast::bias_or_zeros(b, n, x)?;
        return x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, LinearOp);
    }
    let dims = x.dims().to_vec();
    let Some((&k, lead)) = dims.split_last() else { candle_core::bail!("linear: scalar input") };
    let m: usize = lead.iter().product();
    let y = x.reshape((m, k))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => add_bias(&y, b)?,
        None => y,
    };
    let mut shape = lead.to_vec();
    shape.push(w.dim(0)?);
    y.reshape(shape)
}

// ------------------------------------------------------------------ LayerNorm

struct LayerNormOp {
    eps: f32,
}

/// Mean and 1/std of one row (two passes in f64 sums, as the GroupNorm op does).
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm"
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
        let (x, w, b) = (cpu_f32(s1, l1, "layer-norm")?, cpu_f32(s2, l2, "layer-norm")?, cpu_f32(s3, l3, "layer-norm")?);
        let out = layer_norm_forward(x, w, b, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = w.elem_count();
        // Input, weight and gradient are read where they lie (no copies).
        let (dx, dw, db) = with_f32s([x, w, grad], |[xs, ws, gs]| layer_norm_backward(xs, ws, gs, self.eps))?;
        let dev = x.device();
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), Some(Tensor::from_vec(dw, n, dev)?), Some(Tensor::from_vec(db, n, dev)?)))
    }
}

/// LayerNorm of the rows of `x` (width `w.len()`) with weight `w` and bias `b`.
pub(crate) fn layer_norm_forward(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let n = w.len();
    let mut out = smg_kernels::uninit_f32(x.len());
    out.par_chunks_mut(rows_per_task(n) * n).zip(x.par_chunks(rows_per_task(n) * n)).for_each(|(o, x)| {
        for (o, x) in o.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
            let (mean, rstd) = row_stats(x, eps);
            for i in 0..n {
                o[i] = (x[i] - mean) * rstd * w[i] + b[i];
            }
        }
    });
    out
}

/// Gradients of [`layer_norm_forward`] from the output gradient `gs`: `(dx, dw, db)`, the
/// weight and bias sums per task added in task order.
pub(crate) fn layer_norm_backward(xs: &[f32], ws: &[f32], gs: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = ws.len();
    let mut dx = smg_kernels::uninit_f32(xs.len());
    let per = rows_per_task(n) * n;
    let parts: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(per)
        .zip(xs.par_chunks(per).zip(gs.par_chunks(per)))
        .map(|(dx, (x, g))| {
            let (mut dw, mut db) = (vec![0f32; n], vec![0f32; n]);
            let mut xhat = vec![0f32; n];
            for ((dx, x), g) in dx.chunks_exact_mut(n).zip(x.chunks_exact(n)).zip(g.chunks_exact(n)) {
                let (mean, rstd) = row_stats(x, eps);
                let (mut s1, mut s2) = (0f32, 0f32);
                for i in 0..n {
                    let xh = (x[i] - mean) * rstd;
                    xhat[i] = xh;
                    dw[i] += g[i] * xh;
                    db[i] += g[i];
                    let gw = g[i] * ws[i];
                    s1 += gw;
                    s2 += gw * xh;
                }
                let (m1, m2) = (s1 / n as f32, s2 / n as f32);
                for i in 0..n {
                    dx[i] = rstd * (g[i] * ws[i] - m1 - xhat[i] * m2);
                }
            }
            (dw, db)
        })
        .collect();
    let (pw, pb): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    (dx, sum_in_order(pw, n), sum_in_order(pb, n))
}

/// LayerNorm over the last axis with weight and bias (PyTorch semantics), differentiable in all
/// three; candle's `layer_norm_slow` composition off the CPU.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if !cpu_custom_ops(x) || !cpu_custom_ops(w) || !cpu_custom_ops(b) {
        return candle_nn::ops::layer_norm_slow(x, w, b, eps as f32);
    }
    if x.dim(D::Minus1)? != w.elem_count() || w.elem_count() != b.elem_count() {
        candle_core::bail!("layer-norm: rows of {} values, weight {} and bias {}", x.dim(D::Minus1)?, w.elem_count(), b.elem_count());
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNormOp { eps: eps as f32 })
}

// ------------------------------------------------------------------ GELU

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut out = cpu_f32(s, l, "gelu-erf")?.to_vec();
        out.par_chunks_mut(CHUNK_VALUES).for_each(smg_kernels::gelu::gelu_inplace);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let mut dx = smg_kernels::uninit_f32(x.elem_count());
        with_f32s([grad, x], |[gs, xs]| {
            dx.par_chunks_mut(CHUNK_VALUES)
                .zip(gs.par_chunks(CHUNK_VALUES).zip(xs.par_chunks(CHUNK_VALUES)))
                .for_each(|(d, (g, x))| smg_kernels::gelu::gelu_backward_to(d, g, x));
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Exact (erf) GELU, differentiable; candle's `gelu_erf` off the CPU.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if !cpu_custom_ops(x) {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1(Gelu)
}

/// SiLU `x · σ(x)` as one node: forward one pass, backward `dx = dy · σ(x)·(1 + x·(1 − σ(x)))`.
/// candle's `silu` differentiates through eight element-wise ops (negation, exp, add, reciprocal,
/// products), each allocating a tensor the size of the activation.
struct Silu;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + smg_kernels::attention::exp(-x))
}

impl CustomOp1 for Silu {
    fn name(&self) -> &'static str {
        "silu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s, l, "silu")?;
        let mut out = smg_kernels::uninit_f32(x.len());
        out.par_chunks_mut(CHUNK_VALUES).zip(x.par_chunks(CHUNK_VALUES)).for_each(|(o, x)| {
            o.iter_mut().zip(x).for_each(|(o, &x)| *o = x * sigmoid(x));
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let mut dx = smg_kernels::uninit_f32(x.elem_count());
        with_f32s([grad, x], |[gs, xs]| {
            dx.par_chunks_mut(CHUNK_VALUES).zip(gs.par_chunks(CHUNK_VALUES).zip(xs.par_chunks(CHUNK_VALUES))).for_each(|(d, (g, x))| {
                d.iter_mut().zip(g.iter().zip(x)).for_each(|(d, (&g, &x))| {
                    let s = sigmoid(x);
                    *d = g * s * (1.0 + x * (1.0 - s));
                });
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// SiLU (swish), differentiable: one node on CPU f32 (see `Silu`), candle's `silu` elsewhere.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if !cpu_custom_ops(x) {
        return candle_nn::ops::silu(x);
    }
    x.contiguous()?.apply_op1(Silu)
}

/// Leaky ReLU `max(x, 0) + slope · min(x, 0)` as one node: forward one pass, backward
/// `dx = dy · (x > 0 ? 1 : slope)`. Composed of candle ops it is four nodes whose backward
/// (`maximum` / `minimum`: comparisons, dtype casts, masks and a division) took a tenth of a
/// HiFi-GAN fine-tuning step.
struct LeakyRelu(f32);

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let slope = self.0;
        let mut out = cpu_f32(s, l, "leaky-relu")?.to_vec();
        out.par_chunks_mut(CHUNK_VALUES).for_each(|c| c.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { *v * slope }));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let slope = self.0;
        let mut dx = smg_kernels::uninit_f32(x.elem_count());
        with_f32s([grad, x], |[gs, xs]| {
            dx.par_chunks_mut(CHUNK_VALUES).zip(gs.par_chunks(CHUNK_VALUES).zip(xs.par_chunks(CHUNK_VALUES))).for_each(|(d, (g, x))| {
                d.iter_mut().zip(g.iter().zip(x)).for_each(|(d, (&g, &x))| *d = if x > 0.0 { g } else { g * slope });
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Leaky ReLU with negative `slope`, differentiable: one node on CPU f32 (see `LeakyRelu`),
/// candle's `maximum` / `minimum` composition elsewhere. (At exactly 0 the two differ in the
/// gradient: `slope` here, the average of both sides there.)
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if !cpu_custom_ops(x) {
        return x.maximum(0f32)? + (x.minimum(0f32)? * slope)?;
    }
    x.contiguous()?.apply_op1(LeakyRelu(slope as f32))
}

// ------------------------------------------------------------------ attention

struct Attention {
    heads: usize,
}

impl Attention {
    fn dims(&self, shape: &Shape) -> Result<(usize, usize, usize)> {
        let (b, l, d3) = shape.dims3()?;
        if d3 % (3 * self.heads) != 0 {
            candle_core::bail!("attention: qkv width {d3} does not split into 3 × {} heads", self.heads);
        }
        Ok((b, l, d3 / 3 / self.heads))
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, len, hd) = self.dims(l.shape())?;
        let out = smg_kernels::attention::attention(cpu_f32(s, l, "attention")?, b, len, self.heads, hd);
        Ok((CpuStorage::F32(out), Shape::from((b, len, self.heads * hd))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, len, hd) = self.dims(qkv.shape())?;
        let d = with_f32s([qkv, grad], |[q, g]| smg_kernels::attention::attention_backward(q, g, b, len, self.heads, hd))?;
        Ok(Some(Tensor::from_vec(d, qkv.shape(), qkv.device())?))
    }
}

/// Multi-head softmax attention (scale hd^−½) from timm's packed `qkv (B, L, 3·D)` to
/// `(B, L, D)`, heads concatenated, differentiable; the backward pass recomputes the attention
/// weights per (item, head) instead of keeping them. Off the CPU: candle's matmuls and softmax.
pub fn attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    if cpu_custom_ops(qkv) {
        return qkv.contiguous()?.apply_op1(Attention { heads });
    }
    let (b, l, d3) = qkv.dims3()?;
    let d = d3 / 3;
    let hd = d / heads;
    let qkv = qkv.reshape((b, l, 3, heads, hd))?.permute((2, 0, 3, 1, 4))?;
    let (q, k, v) = (qkv.get(0)?.contiguous()?, qkv.get(1)?.contiguous()?, qkv.get(2)?.contiguous()?);
    let att = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?;
    let att = candle_nn::ops::softmax(&att, D::Minus1)?;
    att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::rand;
    use candle_core::{Module, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Values and the gradients of `Σ r ⊙ f(inputs)` by the custom op and by the composition.
    fn check(inputs: &[Tensor], fast: impl Fn(&[Tensor]) -> Result<Tensor>, reference: impl Fn(&[Tensor]) -> Result<Tensor>, tol: f32) {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let (yf, yr) = (fast(&ts).unwrap(), reference(&ts).unwrap());
        assert!(max_diff(&yf, &yr) < tol, "values differ by {}", max_diff(&yf, &yr));
        let r = rand(yf.dims(), 99);
        let gf = (&yf * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, t) in ts.iter().enumerate() {
            let (a, b) = (gf.get(t).expect("fast gradient"), gr.get(t).expect("reference gradient"));
            let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
            assert!(max_diff(a, b) < tol * scale, "gradient of input {i} differs by {} (scale {scale})", max_diff(a, b));
        }
    }

    #[test]
    fn bias_and_linear_match_candle() {
        check(&[rand(&[6, 5, 7], 1), rand(&[7], 2)], |t| add_bias(&t[0], &t[1]), |t| t[0].broadcast_add(&t[1]), 1e-6);
        check(
            &[rand(&[3, 4, 8], 3), rand(&[5, 8], 4), rand(&[5], 5)],
            |t| linear(&t[0], &t[1], Some(&t[2])),
            |t| candle_nn::Linear::new(t[1].clone(), Some(t[2].clone())).forward(&t[0]),
            1e-5,
        );
        check(
            &[rand(&[70, 33], 12), rand(&[40, 33], 13)],
            |t| linear(&t[0], &t[1], None),
            |t| candle_nn::Linear::new(t[1].clone(), None).forward(&t[0]),
            1e-5,
        );
    }

    #[test]
    fn layer_norm_matches_candle() {
        let x = (rand(&[4, 9, 24], 6) * 3.0).unwrap().broadcast_add(&rand(&[24], 7)).unwrap();
        check(
            &[x, rand(&[24], 8), rand(&[24], 9)],
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-6),
            |t| candle_nn::ops::layer_norm_slow(&t[0], &t[1], &t[2], 1e-6),
            2e-5,
        );
    }

    #[test]
    fn leaky_relu_matches_candle() {
        // Inputs away from 0, where the two definitions of the gradient differ.
        let x = (rand(&[7, 301], 14) * 4.0).unwrap();
        let x = (x.sign().unwrap() * 0.01 + &x).unwrap();
        check(&[x], |t| leaky_relu(&t[0], 0.1), |t| t[0].maximum(0f32)? + (t[0].minimum(0f32)? * 0.1)?, 1e-6);
    }

    #[test]
    fn silu_matches_candle() {
        check(&[(rand(&[6, 401], 15) * 9.0).unwrap()], |t| silu(&t[0]), |t| candle_nn::ops::silu(&t[0]), 2e-5);
    }

    #[test]
    fn gelu_matches_candle() {
        check(&[(rand(&[5, 333], 10) * 5.0).unwrap()], |t| gelu(&t[0]), |t| t[0].gelu_erf(), 2e-5);
    }

    #[test]
    fn attention_matches_candle() {
        for (b, l, heads, hd) in [(2, 7, 2, 4), (3, 81, 4, 32)] {
            let qkv = (rand(&[b, l, 3 * heads * hd], 11) * 2.0).unwrap();
            let reference = |t: &[Tensor]| -> Result<Tensor> {
                let qkv = t[0].reshape((b, l, 3, heads, hd))?.permute((2, 0, 3, 1, 4))?;
                let (q, k, v) = (qkv.get(0)?.contiguous()?, qkv.get(1)?.contiguous()?, qkv.get(2)?.contiguous()?);
                let att = candle_nn::ops::softmax(&(q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?, D::Minus1)?;
                att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, heads * hd))
            };
            check(&[qkv], |t| attention(&t[0], heads), reference, 2e-5);
        }
    }
}
