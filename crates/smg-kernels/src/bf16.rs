//! f32 ↔ bf16 (the upper 16 bits of an f32) with round-to-nearest-even, as the AMX tiles want.

/// One f32 to bf16 bits, rounding to nearest even (NaN stays NaN).
#[inline(always)]
pub fn from_f32(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// [`from_f32`] as a u32, branch-free so that loops over slices vectorise.
#[inline(always)]
pub fn from_f32_vec(x: f32) -> u32 {
    from_f32_select(x) as u32
}

/// Branch-free [`from_f32`], so that slices of it vectorise.
#[inline(always)]
fn from_f32_select(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1))) >> 16;
    let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
    (if nan { (b >> 16) | 0x40 } else { rounded }) as u16
}

/// `dst[i] = from_f32(src[i])`: with the AVX-512 BF16 conversion instruction where the CPU has
/// it (Sapphire Rapids and later; the same rounding, except that it reads subnormal inputs
/// as zero), else with AVX-512 or plain code.
pub fn convert(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            unsafe { convert_avx512bf16(src, dst) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx512bw") {
            unsafe { convert_avx512(src, dst) };
            return;
        }
    }
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = from_f32_select(s));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn convert_avx512(src: &[f32], dst: &mut [u16]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = from_f32_select(s));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn convert_avx512bf16(src: &[f32], dst: &mut [u16]) {
    use std::arch::x86_64::*;
    let n = src.len() / 32 * 32;
    for i in (0..n).step_by(32) {
        let lo = _mm512_loadu_ps(src.as_ptr().add(i));
        let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
        let v = _mm512_cvtne2ps_pbh(hi, lo);
        _mm512_storeu_si512(dst.as_mut_ptr().add(i) as *mut _, std::mem::transmute::<__m512bh, __m512i>(v));
    }
    let rest = src.len() - n;
    if rest > 0 {
        let m = ((1u64 << rest) - 1) as __mmask32;
        let lo = _mm512_maskz_loadu_ps((m & 0xffff) as __mmask16, src.as_ptr().add(n));
        let hi = _mm512_maskz_loadu_ps((m >> 16) as __mmask16, src.as_ptr().add(n + 16.min(rest)));
        let v = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_mask_storeu_epi16(dst.as_mut_ptr().add(n) as *mut _, m, v);
    }
}

/// bf16 bits back to f32 (exact).
#[inline(always)]
pub fn to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// The f32 nearest to `x` that bf16 can hold.
pub fn round(x: f32) -> f32 {
    to_f32(from_f32(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(round(1.0), 1.0);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(round(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        assert_eq!(round(-2.5), -2.5);
        assert!(round(f32::NAN).is_nan());
        assert_eq!(round(f32::INFINITY), f32::INFINITY);
        let xs = [1.0f32, 1.0 + 1.0 / 256.0, f32::NAN, -2.5, f32::INFINITY, 0.1, -3.7, 1e-20, 6.5e4, -0.0, f32::MAX];
        let mut v = [0u16; 11];
        convert(&xs, &mut v);
        for (h, &x) in v.iter().zip(&xs) {
            assert!(*h == from_f32(x) || (x.is_nan() && to_f32(*h).is_nan()), "{x}");
        }
        // Every length 0..70 (vector body and masked tail), against the scalar rounding.
        let xs: Vec<f32> = (0..70).map(|i| (i as f32 * 0.37 - 9.0).exp() * if i % 3 == 0 { -1.0 } else { 1.0 } + 1.0 / 512.0).collect();
        for len in 0..xs.len() {
            let mut v = vec![0u16; len];
            convert(&xs[..len], &mut v);
            assert!(v.iter().zip(&xs).all(|(h, &x)| *h == from_f32(x)), "length {len}");
        }
        for &x in &[0.1f32, -3.7, 1e-20, 6.5e4] {
            assert!((round(x) - x).abs() <= x.abs() / 256.0, "{x}");
        }
    }
}
