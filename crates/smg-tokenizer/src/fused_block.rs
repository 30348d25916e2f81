//! The tokenizer's ResNet block (taming's `ResnetBlock`, SPEC.md §2.1: GroupNorm → swish →
//! conv 3 × 3 → GroupNorm → swish → conv 3 × 3, plus the input or its 1 × 1 `nin_shortcut`) as
//! one autograd node for training on CPU f32.
//!
//! Composed of the fused GroupNorm + swish op and the convolution op, a block is five or six
//! candle nodes, and candle's backward gives every node's input a zero-filled gradient buffer
//! that it then adds into: each activation-sized gradient costs an allocation, a fill and an
//! addition on top of its own pass, and the residual addition is a candle element-wise op. Here
//! the forward pass keeps the three intermediates the backward pass reads (both norms' outputs
//! and the first convolution's) and the backward pass runs the chain by hand on slices with the
//! same kernels ([`Op`], [`SliceConv`]), the residual gradient added in place. The parameters
//! travel as one flat tensor (a `cat` node, so each still gets its own gradient) because a candle
//! op takes at most three inputs. Checked against the composed ops in the tests below.

use crate::fused::Op;
use crate::specvqgan::ResnetBlock;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use smg_core::conv::SliceConv;
use smg_core::fast::{cpu_custom_ops, cpu_f32, with_f32s};
use std::sync::Mutex;

/// Values per rayon task of the residual additions.
const CHUNK: usize = 1 << 14;

/// The block's output for `x (B, Cin, H, W)` as one autograd node, when the block is being
/// trained on the CPU in f32 (some parameter tracks gradients); `None` otherwise (the caller
/// composes its layers then: the inference kernels, or candle's ops on other devices).
pub(crate) fn forward(x: &Tensor, blk: &ResnetBlock) -> Result<Option<Tensor>> {
    let mut list = vec![&blk.norm1.weight, &blk.norm1.bias, blk.conv1.weight()];
    let Some(b1) = blk.conv1.bias() else { return Ok(None) };
    list.extend([b1, &blk.norm2.weight, &blk.norm2.bias, blk.conv2.weight()]);
    let Some(b2) = blk.conv2.bias() else { return Ok(None) };
    list.push(b2);
    if let Some(s) = &blk.nin_shortcut {
        let Some(bs) = s.bias() else { return Ok(None) };
        list.extend([s.weight(), bs]);
    }
    if !cpu_custom_ops(x) || !list.iter().all(|t| cpu_custom_ops(t)) || !list.iter().any(|t| t.track_op()) {
        return Ok(None);
    }
    let (b, cin, h, w) = x.dims4()?;
    let cout = blk.conv1.weight().dim(0)?;
    let want = shapes(cin, cout, blk.nin_shortcut.is_some());
    for (i, (t, want)) in list.iter().zip(&want).enumerate() {
        if t.elem_count() != *want {
            candle_core::bail!("ResNet block: parameter {i} has {} values, expected {want} for {cin} → {cout} channels", t.elem_count());
        }
    }
    let flat = Tensor::cat(&list.iter().map(|t| t.flatten_all()).collect::<Result<Vec<_>>>()?, 0)?;
    let op = BlockOp {
        b,
        cin,
        cout,
        hw: (h, w),
        norm1: blk.norm1.op(),
        norm2: blk.norm2.op(),
        shortcut: blk.nin_shortcut.is_some(),
        keep: x.track_op() || flat.track_op(),
        saved: Mutex::new(None),
    };
    Ok(Some(x.contiguous()?.apply_op2(&flat, op)?))
}

/// Sizes of the parameters in flat order: norm1 (weight, bias), conv1 (weight, bias), norm2,
/// conv2, then the shortcut's weight and bias if there is one.
fn shapes(cin: usize, cout: usize, shortcut: bool) -> Vec<usize> {
    let mut s = vec![cin, cin, cout * cin * 9, cout, cout, cout, cout * cout * 9, cout];
    if shortcut {
        s.extend([cout * cin, cout]);
    }
    s
}

/// Intermediates of one forward pass, kept for the backward pass.
struct Saved {
    h1: Vec<f32>,
    c1: Vec<f32>,
    h2: Vec<f32>,
}

struct BlockOp {
    b: usize,
    cin: usize,
    cout: usize,
    hw: (usize, usize),
    norm1: Op,
    norm2: Op,
    shortcut: bool,
    /// Whether a backward pass may follow (else the intermediates are dropped at once).
    keep: bool,
    saved: Mutex<Option<Saved>>,
}

/// `a[i] += b[i]`, in parallel chunks.
fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

