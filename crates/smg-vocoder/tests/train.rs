//! Vocoder training: discriminators' outputs, losses, a tiny from-scratch run that
//! learns, exact resume, fine-tuning from a weight-normed checkpoint, export and reload.

use candle_core::{DType, Device, Module, Tensor};
use smg_core::SeededVarMap;
use smg_vocoder::discriminator::{Discriminators, Logits};
use smg_vocoder::{BigVsanConfig, Generator, GeneratorConfig, HifiGanConfig, TrainConfig, Trainer};

fn clips() -> Vec<Vec<f32>> {
    // Three "sounds": decaying tones with harmonics, 0.5 s each.
    [220.0f32, 440.0, 660.0]
        .iter()
        .map(|&f| {
            (0..11025)
                .map(|i| {
                    let t = i as f32 / 22050.0;
                    (0.4 * (std::f32::consts::TAU * f * t).sin() + 0.2 * (std::f32::consts::TAU * 2.0 * f * t).sin()) * (-3.0 * t).exp()
                })
                .collect()
        })
        .collect()
}

fn quick_cfg(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 2,
        segment: 4096,
        lr: 2e-3,
        val_every: 0,
        ckpt_every: 2,
        log_every: 1,
        disc_width_div: 16,
        seed: 7,
        ..Default::default()
    }
}

#[test]
fn discriminators_give_a_verdict_per_subdiscriminator() {
    let dev = Device::Cpu;
    let y = Tensor::randn(0f32, 0.3, (2, 4096), &dev).unwrap();
    let h = Discriminators::hifigan(16, SeededVarMap::new(1).var_builder(DType::F32, &dev)).unwrap();
    let v = h.forward(&y, true).unwrap();
    assert_eq!(v.len(), 5 + 3);
    assert!(v.iter().all(|v| matches!(v.logits, Logits::Plain(_)) && v.fmaps.len() >= 6));
    let s = Discriminators::bigvsan(16, SeededVarMap::new(1).var_builder(DType::F32, &dev)).unwrap();
    let v = s.forward(&y, true).unwrap();
    assert_eq!(v.len(), 5 + 3);
    for verdict in &v {
        let Logits::San { fun, dir } = &verdict.logits else { panic!("SAN layers give two outputs in training") };
        // Same values, different gradient routes.
        let d: f32 = (fun - dir).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-5);
    }
    let v = s.forward(&y, false).unwrap();
    assert!(v.iter().all(|v| matches!(v.logits, Logits::Plain(_))));
}

#[test]
fn a_tiny_hifigan_learns_from_scratch_and_resumes_exactly() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let gcfg = GeneratorConfig::Hifigan(HifiGanConfig::tiny());
    let train = clips();
    let mut t = Trainer::new(&gcfg, quick_cfg(12), &dir.path().join("a"), false, None, &dev).unwrap();
    let m = t.fit(&train, &[], false).unwrap();
    let first: f32 = m[..3].iter().map(|m| m.mel_l1).sum::<f32>() / 3.0;
    let last: f32 = m[m.len() - 3..].iter().map(|m| m.mel_l1).sum::<f32>() / 3.0;
    assert!(last < 0.8 * first, "mel-L1 did not fall: {first} -> {last}");
    assert!(m.iter().all(|m| m.d_loss.is_finite() && m.feature_matching.is_finite()));

    // 4 steps straight vs 2 steps, a new trainer resuming from the checkpoint, 2 more.
    let straight = {
        let mut t = Trainer::new(&gcfg, quick_cfg(4), &dir.path().join("b"), false, None, &dev).unwrap();
        t.fit(&train, &[], false).unwrap();
        t.inference_generator().unwrap()
    };
    let resumed = {
        let mut t = Trainer::new(&gcfg, quick_cfg(2), &dir.path().join("c"), false, None, &dev).unwrap();
        t.fit(&train, &[], false).unwrap();
        let mut t = Trainer::new(&gcfg, quick_cfg(4), &dir.path().join("c"), true, None, &dev).unwrap();
        assert_eq!(t.step, 2);
        t.fit(&train, &[], false).unwrap();
        t.export(&dir.path().join("export")).unwrap();
        t.inference_generator().unwrap()
    };
    let mel = Tensor::randn(-4f32, 1.0, (1, 80, 12), &dev).unwrap();
    let a = straight.forward(&mel).unwrap();
    let b = resumed.forward(&mel).unwrap();
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap(), "resumed run differs");
    let reloaded = Generator::load_trained(&dir.path().join("export"), &dev).unwrap();
    assert_eq!(reloaded.forward(&mel).unwrap().to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
    // The training folder itself loads too, and a metrics log was written.
    assert!(Generator::load_trained(&dir.path().join("c"), &dev).is_ok());
    assert!(std::fs::read_to_string(dir.path().join("c/metrics.jsonl")).unwrap().lines().count() >= 2);
}

