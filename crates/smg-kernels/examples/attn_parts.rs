use std::time::Instant;
fn main() {
    let (l, d, hd) = (266usize, 768usize, 96usize);
    let qkv: Vec<f32> = (0..l * 3 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let mut s = vec![0f32; l * l];
    let t = Instant::now();
    for _ in 0..16 {
        unsafe {
            gemm::gemm(l, l, hd, s.as_mut_ptr(), 1, l as isize, false, qkv.as_ptr(), 1, 3 * d as isize, qkv.as_ptr().add(d), 3 * d as isize, 1, 1.0f32, 1.0f32, false, false, false, gemm::Parallelism::None);
        }
    }
    println!("16 q·kᵀ gemms: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    for _ in 0..2 {
        std::hint::black_box(smg_kernels::attention::attention(&qkv, 1, l, 8, hd));
    }
    println!("2 × 8-head attentions (= 16 heads): {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
    let mut v: Vec<f32> = (0..l * l).map(|i| (i % 97) as f32 / 10.0).collect();
    let t = Instant::now();
    for _ in 0..16 { for x in v.iter_mut() { *x = smg_kernels::attention::exp(*x - 5.0); } }
    println!("16 × exp over l²: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
}
