//! Exact GELU, `x · Φ(x) = ½ x (1 + erf(x / √2))` (timm's `nn.GELU()`, SPEC.md §3.2), with erf by
//! the rational approximation of Eigen's `generic_fast_erf_float` (odd degree-13 numerator over
//! degree-8 denominator in x², argument clamped to ±4), which is a few ulp from the true erf and
//! has no branch, so it vectorises.

/// erf in f32, within 1e-6 of the true value on the whole line (tested).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_600_5e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_474e-2;
    x * p / q
}

/// Exact-erf GELU of one value.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `f` on every value, in fixed runs of 16 first: the compiler unrolls those into whole vectors,
/// where a plain loop over a short slice (a row of 32 values) would fall to its scalar remainder
/// loop.
#[inline(always)]
fn lanes_mut(xs: &mut [f32], f: impl Fn(&mut f32)) {
    let mut chunks = xs.chunks_exact_mut(16);
    for c in &mut chunks {
        c.iter_mut().for_each(&f);
    }
    chunks.into_remainder().iter_mut().for_each(f);
}

/// `f(dst[i], src[i])` over the common length, in fixed runs of 16 first (see [`lanes_mut`]).
#[inline(always)]
fn lanes2(dst: &mut [f32], src: &[f32], f: impl Fn(&mut f32, f32)) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (dc, sc) in (&mut d).zip(&mut s) {
        dc.iter_mut().zip(sc).for_each(|(d, &s)| f(d, s));
    }
    d.into_remainder().iter_mut().zip(s.remainder()).for_each(|(d, &s)| f(d, s));
}

crate::vectorised! {
    /// GELU in place over a slice, at the CPU's vector width ([`crate::isa`]).
    pub fn gelu_inplace(xs: &mut [f32]) {
        lanes_mut(xs, |x| *x = gelu(*x));
    }
}

crate::vectorised! {
    /// `dst[i] = gelu(src[i])`, at the CPU's vector width.
    pub fn gelu_to(dst: &mut [f32], src: &[f32]) {
        lanes2(dst, src, |d, s| *d = gelu(s));
    }
}

crate::vectorised! {
    /// `dst[i] = gelu(src[i] + bias[i])` (a product's epilogue), at the CPU's vector width.
    pub fn bias_gelu(src: &[f32], bias: &[f32], dst: &mut [f32]) {
        dst.iter_mut().zip(src).zip(bias).for_each(|((d, &s), &b)| *d = gelu(s + b));
    }
}

/// d/dx of x·Φ(x): Φ(x) + x·φ(x).
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    cdf + x * INV_SQRT_2PI * crate::attention::exp(-0.5 * x * x)
}

crate::vectorised! {
    /// `g[i] *= gelu'(x[i])`: the backward pass of GELU onto its output gradient, at the CPU's
    /// vector width.
    pub fn gelu_backward(g: &mut [f32], x: &[f32]) {
        lanes2(g, x, |g, x| *g *= gelu_grad(x));
    }
}

crate::vectorised! {
    /// `dst[i] = g[i] · gelu'(x[i])`: [`gelu_backward`] into a buffer of its own.
    pub fn gelu_backward_to(dst: &mut [f32], g: &[f32], x: &[f32]) {
        dst.iter_mut().zip(g).zip(x).for_each(|((d, &g), &x)| *d = g * gelu_grad(x));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64: Taylor series on |x| ≤ 3 (cancellation error ~1e-12 there), the asymptotic
    /// series of erfc beyond (error below 1e-8).
    fn erf_ref(x: f64) -> f64 {
        if x.abs() > 3.0 {
            let a = x.abs();
            let (mut term, mut sum) = (1.0, 1.0);
            for n in 1..6 {
                term *= -((2 * n - 1) as f64) / (2.0 * a * a);
                sum += term;
            }
            return x.signum() * (1.0 - (-a * a).exp() / (a * std::f64::consts::PI.sqrt()) * sum);
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_gelu_match_the_series() {
        let mut worst = 0f64;
        let mut xs: Vec<f32> = (-8000..=8000).map(|i| i as f32 / 1000.0).collect();
        xs.extend([1e-8f32, -1e-30, 30.0, -30.0]);
        for &x in &xs {
            let e = (erf(x) as f64 - erf_ref(x as f64)).abs();
            worst = worst.max(e);
            let g = 0.5 * x as f64 * (1.0 + erf_ref(x as f64 / 2f64.sqrt()));
            assert!((gelu(x) as f64 - g).abs() <= 2e-6 * (1.0 + x.abs() as f64), "gelu({x})");
        }
        assert!(worst < 1e-6, "erf error {worst}");
        let mut v = xs.clone();
        gelu_inplace(&mut v);
        assert!(v.iter().zip(&xs).all(|(a, &x)| *a == gelu(x)));
        let mut u = vec![0f32; xs.len()];
        gelu_to(&mut u, &xs);
        assert_eq!(u, v);
        let bias: Vec<f32> = xs.iter().map(|x| x * 0.5).collect();
        let mut w = vec![0f32; xs.len()];
        bias_gelu(&xs, &bias, &mut w);
        assert!(w.iter().zip(xs.iter().zip(&bias)).all(|(a, (&x, &b))| (*a - gelu(x + b)).abs() <= 1e-6 * (1.0 + a.abs())));
        let mut g = bias.clone();
        gelu_backward(&mut g, &xs);
        gelu_backward_to(&mut w, &bias, &xs);
        assert_eq!(g, w);
        assert!(w.iter().zip(xs.iter().zip(&bias)).all(|(d, (&x, &b))| *d == b * gelu_grad(x)));
    }
}