impl BlockOp {
    /// The parameters as slices of the flat tensor, in [`shapes`] order.
    fn split<'a>(&self, flat: &'a [f32]) -> Vec<&'a [f32]> {
        let mut at = 0;
        shapes(self.cin, self.cout, self.shortcut)
            .into_iter()
            .map(|n| {
                at += n;
                &flat[at - n..at]
            })
            .collect()
    }

    fn convs(&self) -> [SliceConv; 3] {
        let (cin, cout) = (self.cin, self.cout);
        [
            SliceConv::new(cin, cout, self.hw, 3, 1, 1),
            SliceConv::new(cout, cout, self.hw, 3, 1, 1),
            SliceConv::new(cin, cout, self.hw, 1, 1, 0),
        ]
    }

    /// The forward pass: the output and the intermediates.
    fn run(&self, x: &[f32], flat: &[f32]) -> (Vec<f32>, Saved) {
        let p = self.split(flat);
        let [conv1, conv2, short] = self.convs();
        let (b, n) = (self.b, self.hw.0 * self.hw.1);
        let h1 = self.norm1.forward(x, p[0], p[1], b, self.cin, n);
        let c1 = conv1.forward(&h1, b, p[2], p[3]);
        let h2 = self.norm2.forward(&c1, p[4], p[5], b, self.cout, n);
        let mut y = conv2.forward(&h2, b, p[6], p[7]);
        if self.shortcut {
            add_into(&mut y, &short.forward(x, b, p[8], p[9]));
        } else {
            add_into(&mut y, x);
        }
        (y, Saved { h1, c1, h2 })
    }
}

impl CustomOp2 for BlockOp {
    fn name(&self) -> &'static str {
        "resnet-block"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, flat) = (cpu_f32(s1, l1, "resnet-block")?, cpu_f32(s2, l2, "resnet-block")?);
        let (h, w) = self.hw;
        if x.len() != self.b * self.cin * h * w {
            candle_core::bail!("resnet-block: {} input values for {} × {} × {h} × {w}", x.len(), self.b, self.cin);
        }
        let (y, saved) = self.run(x, flat);
        if self.keep {
            *self.saved.lock().expect("resnet-block state") = Some(saved);
        }
        Ok((CpuStorage::F32(y), Shape::from((self.b, self.cout, h, w))))
    }

    fn bwd(&self, x: &Tensor, flat: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dflat) = with_f32s([x, flat, grad], |[xs, fs, dy]| {
            // Intermediates of the forward pass (recomputed if a second backward pass asks).
            let saved = self.saved.lock().expect("resnet-block state").take();
            let s = saved.unwrap_or_else(|| self.run(xs, fs).1);
            let p = self.split(fs);
            let [conv1, conv2, short] = self.convs();
            let (b, n) = (self.b, self.hw.0 * self.hw.1);
            let (dh2, dw2, db2) = conv2.backward(&s.h2, b, p[6], dy);
            let (dc1, dn2w, dn2b) = self.norm2.backward(&s.c1, p[4], p[5], &dh2, b, self.cout, n);
            drop(dh2);
            let (dh1, dw1, db1) = conv1.backward(&s.h1, b, p[2], &dc1);
            drop(dc1);
            let (mut dx, dn1w, dn1b) = self.norm1.backward(xs, p[0], p[1], &dh1, b, self.cin, n);
            let mut parts = vec![dn1w, dn1b, dw1, db1, dn2w, dn2b, dw2, db2];
            if self.shortcut {
                let (dxs, dws, dbs) = short.backward(xs, b, p[8], dy);
                add_into(&mut dx, &dxs);
                parts.extend([dws, dbs]);
            } else {
                add_into(&mut dx, dy);
            }
            (dx, parts.concat())
        })?;
        let dev = x.device();
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), Some(Tensor::from_vec(dflat, flat.shape(), dev)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Module};
    use candle_nn::{VarBuilder, VarMap};

    /// Values and every gradient of `Σ r ⊙ block(x)` through the fused node and through the
    /// composed ops (`ResnetBlock::forward_composed`), for a block with and without shortcut.
    #[test]
    fn fused_block_matches_the_composed_ops() {
        for (cin, cout) in [(16, 16), (8, 24)] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
            let blk = ResnetBlock::new(cin, cout, 8, vb).unwrap();
            // Non-trivial norm parameters, so their gradients are checked away from 1 and 0.
            for (name, v) in vm.data().lock().unwrap().iter() {
                if name.contains("norm") {
                    v.set(&smg_core::test_util::rand(v.dims(), name.len() as u64)).unwrap();
                }
            }
            let x = candle_core::Var::from_tensor(&smg_core::test_util::rand(&[2, cin, 6, 10], 1)).unwrap();
            let r = smg_core::test_util::rand(&[2, cout, 6, 10], 2);
            let grads = |y: Tensor| {
                let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let mut out =
                    vec![y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap()];
                for v in vm.all_vars() {
                    out.push(g.get(&v).unwrap().flatten_all().unwrap().to_vec1().unwrap());
                }
                out
            };
            let fused = grads(forward(&x, &blk).unwrap().expect("the fused node applies while training"));
            let composed = grads(blk.forward_composed(&x).unwrap());
            for (i, (a, e)) in fused.iter().zip(&composed).enumerate() {
                let scale = e.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
                let err = a.iter().zip(e).fold(0f32, |m, (a, e)| m.max((a - e).abs()));
                assert!(err <= 1e-4 * scale, "{cin} → {cout}, output {i}: {err} against scale {scale}");
            }
            // Through the module's own forward pass, the fused node is taken.
            assert_eq!(blk.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), fused[0]);
        }
    }
}