/// Fine-tuning starts from weight-normed tensors (`weight_g`, `weight_v`, as the universal
/// checkpoint stores them) under `generator.`, and trains them.
#[test]
fn fine_tunes_a_weight_normed_checkpoint() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let cfg = HifiGanConfig::tiny();
    let sv = SeededVarMap::new(3);
    let _ = smg_vocoder::HifiGan::new(&cfg, sv.var_builder(DType::F32, &dev)).unwrap();
    let mut map = std::collections::HashMap::new();
    for (n, v) in smg_core::checkpoint::named_vars(&sv.varmap, |_| false) {
        let t = v.as_tensor().clone();
        match n.strip_suffix(".weight") {
            Some(base) => {
                let g = t.sqr().unwrap().sum_keepdim(2).unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
                map.insert(format!("generator.{base}.weight_g"), g);
                map.insert(format!("generator.{base}.weight_v"), t);
            }
            None => {
                map.insert(format!("generator.{n}"), t);
            }
        }
    }
    let init = dir.path().join("init.safetensors");
    candle_core::safetensors::save(&map, &init).unwrap();
    let gcfg = GeneratorConfig::Hifigan(cfg);
    let mut t = Trainer::new(&gcfg, quick_cfg(2), &dir.path().join("run"), false, Some(&init), &dev).unwrap();
    let before = t.inference_generator().unwrap();
    let mel = Tensor::randn(-4f32, 1.0, (1, 80, 8), &dev).unwrap();
    let reference = smg_vocoder::HifiGan::load(&init, &HifiGanConfig::tiny(), &dev).unwrap();
    let same: f32 =
        (before.forward(&mel).unwrap() - reference.forward(&mel).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(same < 1e-6, "folded start differs from the checkpoint by {same}");
    t.fit(&clips(), &[], false).unwrap();
    let after = t.inference_generator().unwrap();
    let d: f32 =
        (before.forward(&mel).unwrap() - after.forward(&mel).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(d > 0.0, "fine-tuning changed nothing");
    // The convolution weights themselves moved (not only the biases): trained as plain weights.
    t.export(&dir.path().join("export")).unwrap();
    let out = candle_core::safetensors::load(dir.path().join("export/vocoder.safetensors"), &dev).unwrap();
    assert!(!out.contains_key("generator.conv_pre.weight_v"));
    let v = &map["generator.conv_pre.weight_v"];
    let g = &map["generator.conv_pre.weight_g"];
    let folded = v
        .broadcast_mul(&g.broadcast_div(&v.sqr().unwrap().sum_keepdim(2).unwrap().sum_keepdim(1).unwrap().sqrt().unwrap()).unwrap())
        .unwrap();
    let moved: f32 = (&out["generator.conv_pre.weight"] - folded).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(moved > 1e-6, "conv_pre.weight did not move ({moved})");
}

#[test]
fn bigvsan_trains_with_san_losses() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let gcfg = GeneratorConfig::Bigvsan(BigVsanConfig { upsample_initial_channel: 16, ..BigVsanConfig::tiny() });
    let cfg = TrainConfig { grad_clip: Some(1000.0), lr: 1e-3, ..quick_cfg(3) };
    let mut t = Trainer::new(&gcfg, cfg, dir.path(), false, None, &dev).unwrap();
    let m = t.fit(&clips(), &[], false).unwrap();
    assert_eq!(m.len(), 3);
    assert!(m.iter().all(|m| m.mel_l1.is_finite() && m.d_loss.is_finite() && m.g_adv.is_finite()));
}

#[test]
fn bad_settings_are_clear_errors() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let gcfg = GeneratorConfig::Hifigan(HifiGanConfig::tiny());
    let err = Trainer::new(&gcfg, TrainConfig { segment: 1000, ..quick_cfg(1) }, dir.path(), false, None, &dev).err().unwrap();
    assert!(err.to_string().contains("multiple of the hop"), "{err}");
    let err = Trainer::new(&gcfg, quick_cfg(1), dir.path(), false, Some(&dir.path().join("missing.safetensors")), &dev).err().unwrap();
    assert!(err.to_string().contains("missing.safetensors"), "{err}");
}
