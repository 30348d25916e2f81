//! Attention of one paper block (batch 2 × 266 tokens, 8 heads of 96) on AMX, 200 times: a
//! loop to profile (`perf record`), not a timer.
fn main() {
    let (b, l, heads, hd) = (2usize, 266usize, 8usize, 96usize);
    let d = heads * hd;
    let qkv: Vec<f32> = (0..b * l * 3 * d).map(|i| (((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0) * 0.3).collect();
    for _ in 0..200 {
        std::hint::black_box(smg_kernels::attention::attention_at(&qkv, b, l, heads, hd, smg_kernels::Precision::Bf16));
    }
}
