//! GFLOP/s of the chunked conv1d / conv-transpose1d at HiFi-GAN V1's shapes for 10 s of audio.
//! `cargo run --release -p smg-kernels --example conv_speed`.
use smg_kernels::conv1d::{Conv1d, ConvTranspose1d};
use std::time::Instant;

fn main() {
    let frames = 861;
    for &(ch, t) in &[(256usize, frames * 8), (128, frames * 64), (64, frames * 128), (32, frames * 256)] {
        let x: Vec<f32> = (0..ch * t).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        for &(k, d) in &[(3usize, 1usize), (7, 3), (11, 5)] {
            let w: Vec<f32> = (0..ch * ch * k).map(|i| ((i * 104729) % 1000) as f32 / 1e5).collect();
            let c = Conv1d::new(w, vec![0.0; ch], ch, ch, k, d, (k * d - d) / 2);
            c.forward(&x, t, Some(0.1), None);
            let s = Instant::now();
            std::hint::black_box(c.forward(&x, t, Some(0.1), Some(&x)));
            let e = s.elapsed().as_secs_f64();
            println!("conv1d ch {ch} T {t} k {k} d {d}: {:.1} ms, {:.0} GFLOP/s", e * 1e3, 2.0 * (ch * ch * k * t) as f64 / e / 1e9);
        }
    }
    for &(cin, t, k, s) in
        &[(512usize, frames, 16usize, 8usize), (256, frames * 8, 16, 8), (128, frames * 64, 4, 2), (64, frames * 128, 4, 2)]
    {
        let cout = cin / 2;
        let x: Vec<f32> = (0..cin * t).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let w: Vec<f32> = (0..cin * cout * k).map(|i| ((i * 104729) % 1000) as f32 / 1e5).collect();
        let c = ConvTranspose1d::new(&w, vec![0.0; cout], cin, cout, k, s, (k - s) / 2);
        c.forward(&x, t, Some(0.1));
        let st = Instant::now();
        std::hint::black_box(c.forward(&x, t, Some(0.1)));
        let e = st.elapsed().as_secs_f64();
        println!(
            "conv_transpose1d {cin}->{cout} T {t} k {k} s {s}: {:.1} ms, {:.0} GFLOP/s",
            e * 1e3,
            2.0 * (cin * cout * k * t) as f64 / e / 1e9
        );
    }
}
