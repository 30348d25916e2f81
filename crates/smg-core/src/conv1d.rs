//! A differentiable 1-D convolution whose CPU backward pass is gemm-fast (vocoder training).
//!
//! candle's CPU `conv1d` backward runs a direct-loop `conv_transpose1d` for the input gradient
//! (whenever there is padding) and a convolution with a signal-long kernel for the weight
//! gradient; a HiFi-GAN training step spent most of its time there. As in [`crate::conv`], an
//! ungrouped convolution is one custom op (`im2col`, one product per item, bias; backward by
//! `col2im` and gemm products); a grouped one is `im2col` (a custom op whose backward is its
//! adjoint `col2im`) and a batched matmul per item and group. Dilation, stride, padding and
//! groups are supported; values and gradients equal candle's `conv1d` run item by item (tested;
//! candle 0.11's own conv1d backward is wrong for batches of several items with several output
//! channels). Off the CPU or for other dtypes, candle's `conv1d` is used.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Geometry of one 1-D convolution over `(B, C, L)`.
#[derive(Debug, Clone, Copy)]
struct Geom {
    b: usize,
    c: usize,
    l: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
}

impl Geom {
    fn out_len(&self) -> usize {
        (self.l + 2 * self.pad - self.dilation * (self.k - 1) - 1) / self.stride + 1
    }
    /// Output positions `o` whose input `o·s + j·d − p` lies inside `[0, l)`.
    fn valid(&self, j: usize, lout: usize) -> (usize, usize) {
        let (s, p, off) = (self.stride as isize, self.pad as isize, (j * self.dilation) as isize);
        let lo = ((p - off).max(0) + s - 1) / s;
        let hi = ((self.l as isize - 1 + p - off).div_euclid(s) + 1).clamp(0, lout as isize);
        (lo.min(hi) as usize, hi as usize)
    }
}

/// `(B, C, L)` → `(B, C·k, Lout)` with row `c·k + j`, column `o` holding
/// `x[b, c, o·s + j·d − p]` (zero outside the signal).
#[derive(Debug, Clone, Copy)]
struct Im2Col(Geom);

/// The adjoint of [`Im2Col`]: `(B, C·k, Lout)` → `(B, C, L)`, summing overlaps.
#[derive(Debug, Clone, Copy)]
struct Col2Im(Geom);

/// `(B, C, L)` → `(B, C·k, Lout)` (see [`Im2Col`]).
fn im2col(g: Geom, x: &[f32]) -> Vec<f32> {
    let lout = g.out_len();
    // Every element is written below, the zeros outside the signal included: a zeroed
    // allocation would be one serial `memset` of the whole patch matrix first.
    let mut dst = smg_kernels::uninit_f32(g.c * g.k * g.b * lout);
    dst.par_chunks_mut(lout).enumerate().for_each(|(row, out)| {
        let (b, c, j) = (row / (g.c * g.k), (row / g.k) % g.c, row % g.k);
        let (lo, hi) = g.valid(j, lout);
        if lo >= hi {
            out.fill(0.0);
            return;
        }
        out[..lo].fill(0.0);
        out[hi..].fill(0.0);
        let x0 = lo * g.stride + j * g.dilation - g.pad;
        let src = &x[(b * g.c + c) * g.l..(b * g.c + c + 1) * g.l];
        let dst = &mut out[lo..hi];
        if g.stride == 1 {
            dst.copy_from_slice(&src[x0..x0 + hi - lo]);
        } else {
            dst.iter_mut().enumerate().for_each(|(i, d)| *d = src[x0 + i * g.stride]);
        }
    });
    dst
}

/// `(B, C·k, Lout)` → `(B, C, L)`, summing overlaps (see [`Col2Im`]).
fn col2im(g: Geom, cols: &[f32]) -> Vec<f32> {
    let lout = g.out_len();
    let mut dst = vec![0f32; g.b * g.c * g.l];
    dst.par_chunks_mut(g.l).enumerate().for_each(|(bc, out)| {
        let (b, c) = (bc / g.c, bc % g.c);
        for j in 0..g.k {
            let (lo, hi) = g.valid(j, lout);
            if lo >= hi {
                continue;
            }
            let x0 = lo * g.stride + j * g.dilation - g.pad;
            let row = &cols[((b * g.c + c) * g.k + j) * lout..][lo..hi];
            if g.stride == 1 {
                out[x0..x0 + hi - lo].iter_mut().zip(row).for_each(|(o, v)| *o += v);
            } else {
                row.iter().enumerate().for_each(|(i, v)| out[x0 + i * g.stride] += v);
            }
        }
    });
    dst
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "smg-im2col1d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let dst = im2col(g, crate::fast::cpu_f32(s, l, "im2col1d")?);
        Ok((CpuStorage::F32(dst), Shape::from((g.b, g.c * g.k, g.out_len()))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "smg-col2im1d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let dst = col2im(g, crate::fast::cpu_f32(s, l, "col2im1d")?);
        Ok((CpuStorage::F32(dst), Shape::from((g.b, g.c, g.l))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col(self.0))?))
    }
}

