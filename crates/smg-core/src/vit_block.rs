//! One pre-norm transformer block (timm's `Block`, SPEC.md §3.2: `x + proj(attn(qkv(LN1 x)))`,
//! then `+ fc2(GELU(fc1(LN2 ·)))`) as a single autograd node for training on CPU f32.
//!
//! Composed of the one-pass ops of [`crate::train_ops`] a block is still ten candle nodes, and
//! candle's backward gives every node's input a zero-filled gradient buffer that it then adds
//! into, so each activation-sized gradient costs an allocation, a fill and an addition on top of
//! its own pass, and the residual additions are candle element-wise ops. Here the forward pass
//! keeps its intermediates (the LayerNorm outputs, `qkv`, the attention weights and output, the MLP's
//! pre-activation and activation) and the backward pass runs the chain by hand on plain slices:
//! the same products ([`train_ops::linear_backward`]), LayerNorm, GELU and attention kernels,
//! the residual gradients added in place. The twelve parameters travel as one flat tensor (a
//! `cat` node, so each still gets its own gradient) because a candle op takes at most three
//! inputs. Checked against candle's own ops in the tests below.

use crate::fast::{cpu_custom_ops, cpu_f32, with_f32s};
use crate::train_ops::{
    layer_norm_backward, layer_norm_forward, linear_backward, linear_backward_then, linear_forward, linear_forward_then,
};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Values per rayon task of the element-wise passes.
const CHUNK: usize = 1 << 14;

/// The parameters of one block under timm's names (`norm1`, `attn.qkv`, `attn.proj`, `norm2`,
/// `mlp.fc1`, `mlp.fc2`): weights `(out, in)`, biases and norm parameters `(out)`.
pub struct BlockParams<'a> {
    pub norm1: (&'a Tensor, &'a Tensor),
    pub qkv: (&'a Tensor, &'a Tensor),
    pub proj: (&'a Tensor, &'a Tensor),
    pub norm2: (&'a Tensor, &'a Tensor),
    pub fc1: (&'a Tensor, &'a Tensor),
    pub fc2: (&'a Tensor, &'a Tensor),
    pub eps: f64,
    pub heads: usize,
}

impl BlockParams<'_> {
    fn list(&self) -> [&Tensor; 12] {
        let p = self;
        [p.norm1.0, p.norm1.1, p.qkv.0, p.qkv.1, p.proj.0, p.proj.1, p.norm2.0, p.norm2.1, p.fc1.0, p.fc1.1, p.fc2.0, p.fc2.1]
    }
}

/// The block's output for `x (B, L, D)`, as one autograd node; `None` off the CPU f32 fast path
/// (the caller composes its own ops then).
pub fn block(x: &Tensor, p: &BlockParams) -> Result<Option<Tensor>> {
    let list = p.list();
    if !cpu_custom_ops(x) || !list.iter().all(|t| cpu_custom_ops(t)) {
        return Ok(None);
    }
    let (b, l, d) = x.dims3()?;
    let h = p.fc1.0.dim(0)?;
    let want: [&[usize]; 12] = [&[d], &[d], &[3 * d, d], &[3 * d], &[d, d], &[d], &[d], &[d], &[h, d], &[h], &[d, h], &[d]];
    for (i, (t, w)) in list.iter().zip(want).enumerate() {
        if t.dims() != w {
            candle_core::bail!("transformer block: parameter {i} is {:?}, expected {w:?} for width {d}", t.dims());
        }
    }
    if d % p.heads != 0 {
        candle_core::bail!("transformer block: width {d} does not split into {} heads", p.heads);
    }
    let flat = Tensor::cat(&list.iter().map(|t| t.flatten_all()).collect::<Result<Vec<_>>>()?, 0)?;
    let keep = x.track_op() || flat.track_op();
    let op = BlockOp { b, l, d, h, heads: p.heads, eps: p.eps as f32, keep, saved: Mutex::new(None) };
    Ok(Some(x.contiguous()?.apply_op2(&flat, op)?))
}

/// Intermediates of one forward pass, kept for the backward pass.
struct Saved {
    ln1: Vec<f32>,
    qkv: Vec<f32>,
    /// The attention weights of every (item, head).
    probs: Vec<f32>,
    att: Vec<f32>,
    x1: Vec<f32>,
    ln2: Vec<f32>,
    pre: Vec<f32>,
    act: Vec<f32>,
}

