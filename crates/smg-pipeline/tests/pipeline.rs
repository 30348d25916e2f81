//! End-to-end plumbing on random weights: inpainting and BWE keep every token outside the mask,
//! the same seed gives bit-identical audio, LFR splices the input's low band exactly.

mod common;

use smg_audio::MelTransform;
use smg_maskgit::{Guidance, Sampler};
use smg_pipeline::{low_frequency_replacement, Pipeline};

fn pipeline() -> Pipeline {
    common::pipeline(4)
}

fn chirp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / 22050.0;
            0.5 * (2.0 * std::f32::consts::PI * (200.0 + 900.0 * t) * t).sin()
        })
        .collect()
}

#[test]
fn inpainting_changes_only_the_masked_tokens_and_is_seeded() {
    let p = pipeline();
    let x = chirp(60000);
    let s = Sampler { iterations: 4, guidance: Box::new(Guidance::Off), seed: 3, ..Default::default() };
    let a = p.inpaint(&x, 1.0, 1.6, &s).unwrap();
    let (orig, _) = p.encode_audio(&x).unwrap();
    let orig: Vec<u32> = orig.flatten_all().unwrap().to_vec1().unwrap();
    let got: Vec<u32> = a.tokens.flatten_all().unwrap().to_vec1().unwrap();
    let start: Vec<u32> = a.start.flatten_all().unwrap().to_vec1().unwrap();
    let (c0, c1) = p.grid().columns_for(&p.mel.config, 1.0, 1.6).unwrap();
    let mut changed_outside = 0;
    for i in 0..orig.len() {
        let inside = (c0..c1).contains(&(i % 16));
        assert_eq!(start[i] == 512, inside, "start grid masks exactly the range");
        if !inside && got[i] != orig[i] {
            changed_outside += 1;
        }
    }
    assert_eq!(changed_outside, 0);
    let b = p.inpaint(&x, 1.0, 1.6, &s).unwrap();
    assert_eq!(a.audio[0], b.audio[0], "same seed, same audio");
    let e = p.inpaint(&x, 5.0, 6.0, &s).unwrap_err().to_string();
    assert!(e.contains("after the clip's end"), "{e}");
}

#[test]
fn bandwidth_extension_keeps_the_low_rows() {
    let p = pipeline();
    let x = chirp(60000);
    let s = Sampler { iterations: 4, guidance: Box::new(Guidance::Off), ..Default::default() };
    let out = p.bandwidth_extension(&x, 4000.0, true, &s).unwrap();
    let (orig, _) = p.encode_audio(&x).unwrap();
    let orig: Vec<u32> = orig.flatten_all().unwrap().to_vec1().unwrap();
    let got: Vec<u32> = out.tokens.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(&orig[..64], &got[..64], "rows 0-3 (below the cut-off) are kept");
    assert_eq!(out.audio[0].len(), p.frames() * 256);
    assert!(out.audio[0].iter().all(|v| v.is_finite()));
}

#[test]
fn lfr_takes_the_low_band_from_the_input() {
    let mt = MelTransform::hifigan();
    let n = 22050;
    let tone = |f: f32, a: f32| -> Vec<f32> { (0..n).map(|i| a * (2.0 * std::f32::consts::PI * f * i as f32 / 22050.0).sin()).collect() };
    let (low, high_in, high_gen) = (tone(500.0, 0.4), tone(6000.0, 0.1), tone(6000.0, 0.3));
    let input: Vec<f32> = low.iter().zip(&high_in).map(|(a, b)| a + b).collect();
    let out = low_frequency_replacement(&mt, &input, &high_gen, 3000.0).unwrap();
    let want: Vec<f32> = low.iter().zip(&high_gen).map(|(a, b)| a + b).collect();
    let err = out[2048..n - 2048].iter().zip(&want[2048..n - 2048]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err < 0.01, "max error {err}");
}

#[test]
fn pretrained_loads_the_shipped_small_models_and_names_what_is_missing() {
    let ckpt = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/checkpoints");
    let empty = tempfile::tempdir().unwrap();
    let p = Pipeline::pretrained("small", &ckpt, empty.path(), &candle_core::Device::Cpu).unwrap();
    assert_eq!(p.vocoder.name(), "Griffin-Lim", "no HiFi-GAN fetched: Griffin-Lim");
    assert!(p.text.is_none());
    assert_eq!((p.generator.config.rows, p.generator.config.cols), (5, 16));
    // The medium models load once both are committed; until then the error names the first missing one.
    let medium = Pipeline::pretrained("medium", &ckpt, empty.path(), &candle_core::Device::Cpu);
    match ["tokenizer-medium", "maskgit-medium"].into_iter().find(|d| !ckpt.join(d).is_dir()) {
        Some(missing) => {
            let e = medium.err().unwrap().to_string();
            assert!(e.contains("no medium models") && e.contains(missing), "{e}");
        }
        None => assert_eq!(medium.unwrap().generator.config.vocab, 1024),
    }
    let e = Pipeline::pretrained("huge", &ckpt, empty.path(), &candle_core::Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("unknown model size"), "{e}");
}

#[test]
fn auto_picks_medium_only_where_both_medium_checkpoints_exist() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(smg_pipeline::resolve_size("auto", dir.path()), "small");
    std::fs::create_dir(dir.path().join("tokenizer-medium")).unwrap();
    assert_eq!(smg_pipeline::resolve_size("auto", dir.path()), "small", "the generator is missing");
    std::fs::create_dir(dir.path().join("maskgit-medium")).unwrap();
    // Quick mode (CI) keeps the small models.
    let quick = std::env::var("SMG_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    assert_eq!(smg_pipeline::resolve_size("auto", dir.path()), if quick { "small" } else { "medium" });
    assert_eq!(smg_pipeline::resolve_size("small", dir.path()), "small");
    assert_eq!(smg_pipeline::resolve_size("medium", dir.path()), "medium");
}

#[test]
fn real_clip_embeddings_are_cached_by_id() {
    let p = pipeline();
    let e = smg_embed::MelStats::default();
    let mel = MelTransform::hifigan();
    let mels: Vec<_> =
        [1.0f32, 0.5, 0.25].iter().map(|&k| mel.log_mel(&chirp(40000).iter().map(|x| x * k).collect::<Vec<_>>()).unwrap()).collect();
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache/judge-mel.safetensors");
    let mut n = 0;
    let first = smg_pipeline::judge::embedding_features_cached(&p, &e, &file, &ids[..2], &mels[..2], || n += 1).unwrap();
    assert_eq!(n, 2);
    let direct = smg_pipeline::judge::embedding_features_all(&p, &e, &mels[..2], || {}).unwrap();
    assert_eq!(first, direct);
    // Known ids are read back; only the new one is computed, and the order follows `ids`.
    let mut m = 0;
    let order = [ids[2].clone(), ids[0].clone(), ids[1].clone()];
    let again =
        smg_pipeline::judge::embedding_features_cached(&p, &e, &file, &order, &[mels[2].clone(), mels[0].clone(), mels[1].clone()], || {
            m += 1
        })
        .unwrap();
    assert_eq!(m, 1);
    assert_eq!((&again[1], &again[2]), (&first[0], &first[1]));
}
