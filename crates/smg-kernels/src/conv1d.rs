//! 1-D convolution and transposed convolution for inference (HiFi-GAN / BigVGAN generators,
//! SPEC.md §4), one item `(channels × time)` at a time, as chunked im2col + gemm.
//!
//! Time is cut into chunks whose im2col columns fit in cache (about 1 MiB); each chunk is one
//! task writing its own columns of the output, so the two cores split the work without locks.
//! The leaky ReLU that precedes every convolution of these generators is applied once to the
//! input, and the bias (and a residual, for the ResBlock sum) are the accumulator's start, so
//! a layer reads and writes each large tensor once.

use crate::matmul::gemm_raw;
use crate::{threads, SendPtr};
use rayon::prelude::*;

/// Leaky ReLU with the given negative slope (0 is ReLU).
#[inline(always)]
pub fn leaky_relu(x: f32, slope: f32) -> f32 {
    if x < 0.0 {
        x * slope
    } else {
        x
    }
}

/// Columns per chunk: im2col of about 1 MiB, at least enough chunks to keep every thread busy.
fn chunk(rows: usize, total: usize, align: usize) -> usize {
    let by_cache = (262_144 / rows.max(1)).clamp(32, 8192);
    let by_threads = total.div_ceil(2 * threads()).max(32);
    by_cache.min(by_threads).div_ceil(align) * align
}

/// PyTorch `Conv1d` (weight `cout × cin × k`, symmetric zero padding, stride 1).
#[derive(Debug, Clone)]
pub struct Conv1d {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub dilation: usize,
    pub padding: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    /// The weight as the left AMX operand (`cout × cin·k`), packed on first bf16 use.
    tiles: std::sync::Arc<std::sync::OnceLock<crate::amx::PackedA>>,
}

impl Conv1d {
    pub fn new(w: Vec<f32>, b: Vec<f32>, cin: usize, cout: usize, k: usize, dilation: usize, padding: usize) -> Self {
        assert_eq!(w.len(), cout * cin * k, "conv1d weight is not {cout} × {cin} × {k}");
        assert_eq!(b.len(), cout, "conv1d bias is not {cout}");
        Self { cin, cout, k, dilation, padding, w, b, tiles: Default::default() }
    }

    /// Output length for input length `t`.
    pub fn out_len(&self, t: usize) -> usize {
        (t + 2 * self.padding).saturating_sub(self.dilation * (self.k - 1))
    }

    /// `y = b + W ∗ pre(x) (+ residual)` for `x (cin × t)`, `pre` a leaky ReLU slope;
    /// `residual` and the result are `cout × out_len(t)`.
    pub fn forward(&self, x: &[f32], t: usize, pre: Option<f32>, residual: Option<&[f32]>) -> Vec<f32> {
        self.forward_at(x, t, pre, residual, crate::Precision::F32)
    }