struct BlockOp {
    /// Batch items and tokens per item: the attention's shape (the rest sees `b·l` rows).
    b: usize,
    l: usize,
    d: usize,
    h: usize,
    heads: usize,
    eps: f32,
    /// Whether a backward pass may follow (else the intermediates are dropped at once).
    keep: bool,
    saved: Mutex<Option<Saved>>,
}

/// The twelve parameters as slices of the flat tensor, in [`BlockParams::list`] order.
fn split(flat: &[f32], d: usize, h: usize) -> [&[f32]; 12] {
    let sizes = [d, d, 3 * d * d, 3 * d, d * d, d, d, d, h * d, h, d * h, d];
    let mut out: [&[f32]; 12] = [&[]; 12];
    let mut at = 0;
    for (o, s) in out.iter_mut().zip(sizes) {
        *o = &flat[at..at + s];
        at += s;
    }
    out
}

/// `a[i] += b[i]`, in parallel chunks.
fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

/// A row pass adding the matching row of `res (rows × n)`: a residual connection.
fn residual(res: &[f32], n: usize) -> impl Fn(usize, &mut [f32], Option<&mut [f32]>) + Sync + '_ {
    move |r, v, _| v.iter_mut().zip(&res[r * n..][..n]).for_each(|(o, &x)| *o += x)
}

impl BlockOp {
    /// The forward pass: the output and the intermediates.
    fn run(&self, x: &[f32], flat: &[f32]) -> Result<(Vec<f32>, Saved)> {
        let (d, h) = (self.d, self.h);
        let [g1, b1, wqkv, bqkv, wp, bp, g2, b2, w1, bf1, w2, bf2] = split(flat, d, h);
        let m = self.b * self.l;
        let ln1 = layer_norm_forward(x, g1, b1, self.eps);
        let qkv = linear_forward(&ln1, wqkv, bqkv, m, 3 * d, d);
        let (att, probs) = smg_kernels::attention::attention_saving(&qkv, self.b, self.l, self.heads, d / self.heads);
        // Residual additions and the GELU in the bias's pass over each product
        // (`linear_forward_then`), not in passes of their own.
        let x1 = linear_forward_then(&att, wp, bp, (m, d, d), None, residual(x, d));
        let ln2 = layer_norm_forward(&x1, g2, b2, self.eps);
        let mut act = smg_kernels::uninit_f32(m * h);
        let pre = linear_forward_then(&ln2, w1, bf1, (m, h, d), Some(&mut act), |_, v, a| {
            smg_kernels::gelu::gelu_to(a.expect("second output"), v)
        });
        let y = linear_forward_then(&act, w2, bf2, (m, d, h), None, residual(&x1, d));
        Ok((y, Saved { ln1, qkv, probs, att, x1, ln2, pre, act }))
    }
}

