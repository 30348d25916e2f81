//! Front-end speed (criterion): log-mel of the paper's 9.85 s clip with the sparse filterbank
//! against a dense-matrix baseline computed in the same run, Griffin-Lim, and resampling.
//! Run: `cargo bench --bench frontend`.

use criterion::{criterion_group, criterion_main, Criterion};
use smg_audio::{GriffinLimConfig, MelTransform, PAPER_SAMPLES};

fn clip() -> Vec<f32> {
    (0..PAPER_SAMPLES)
        .map(|i| {
            let t = i as f32 / 22050.0;
            0.5 * (2.0 * std::f32::consts::PI * (200.0 + 300.0 * t) * t).sin()
                + 0.05 * ((i * 2_654_435_761usize % 1000) as f32 / 1000.0 - 0.5)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let x = clip();
    let mt = MelTransform::hifigan();
    let dense = mt.filter_matrix();
    let mut g = c.benchmark_group("frontend_9.85s_clip");
    g.sample_size(10);
    g.bench_function("log_mel (sparse filterbank)", |b| b.iter(|| mt.log_mel(&x).unwrap()));
    g.bench_function("log_mel baseline (dense filterbank matmul)", |b| {
        b.iter(|| {
            let mag = mt.magnitude(&x).unwrap();
            dense.dot(&mag).mapv(|v| v.max(1e-5).ln())
        })
    });
    let mel = mt.log_mel(&x).unwrap();
    let gl = GriffinLimConfig { n_iter: 32, ..Default::default() };
    g.bench_function("griffin_lim 32 iterations", |b| b.iter(|| smg_audio::mel_to_audio(&mt, &mel, &gl).unwrap()));
    let x44 = smg_audio::resample(&x, 22050, 44100).unwrap();
    g.bench_function("resample 44.1k -> 22.05k", |b| b.iter(|| smg_audio::resample(&x44, 44100, 22050).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
