//! Tokenizer speed: encode + decode of one clip at the paper configuration (80×848,
//! random weights) and at the small one (80×256), and one small training step (batch 8), on CPU.
//! Run: `cargo bench --bench tokenizer`. The in-run baseline for the small model is its own
//! forward pass without the decoder (encode only). The `conv2d` group times one 3×3 convolution
//! layer, forward + backward, with candle's own kernels (the baseline) and with
//! `smg_core::conv` (im2col + gemm with a col2im backward), which the models use on CPU.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use smg_core::SeededVarMap;
use smg_tokenizer::{Config, SpecVqGan, TrainConfig, Trainer};

fn model(cfg: &Config) -> SpecVqGan {
    let vm = SeededVarMap::new(0);
    SpecVqGan::new(cfg, vm.var_builder(DType::F32, &Device::Cpu)).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("tokenizer");
    g.sample_size(10);
    for (name, cfg, frames) in [("small 80x256", Config::small(), 256), ("paper 80x848", Config::paper(), 848)] {
        let m = model(&cfg);
        let mel = Tensor::randn(0f32, 0.3, (1, 80, frames), &Device::Cpu).unwrap();
        g.bench_function(format!("{name}: encode (baseline)"), |b| b.iter(|| m.encode(&mel).unwrap()));
        g.bench_function(format!("{name}: encode + decode"), |b| b.iter(|| m.decode(&m.encode(&mel).unwrap()).unwrap()));
    }
    let dir = std::env::temp_dir().join("smg-bench-tokenizer");
    let tc = TrainConfig { steps: usize::MAX, batch_size: 8, val_every: 0, ckpt_every: 0, ..Default::default() };
    let mut t = Trainer::new(&Config::small(), tc, &dir, false, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 0.3, (8, 1, 80, 256), &Device::Cpu).unwrap();
    g.bench_function("small: one training step, batch 8", |b| b.iter(|| t.train_step(&x).unwrap()));
    g.finish();

    let mut g = c.benchmark_group("conv2d 16->16 3x3, batch 8 x 80x256, forward + backward");
    g.sample_size(10);
    let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, 16, 80, 256), &Device::Cpu).unwrap()).unwrap();
    let w = candle_core::Var::from_tensor(&Tensor::randn(0f32, 0.1, (16, 16, 3, 3), &Device::Cpu).unwrap()).unwrap();
    g.bench_function("candle conv2d (baseline)", |b| b.iter(|| x.conv2d(&w, 1, 1, 1, 1).unwrap().sum_all().unwrap().backward().unwrap()));
    g.bench_function("smg_core::conv::conv2d", |b| {
        b.iter(|| smg_core::conv::conv2d(&x, &w, None, 1, 1).unwrap().sum_all().unwrap().backward().unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