impl CustomOp2 for BlockOp {
    fn name(&self) -> &'static str {
        "vit-block"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, flat) = (cpu_f32(s1, l1, "vit-block")?, cpu_f32(s2, l2, "vit-block")?);
        if x.len() != self.b * self.l * self.d {
            candle_core::bail!("vit-block: {} input values for {} × {} × {}", x.len(), self.b, self.l, self.d);
        }
        let (y, saved) = self.run(x, flat)?;
        if self.keep {
            *self.saved.lock().expect("vit-block state") = Some(saved);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, flat: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (d, h) = (self.d, self.h);
        let (dx, dflat) = with_f32s([x, flat, grad], |[xs, fs, dy]| -> Result<(Vec<f32>, Vec<f32>)> {
            // Intermediates of the forward pass (recomputed if a second backward pass asks).
            let saved = self.saved.lock().expect("vit-block state").take();
            let s = match saved {
                Some(s) => s,
                None => self.run(xs, fs)?.1,
            };
            let [g1, _, wqkv, _, wp, _, g2, _, w1, _, w2, _] = split(fs, d, h);
            let m = self.b * self.l;
            // MLP: y = x1 + fc2(gelu(fc1(LN2 x1))).
            // GELU's backward pass in place on the product that makes its input gradient.
            let (dpre, dw2, db2) =
                linear_backward_then(dy, w2, &s.act, (m, d, h), |r, v| smg_kernels::gelu::gelu_backward(v, &s.pre[r * h..][..h]));
            let (dln2, dw1, db1) = linear_backward(&dpre, w1, &s.ln2, m, h, d);
            drop(dpre);
            let (mut dx1, dg2, dbeta2) = layer_norm_backward(&s.x1, g2, &dln2, self.eps);
            add_into(&mut dx1, dy);
            // Attention: x1 = x + proj(attn(qkv(LN1 x))).
            let (datt, dwp, dbp) = linear_backward(&dx1, wp, &s.att, m, d, d);
            let dqkv =
                smg_kernels::attention::attention_backward_saved(&s.qkv, &s.probs, &datt, self.b, self.l, self.heads, d / self.heads);
            let (dln1, dwqkv, dbqkv) = linear_backward(&dqkv, wqkv, &s.ln1, m, 3 * d, d);
            let (mut dx, dg1, dbeta1) = layer_norm_backward(xs, g1, &dln1, self.eps);
            add_into(&mut dx, &dx1);
            let mut dflat = Vec::with_capacity(fs.len());
            for part in [dg1, dbeta1, dwqkv, dbqkv, dwp, dbp, dg2, dbeta2, dw1, db1, dw2, db2] {
                dflat.extend_from_slice(&part);
            }
            Ok((dx, dflat))
        })??;
        let dev = x.device();
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), Some(Tensor::from_vec(dflat, flat.shape(), dev)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Var, D};

    fn rand(shape: &[usize], seed: u64, scale: f64) -> Tensor {
        (crate::test_util::rand(shape, seed) * scale).unwrap()
    }

    /// The block composed of candle's own ops (the reference).
    fn reference(x: &Tensor, p: &BlockParams) -> Result<Tensor> {
        let lin = |x: &Tensor, (w, b): (&Tensor, &Tensor)| x.broadcast_matmul(&w.t()?)?.broadcast_add(b);
        let ln = |x: &Tensor, (w, b): (&Tensor, &Tensor)| candle_nn::ops::layer_norm_slow(x, w, b, p.eps as f32);
        let (bsz, l, d) = x.dims3()?;
        let hd = d / p.heads;
        let qkv = lin(&ln(x, p.norm1)?, p.qkv)?.reshape((bsz, l, 3, p.heads, hd))?.permute((2, 0, 3, 1, 4))?;
        let (q, k, v) = (qkv.get(0)?.contiguous()?, qkv.get(1)?.contiguous()?, qkv.get(2)?.contiguous()?);
        let att = candle_nn::ops::softmax(&(q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?, D::Minus1)?;
        let att = att.matmul(&v)?.transpose(1, 2)?.reshape((bsz, l, d))?;
        let x1 = (x + lin(&att, p.proj)?)?;
        let mlp = lin(&lin(&ln(&x1, p.norm2)?, p.fc1)?.gelu_erf()?, p.fc2)?;
        x1 + mlp
    }

    #[test]
    fn block_values_and_gradients_match_candle_ops() {
        let (bsz, l, d, h, heads) = (3, 9, 16, 40, 4);
        let shapes: [&[usize]; 12] = [&[d], &[d], &[3 * d, d], &[3 * d], &[d, d], &[d], &[d], &[d], &[h, d], &[h], &[d, h], &[d]];
        let vars: Vec<Var> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let t = rand(s, i as u64 + 1, 0.4);
                // Norm weights around 1.
                let t = if i == 0 || i == 6 { (t + 1.0).unwrap() } else { t };
                Var::from_tensor(&t).unwrap()
            })
            .collect();
        let x = Var::from_tensor(&rand(&[bsz, l, d], 50, 1.5)).unwrap();
        let t: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
        let p = BlockParams {
            norm1: (t[0], t[1]),
            qkv: (t[2], t[3]),
            proj: (t[4], t[5]),
            norm2: (t[6], t[7]),
            fc1: (t[8], t[9]),
            fc2: (t[10], t[11]),
            eps: 1e-6,
            heads,
        };
        let fused = block(x.as_tensor(), &p).unwrap().expect("the CPU f32 path");
        let want = reference(x.as_tensor(), &p).unwrap();
        let diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff(&fused, &want) < 1e-4, "outputs differ by {}", diff(&fused, &want));
        let r = rand(fused.dims(), 77, 1.0);
        let gf = (&fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (&want * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in std::iter::once(&x).chain(&vars).enumerate() {
            let (a, b) = (gf.get(v.as_tensor()).expect("fused gradient"), gr.get(v.as_tensor()).expect("reference gradient"));
            let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
            assert!(diff(a, b) < 2e-4 * scale, "gradient {i} differs by {} (scale {scale})", diff(a, b));
        }
        // A second backward pass over the same graph recomputes the intermediates.
        let again = (&fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(diff(again.get(x.as_tensor()).unwrap(), gf.get(x.as_tensor()).unwrap()) == 0.0);
    }
}
