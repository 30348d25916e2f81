//! A 2-D convolution whose CPU backward pass is as fast as its forward pass.
//!
//! candle's CPU `conv2d` backward runs a direct (loop) `conv_transpose2d` for the input gradient
//! and a convolution with an image-sized kernel for the weight gradient; together they took most
//! of a tokenizer training step. Here the convolution is one custom op, forward
//! `im2col → one product over the whole batch (gemm) → bias and layout`, backward
//! `col2im` of `Wᵀ·dY` and one product for the weight: every heavy part is a gemm call. Values
//! equal candle's `conv2d` (tested); off the CPU, or for dtypes other than f32, candle's own
//! kernels are used.

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use rayon::prelude::*;

mod few_out;

/// Geometry of one convolution: kernel, stride, symmetric zero padding, input size.
#[derive(Debug, Clone, Copy)]
struct Geom {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    /// Stride and zero padding along rows (`h`) and columns (`w`).
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
}

impl Geom {
    fn out_hw(&self) -> (usize, usize) {
        ((self.h + 2 * self.ph - self.kh) / self.sh + 1, (self.w + 2 * self.pw - self.kw) / self.sw + 1)
    }
    /// Output columns `ox` whose input column `ox·s + j − p` lies inside `[0, w)`.
    fn valid_cols(&self, j: usize, ow: usize) -> (usize, usize) {
        let (s, p) = (self.sw as isize, self.pw as isize);
        let lo = ((p - j as isize).max(0) + s - 1) / s;
        let hi = ((self.w as isize - 1 + p - j as isize).div_euclid(s) + 1).clamp(0, ow as isize);
        (lo.min(hi) as usize, hi as usize)
    }
    /// For kernel tap `(i, j)`: calls `f(oy, iy, lo..hi, x0)` for every output row `oy` whose
    /// input row `iy = oy·sh + i − ph` lies inside the image, with the output columns `lo..hi`
    /// that read inside it and the input column `x0` of `lo` (no call when no column does).
    fn for_each_row(&self, i: usize, j: usize, (oh, ow): (usize, usize), mut f: impl FnMut(usize, usize, std::ops::Range<usize>, usize)) {
        let (lo, hi) = self.valid_cols(j, ow);
        if lo >= hi {
            return;
        }
        let x0 = lo * self.sw + j - self.pw;
        for oy in 0..oh {
            let iy = (oy * self.sh + i) as isize - self.ph as isize;
            if iy >= 0 && iy < self.h as isize {
                f(oy, iy as usize, lo..hi, x0);
            }
        }
    }
}

/// `(B, C, H, W)` → `(C·kh·kw, B·oh·ow)`, zero outside the image: the columns of every item side
/// by side, so the whole batch is one product `W (Cout, C·kh·kw) · cols`. At a column stride
/// `s > 1` the planes are first split by column phase ([`split_cols`]), so that every row of
/// `cols` is a contiguous copy rather than a strided gather.
fn im2col(g: Geom, x: &[f32], b: usize) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let (kk, hw, ohw) = (g.kh * g.kw, g.h * g.w, oh * ow);
    let (s, wp) = (g.sw, g.w.div_ceil(g.sw));
    let split = (s > 1).then(|| split_cols(x, b * g.c, g.h, g.w, s));
    // Every element is written below, the zeros outside the image included.
    let mut dst = smg_kernels::uninit_f32(g.c * kk * b * ohw);
    // One chunk per (row of cols, item): row = c·kk + i·kw + j.
    dst.par_chunks_mut(ohw).enumerate().for_each(|(seg, out)| {
        let (row, item) = (seg / b, seg % b);
        let (c, ij) = (row / kk, row % kk);
        let (i, j) = (ij / g.kw, ij % g.kw);
        let plane = item * g.c + c;
        let (lo, hi) = g.valid_cols(j, ow);
        for (oy, dst_row) in out.chunks_exact_mut(ow).enumerate() {
            let iy = (oy * g.sh + i) as isize - g.ph as isize;
            if iy < 0 || iy >= g.h as isize || lo >= hi {
                dst_row.fill(0.0);
                continue;
            }
            let iy = iy as usize;
            let x0 = lo * s + j - g.pw;
            dst_row[..lo].fill(0.0);
            dst_row[hi..].fill(0.0);
            let inside = &mut dst_row[lo..hi];
            let src = match &split {
                // Column x0 + k·s of the plane is column x0 / s + k of phase x0 % s.
                Some(sp) => &sp[((plane * s + x0 % s) * g.h + iy) * wp + x0 / s..][..inside.len()],
                None => &x[plane * hw + iy * g.w + x0..][..inside.len()],
            };
            inside.copy_from_slice(src);
        }
    });
    dst
}

