//! The tokenizer trainer's discriminator phase alone (PatchGAN, ndf 16, batch 16 of 80 × 128
//! mels), best of 10, in ms: the generator's adversarial pass (frozen discriminator, forward +
//! gradient to its input) and the discriminator's update pass (real and fake forward, hinge
//! loss, backward to its weights). `SMG_TRAIN_PRECISION=bf16` for bf16 products.
//! `cargo run --release -p smg-tokenizer --example disc_phase_speed`; PyTorch: `benches/disc_phase_torch.py`.
use candle_core::{DType, Device, ModuleT, Tensor, Var};
use std::time::Instant;

fn best(mut f: impl FnMut()) -> f64 {
    f();
    let mut b = f64::INFINITY;
    for _ in 0..10 {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b * 1e3
}

fn main() -> candle_core::Result<()> {
    smg_core::alloc::keep_freed_memory();
    smg_core::threads::settle_thread_count();
    smg_core::threads::on_pool(|| {
        let dev = Device::Cpu;
        let sd = smg_core::seeded::SeededVarMap::new(1);
        let disc = smg_tokenizer::discriminator::Discriminator::new(16, 3, sd.var_builder(DType::F32, &dev).pp("d"))?;
        let x = Tensor::rand(0f32, 1.0, (16, 1, 80, 128), &dev)?;
        let rec = Var::from_tensor(&Tensor::rand(0f32, 1.0, (16, 1, 80, 128), &dev)?)?;
        let g = best(|| {
            let l = disc.frozen().unwrap().forward_t(rec.as_tensor(), true).unwrap().mean_all().unwrap().neg().unwrap();
            std::hint::black_box(l.backward().unwrap());
        });
        let d = best(|| {
            let real = disc.forward_t(&x, true).unwrap();
            let fake = disc.forward_t(&rec.as_tensor().detach(), true).unwrap();
            let l = ((real.affine(-1.0, 1.0).unwrap().relu().unwrap().mean_all().unwrap()
                + fake.affine(1.0, 1.0).unwrap().relu().unwrap().mean_all().unwrap())
            .unwrap()
                * 0.5)
                .unwrap();
            std::hint::black_box(l.backward().unwrap());
        });
        println!("generator's adversarial pass {g:.1} ms, discriminator's pass {d:.1} ms");
        Ok(())
    })
}
