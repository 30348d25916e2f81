use smg_kernels::amx::{matmul_blocks, PackedB};
use std::time::Instant;
fn main() {
    let (m, n, k) = (544, 2304, 768);
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
    let pb = PackedB::new(&w, n, k);
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            matmul_blocks(&x, m, &pb, |_, _, _| {});
            let reps = 50;
            let t = Instant::now();
            for _ in 0..reps {
                matmul_blocks(&x, m, &pb, |b, _, _| {
                    std::hint::black_box(b);
                });
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!("{threads} threads, no epilogue: {:.2} ms, {:.0} GFLOP/s", s * 1e3, 2.0 * (m * n * k) as f64 / s / 1e9);
        });
    }
}