/// Planes `(n, h, w)` → `(n, s, h, ⌈w / s⌉)`: phase `p` of a plane holds its columns `p, p + s,
/// p + 2s, …` (zero past the last column), so stride-`s` column runs become contiguous.
fn split_cols(x: &[f32], n: usize, h: usize, w: usize, s: usize) -> Vec<f32> {
    let wp = w.div_ceil(s);
    let mut out = smg_kernels::uninit_f32(n * s * h * wp);
    out.par_chunks_mut(s * h * wp).zip(x.par_chunks(h * w)).take(n).for_each(|(o, plane)| {
        for (y, row) in plane.chunks_exact(w).enumerate() {
            for p in 0..s {
                let dst = &mut o[(p * h + y) * wp..][..wp];
                for (q, d) in dst.iter_mut().enumerate() {
                    *d = row.get(q * s + p).copied().unwrap_or(0.0);
                }
            }
        }
    });
    out
}

/// `(C·kh·kw, B·oh·ow)` → `(B, C, H, W)`, summing overlapping patches (adjoint of [`im2col`]).
/// At a column stride `s > 1` the sums run on column phases (contiguous additions), merged
/// into the planes at the end.
fn col2im(g: Geom, cols: &[f32], b: usize) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let (kk, hw, ohw) = (g.kh * g.kw, g.h * g.w, oh * ow);
    let (s, wp) = (g.sw, g.w.div_ceil(g.sw));
    let mut dst = smg_kernels::uninit_f32(b * g.c * hw);
    dst.par_chunks_mut(hw).enumerate().for_each(|(bc, plane)| {
        let (item, c) = (bc / g.c, bc % g.c);
        // Adds every tap's columns into `acc`: the plane itself at stride 1 (`wp = W`), its
        // column phases `(s, H, ⌈W / s⌉)` otherwise.
        let add_taps = |acc: &mut [f32]| {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let row = c * kk + i * g.kw + j;
                    let seg = &cols[(row * b + item) * ohw..(row * b + item + 1) * ohw];
                    g.for_each_row(i, j, (oh, ow), |oy, iy, span, x0| {
                        let src = &seg[oy * ow..(oy + 1) * ow][span];
                        let out = &mut acc[((x0 % s) * g.h + iy) * wp + x0 / s..][..src.len()];
                        out.iter_mut().zip(src).for_each(|(o, v)| *o += v);
                    });
                }
            }
        };
        if s == 1 {
            plane.fill(0.0);
            add_taps(plane);
        } else {
            let mut acc = vec![0f32; s * g.h * wp];
            add_taps(&mut acc);
            for (y, out) in plane.chunks_exact_mut(g.w).enumerate() {
                for (x, o) in out.iter_mut().enumerate() {
                    *o = acc[((x % s) * g.h + y) * wp + x / s];
                }
            }
        }
    });
    dst
}

/// The whole convolution `(x, W, bias) → (B, Cout, oh, ow)` as one op, so that autograd holds
/// one node per convolution (candle's backward allocates, zeroes and adds a gradient buffer for
/// every node, views and copies included). Forward: `im2col`, one product
/// `W (Cout, K) · cols (K, B·oh·ow)` for the batch, the bias and the layout change to
/// `(B, Cout, oh, ow)` in one pass. Backward: `dcols = Wᵀ·dY → col2im`, `dW = (cols·dYᵀ)ᵀ`
/// with `cols` recomputed, `db` = row sums; every product in the orientation the `gemm` crate
/// packs with contiguous copies (`dY·colsᵀ` would make it pack the large `cols` element by
/// element; SPEED.md). These products stay f32 with `--precision bf16` too: on bf16 AMX tiles
/// (`smg_kernels::dot_bf16::gemm`) the medium tokenizer's step was slower (SPEED.md).
struct Conv(Geom);

static DIRECT: smg_kernels::Switch = smg_kernels::Switch::new("SMG_CONV_DIRECT");

/// Whether 3 × 3, stride-1, padding-1 convolutions take the direct kernels
/// (`smg_kernels::conv3x3`) rather than im2col + gemm: yes unless `SMG_CONV_DIRECT=0` or
/// [`set_direct_conv`]`(false)`.
pub fn direct_conv() -> bool {
    DIRECT.get()
}

