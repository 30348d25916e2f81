//! Trainer: losses fall, EMA restarts revive dead codes, an interrupted run resumed from its
//! checkpoint reproduces the uninterrupted run exactly, bad checkpoints are named.

use candle_core::{Device, Tensor};
use smg_tokenizer::{Config, TrainConfig, Trainer};

fn tiny() -> Config {
    Config {
        ch: 8,
        ch_mult: vec![1, 2],
        num_res_blocks: 1,
        attn_resolutions: vec![16],
        resolution: 32,
        z_channels: 8,
        embed_dim: 8,
        n_embed: 32,
        num_groups: 4,
        n_mels: 32,
        ..Config::small()
    }
}

fn data(n: usize) -> Vec<Tensor> {
    // smooth, structured "spectrograms" in [-1, 1]
    (0..n)
        .map(|i| {
            let v: Vec<f32> = (0..32 * 32)
                .map(|k| {
                    let (r, c) = ((k / 32) as f32, (k % 32) as f32);
                    ((r * 0.3 + i as f32).sin() * (c * 0.2 + i as f32 * 0.5).cos()).clamp(-1.0, 1.0)
                })
                .collect();
            Tensor::from_vec(v, (32, 32), &Device::Cpu).unwrap()
        })
        .collect()
}

/// A tiny tokenizer trained for 3 steps and exported into `dir/base`, to start other runs from.
fn exported_base(dir: &std::path::Path) -> std::path::PathBuf {
    let mut base = Trainer::new(&tiny(), tcfg(3), dir, false, &Device::Cpu).unwrap();
    base.fit(&data(8), &[], false).unwrap();
    let src = dir.join("base");
    base.export(&src).unwrap();
    src
}

/// The tensors of an exported tokenizer, by name.
fn weights(dir: &std::path::Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("tokenizer.safetensors"), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn tcfg(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 4,
        lr: 2e-3,
        disc_start: 3,
        disc_ndf: 8,
        log_every: 1,
        val_every: 3,
        ckpt_every: 3,
        crop_frames: 24,
        ..Default::default()
    }
}

#[test]
fn resumed_run_matches_the_uninterrupted_one() {
    let (train, valid) = (data(12), data(4));
    let a_dir = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(&tiny(), tcfg(6), a_dir.path(), false, &Device::Cpu).unwrap();
    let full = a.fit(&train, &valid, false).unwrap();
    assert_eq!(full.len(), 6);
    assert!(full[5].g_adv != 0.0 && full[5].d_loss > 0.0, "GAN losses from disc_start on: {:?}", full[5]);

    let b_dir = tempfile::tempdir().unwrap();
    let mut b = Trainer::new(&tiny(), tcfg(3), b_dir.path(), false, &Device::Cpu).unwrap();
    let first = b.fit(&train, &valid, false).unwrap();
    drop(b); // "killed" after its checkpoint at step 3
    let mut c = Trainer::new(&tiny(), tcfg(6), b_dir.path(), true, &Device::Cpu).unwrap();
    assert_eq!(c.step, 3);
    let rest = c.fit(&train, &valid, false).unwrap();
    let resumed: Vec<_> = first.iter().chain(rest.iter()).collect();
    // Everything but the wall-clock seconds of a step is reproduced exactly.
    let timeless = |m: &smg_tokenizer::Metrics| smg_tokenizer::Metrics { seconds: 0.0, ..m.clone() };
    for (x, y) in full.iter().zip(resumed) {
        assert_eq!(timeless(x), timeless(y), "step {}", x.step);
    }
    let log = std::fs::read_to_string(b_dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 6, "metrics log continues without duplicates");
}

#[test]
fn ema_restarts_keep_codes_alive_and_loss_falls() {
    let train = data(16);
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig { steps: 40, val_every: 0, ckpt_every: 0, disc_start: 1000, ..tcfg(40) };
    let mut t = Trainer::new(&tiny(), cfg, dir.path(), false, &Device::Cpu).unwrap();
    let m = t.fit(&train, &[], false).unwrap();
    let first = m[..5].iter().map(|x| x.rec_l1).sum::<f32>() / 5.0;
    let last = m[35..].iter().map(|x| x.rec_l1).sum::<f32>() / 5.0;
    assert!(last < first * 0.8, "L1 {first} -> {last}");
    assert!(m.iter().map(|x| x.restarts).sum::<usize>() > 0, "dead codes were restarted");
    assert!(m[39].codes_used > 8, "{} of 32 codes used", m[39].codes_used);
}

