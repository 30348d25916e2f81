//! The inference fast path of the masked ViT (the fused blocks of `smg_kernels::vit`)
//! against the plain candle ops, on the same seeded weights. Its own test binary, because it
//! switches the process-wide precision.

use candle_core::{DType, Device, Tensor};
use smg_core::fast::{set_precision, Precision};
use smg_core::SeededVarMap;
use smg_maskgit::{Config, MaskedVit, Sampler};

fn cfg() -> Config {
    Config { vocab: 64, rows: 5, cols: 16, dim: 96, depth: 2, heads: 4, mlp_dim: 384, cond_dim: 24, conditional_mask: true }
}

#[test]
fn fast_path_matches_plain_ops_in_f32_and_stays_close_in_bf16() {
    let c = cfg();
    let dev = Device::Cpu;
    // Same seed, so the same weights: Vars (autograd, plain ops) and frozen tensors (fast path).
    let plain = MaskedVit::new(&c, SeededVarMap::new(7).var_builder(DType::F32, &dev)).unwrap();
    let fast = MaskedVit::new(&c, SeededVarMap::new(7).frozen_builder(DType::F32, &dev)).unwrap();
    let ids: Vec<u32> = (0..2 * c.seq_len()).map(|i| if i % 3 == 0 { c.mask_id() } else { (i * 7 % 64) as u32 }).collect();
    let tokens = Tensor::from_vec(ids, (2, c.seq_len()), &dev).unwrap();
    let cond = Tensor::randn(0f32, 1.0, (2, c.cond_dim), &dev).unwrap();
    let want = plain.forward(&tokens, &cond).unwrap();
    let max_diff = |a: &Tensor| (a - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    set_precision(Precision::F32);
    let d32 = max_diff(&fast.forward(&tokens, &cond).unwrap());
    set_precision(Precision::Bf16);
    let d16 = max_diff(&fast.forward(&tokens, &cond).unwrap());
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    println!("max |logit| {scale:.3}: f32 fast path differs by {d32:e}, bf16 by {d16:e}");
    assert!(d32 < 1e-4, "f32 fast path differs by {d32}");
    assert!(d16 < 0.05 * scale.max(1.0), "bf16 fast path differs by {d16}");
    // Three items: the fused blocks split a batch into groups of items, one per thread
    // (`smg_kernels::vit::forward_blocks`), here of unequal sizes.
    set_precision(Precision::F32);
    let t3 = Tensor::cat(&[&tokens, &tokens.narrow(0, 0, 1).unwrap()], 0).unwrap();
    let c3 = Tensor::cat(&[&cond, &cond.narrow(0, 1, 1).unwrap()], 0).unwrap();
    let want3 = plain.forward(&t3, &c3).unwrap();
    let d3 = (fast.forward(&t3, &c3).unwrap() - &want3).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d3 < 1e-4, "f32 fast path on three items differs by {d3}");
    // The fused blocks also give the probe's per-block features (SPEC.md §7).
    let (fp, ff) = (plain.block_features(&tokens, &cond).unwrap(), fast.block_features(&tokens, &cond).unwrap());
    assert_eq!(fp.len(), ff.len());
    for (a, b) in fp.iter().zip(&ff) {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-4, "block features differ by {d}");
    }

    // Sampling on a fixed seed: f32 fast path agrees everywhere; bf16 on most positions.
    let start = Tensor::full(c.mask_id(), (1, c.seq_len()), &dev).unwrap();
    let s = Sampler { iterations: 8, ..Sampler::default() };
    set_precision(Precision::F32);
    let t_plain: Vec<u32> =
        s.sample(&plain, &start, &cond.narrow(0, 0, 1).unwrap()).unwrap().tokens.flatten_all().unwrap().to_vec1().unwrap();
    let t32: Vec<u32> = s.sample(&fast, &start, &cond.narrow(0, 0, 1).unwrap()).unwrap().tokens.flatten_all().unwrap().to_vec1().unwrap();
    set_precision(Precision::Bf16);
    let t16: Vec<u32> = s.sample(&fast, &start, &cond.narrow(0, 0, 1).unwrap()).unwrap().tokens.flatten_all().unwrap().to_vec1().unwrap();
    set_precision(Precision::F32);
    let agree = t16.iter().zip(&t_plain).filter(|(a, b)| a == b).count() as f64 / t_plain.len() as f64;
    println!("bf16 sampled tokens agree with f32 on {:.0}% of positions", 100.0 * agree);
    assert_eq!(t32, t_plain);
    assert!(agree > 0.5, "bf16 tokens agree on only {agree}");
}