/// Whether a 3 × 3 same-size convolution of `ci` → `co` channels runs on the bf16 kernels
/// (`smg_kernels::conv3x3_amx`: AMX tiles, or the AVX-512 BF16 dot product without AMX):
/// training in bf16 ([`crate::fast::train_bf16`]), direct kernels on, and enough channels for
/// the bf16 kernels to beat the f32 direct ones (`conv3x3_amx::applies`: 32 each way on AMX
/// tiles, 16 on the dot product; `--example conv3x3_speed`).
fn bf16_conv(ci: usize, co: usize) -> bool {
    direct_conv() && crate::fast::train_bf16() && smg_kernels::conv3x3_amx::applies(ci, co)
}

/// Turns the direct 3 × 3 kernels on or off for the whole process (benchmarks compare both).
pub fn set_direct_conv(on: bool) {
    DIRECT.set(on)
}

impl Geom {
    /// A 3 × 3 kernel at stride 1 with padding 1 (the shape the direct kernels cover).
    fn is_3x3_same(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (3, 3, 1, 1, 1, 1)
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "smg-conv2d"
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
        let (x, w, bias) =
            (crate::fast::cpu_f32(s1, l1, "conv2d")?, crate::fast::cpu_f32(s2, l2, "conv2d")?, crate::fast::cpu_f32(s3, l3, "conv2d")?);
        let conv = SliceConv { g: self.0, cout: l2.dims()[0] };
        let (oh, ow) = self.0.out_hw();
        Ok((CpuStorage::F32(conv.forward(x, l1.dims()[0], w, bias)), Shape::from((l1.dims()[0], conv.cout, oh, ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let conv = SliceConv { g: self.0, cout: w.dims()[0] };
        // No gradient for an input outside the graph or a frozen (detached) weight.
        let want = (x.track_op(), w.track_op());
        let (dx, dw, db) = crate::fast::with_f32s([x, w, grad], |[xs, ws, dy]| conv.backward_some(xs, x.dims()[0], ws, dy, want))?;
        let dev = x.device();
        Ok((
            dx.map(|v| Tensor::from_vec(v, x.shape(), dev)).transpose()?,
            dw.map(|v| Tensor::from_vec(v, w.shape(), dev)).transpose()?,
            Some(Tensor::from_vec(db, bias.shape(), dev)?),
        ))
    }
}

/// The bias gradient of `dy (B, cout, P)`: per channel, f64 sums per item added in item order.
fn bias_grad(dy: &[f32], b: usize, cout: usize, p: usize) -> Vec<f32> {
    (0..cout)
        .into_par_iter()
        .map(|co| (0..b).map(|i| dy[(i * cout + co) * p..][..p].iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>() as f32)
        .collect()
}

/// Gradients `(dx, dW, dbias)` of a convolution; `None` where not asked for.
pub type Grads = (Option<Vec<f32>>, Option<Vec<f32>>, Vec<f32>);

/// One convolution layer (`cin` → `cout`, square kernel, stride, symmetric zero padding) on one
/// input size, run on plain slices with the kernels of [`conv2d`]: for callers that chain layers
/// by hand inside one autograd node (the tokenizer's fused ResNet block). Slices are row-major
/// `(B, C, H, W)`, weights `(cout, cin, k, k)`.
#[derive(Debug, Clone, Copy)]
pub struct SliceConv {
    g: Geom,
    cout: usize,
}

impl SliceConv {
    pub fn new(cin: usize, cout: usize, (h, w): (usize, usize), k: usize, stride: usize, padding: usize) -> Self {
        Self { g: Geom { c: cin, h, w, kh: k, kw: k, sh: stride, sw: stride, ph: padding, pw: padding }, cout }
    }

    /// Output rows and columns.
    pub fn out_hw(&self) -> (usize, usize) {
        self.g.out_hw()
    }

    /// Whether both passes run on the bf16 3 × 3 kernels (AMX tiles or the dot product).
    pub fn runs_bf16(&self) -> bool {
        self.g.is_3x3_same() && bf16_conv(self.g.c, self.cout)
    }

    /// Whether both passes run on the direct 3 × 3 kernels (f32 or bf16), not im2col.
    pub fn runs_direct(&self) -> bool {
        let (g, cout) = (self.g, self.cout);
        let direct = |n: usize| smg_kernels::conv3x3::applies(n, g.w);
        g.is_3x3_same() && direct_conv() && (bf16_conv(g.c, cout) || (direct(cout) && direct(g.c)))
    }

    /// `conv(x) + bias` for a batch of `b` items.
    pub fn forward(&self, x: &[f32], b: usize, w: &[f32], bias: &[f32]) -> Vec<f32> {
        let (g, cout) = (self.g, self.cout);
        if g.is_3x3_same() && bf16_conv(g.c, cout) {
            use smg_kernels::conv3x3_amx as amx;
            let taps = amx::PackedTaps::forward(w, cout, g.c);
            return amx::forward(&amx::pack_pairs(x, b, g.c, g.h, g.w), b, g.c, g.h, g.w, &taps, Some(bias), cout);
        }
        if g.is_3x3_same() && smg_kernels::conv3x3::applies(cout, g.w) && direct_conv() {
            let xp = smg_kernels::conv3x3::pad_planes(x, b * g.c, g.h, g.w);
            return smg_kernels::conv3x3::forward(&xp, b, g.c, g.h, g.w, w, bias, cout);
        }
        use smg_kernels::conv3x3::CB;
        if g.is_3x3_same() && cout < CB && smg_kernels::conv3x3::applies(CB, g.w) && direct_conv() {
            // A few output channels (the tokenizer's last convolution): one block of the direct
            // kernel with zero weights for the missing channels, rather than a patch matrix of
            // every input channel (9·C values per output value).
            let (mut wb, mut bb) = (w.to_vec(), bias.to_vec());
            wb.resize(CB * g.c * 9, 0.0);
            bb.resize(CB, 0.0);
            let xp = smg_kernels::conv3x3::pad_planes(x, b * g.c, g.h, g.w);
            let y = smg_kernels::conv3x3::forward(&xp, b, g.c, g.h, g.w, &wb, &bb, CB);
            let hw = g.h * g.w;
            return y.chunks(CB * hw).flat_map(|item| item[..cout * hw].iter().copied()).collect();
        }
        if few_out::applies(&g, cout) {
            return few_out::forward(g, x, b, w, bias, cout);
        }
        self.forward_im2col(x, b, w, bias)
    }

    /// [`Self::forward`] as im2col + one product over the batch.
    fn forward_im2col(&self, x: &[f32], b: usize, w: &[f32], bias: &[f32]) -> Vec<f32> {
        let (g, cout) = (self.g, self.cout);
        let (oh, ow) = g.out_hw();
        let (k, p) = (g.c * g.kh * g.kw, oh * ow);
        let cols = im2col(g, x, b);
        let mut prod = smg_kernels::uninit_f32(cout * b * p);
        smg_kernels::matmul::gemm_nn(cout, b * p, k, &mut prod, w, &cols);
        drop(cols);
        // (Cout, B·P) → (B, Cout, P), plus the bias.
        let mut y = smg_kernels::uninit_f32(b * cout * p);
        y.par_chunks_mut(p).enumerate().for_each(|(bc, out)| {
            let (item, co) = (bc / cout, bc % cout);
            let src = &prod[co * b * p + item * p..co * b * p + (item + 1) * p];
            out.iter_mut().zip(src).for_each(|(o, &v)| *o = v + bias[co]);
        });
        y
    }

    /// Gradients `(dx, dW, dbias)` from the input `x` of the forward pass, the weight and the
    /// output gradient `dy`.
    pub fn backward(&self, x: &[f32], b: usize, w: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (dx, dw, db) = self.backward_some(x, b, w, dy, (true, true));
        (dx.expect("asked for"), dw.expect("asked for"), db)
    }

    /// [`Self::backward`] computing only the gradients asked for in `(dx, dW)` (the bias
    /// gradient always: it is one sum), e.g. none for a frozen layer's weight.
    pub fn backward_some(&self, x: &[f32], b: usize, w: &[f32], dy: &[f32], (want_x, want_w): (bool, bool)) -> Grads {
        let (g, cout) = (self.g, self.cout);
        let bf16 = g.is_3x3_same() && bf16_conv(g.c, cout);
        if bf16 || (g.is_3x3_same() && smg_kernels::conv3x3::applies(g.c, g.w) && direct_conv()) {
            return self.backward_direct(x, b, w, dy, bf16, (want_x, want_w));
        }
        if few_out::applies(&g, cout) {
            let (oh, ow) = g.out_hw();
            let p = oh * ow;
            let db = bias_grad(dy, b, cout, p);
            let (dx, dw) = few_out::backward(g, x, b, w, dy, cout, (want_x, want_w));
            return (dx, dw, db);
        }
        self.backward_im2col(x, b, w, dy, (want_x, want_w))
    }

    /// [`Self::backward_some`] as `col2im` of one product and one product for the weight.
    fn backward_im2col(&self, x: &[f32], b: usize, w: &[f32], dy: &[f32], (want_x, want_w): (bool, bool)) -> Grads {
        let (g, cout) = (self.g, self.cout);
        let (oh, ow) = g.out_hw();
        let (k, p) = (g.c * g.kh * g.kw, oh * ow);
        let n = b * p;
        // dY as (Cout, B·P), and the bias gradient as its row sums.
        let mut dyc = smg_kernels::uninit_f32(cout * n);
        dyc.par_chunks_mut(n).enumerate().for_each(|(co, row)| {
            for item in 0..b {
                row[item * p..(item + 1) * p].copy_from_slice(&dy[(item * cout + co) * p..(item * cout + co + 1) * p]);
            }
        });
        let db: Vec<f32> = dyc.par_chunks(n).map(|r| r.iter().map(|&v| v as f64).sum::<f64>() as f32).collect();
        let dx = want_x.then(|| {
            let wt = smg_kernels::matmul::transpose(w, cout, k);
            let mut dcols = smg_kernels::uninit_f32(k * n);
            smg_kernels::matmul::gemm_nn(k, n, cout, &mut dcols, &wt, &dyc);
            col2im(g, &dcols, b)
        });
        let dyt = want_w.then(|| smg_kernels::matmul::transpose(&dyc, cout, n));
        drop(dyc);
        let dw = dyt.map(|dyt| {
            let cols = im2col(g, x, b);
            let mut dwt = smg_kernels::uninit_f32(k * cout);
            smg_kernels::matmul::gemm_nn(k, cout, n, &mut dwt, &cols, &dyt);
            smg_kernels::matmul::transpose(&dwt, k, cout)
        });
        (dx, dw, db)
    }

    /// The backward pass of a 3 × 3 same-size convolution on the direct kernels (f32, or bf16
    /// when `bf16`): no patch matrix.
    fn backward_direct(&self, x: &[f32], b: usize, w: &[f32], dy: &[f32], bf16: bool, (want_x, want_w): (bool, bool)) -> Grads {
        use smg_kernels::{conv3x3, conv3x3_amx};
        let (g, cout) = (self.g, self.cout);
        let hw = g.h * g.w;
        let db = bias_grad(dy, b, cout, hw);
        if bf16 {
            let dx = want_x.then(|| {
                let taps = conv3x3_amx::PackedTaps::input_grad(w, cout, g.c);
                conv3x3_amx::forward(&conv3x3_amx::pack_pairs(dy, b, cout, g.h, g.w), b, cout, g.h, g.w, &taps, None, g.c)
            });
            let dw = want_w.then(|| {
                let dyv = conv3x3_amx::pack_grad_pairs(dy, b, cout, g.h, g.w);
                conv3x3_amx::weight_grad(&conv3x3_amx::pack_planes(x, b, g.c, g.h, g.w), &dyv, b, g.c, cout, g.h, g.w)
            });
            return (dx, dw, db);
        }
        let dx = want_x.then(|| conv3x3::input_grad(&conv3x3::pad_planes(dy, b * cout, g.h, g.w), b, cout, g.h, g.w, w, g.c));
        let dw = want_w.then(|| conv3x3::weight_grad(&conv3x3::pad_planes(x, b * g.c, g.h, g.w), dy, b, g.c, cout, g.h, g.w));
        (dx, dw, db)
    }
}

/// `conv2d(x, w) + bias` with PyTorch semantics (`x`: `(B, Cin, H, W)`, `w`: `(Cout, Cin, kh, kw)`,
/// symmetric zero `padding`, no dilation, no groups). On the CPU in f32 it runs as one node:
/// direct 3 × 3 kernels or im2col + gemm, with a gemm-based backward pass ([`Conv`]); otherwise
/// it is candle's `conv2d`.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    conv2d_hw(x, w, bias, (stride, stride), (padding, padding))
}

/// [`conv2d`] with its own stride and padding along rows and columns (PyTorch's
/// `stride=(sh, sw)`, `padding=(ph, pw)`), as the vocoders' resolution discriminators use.
/// Off the CPU only equal strides and paddings are supported (candle's `conv2d`).
pub fn conv2d_hw(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, (sh, sw): (usize, usize), (ph, pw): (usize, usize)) -> Result<Tensor> {
    let (_, cin, h, wd) = x.dims4()?;
    let (cout, cin_w, kh, kw) = w.dims4()?;
    if cin != cin_w {
        candle_core::bail!("conv2d: input has {cin} channels, kernel expects {cin_w}");
    }
    if h + 2 * ph < kh || wd + 2 * pw < kw || sh == 0 || sw == 0 {
        candle_core::bail!("conv2d: input {h}×{wd} (padding {ph}×{pw}) is smaller than the {kh}×{kw} kernel");
    }
    if crate::fast::cpu_custom_ops(x) {
        let g = Geom { c: cin, h, w: wd, kh, kw, sh, sw, ph, pw };
        let bias = crate::fast::bias_or_zeros(bias, cout, x)?;
        return x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Conv(g));
    }
    let y = if sh == sw && ph == pw {
        x.conv2d(w, ph, sh, 1, 1)?
    } else {
        candle_core::bail!("conv2d with unequal strides or paddings runs on the CPU in f32 only")
    };
    match bias {
        Some(bias) => y.broadcast_add(&bias.reshape((1, cout, 1, 1))?),
        None => Ok(y),
    }
}

/// A 2-D convolution layer with the weight names of `torch.nn.Conv2d` (`weight`, `bias`) and
/// candle-nn's initialisation, running through [`conv2d`].
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    /// The layer prepared for the chunked inference kernel (`smg_kernels::conv2d`), on first use.
    fast: std::sync::Arc<std::sync::OnceLock<smg_kernels::conv2d::Conv2d>>,
}

impl Conv2d {
    /// Wraps an existing weight `(Cout, Cin, k, k)` and optional bias `(Cout,)`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, stride: usize, padding: usize) -> Self {
        Self { weight, bias, stride, padding, fast: Default::default() }
    }

    /// A `k`×`k` convolution with bias, weights read or created under `vb`.
    pub fn load(cin: usize, cout: usize, k: usize, stride: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        let c = candle_nn::conv2d(cin, cout, k, Conv2dConfig { padding, stride, ..Default::default() }, vb)?;
        Ok(Self::new(c.weight().clone(), c.bias().cloned(), stride, padding))
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The same layer with its parameters detached from autograd: gradients flow through it to
    /// its input but none are computed for its own weight and bias.
    pub fn detach(&self) -> Self {
        Self::new(self.weight.detach(), self.bias.as_ref().map(|b| b.detach()), self.stride, self.padding)
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Conv2d {
    fn kernel(&self) -> Result<&smg_kernels::conv2d::Conv2d> {
        if let Some(k) = self.fast.get() {
            return Ok(k);
        }
        let (cout, cin, k, _) = self.weight.dims4()?;
        let bias = self.bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        let c = smg_kernels::conv2d::Conv2d::new(self.weight.flatten_all()?.to_vec1()?, bias, cin, cout, k, self.stride, self.padding);
        Ok(self.fast.get_or_init(|| c))
    }

    fn fast_ok(&self, x: &Tensor) -> bool {
        let square = self.weight.dims4().is_ok_and(|(_, _, kh, kw)| kh == kw);
        square
            && crate::fast::eligible(x)
            && !self.weight.track_op()
            && self.bias.as_ref().is_none_or(|b| !b.track_op())
            && self.weight.device().is_cpu()
    }

    /// The inference path: chunked im2col + gemm per item (`smg_kernels::conv2d`), with bf16
    /// products on AMX when the fast path's precision is bf16 ([`crate::fast::precision`]).
    fn forward_fast(&self, x: &Tensor) -> Result<Tensor> {
        let (b, cin, h, w) = x.dims4()?;
        let k = self.kernel()?;
        if cin != k.cin {
            candle_core::bail!("conv2d: input has {cin} channels, kernel expects {}", k.cin);
        }
        if h + 2 * self.padding < k.k || w + 2 * self.padding < k.k {
            candle_core::bail!("conv2d: input {h}×{w} (padding {}) is smaller than the {}×{} kernel", self.padding, k.k, k.k);
        }
        let (oh, ow) = k.out_hw(h, w);
        let p = crate::fast::precision();
        let y =
            crate::fast::with_f32(x, |v| v.chunks(cin * h * w).take(b).flat_map(|item| k.forward_at(item, h, w, p)).collect::<Vec<f32>>())?;
        Tensor::from_vec(y, (b, k.cout, oh, ow), x.device())
    }
}

impl Module for Conv2d {
    /// At inference on CPU the chunked kernel; otherwise [`conv2d`] (differentiable).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.fast_ok(x) {
            return self.forward_fast(x);
        }
        conv2d(x, &self.weight, self.bias.as_ref(), self.stride, self.padding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Forward values and both gradients equal candle's own conv2d (its backward is the reference).
    #[test]
    fn matches_candle_conv2d_forward_and_backward() {
        for &(cin, cout, h, w, k, stride, pad) in &[
            (3, 5, 9, 11, 3, 1, 1),
            (4, 6, 10, 10, 3, 2, 0),
            (2, 3, 8, 8, 4, 2, 1),
            (3, 4, 5, 6, 1, 1, 0),
            (2, 2, 7, 9, 3, 1, 0),
            (1, 4, 6, 6, 4, 1, 1),
            // the direct 3 × 3 kernels: 8 output channels (forward), 8 input channels (backward)
            (1, 8, 5, 37, 3, 1, 1),
            (8, 16, 6, 40, 3, 1, 1),
            // one output channel: a zero-padded block of the direct kernel (forward)
            (16, 1, 5, 40, 3, 1, 1),
            // few output channels from many: the channels-last path (a discriminator's last layer)
            (32, 1, 9, 15, 4, 1, 1),
            (16, 2, 10, 16, 4, 2, 1),
        ] {
            let x = Var::from_tensor(&rand(&[2, cin, h, w], 1)).unwrap();
            let wt = Var::from_tensor(&rand(&[cout, cin, k, k], 2)).unwrap();
            let bias = Var::from_tensor(&rand(&[cout], 3)).unwrap();
            let ours = conv2d(&x, &wt, Some(&bias), stride, pad).unwrap();
            let reference = x.conv2d(&wt, pad, stride, 1, 1).unwrap().broadcast_add(&bias.reshape((1, cout, 1, 1)).unwrap()).unwrap();
            assert_eq!(ours.dims(), reference.dims(), "shape for {cin}->{cout} k{k} s{stride} p{pad}");
            assert!(max_diff(&ours, &reference) < 1e-5);
            let probe = rand(ours.dims(), 4);
            let g1 = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&reference * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [x.as_tensor(), wt.as_tensor(), bias.as_tensor()] {
                let d = max_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(d < 1e-4, "gradient differs by {d} for {cin}->{cout} k{k} s{stride} p{pad}");
            }
        }
    }

    /// Unequal strides and paddings equal zero-padding by hand, a stride-1 candle conv2d and
    /// keeping every `s`-th row and column; gradients flow through both.
    #[test]
    fn unequal_strides_and_paddings_match_a_subsampled_convolution() {
        for &(h, w, kh, kw, (sh, sw), (ph, pw)) in
            &[(9, 20, 3, 9, (1, 2), (1, 4)), (11, 7, 5, 1, (3, 1), (2, 0)), (6, 9, 3, 3, (2, 3), (0, 1))]
        {
            let x = Var::from_tensor(&rand(&[2, 3, h, w], 1)).unwrap();
            let wt = Var::from_tensor(&rand(&[4, 3, kh, kw], 2)).unwrap();
            let ours = conv2d_hw(&x, &wt, None, (sh, sw), (ph, pw)).unwrap();
            let padded = x.pad_with_zeros(2, ph, ph).unwrap().pad_with_zeros(3, pw, pw).unwrap();
            let full = padded.conv2d(&wt, 0, 1, 1, 1).unwrap();
            let rows: Vec<u32> = (0..full.dim(2).unwrap() as u32).step_by(sh).collect();
            let cols: Vec<u32> = (0..full.dim(3).unwrap() as u32).step_by(sw).collect();
            let dev = Device::Cpu;
            let reference = full
                .index_select(&Tensor::new(rows.as_slice(), &dev).unwrap(), 2)
                .unwrap()
                .index_select(&Tensor::new(cols.as_slice(), &dev).unwrap(), 3)
                .unwrap();
            assert_eq!(ours.dims(), reference.dims());
            assert!(max_diff(&ours, &reference) < 1e-5);
            let probe = rand(ours.dims(), 4);
            let g1 = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&reference * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [x.as_tensor(), wt.as_tensor()] {
                assert!(max_diff(g1.get(v).unwrap(), g2.get(v).unwrap()) < 1e-4);
            }
        }
    }

    /// `col2im` is the adjoint of `im2col` (⟨im2col x, c⟩ = ⟨x, col2im c⟩) at odd sizes and strides,
    /// where candle's own conv2d backward cannot serve as the reference.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for &(h, w, k, stride, pad) in &[(10, 7, 3, 2, 0), (9, 13, 4, 2, 1), (5, 8, 3, 3, 2), (6, 6, 1, 2, 0)] {
            let g = Geom { c: 3, h, w, kh: k, kw: k, sh: stride, sw: stride, ph: pad, pw: pad };
            let x = rand(&[2, 3, h, w], 5);
            let (oh, ow) = g.out_hw();
            let cols =
                Tensor::from_vec(im2col(g, &x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), 2), (3 * k * k, 2 * oh * ow), &Device::Cpu)
                    .unwrap();
            let c = rand(cols.dims(), 6);
            let back = col2im(g, &c.flatten_all().unwrap().to_vec1::<f32>().unwrap(), 2);
            let back = Tensor::from_vec(back, x.shape(), &Device::Cpu).unwrap();
            let lhs = (&cols * &c).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            let rhs = (&x * &back).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "{lhs} vs {rhs} for {h}×{w} k{k} s{stride} p{pad}");
        }
    }

