//! One paper-ViT block's kernels (batch 2 × 266 tokens), timed apart, ×24 = one forward.
use smg_kernels::{attention::attention, Act, PackedWeight, Precision};
use std::time::Instant;
fn main() {
    let (m, d, f) = (532usize, 768usize, 3072usize);
    let r = |n: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect() };
    let (qkv, proj, fc1, fc2) = (PackedWeight::new(r(3 * d * d), 3 * d, d), PackedWeight::new(r(d * d), d, d), PackedWeight::new(r(f * d), f, d), PackedWeight::new(r(d * f), d, f));
    let (bq, bd, bf) = (r(3 * d), r(d), r(f));
    let x = r(m * d);
    for p in [Precision::F32, Precision::Bf16] {
        let mut t = [0f64; 5];
        for rep in 0..4 {
            let s = Instant::now();
            let q = qkv.forward(&x, m, Some(&bq), Act::None, p);
            let t0 = s.elapsed().as_secs_f64();
            let a = attention(&q, 2, 266, 8, 96);
            let t1 = s.elapsed().as_secs_f64();
            let o = proj.forward(&a, m, Some(&bd), Act::None, p);
            let t2 = s.elapsed().as_secs_f64();
            let h = fc1.forward(&o, m, Some(&bf), Act::Gelu, p);
            let t3 = s.elapsed().as_secs_f64();
            std::hint::black_box(fc2.forward(&h, m, Some(&bd), Act::None, p));
            let t4 = s.elapsed().as_secs_f64();
            if rep > 0 {
                for (i, v) in [t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3].iter().enumerate() {
                    t[i] += v / 3.0;
                }
            }
        }
        println!("{p:?} ms ×24: qkv {:.0}, attention {:.0}, proj {:.0}, fc1+gelu {:.0}, fc2 {:.0}, total {:.0}", t[0] * 24e3, t[1] * 24e3, t[2] * 24e3, t[3] * 24e3, t[4] * 24e3, t.iter().sum::<f64>() * 24e3);
    }
}
