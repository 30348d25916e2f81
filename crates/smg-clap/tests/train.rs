//! The contrastive trainer on synthetic data (no MiniLM needed): the loss falls, an interrupted
//! run resumed from its checkpoint reproduces the uninterrupted one, exports load back, and bad
//! checkpoints are named.

use candle_core::{Device, Tensor};
use smg_clap::train::ClapData;
use smg_clap::{AudioEncoder, AudioEncoderConfig, ClapTrainConfig, ClapTrainer};
use std::collections::HashMap;

fn tiny() -> AudioEncoderConfig {
    AudioEncoderConfig { n_mels: 16, channels: vec![4, 8], hidden: 16, dim: 8 }
}

/// Four "categories" of 16×32 mels (a bright band at a category-specific row) with captions
/// whose "text embeddings" are fixed random unit vectors.
fn data() -> (Vec<Tensor>, Vec<Vec<String>>, Vec<String>, HashMap<String, Tensor>) {
    let (mut mels, mut caps, mut cats) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..24 {
        let c = i % 4;
        let v: Vec<f32> = (0..16 * 32).map(|k| if (k / 32) / 4 == c { 0.8 } else { -0.8 + 0.01 * ((k * 7 + i) % 13) as f32 }).collect();
        mels.push(Tensor::from_vec(v, (16, 32), &Device::Cpu).unwrap());
        caps.push(vec![format!("class {c}"), format!("the sound of class {c}")]);
        cats.push(format!("class {c}"));
    }
    let mut text = HashMap::new();
    for c in 0..4 {
        for cap in [format!("class {c}"), format!("the sound of class {c}")] {
            let v: Vec<f32> = (0..8).map(|k| if k == c * 2 || k == c * 2 + 1 { std::f32::consts::FRAC_1_SQRT_2 } else { 0.0 }).collect();
            text.insert(cap, Tensor::from_vec(v, 8, &Device::Cpu).unwrap());
        }
    }
    (mels, caps, cats, text)
}

fn cfg(steps: usize) -> ClapTrainConfig {
    ClapTrainConfig { steps, batch_size: 8, lr: 3e-3, warmup: 2, crop_frames: 16, val_every: 3, log_every: 1, ..Default::default() }
}

#[test]
fn loss_falls_and_resume_is_exact() {
    let (mels, caps, cats, text) = data();
    let d = ClapData { mels: &mels, captions: &caps, categories: &cats, text: &text };
    let a_dir = tempfile::tempdir().unwrap();
    let mut a = ClapTrainer::new(&tiny(), cfg(12), a_dir.path(), false, &Device::Cpu).unwrap();
    let full = a.fit(&d, None, false).unwrap();
    let first3: f32 = full[..3].iter().map(|m| m.loss).sum::<f32>() / 3.0;
    let last3: f32 = full[9..].iter().map(|m| m.loss).sum::<f32>() / 3.0;
    assert!(last3 < first3, "loss did not fall: {first3} -> {last3}");

    let b_dir = tempfile::tempdir().unwrap();
    let mut b = ClapTrainer::new(&tiny(), cfg(12), b_dir.path(), false, &Device::Cpu).unwrap();
    let first = b.fit_until(&d, None, 6, false).unwrap(); // "killed" after its step-6 checkpoint
    drop(b);
    let mut c = ClapTrainer::new(&tiny(), cfg(12), b_dir.path(), true, &Device::Cpu).unwrap();
    assert_eq!(c.step, 6);
    let rest = c.fit(&d, None, false).unwrap();
    for (x, y) in full.iter().zip(first.iter().chain(rest.iter())) {
        assert_eq!(x.loss, y.loss, "step {}", x.step);
    }

    // Export and load back: same embeddings.
    let out = a_dir.path().join("export");
    a.export(&out).unwrap();
    let m = AudioEncoder::from_pretrained(&out, &Device::Cpu).unwrap();
    let x = Tensor::stack(&mels[..3], 0).unwrap();
    let diff = (m.embed(&x).unwrap() - a.model.embed(&x).unwrap()).unwrap().abs().unwrap().max_keepdim(1).unwrap().max(0).unwrap();
    assert!(diff.squeeze(0).unwrap().to_scalar::<f32>().unwrap() < 1e-6);
    // A tensor of the wrong shape is named.
    let path = out.join("audio_encoder.safetensors");
    let mut map = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    map.insert("audio.proj.2.weight".into(), Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&map, &path).unwrap();
    let e = AudioEncoder::from_pretrained(&out, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("audio.proj.2.weight"), "{e}");
}

#[test]
fn bad_inputs_are_named() {
    let vm = candle_nn::VarMap::new();
    let m = AudioEncoder::new(&tiny(), candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &Device::Cpu)).unwrap();
    let e = m.embed(&Tensor::zeros((1, 20, 32), candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(e.contains("20 bands"), "{e}");
    let e = m.embed(&Tensor::zeros((1, 16, 2), candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(e.contains("too short"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = AudioEncoder::from_pretrained(dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("missing"), "{e}");
}