/// The whole ungrouped convolution `(x, W, bias) → (B, Cout, Lout)` as one autograd node (as
/// [`crate::conv`] does in 2-D): forward im2col and one product per item with the bias; backward
/// `col2im` of `Wᵀ·dY`, `dW = Σ_b (cols_b · dY_bᵀ)ᵀ` with `cols` recomputed and `dY_b`
/// transposed first (the orientation the `gemm` crate packs with contiguous copies), `db` sums.
struct Conv(Geom);

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "smg-conv1d"
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
        let g = self.0;
        let (x, w, bias) =
            (crate::fast::cpu_f32(s1, l1, "conv1d")?, crate::fast::cpu_f32(s2, l2, "conv1d")?, crate::fast::cpu_f32(s3, l3, "conv1d")?);
        let (cout, k, lout) = (l2.dims()[0], g.c * g.k, g.out_len());
        let cols = im2col(g, x);
        let mut y = vec![0f32; g.b * cout * lout];
        for (yb, cb) in y.chunks_mut(cout * lout).zip(cols.chunks(k * lout)) {
            smg_kernels::matmul::gemm_nn(cout, lout, k, yb, w, cb);
        }
        y.par_chunks_mut(lout).enumerate().for_each(|(bc, row)| {
            let v = bias[bc % cout];
            row.iter_mut().for_each(|o| *o += v);
        });
        Ok((CpuStorage::F32(y), Shape::from((g.b, cout, lout))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.0;
        let (cout, k, lout) = (w.dim(0)?, g.c * g.k, g.out_len());
        let dy = crate::fast::with_f32(grad, |d| d.to_vec())?;
        let mut db = vec![0f32; cout];
        for (i, row) in dy.chunks(lout).enumerate() {
            db[i % cout] += row.iter().map(|&v| v as f64).sum::<f64>() as f32;
        }
        let wt = crate::fast::with_f32(w, |w| smg_kernels::matmul::transpose(w, cout, k))?;
        let mut dcols = vec![0f32; g.b * k * lout];
        for (db_, dyb) in dcols.chunks_mut(k * lout).zip(dy.chunks(cout * lout)) {
            smg_kernels::matmul::gemm_nn(k, lout, cout, db_, &wt, dyb);
        }
        let dx = col2im(g, &dcols);
        drop(dcols);
        let cols = crate::fast::with_f32(x, |x| im2col(g, x))?;
        let mut dwt = vec![0f32; k * cout];
        let mut part = vec![0f32; k * cout];
        for (cb, dyb) in cols.chunks(k * lout).zip(dy.chunks(cout * lout)) {
            let dyt = smg_kernels::matmul::transpose(dyb, cout, lout);
            smg_kernels::matmul::gemm_nn(k, cout, lout, &mut part, cb, &dyt);
            dwt.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
        }
        let dw = smg_kernels::matmul::transpose(&dwt, k, cout);
        crate::fast::grads_like([x, w, bias], [dx, dw, db])
    }
}

