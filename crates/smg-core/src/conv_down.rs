//! The tokenizer's down-sampling convolution (taming's `Downsample`: zero padding of one row at
//! the bottom and one column at the right, then a 3 × 3 convolution at stride 2) as one autograd
//! node on the direct 3 × 3 kernels.
//!
//! Its output at `(i, j)` reads input rows `2i..2i + 2` and columns `2j..2j + 2`, which is the
//! same-size (padding 1, stride 1) convolution's output at `(2i + 1, 2j + 1)`. So the forward
//! pass runs the same-size convolution and keeps the odd rows and columns, and the backward pass
//! is the same-size convolution's backward pass on the output gradient spread back onto those
//! positions (zeros elsewhere). That costs four times the products of a strided kernel, but on
//! the direct kernels (≈ 300 GFLOP/s on 2 cores, or AMX tiles) with no padded copy, no patch
//! matrix and no candle nodes for the padding: the 16-channel full-resolution down-sampling of
//! the medium tokenizer went from 31 to 20 ms per forward + backward (benches/SPEED.md).

use crate::conv::SliceConv;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

/// `conv2d(pad(x, bottom 1, right 1), w, bias, stride 2)` for `x (B, C, H, W)` and a 3 × 3
/// weight `(Cout, C, 3, 3)`: `(B, Cout, H / 2, W / 2)` for even `H`, `W`. One node on the direct
/// kernels where they pay (CPU, f32, even sizes, AMX tiles or up to 32 channels); otherwise
/// the padding and a strided [`crate::conv::conv2d`].
pub fn conv2d_down(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let (cout, cin_w, kh, kw) = w.dims4()?;
    if cin_w != c || (kh, kw) != (3, 3) {
        candle_core::bail!("down-sampling conv: expected a ({c}, 3, 3) kernel per output, got {:?}", w.dims());
    }
    // Four times the products pays on AMX tiles and on the f32 or bf16 dot-product kernels up to
    // 32 channels; at 64 channels and more the strided im2col product was faster there
    // (`--example conv_down_speed`).
    let same = SliceConv::new(c, cout, (h, wd), 3, 1, 1);
    let pays = (same.runs_bf16() && crate::fast::amx_available()) || (c.max(cout) <= 32 && same.runs_direct());
    let direct = h % 2 == 0 && wd % 2 == 0 && pays;
    if direct && crate::fast::cpu_custom_ops(x) {
        let bias = crate::fast::bias_or_zeros(bias, cout, x)?;
        return x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Down { c, h, w: wd });
    }
    let xp = x.pad_with_zeros(D::Minus1, 0, 1)?.pad_with_zeros(D::Minus2, 0, 1)?;
    crate::conv::conv2d(&xp, w, bias, 2, 0)
}

/// The op of [`conv2d_down`] for inputs of `c` channels, `h × w`.
struct Down {
    c: usize,
    h: usize,
    w: usize,
}

impl Down {
    fn same(&self, cout: usize) -> SliceConv {
        SliceConv::new(self.c, cout, (self.h, self.w), 3, 1, 1)
    }
}

impl CustomOp3 for Down {
    fn name(&self) -> &'static str {
        "smg-conv2d-down"
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
        let (x, w, bias) = (
            crate::fast::cpu_f32(s1, l1, "conv2d_down")?,
            crate::fast::cpu_f32(s2, l2, "conv2d_down")?,
            crate::fast::cpu_f32(s3, l3, "conv2d_down")?,
        );
        let (b, cout) = (l1.dims()[0], l2.dims()[0]);
        let full = self.same(cout).forward(x, b, w, bias);
        let (h, wd) = (self.h, self.w);
        let (oh, ow) = (h / 2, wd / 2);
        let mut y = vec![0f32; b * cout * oh * ow];
        y.par_chunks_mut(oh * ow).zip(full.par_chunks(h * wd)).for_each(|(dst, src)| {
            for (i, row) in dst.chunks_exact_mut(ow).enumerate() {
                let s = &src[(2 * i + 1) * wd..(2 * i + 2) * wd];
                row.iter_mut().enumerate().for_each(|(j, v)| *v = s[2 * j + 1]);
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((b, cout, oh, ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, cout) = (x.dims()[0], w.dims()[0]);
        let (h, wd) = (self.h, self.w);
        let (oh, ow) = (h / 2, wd / 2);
        let conv = self.same(cout);
        let (dx, dw, db) = crate::fast::with_f32s([x, w, grad], |[xs, ws, dy]| {
            let mut full = vec![0f32; b * cout * h * wd];
            full.par_chunks_mut(h * wd).zip(dy.par_chunks(oh * ow)).for_each(|(dst, src)| {
                for (i, row) in src.chunks_exact(ow).enumerate() {
                    let d = &mut dst[(2 * i + 1) * wd..(2 * i + 2) * wd];
                    row.iter().enumerate().for_each(|(j, v)| d[2 * j + 1] = *v);
                }
            });
            conv.backward(xs, b, ws, &full)
        })?;
        crate::fast::grads_like([x, w, bias], [dx, dw, db])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        Tensor::rand(-0.5f32, 0.5, shape, &Device::Cpu).unwrap().affine(1.0 + seed as f64 * 0.01, 0.0).unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        d / b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1e-6)
    }

    /// Values and all three gradients equal padding + candle's strided conv2d (the reference).
    #[test]
    fn matches_padding_and_a_strided_candle_conv() {
        // (c, cout, h, w): direct kernels (w >= 32, channels in blocks of 8) and the fallback
        for &(c, cout, h, w) in &[(8, 8, 6, 32), (8, 16, 4, 40), (3, 5, 6, 8)] {
            let x = Var::from_tensor(&rand(&[2, c, h, w], 1)).unwrap();
            let wt = Var::from_tensor(&rand(&[cout, c, 3, 3], 2)).unwrap();
            let bias = Var::from_tensor(&rand(&[cout], 3)).unwrap();
            let y = conv2d_down(&x, &wt, Some(&bias)).unwrap();
            let xp = x.pad_with_zeros(D::Minus1, 0, 1).unwrap().pad_with_zeros(D::Minus2, 0, 1).unwrap();
            let want = xp.conv2d(&wt, 0, 2, 1, 1).unwrap().broadcast_add(&bias.reshape((1, cout, 1, 1)).unwrap()).unwrap();
            assert_eq!(y.dims(), want.dims());
            assert!(max_rel(&y, &want) < 1e-5, "values, {c} → {cout} at {h} × {w}");
            let probe = rand(want.dims(), 4);
            let g = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let gw = (&want * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for (v, name) in [(x.as_tensor(), "x"), (wt.as_tensor(), "weight"), (bias.as_tensor(), "bias")] {
                let r = max_rel(g.get(v).unwrap(), gw.get(v).unwrap());
                assert!(r < 1e-5, "gradient of {name}, {c} → {cout} at {h} × {w}: {r}");
            }
        }
    }
}
