//! 2-D convolution for inference (the SpecVQGAN decoder and encoder, SPEC.md §2), one item
//! `(C, H, W)` at a time: output rows are cut into chunks whose im2col columns fit in cache,
//! each chunk one task doing one gemm into its own part of every output plane. The bias is the
//! accumulator's start. Unlike a whole-image im2col (which for the paper decoder's 128 × 80 × 848
//! layers is a 300 MB buffer), the working set stays in L2.

use crate::matmul::gemm_raw;
use crate::{threads, SendPtr};
use rayon::prelude::*;

/// PyTorch `Conv2d` (weight `cout × cin × k × k`, symmetric zero padding, equal strides).
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    /// The weight as the left AMX operand (`cout × cin·k·k`), packed on first bf16 use.
    tiles: std::sync::Arc<std::sync::OnceLock<crate::amx::PackedA>>,
}

impl Conv2d {
    pub fn new(w: Vec<f32>, b: Option<Vec<f32>>, cin: usize, cout: usize, k: usize, stride: usize, padding: usize) -> Self {
        assert_eq!(w.len(), cout * cin * k * k, "conv2d weight is not {cout} × {cin} × {k} × {k}");
        let b = b.unwrap_or_else(|| vec![0.0; cout]);
        assert_eq!(b.len(), cout, "conv2d bias is not {cout}");
        assert!(stride >= 1 && k >= 1);
        Self { cin, cout, k, stride, padding, w, b, tiles: Default::default() }
    }