/// `conv1d(x, w) + bias` with PyTorch semantics: `x` `(B, Cin, L)`, `w` `(Cout, Cin/groups, k)`,
/// symmetric zero `padding`. On the CPU in f32 this is im2col + gemm with a gemm-based backward
/// pass (the training path of the vocoders and their discriminators); elsewhere candle's `conv1d`.
pub fn conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    let (b, cin, l) = x.dims3()?;
    let (cout, cin_g, k) = w.dims3()?;
    if groups == 0 || cin % groups != 0 || cout % groups != 0 || cin / groups != cin_g {
        candle_core::bail!("conv1d: {cin} input channels, kernel {:?} and {groups} groups do not fit", w.dims());
    }
    if l + 2 * padding < dilation * (k - 1) + 1 || stride == 0 || dilation == 0 {
        candle_core::bail!("conv1d: input of {l} samples (padding {padding}) is shorter than the kernel ({k} taps, dilation {dilation})");
    }
    if groups == 1 && crate::fast::cpu_custom_ops(x) {
        let g = Geom { b, c: cin, l, k, stride, pad: padding, dilation };
        let bias = crate::fast::bias_or_zeros(bias, cout, x)?;
        return x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Conv(g));
    }
    let y = if crate::fast::cpu_custom_ops(x) {
        let g = Geom { b, c: cin, l, k, stride, pad: padding, dilation };
        let lout = g.out_len();
        let cols = x.contiguous()?.apply_op1(Im2Col(g))?;
        // Grouped: a batched matmul, which needs the broadcast weight materialised once it has
        // two batch axes.
        let wg = w.reshape((groups, cout / groups, cin_g * k))?.broadcast_left(b)?.contiguous()?;
        wg.matmul(&cols.reshape((b, groups, cin_g * k, lout))?)?.reshape((b, cout, lout))?
    } else {
        x.conv1d(w, padding, stride, dilation, groups)?
    };
    match bias {
        Some(bias) => y.broadcast_add(&bias.reshape((1, cout, 1))?),
        None => Ok(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// Values and both gradients equal candle's conv1d over strides, dilations, paddings, groups.
    #[test]
    fn matches_candle_conv1d_values_and_gradients() {
        for &(cin, cout, l, k, stride, pad, dil, groups) in &[
            (3, 5, 17, 3, 1, 1, 1, 1),
            (4, 6, 20, 5, 2, 2, 1, 2),
            (4, 4, 31, 3, 1, 5, 5, 1),
            (8, 8, 40, 7, 3, 3, 1, 4),
            (2, 3, 9, 1, 1, 0, 1, 1),
            (8, 8, 60, 41, 4, 20, 1, 4),
        ] {
            let x = Var::from_tensor(&rand(&[2, cin, l], 1)).unwrap();
            let w = Var::from_tensor(&rand(&[cout, cin / groups, k], 2)).unwrap();
            let bias = Var::from_tensor(&rand(&[cout], 3)).unwrap();
            let ours = conv1d(&x, &w, Some(&bias), stride, pad, dil, groups).unwrap();
            // candle 0.11's conv1d input and kernel gradients are wrong for batches of more than
            // one item with more than one output channel (checked against finite differences),
            // so the reference runs candle one item at a time.
            let items: Vec<Tensor> = (0..2).map(|i| x.narrow(0, i, 1).unwrap().conv1d(&w, pad, stride, dil, groups).unwrap()).collect();
            let reference = Tensor::cat(&items, 0).unwrap().broadcast_add(&bias.reshape((1, cout, 1)).unwrap()).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            assert!(max_diff(&ours, &reference) < 1e-5, "values differ for {cin}->{cout} k{k} s{stride} p{pad} d{dil} g{groups}");
            let probe = rand(ours.dims(), 4);
            let g1 = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&reference * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("input", x.as_tensor()), ("kernel", w.as_tensor()), ("bias", bias.as_tensor())] {
                let d = max_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(d < 1e-4, "{name} gradient differs by {d} for {cin}->{cout} k{k} s{stride} p{pad} d{dil} g{groups}");
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for &(l, k, stride, pad, dil) in &[(10, 3, 2, 0, 1), (13, 4, 3, 2, 2), (8, 3, 1, 6, 3)] {
            let g = Geom { b: 2, c: 3, l, k, stride, pad, dilation: dil };
            let x = rand(&[2, 3, l], 5);
            let cols = x.apply_op1(Im2Col(g)).unwrap();
            let c = rand(cols.dims(), 6);
            let back = c.apply_op1(Col2Im(g)).unwrap();
            let lhs = (&cols * &c).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            let rhs = (&x * &back).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "{lhs} vs {rhs}");
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = rand(&[1, 4, 3], 1);
        assert!(conv1d(&x, &rand(&[2, 4, 5], 2), None, 1, 0, 1, 1).unwrap_err().to_string().contains("shorter"));
        assert!(conv1d(&x, &rand(&[2, 3, 1], 2), None, 1, 0, 1, 2).unwrap_err().to_string().contains("groups"));
    }
}