#[test]
fn mismatched_checkpoints_are_refused_with_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(&tiny(), tcfg(3), dir.path(), false, &Device::Cpu).unwrap();
    t.fit(&data(8), &[], false).unwrap();
    let other = Config { n_embed: 64, ..tiny() };
    let e = Trainer::new(&other, tcfg(3), dir.path(), true, &Device::Cpu).err().expect("must fail").to_string();
    assert!(e.contains("another model configuration"), "{e}");
    let wider_disc = TrainConfig { disc_ndf: 16, ..tcfg(3) };
    let e = Trainer::new(&tiny(), wider_disc, dir.path(), true, &Device::Cpu).err().expect("must fail").to_string();
    assert!(e.contains("discriminator of width 8, not 16"), "{e}");
    // Remove one tensor from the checkpoint: the error names it.
    let path = dir.path().join("checkpoint.safetensors");
    let mut map = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    map.remove("decoder.conv_out.weight");
    candle_core::safetensors::save(&map, &path).unwrap();
    let e = Trainer::new(&tiny(), tcfg(3), dir.path(), true, &Device::Cpu).err().expect("must fail").to_string();
    assert!(e.contains("decoder.conv_out.weight"), "{e}");
}

#[test]
fn exported_tokenizer_loads_and_bad_ones_are_named() {
    use smg_tokenizer::SpecVqGan;
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(&tiny(), tcfg(2), dir.path(), false, &Device::Cpu).unwrap();
    t.fit(&data(8), &[], false).unwrap();
    let out = dir.path().join("export");
    t.export(&out).unwrap();
    let m = SpecVqGan::from_pretrained(&out, &Device::Cpu).unwrap();
    let x = Tensor::stack(&data(2), 0).unwrap();
    let a = t.model.encode(&x).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap();
    let b = m.encode(&x).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(a, b);
    // A training folder loads too (its latest checkpoint).
    SpecVqGan::from_pretrained(dir.path(), &Device::Cpu).unwrap();
    // Wrong shape: the error names the tensor.
    let path = out.join("tokenizer.safetensors");
    let mut map = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    map.insert("encoder.conv_in.weight".into(), Tensor::zeros((3, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&map, &path).unwrap();
    let e = SpecVqGan::from_pretrained(&out, &Device::Cpu).expect_err("must fail").to_string();
    assert!(e.contains("encoder.conv_in.weight"), "{e}");
    // Missing tensor: named as well.
    map.remove("encoder.conv_in.weight");
    candle_core::safetensors::save(&map, &path).unwrap();
    let e = SpecVqGan::from_pretrained(&out, &Device::Cpu).expect_err("must fail").to_string();
    assert!(e.contains("encoder.conv_in.weight"), "{e}");
    // Not a tokenizer folder at all.
    let e = SpecVqGan::from_pretrained(&dir.path().join("nothing"), &Device::Cpu).expect_err("must fail").to_string();
    assert!(e.contains("no trained tokenizer"), "{e}");
}

#[test]
fn learning_rate_decay_phase_is_a_half_cosine() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig { lr_decay_start: Some(4), ..tcfg(10) };
    let t = Trainer::new(&tiny(), cfg, dir.path(), false, &Device::Cpu).unwrap();
    let lr = t.cfg.lr;
    assert_eq!(t.lr_at(0), lr);
    assert_eq!(t.lr_at(4), lr);
    assert!((t.lr_at(7) - 0.5 * lr).abs() < 1e-12);
    assert!(t.lr_at(10).abs() < 1e-12);
    let constant = Trainer::new(&tiny(), tcfg(10), dir.path(), false, &Device::Cpu).unwrap();
    assert_eq!(constant.lr_at(9), lr);
}

#[test]
fn decoder_fine_tuning_keeps_every_code_and_changes_the_decoder() {
    use smg_tokenizer::SpecVqGan;
    let dir = tempfile::tempdir().unwrap();
    let src = exported_base(dir.path());
    let ft_dir = dir.path().join("ft");
    let cfg = TrainConfig { decoder_only: true, disc_start: 0, disc_adaptive: true, ..tcfg(4) };
    let mut ft = Trainer::new(&tiny(), cfg, &ft_dir, false, &Device::Cpu).unwrap();
    ft.init_from(&src).unwrap();
    let m = ft.fit(&data(8), &[], false).unwrap();
    assert!(m.iter().all(|m| m.g_adv != 0.0 && m.d_loss > 0.0), "adversarial from step 0: {m:?}");
    assert!(m.iter().all(|m| m.adv_weight.is_finite() && m.adv_weight > 0.0), "balanced weight: {m:?}");
    let out = dir.path().join("ft-export");
    ft.export(&out).unwrap();
    let (a, b) = (SpecVqGan::from_pretrained(&src, &Device::Cpu).unwrap(), SpecVqGan::from_pretrained(&out, &Device::Cpu).unwrap());
    let (wa, wb) = (weights(&src), weights(&out));
    let mut decoder_changed = false;
    for (n, t) in &wa {
        let d = max_abs_diff(t, &wb[n]);
        if n.starts_with("decoder.") || n.starts_with("post_quant_conv.") {
            decoder_changed |= d > 0.0;
        } else {
            assert_eq!(d, 0.0, "{n} must stay frozen");
        }
    }
    assert!(decoder_changed);
    let x = Tensor::stack(&data(3), 0).unwrap();
    let codes = |m: &SpecVqGan| m.encode(&x).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(codes(&a), codes(&b));
    // Starting from a tokenizer of another configuration is refused with a reason.
    let other = Config { n_embed: 16, ..tiny() };
    let mut t = Trainer::new(&other, tcfg(1), &dir.path().join("other"), false, &Device::Cpu).unwrap();
    let e = t.init_from(&src).expect_err("must fail").to_string();
    assert!(e.contains("another configuration"), "{e}");
}

#[test]
fn feature_matching_is_logged_from_disc_start_and_moves_the_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, fm: f64| {
        let cfg = TrainConfig { feature_matching: fm, ..tcfg(5) };
        let mut t = Trainer::new(&tiny(), cfg, &dir.path().join(name), false, &Device::Cpu).unwrap();
        (t.fit(&data(8), &[], false).unwrap(), t)
    };
    let (with, a) = run("fm", 1.0);
    let (without, b) = run("plain", 0.0);
    assert!(with[..3].iter().all(|m| m.fm == 0.0), "no term before disc_start: {with:?}");
    assert!(with[3..].iter().all(|m| m.fm.is_finite() && m.fm > 0.0), "the term from disc_start on: {with:?}");
    assert!(without.iter().all(|m| m.fm == 0.0));
    // The same seed and data: the runs agree until the term starts, then the decoders part.
    assert_eq!(with[3].rec_l1, without[3].rec_l1);
    let x = Tensor::stack(&data(2), 0).unwrap();
    let rec = |t: &Trainer| t.model.decode(&t.model.encode(&x).unwrap()).unwrap();
    let d = (rec(&a) - rec(&b)).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d > 0.0, "feature matching changed nothing");
}