    /// Output size for an `h × w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let o = |n: usize| (n + 2 * self.padding).checked_sub(self.k).map_or(0, |v| v / self.stride + 1);
        (o(h), o(w))
    }

    /// `y = b + W ∗ x` for `x (cin × h × w)`; returns `cout × oh × ow`.
    pub fn forward(&self, x: &[f32], h: usize, w: usize) -> Vec<f32> {
        self.forward_at(x, h, w, crate::Precision::F32)
    }

    /// [`Conv2d::forward`] at a precision: with [`Precision::Bf16`](crate::Precision) on AMX each
    /// chunk's product is `W (bf16 tiles) · im2col (bf16 tiles)` with f32 accumulation.
    pub fn forward_at(&self, x: &[f32], h: usize, w: usize, precision: crate::Precision) -> Vec<f32> {
        let (cin, cout, k, s, p) = (self.cin, self.cout, self.k, self.stride, self.padding);
        assert_eq!(x.len(), cin * h * w, "conv2d input is not {cin} × {h} × {w}");
        let (oh, ow) = self.out_hw(h, w);
        let plane = oh * ow;
        let mut y = vec![0f32; cout * plane];
        if plane == 0 {
            return y;
        }
        let ck = cin * k * k;
        // Output rows per chunk: about 1 MiB of columns, and enough chunks for every thread.
        let rows_cache = (262_144 / (ck * ow).max(1)).max(1);
        let rows_threads = oh.div_ceil(2 * threads()).max(1);
        let rb = rows_cache.min(rows_threads);
        let out = SendPtr(y.as_mut_ptr());
        let amx = precision == crate::Precision::Bf16 && crate::amx::available();
        let wa = if amx { Some(self.tiles.get_or_init(|| crate::amx::PackedA::from_f32(&self.w, cout, ck))) } else { None };
        let cp = cout.div_ceil(32) * 32;
        (0..oh.div_ceil(rb)).into_par_iter().for_each_init(
            || (vec![0f32; ck * rb * ow], crate::Aligned::<f32>::zeroed(if amx { cp * (rb * ow).div_ceil(32) * 32 } else { 0 })),
            |(cols, cbuf), c| {
                let out = out;
                let (r0, r1) = (c * rb, (c * rb + rb).min(oh));
                let n = (r1 - r0) * ow;
                for ci in 0..cin {
                    let src = &x[ci * h * w..(ci + 1) * h * w];
                    for i in 0..k {
                        for j in 0..k {
                            let row = &mut cols[((ci * k + i) * k + j) * n..((ci * k + i) * k + j + 1) * n];
                            // Valid output columns ox with 0 <= ox·s + j − p < w.
                            let lo = (p.saturating_sub(j)).div_ceil(s).min(ow);
                            let hi = if w + p > j { ((w + p - j - 1) / s + 1).min(ow) } else { 0 }.max(lo);
                            for oy in r0..r1 {
                                let dst = &mut row[(oy - r0) * ow..(oy - r0 + 1) * ow];
                                let iy = (oy * s + i) as isize - p as isize;
                                if iy < 0 || iy >= h as isize || lo >= hi {
                                    dst.fill(0.0);
                                    continue;
                                }
                                dst[..lo].fill(0.0);
                                dst[hi..].fill(0.0);
                                let srow = &src[iy as usize * w..(iy as usize + 1) * w];
                                let x0 = lo * s + j - p;
                                if s == 1 {
                                    dst[lo..hi].copy_from_slice(&srow[x0..x0 + hi - lo]);
                                } else {
                                    for (q, d) in dst[lo..hi].iter_mut().enumerate() {
                                        *d = srow[x0 + q * s];
                                    }
                                }
                            }
                        }
                    }
                }
                #[cfg(target_arch = "x86_64")]
                if let Some(wa) = wa {
                    // B = the chunk's im2col columns (ck × n) in bf16 tiles; C = W · B.
                    let bt = crate::amx::PackedB::from_k_rows(n, ck, |kk| &cols[kk * n..(kk + 1) * n]);
                    let np = n.div_ceil(32) * 32;
                    unsafe {
                        crate::amx::configure();
                        crate::amx::product_into(wa, &bt, cbuf.as_mut_ptr(), np);
                        crate::amx::release();
                        // Safety: this task alone writes positions r0·ow .. r1·ow of every plane.
                        for co in 0..cout {
                            let dst = std::slice::from_raw_parts_mut(out.0.add(co * plane + r0 * ow), n);
                            let bias = self.b[co];
                            dst.iter_mut().zip(&cbuf[co * np..co * np + n]).for_each(|(d, &v)| *d = v + bias);
                        }
                    }
                    return;
                }
                // Safety: this task alone writes positions r0·ow .. r1·ow of every output plane.
                unsafe {
                    for co in 0..cout {
                        std::slice::from_raw_parts_mut(out.0.add(co * plane + r0 * ow), n).fill(self.b[co]);
                    }
                    gemm_raw(
                        cout,
                        n,
                        ck,
                        out.0.add(r0 * ow),
                        plane,
                        true,
                        self.w.as_ptr(),
                        ck,
                        (cols.as_ptr(), 1, n as isize),
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_loops() {
        for &(cin, cout, h, w, k, s, p) in
            &[(3, 4, 9, 11, 3, 1, 1), (2, 3, 10, 10, 3, 2, 0), (4, 2, 7, 8, 1, 1, 0), (2, 5, 12, 40, 3, 1, 1), (1, 2, 6, 6, 4, 2, 1)]
        {
            let x: Vec<f32> = (0..cin * h * w).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let wt: Vec<f32> = (0..cout * cin * k * k).map(|i| ((i * 53 % 89) as f32 - 44.0) / 44.0).collect();
            let b: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1).collect();
            let conv = Conv2d::new(wt.clone(), Some(b.clone()), cin, cout, k, s, p);
            let (oh, ow) = conv.out_hw(h, w);
            let y = conv.forward(&x, h, w);
            let y16 = conv.forward_at(&x, h, w, crate::Precision::Bf16);
            for co in 0..cout {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut v = b[co] as f64;
                        for ci in 0..cin {
                            for i in 0..k {
                                for j in 0..k {
                                    let (iy, ix) = ((oy * s + i) as isize - p as isize, (ox * s + j) as isize - p as isize);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                        v += wt[((co * cin + ci) * k + i) * k + j] as f64
                                            * x[(ci * h + iy as usize) * w + ix as usize] as f64;
                                    }
                                }
                            }
                        }
                        let got = y[(co * oh + oy) * ow + ox] as f64;
                        assert!((got - v).abs() < 1e-4, "({cin},{cout},{h},{w},{k},{s},{p}) at {co},{oy},{ox}: {got} vs {v}");
                        // bf16 operands (8 bits) with f32 accumulation, on AMX where there is one.
                        let got = y16[(co * oh + oy) * ow + ox] as f64;
                        assert!(
                            (got - v).abs() < 0.02 * ((cin * k * k) as f64).sqrt(),
                            "bf16 ({cin},{cout},{h},{w},{k},{s},{p}) at {co},{oy},{ox}: {got} vs {v}"
                        );
                    }
                }
            }
        }
    }
}