    /// [`Conv1d::forward`] at a precision: with [`Precision::Bf16`](crate::Precision) on AMX each
    /// chunk's product is `W (bf16 tiles) · im2col (bf16 tiles)` with f32 accumulation.
    pub fn forward_at(&self, x: &[f32], t: usize, pre: Option<f32>, residual: Option<&[f32]>, precision: crate::Precision) -> Vec<f32> {
        let (cin, cout, k, d, p) = (self.cin, self.cout, self.k, self.dilation, self.padding);
        assert_eq!(x.len(), cin * t, "conv1d input is not {cin} × {t}");
        let to = self.out_len(t);
        let mut y = vec![0f32; cout * to];
        if to == 0 {
            return y;
        }
        if let Some(r) = residual {
            assert_eq!(r.len(), cout * to, "residual is not {cout} × {to}");
        }
        let ck = cin * k;
        let tb = chunk(ck, to, 16);
        let out = SendPtr(y.as_mut_ptr());
        let amx = precision == crate::Precision::Bf16 && crate::amx::available();
        let wa = if amx { Some(self.tiles.get_or_init(|| crate::amx::PackedA::from_f32(&self.w, cout, ck))) } else { None };
        let cp = cout.div_ceil(32) * 32;
        (0..to.div_ceil(tb)).into_par_iter().for_each_init(
            || (vec![0f32; ck * tb], crate::Aligned::<f32>::zeroed(if amx { cp * tb.div_ceil(32) * 32 } else { 0 })),
            |(cols, cbuf), c| {
                let out = out;
                let t0 = c * tb;
                let n = tb.min(to - t0);
                // im2col of this chunk, the leaky ReLU applied on the way.
                for ci in 0..cin {
                    let src = &x[ci * t..(ci + 1) * t];
                    for j in 0..k {
                        let row = &mut cols[(ci * k + j) * n..(ci * k + j + 1) * n];
                        let off = (t0 + j * d) as isize - p as isize;
                        let lo = ((-off).max(0) as usize).min(n);
                        let hi = ((t as isize - off).max(0) as usize).clamp(lo, n);
                        row[..lo].fill(0.0);
                        row[hi..].fill(0.0);
                        if lo < hi {
                            let s0 = (off + lo as isize) as usize;
                            let (dst, src) = (&mut row[lo..hi], &src[s0..s0 + hi - lo]);
                            match pre {
                                Some(sl) => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = leaky_relu(v, sl)),
                                None => dst.copy_from_slice(src),
                            }
                        }
                    }
                }
                #[cfg(target_arch = "x86_64")]
                if let Some(wa) = wa {
                    let bt = crate::amx::PackedB::from_k_rows(n, ck, |kk| &cols[kk * n..(kk + 1) * n]);
                    let np = n.div_ceil(32) * 32;
                    unsafe {
                        crate::amx::configure();
                        crate::amx::product_into(wa, &bt, cbuf.as_mut_ptr(), np);
                        crate::amx::release();
                        // Safety: this task alone writes columns t0..t0+n of every output row.
                        for co in 0..cout {
                            let dst = std::slice::from_raw_parts_mut(out.0.add(co * to + t0), n);
                            let (c, b) = (&cbuf[co * np..co * np + n], self.b[co]);
                            match residual {
                                Some(r) => {
                                    dst.iter_mut().zip(c).zip(&r[co * to + t0..co * to + t0 + n]).for_each(|((y, &v), &r)| *y = v + b + r)
                                }
                                None => dst.iter_mut().zip(c).for_each(|(y, &v)| *y = v + b),
                            }
                        }
                    }
                    return;
                }
                // Safety: this task alone writes columns t0..t0+n of every output row.
                unsafe {
                    for co in 0..cout {
                        let dst = std::slice::from_raw_parts_mut(out.0.add(co * to + t0), n);
                        match residual {
                            Some(r) => dst.iter_mut().zip(&r[co * to + t0..co * to + t0 + n]).for_each(|(y, &r)| *y = r + self.b[co]),
                            None => dst.fill(self.b[co]),
                        }
                    }
                    gemm_raw(
                        cout,
                        n,
                        ck,
                        out.0.add(t0),
                        to,
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

/// PyTorch `ConvTranspose1d` (weight `cin × cout × k`, stride `s`, padding `p`): output length
/// `(t − 1)·s − 2p + k`.
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    /// `(cout·k) × cin`: row `co·k + j` holds `w[·][co][j]`.
    wt: Vec<f32>,
    b: Vec<f32>,
}

impl ConvTranspose1d {
    pub fn new(w: &[f32], b: Vec<f32>, cin: usize, cout: usize, k: usize, stride: usize, padding: usize) -> Self {
        assert_eq!(w.len(), cin * cout * k, "conv_transpose1d weight is not {cin} × {cout} × {k}");
        assert_eq!(b.len(), cout, "conv_transpose1d bias is not {cout}");
        assert!(stride >= 1);
        let mut wt = vec![0f32; cout * k * cin];
        for ci in 0..cin {
            for co in 0..cout {
                for j in 0..k {
                    wt[(co * k + j) * cin + ci] = w[(ci * cout + co) * k + j];
                }
            }
        }
        Self { cin, cout, k, stride, padding, wt, b }
    }

    /// Output length for input length `t`.
    pub fn out_len(&self, t: usize) -> usize {
        ((t.max(1) - 1) * self.stride + self.k).saturating_sub(2 * self.padding)
    }

    /// `y = b + Wᵀ ⋆ pre(x)` for `x (cin × t)`; the result is `cout × out_len(t)`.
    pub fn forward(&self, x: &[f32], t: usize, pre: Option<f32>) -> Vec<f32> {
        let (cin, cout, k, s, p) = (self.cin, self.cout, self.k, self.stride, self.padding);
        assert_eq!(x.len(), cin * t, "conv_transpose1d input is not {cin} × {t}");
        let to = if t == 0 { 0 } else { self.out_len(t) };
        let mut y = vec![0f32; cout * to];
        if to == 0 {
            return y;
        }
        let ob = chunk(cout * k / s, to, s);
        let out = SendPtr(y.as_mut_ptr());
        (0..to.div_ceil(ob)).into_par_iter().for_each(|c| {
            let out = out;
            let (o0, o1) = (c * ob, (c * ob + ob).min(to));
            // Inputs i with i·s + j − p in [o0, o1) for some tap j.
            let i_lo = (o0 + p + 1).saturating_sub(k).div_ceil(s);
            let i_hi = ((o1 - 1 + p) / s + 1).min(t);
            for co in 0..cout {
                // Safety: this task alone writes columns o0..o1 of every output row.
                let row = unsafe { std::slice::from_raw_parts_mut(out.0.add(co * to + o0), o1 - o0) };
                row.fill(self.b[co]);
            }
            if i_lo >= i_hi {
                return;
            }
            let ni = i_hi - i_lo;
            // This chunk's inputs, the leaky ReLU applied.
            let mut xa = vec![0f32; cin * ni];
            for (ci, row) in xa.chunks_mut(ni).enumerate() {
                let src = &x[ci * t + i_lo..ci * t + i_hi];
                match pre {
                    Some(sl) => row.iter_mut().zip(src).for_each(|(d, &v)| *d = leaky_relu(v, sl)),
                    None => row.copy_from_slice(src),
                }
            }
            let mut z = vec![0f32; cout * k * ni];
            unsafe {
                gemm_raw(
                    cout * k,
                    ni,
                    cin,
                    z.as_mut_ptr(),
                    ni,
                    false,
                    self.wt.as_ptr(),
                    cin,
                    (xa.as_ptr(), 1, ni as isize),
                    gemm::Parallelism::None,
                );
            }
            for co in 0..cout {
                let row = unsafe { std::slice::from_raw_parts_mut(out.0.add(co * to + o0), o1 - o0) };
                for j in 0..k {
                    let zr = &z[(co * k + j) * ni..(co * k + j + 1) * ni];
                    for (ii, &v) in zr.iter().enumerate() {
                        let o = ((i_lo + ii) * s + j) as isize - (p + o0) as isize;
                        if o >= 0 && (o as usize) < o1 - o0 {
                            row[o as usize] += v;
                        }
                    }
                }
            }
        });
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_add(0x9e3779b97f4a7c15);
        (0..len)
            .map(|_| {
                s ^= s << 7;
                s ^= s >> 9;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn conv1d_matches_direct_loops() {
        for &(cin, cout, k, d, p, t, pre, res) in &[
            (3, 5, 3, 1, 1, 17, None, false),
            (8, 4, 7, 3, 9, 1000, Some(0.1), true),
            (80, 16, 7, 1, 3, 40, None, false),
            (4, 2, 11, 5, 25, 9, Some(0.0), true),
        ] {
            let (x, w, b) = (data(cin * t, 1), data(cout * cin * k, 2), data(cout, 3));
            let conv = Conv1d::new(w.clone(), b.clone(), cin, cout, k, d, p);
            let to = conv.out_len(t);
            let r = data(cout * to, 4);
            let y = conv.forward(&x, t, pre, res.then_some(&r[..]));
            let y16 = conv.forward_at(&x, t, pre, res.then_some(&r[..]), crate::Precision::Bf16);
            for co in 0..cout {
                for o in 0..to {
                    let mut v = b[co] as f64 + if res { r[co * to + o] as f64 } else { 0.0 };
                    for ci in 0..cin {
                        for j in 0..k {
                            let i = (o + j * d) as isize - p as isize;
                            if i >= 0 && (i as usize) < t {
                                let xv = x[ci * t + i as usize];
                                let xv = pre.map_or(xv, |s| leaky_relu(xv, s));
                                v += w[(co * cin + ci) * k + j] as f64 * xv as f64;
                            }
                        }
                    }
                    assert!((y[co * to + o] as f64 - v).abs() < 1e-4, "({cin},{cout},{k},{d},{p},{t}) at {co},{o}");
                    // bf16 operands with f32 accumulation (on AMX where there is one).
                    assert!(
                        (y16[co * to + o] as f64 - v).abs() < 0.02 * ((cin * k) as f64).sqrt(),
                        "bf16 ({cin},{cout},{k},{d},{p},{t}) at {co},{o}"
                    );
                }
            }
        }
    }

    #[test]
    fn conv_transpose1d_matches_direct_loops() {
        for &(cin, cout, k, s, p, t, pre) in
            &[(5, 3, 16, 8, 4, 20, Some(0.1)), (4, 2, 4, 2, 1, 700, None), (2, 3, 3, 1, 0, 5, None), (3, 2, 7, 3, 2, 1, None)]
        {
            let (x, w, b) = (data(cin * t, 5), data(cin * cout * k, 6), data(cout, 7));
            let conv = ConvTranspose1d::new(&w, b.clone(), cin, cout, k, s, p);
            let to = conv.out_len(t);
            let y = conv.forward(&x, t, pre);
            let mut r = vec![0f64; cout * to];
            for co in 0..cout {
                for o in 0..to {
                    r[co * to + o] = b[co] as f64;
                }
                for ci in 0..cin {
                    for i in 0..t {
                        for j in 0..k {
                            let o = (i * s + j) as isize - p as isize;
                            if o >= 0 && (o as usize) < to {
                                let xv = pre.map_or(x[ci * t + i], |sl| leaky_relu(x[ci * t + i], sl));
                                r[co * to + o as usize] += w[(ci * cout + co) * k + j] as f64 * xv as f64;
                            }
                        }
                    }
                }
            }
            let e = y.iter().zip(&r).map(|(a, b)| (*a as f64 - b).abs()).fold(0f64, f64::max);
            assert!(e < 1e-4, "({cin},{cout},{k},{s},{p},{t}): {e}");
        }
    }
}