#[test]
fn a_wider_decoder_starts_fresh_on_the_same_codes() {
    use smg_tokenizer::SpecVqGan;
    let dir = tempfile::tempdir().unwrap();
    let src = exported_base(dir.path());
    let wide = Config { decoder_ch_mult: Some(vec![2, 2]), decoder_res_blocks: Some(2), ..tiny() };
    assert!(wide.same_codes(&tiny()) && wide != tiny());
    // Only a decoder-only run may take another decoder.
    let mut joint = Trainer::new(&wide, tcfg(2), &dir.path().join("joint"), false, &Device::Cpu).unwrap();
    let e = joint.init_from(&src).expect_err("must fail").to_string();
    assert!(e.contains("decoder-only"), "{e}");
    let cfg = TrainConfig { decoder_only: true, ..tcfg(2) };
    let mut ft = Trainer::new(&wide, cfg, &dir.path().join("wide"), false, &Device::Cpu).unwrap();
    ft.init_from(&src).unwrap();
    let m = ft.fit(&data(8), &[], false).unwrap();
    assert!(m.iter().all(|m| m.rec_l1.is_finite()), "{m:?}");
    let out = dir.path().join("wide-export");
    ft.export(&out).unwrap();
    let (a, b) = (SpecVqGan::from_pretrained(&src, &Device::Cpu).unwrap(), SpecVqGan::from_pretrained(&out, &Device::Cpu).unwrap());
    assert_eq!(b.config, wide, "the exported config records the decoder");
    let (wa, wb) = (weights(&src), weights(&out));
    let widened = wb["decoder.conv_out.weight"].dims4().unwrap().1;
    assert_eq!(widened, 16, "the finest decoder level is 8 × 2 channels wide");
    assert!(wb.keys().any(|n| n.starts_with("decoder.up.0.block.2.")), "a third block per level");
    for (n, t) in wa.iter().filter(|(n, _)| !n.starts_with("decoder.") && !n.starts_with("post_quant_conv.")) {
        let d = max_abs_diff(t, &wb[n]);
        assert_eq!(d, 0.0, "{n} must be the source's");
    }
    let x = Tensor::stack(&data(3), 0).unwrap();
    let codes = |m: &SpecVqGan| m.encode(&x).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(codes(&a), codes(&b));
    assert_eq!(b.decode(&b.encode(&x).unwrap()).unwrap().dims(), x.dims());
    // A decoder with the wrong number of levels is named before anything is built.
    let bad = Config { decoder_ch_mult: Some(vec![2]), ..tiny() };
    let e = Trainer::new(&bad, tcfg(1), &dir.path().join("bad"), false, &Device::Cpu).err().expect("must fail").to_string();
    assert!(e.contains("one width per level"), "{e}");
}
