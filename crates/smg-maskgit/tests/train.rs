//! The generator's trainer on synthetic token grids: the masking-ratio sampler matches SPEC.md
//! §3.5 (E[r] ≈ 0.539), loss falls and held-out accuracy beats chance, resume is exact.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use smg_maskgit::train::{truncated_gaussian, TokenData, TrainConfig, Trainer};
use smg_maskgit::Config;

fn tiny() -> Config {
    Config { vocab: 8, rows: 2, cols: 4, dim: 32, depth: 1, heads: 2, mlp_dim: 64, cond_dim: 4, conditional_mask: true }
}

/// Grids where every token equals the clip's class (0..4) plus its row: learnable from context
/// and from the conditioning (a one-hot of the class).
fn data(n: usize) -> (Tensor, Tensor) {
    let mut t = Vec::new();
    let mut c = Vec::new();
    for i in 0..n {
        let k = (i % 4) as u32;
        for p in 0..8u32 {
            t.push(k + p / 4);
        }
        for j in 0..4 {
            c.push(if j == i % 4 { 1f32 } else { 0.0 });
        }
    }
    (Tensor::from_vec(t, (n, 8), &Device::Cpu).unwrap(), Tensor::from_vec(c, (n, 4), &Device::Cpu).unwrap())
}

fn cfg(steps: usize) -> TrainConfig {
    TrainConfig { steps, batch_size: 8, lr: 5e-3, warmup: 5, val_every: 10, log_every: 1, ..Default::default() }
}

#[test]
fn masking_ratio_is_the_truncated_gaussian() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let v: Vec<f64> = (0..20000).map(|_| truncated_gaussian(&mut rng, 0.55, 0.25)).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    assert!((mean - 0.539).abs() < 0.01, "mean {mean}");
    assert!(v.iter().all(|r| (0.0..=1.0).contains(r)));
}

#[test]
fn loss_falls_accuracy_beats_chance_and_resume_is_exact() {
    let (tok, cond) = data(32);
    let d = TokenData { tokens: &tok, cond: &cond };
    let dir = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(&tiny(), cfg(150), dir.path(), false, &Device::Cpu).unwrap();
    let full = a.fit_until(&d, Some(&d), 150, false).unwrap();
    let early: f32 = full[..5].iter().map(|m| m.loss).sum::<f32>() / 5.0;
    let late: f32 = full[145..].iter().map(|m| m.loss).sum::<f32>() / 5.0;
    assert!(late < early * 0.8, "loss {early} -> {late}");
    let acc = a.evaluate(&d, &[0.5]).unwrap()[0].accuracy;
    assert!(acc > 0.5, "masked-token accuracy {acc} (chance 0.125)");
    // Validation runs on a frozen copy (the inference kernels); the training graph agrees.
    for (f, g) in a.evaluate(&d, &[0.1, 0.9]).unwrap().iter().zip(smg_maskgit::train::evaluate(&a.model, &d, &[0.1, 0.9], 0.1).unwrap()) {
        assert!((f.accuracy - g.accuracy).abs() < 0.02 && (f.loss - g.loss).abs() < 1e-3 * g.loss, "{f:?} vs {g:?}");
    }

    let dir2 = tempfile::tempdir().unwrap();
    let mut b = Trainer::new(&tiny(), cfg(150), dir2.path(), false, &Device::Cpu).unwrap();
    let first = b.fit_until(&d, Some(&d), 70, false).unwrap();
    drop(b);
    let mut c = Trainer::new(&tiny(), cfg(150), dir2.path(), true, &Device::Cpu).unwrap();
    assert_eq!(c.step, 70);
    let rest = c.fit_until(&d, Some(&d), 150, false).unwrap();
    for (x, y) in full.iter().zip(first.iter().chain(rest.iter())) {
        assert_eq!(x.loss, y.loss, "step {}", x.step);
    }
    // Exported generator loads back; a different configuration is refused on resume.
    let out = dir.path().join("export");
    a.export(&out).unwrap();
    smg_maskgit::MaskedVit::from_pretrained(&out, &Device::Cpu).unwrap();
    let e = Trainer::new(&Config { depth: 2, ..tiny() }, cfg(150), dir.path(), true, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("another model configuration"), "{e}");

    // Fine-tuning starts from the exported weights: the held-out accuracy carries over, and a
    // generator of another configuration is refused by name.
    let dir3 = tempfile::tempdir().unwrap();
    let mut f = Trainer::new(&tiny(), cfg(20), dir3.path(), false, &Device::Cpu).unwrap();
    let fresh = f.evaluate(&d, &[0.5]).unwrap()[0].accuracy;
    f.init_from(&out).unwrap();
    let tuned = f.evaluate(&d, &[0.5]).unwrap()[0].accuracy;
    assert_eq!(tuned, acc, "fine-tuning starts where the exported generator stood (fresh: {fresh})");
    let mut g = Trainer::new(&Config { depth: 2, ..tiny() }, cfg(20), dir3.path(), false, &Device::Cpu).unwrap();
    let e = g.init_from(&out).err().unwrap().to_string();
    assert!(e.contains("another model configuration"), "{e}");
}

/// Unconditional grids whose tokens all equal one random code: only the visible context tells
/// the model which one, so accuracy above chance proves attention carries information.
#[test]
fn learns_from_context_alone() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let n = 64;
    let t: Vec<u32> = (0..n).flat_map(|_| std::iter::repeat_n(rand::Rng::random_range(&mut rng, 0..8u32), 8)).collect();
    let tok = Tensor::from_vec(t, (n, 8), &Device::Cpu).unwrap();
    let cond = Tensor::zeros((n, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let d = TokenData { tokens: &tok, cond: &cond };
    let dir = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(&tiny(), TrainConfig { cond_dropout: 0.0, ..cfg(200) }, dir.path(), false, &Device::Cpu).unwrap();
    a.fit_until(&d, None, 200, false).unwrap();
    let acc = a.evaluate(&d, &[0.5]).unwrap()[0].accuracy;
    assert!(acc > 0.8, "masked-token accuracy from context {acc} (chance 0.125)");
}
