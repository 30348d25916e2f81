//! Every model runs on plain candle ops when the CPU kernels are switched off (`SMG_FAST=0`):
//! that is the path a CUDA tensor takes, since the kernels are only dispatched for CPU f32
//! tensors outside autograd. Each model here is run twice on the same seeded weights and input,
//! kernels on and kernels forced off, and the outputs must agree. Built with `--features cuda`
//! on a machine with a GPU, the generic path also runs on the GPU and must agree with the CPU.
//! Its own test binary, because it switches the process-wide kernel switch.

use anyhow::Result;
use candle_core::{DType, Device, Module, Tensor};
use smg_core::SeededVarMap;
use smg_kernels::set_fast;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    let b = b.to_device(a.device()).unwrap();
    (a - &b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn scale(a: &Tensor) -> f32 {
    a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Runs `f` with the CPU kernels on, then forced off (and on the GPU where one is built in and
/// present), and checks the outputs agree to `tol` relative to the output's peak.
fn check(name: &str, tol: f32, f: impl Fn(&Device) -> Result<Tensor>) {
    let cpu = Device::Cpu;
    set_fast(true);
    let fast = f(&cpu).unwrap();
    set_fast(false);
    let generic = f(&cpu).unwrap();
    set_fast(true);
    let d = max_diff(&fast, &generic);
    let peak = scale(&fast);
    println!("{name}: kernels vs generic ops max |diff| {d:e} (output peak {peak:.3e})");
    assert!(peak > 0.0 && peak.is_finite(), "{name}: degenerate output (peak {peak})");
    assert!(d <= tol * scale(&fast), "{name}: the generic path differs from the CPU kernels by {d}");
    if let Ok(gpu) = Device::new_cuda(0) {
        let on_gpu = f(&gpu).unwrap();
        let d = max_diff(&generic, &on_gpu);
        println!("{name}: CPU vs CUDA max |diff| {d:e}");
        assert!(d <= 10.0 * tol * scale(&fast), "{name}: CUDA differs from the CPU by {d}");
    }
}

fn randn(shape: &[usize], seed: u64, dev: &Device) -> Result<Tensor> {
    // Seeded on the CPU so every device sees the same input.
    Ok(Tensor::from_vec(smg_tests::seeded_uniform(shape.iter().product(), seed), shape, &Device::Cpu)?.to_device(dev)?)
}

/// Gradients of a loss through a model built on `Var`s (the training path), flattened in the
/// variable map's name order.
fn grads(svm: &SeededVarMap, loss: &Tensor) -> Result<Tensor> {
    let g = loss.backward()?;
    let data = svm.varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let flat =
        names.iter().filter_map(|n| g.get(data[*n].as_tensor())).map(|t| t.flatten_all()).collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&flat, 0)?)
}

#[test]
fn every_model_agrees_with_the_kernels_switched_off() {
    check("SpecVQGAN encoder + decoder (small)", 1e-4, |dev| {
        let m = smg_tokenizer::SpecVqGan::new(&smg_tokenizer::Config::small(), SeededVarMap::new(1).frozen_builder(DType::F32, dev))?;
        let mel = randn(&[1, 1, 80, 64], 11, dev)?;
        let z = m.encode_latent(&mel)?;
        Ok(m.decoder.forward(&z)?)
    });
    check("masked ViT (small)", 1e-4, |dev| {
        let c = smg_maskgit::Config::small();
        let m = smg_maskgit::MaskedVit::new(&c, SeededVarMap::new(2).frozen_builder(DType::F32, dev))?;
        let ids: Vec<u32> = (0..c.seq_len()).map(|i| if i % 3 == 0 { c.mask_id() } else { (i * 37 % c.vocab) as u32 }).collect();
        let tokens = Tensor::from_vec(ids, (1, c.seq_len()), dev)?;
        Ok(m.forward(&tokens, &randn(&[1, c.cond_dim], 12, dev)?)?)
    });
    check("HiFi-GAN (tiny)", 1e-4, |dev| {
        let m = smg_vocoder::HifiGan::new(&smg_vocoder::HifiGanConfig::tiny(), SeededVarMap::new(3).frozen_builder(DType::F32, dev))?;
        Ok(m.forward(&randn(&[1, 80, 12], 13, dev)?)?)
    });
    check("BigVSAN (tiny)", 1e-4, |dev| {
        let m = smg_vocoder::BigVsan::new(&smg_vocoder::BigVsanConfig::tiny(), SeededVarMap::new(4).frozen_builder(DType::F32, dev))?;
        Ok(m.forward(&randn(&[1, 80, 12], 14, dev)?)?)
    });
    check("SpecVQGAN training gradients (small)", 1e-3, |dev| {
        let svm = SeededVarMap::new(6);
        let m = smg_tokenizer::SpecVqGan::new(&smg_tokenizer::Config::small(), svm.var_builder(DType::F32, dev))?;
        let x = randn(&[2, 1, 80, 32], 16, dev)?;
        let loss = (m.decoder.forward(&m.encode_latent(&x)?)? - &x)?.abs()?.mean_all()?;
        grads(&svm, &loss)
    });
    check("CLAP audio branch training gradients (small)", 1e-3, |dev| {
        let svm = SeededVarMap::new(7);
        let m = smg_clap::AudioEncoder::new(&smg_clap::AudioEncoderConfig::small(), svm.var_builder(DType::F32, dev))?;
        let loss = m.forward(&randn(&[2, 80, 64], 17, dev)?)?.sqr()?.mean_all()?;
        grads(&svm, &loss)
    });
    check("CLAP audio branch (small)", 1e-4, |dev| {
        let m = smg_clap::AudioEncoder::new(&smg_clap::AudioEncoderConfig::small(), SeededVarMap::new(5).frozen_builder(DType::F32, dev))?;
        Ok(m.forward(&randn(&[2, 80, 64], 15, dev)?)?)
    });
}