    /// The channels-last path for few output channels equals im2col + gemm (values, both
    /// gradients, the bias gradient) at square and non-square kernels, strides and paddings, and
    /// a channel count that is not a multiple of the vector lanes.
    #[test]
    fn few_output_channels_match_the_patch_matrix_route() {
        for &(cin, cout, h, w, (kh, kw), (sh, sw), (ph, pw)) in &[
            (128, 1, 9, 15, (4, 4), (1, 1), (1, 1)),
            (16, 2, 10, 16, (4, 4), (2, 2), (1, 1)),
            (37, 3, 7, 11, (3, 5), (1, 2), (2, 0)),
            (20, 4, 6, 5, (1, 1), (1, 1), (0, 0)),
        ] {
            let g = Geom { c: cin, h, w, kh, kw, sh, sw, ph, pw };
            assert!(few_out::applies(&g, cout));
            let conv = SliceConv { g, cout };
            let b = 3;
            let vals = |shape: &[usize], seed| rand(shape, seed).flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (x, wt, bias) = (vals(&[b, cin, h, w], 1), vals(&[cout, cin, kh, kw], 2), vals(&[cout], 3));
            let (oh, ow) = g.out_hw();
            let dy = vals(&[b, cout, oh, ow], 4);
            let close = |a: &[f32], r: &[f32], what: &str| {
                assert_eq!(a.len(), r.len());
                let d = a.iter().zip(r).map(|(a, r)| (a - r).abs()).fold(0f32, f32::max);
                assert!(d < 1e-4, "{what} differs by {d} for {cin}->{cout} k{kh}x{kw} s{sh}x{sw} p{ph}x{pw}");
            };
            close(&conv.forward(&x, b, &wt, &bias), &conv.forward_im2col(&x, b, &wt, &bias), "output");
            let (dx, dw, db) = conv.backward_some(&x, b, &wt, &dy, (true, true));
            let (rx, rw, rb) = conv.backward_im2col(&x, b, &wt, &dy, (true, true));
            close(&dx.unwrap(), &rx.unwrap(), "input gradient");
            close(&dw.unwrap(), &rw.unwrap(), "weight gradient");
            close(&db, &rb, "bias gradient");
            let (dx, dw, _) = conv.backward_some(&x, b, &wt, &dy, (false, true));
            assert!(dx.is_none() && dw.is_some());
        }
    }

    #[test]
    fn inference_layer_matches_the_differentiable_path() {
        for &(cin, cout, h, w, k, stride, pad) in &[(3, 5, 9, 11, 3, 1, 1), (4, 6, 10, 10, 3, 2, 0), (3, 4, 5, 6, 1, 1, 0)] {
            let x = rand(&[2, cin, h, w], 1);
            let layer = Conv2d::new(rand(&[cout, cin, k, k], 2), Some(rand(&[cout], 3)), stride, pad);
            assert!(layer.fast_ok(&x) || !smg_kernels::fast_enabled());
            let fast = layer.forward(&x).unwrap();
            let plain = conv2d(&x, layer.weight(), layer.bias(), stride, pad).unwrap();
            assert_eq!(fast.dims(), plain.dims());
            assert!(max_diff(&fast, &plain) < 1e-5);
        }
    }

    #[test]
    fn kernel_larger_than_input_is_an_error() {
        let x = rand(&[1, 1, 2, 2], 1);
        let w = rand(&[1, 1, 3, 3], 2);
        assert!(conv2d(&x, &w, None, 1, 0).unwrap_err().to_string().contains("smaller than"));
    }
}
