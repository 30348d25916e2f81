//! The data pipeline end to end on a small synthetic package tree laid out like the fetched
//! Debian packages: discover → label → cut → split → manifest → dataset → mel cache → batches.

use smg_data::{build_sound_corpus, read_manifest, write_manifest, ClipConfig, Dataset, Split};
use std::collections::{HashMap, HashSet};
use std::path::Path;

fn tone(seconds: f32, freq: f32, sr: u32) -> Vec<f32> {
    (0..(seconds * sr as f32) as usize).map(|i| 0.4 * (2.0 * std::f32::consts::PI * freq * i as f32 / sr as f32).sin()).collect()
}

fn write(path: &Path, x: &[f32], sr: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    smg_audio::write_wav(path, x, sr, smg_audio::WavEncoding::Pcm16).unwrap();
}

/// 3 categories × 5 recordings, one long recording cut into several clips, one unlabelled file.
fn fake_packages(dir: &Path) {
    let sp = dir.join("deb/sonic-pi-samples/usr/share/sonic-pi/samples");
    for i in 0..5 {
        let mut x = vec![0.0; 3000];
        x.extend(tone(0.5, 100.0 + 10.0 * i as f32, 44100));
        write(&sp.join(format!("bd_kit{i}.wav")), &x, 44100);
        write(&sp.join(format!("sn_kit{i}.wav")), &tone(0.3, 400.0, 44100), 44100);
    }
    let sc = dir.join("deb/scratch/usr/share/scratch/Media/Sounds/Animal");
    for i in 0..4 {
        write(&sc.join(format!("Dog{i}.wav")), &tone(1.0, 300.0, 22050), 22050);
    }
    write(&sc.join("Cat.wav"), &tone(8.0, 500.0, 11025), 11025); // 8 s -> 2 clips of 2.97 s + a 0.69 remainder
    write(&sp.join("qwertyuiop.wav"), &tone(0.5, 200.0, 22050), 22050);
}

#[test]
fn builds_a_labelled_split_corpus_and_loads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fake_packages(dir);
    let cfg = ClipConfig::small();
    let report = build_sound_corpus(dir, &cfg, false).unwrap();
    assert!(!report.up_to_date);
    assert_eq!(report.sources, 15);
    assert_eq!(report.unlabelled.len(), 1, "{:?}", report.unlabelled);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.clips, 14 + 3, "the 8 s recording gives 3 clips");

    let ds = Dataset::open_sound(dir, &cfg).unwrap();
    assert_eq!(ds.categories(), vec!["animal", "kick drum", "snare drum"]);
    for r in &ds.records {
        assert_eq!(r.samples, 256 * 256);
        assert!(r.audio_samples <= r.samples && r.audio_samples > 0);
        assert!(r.captions.len() >= 3, "{:?}", r.captions);
        let a = smg_audio::load(dir.join(&r.path)).unwrap();
        assert_eq!((a.sample_rate, a.frames()), (22050, r.samples));
        assert!((a.peak() - 0.95).abs() < 0.01 || r.piece > 0, "{}: peak {}", r.id, a.peak());
    }
    // Leading silence was trimmed: the kick starts within the first 512 samples.
    let kick = ds.records.iter().position(|r| r.id.ends_with("bd_kit0#0")).unwrap();
    let x = ds.audio(kick).unwrap();
    assert!(x[..512].iter().any(|v| v.abs() > 0.1));

    // Splits: by source, every category in every split (5 sources each), deterministic.
    let mut split_of_source: HashMap<&str, Split> = HashMap::new();
    for r in &ds.records {
        let prev = split_of_source.insert(&r.source, r.split);
        assert!(prev.is_none() || prev == Some(r.split), "{} is in two splits", r.source);
    }
    for cat in ["kick drum", "snare drum", "animal"] {
        let splits: HashSet<Split> = ds.records.iter().filter(|r| r.category == cat).map(|r| r.split).collect();
        assert_eq!(splits.len(), 3, "{cat}: {splits:?}");
    }

    // A second build does no work; the manifest round-trips.
    assert!(build_sound_corpus(dir, &cfg, false).unwrap().up_to_date);
    let again = dir.join("copy.jsonl");
    write_manifest(&again, &ds.records).unwrap();
    assert_eq!(read_manifest(&again).unwrap(), ds.records);

    // Mel cache: built once, then read back identically.
    let mt = smg_audio::MelTransform::hifigan();
    let cache = ds.mels(&mt, false).unwrap();
    assert_eq!(cache.mels.len(), ds.records.len());
    assert_eq!(cache.mels[0].dims(), &[80, 256]);
    let cache2 = ds.mels(&mt, false).unwrap();
    let d = (cache.mels[3].clone() - cache2.mels[3].clone()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(d, 0.0);
    let train = ds.split_indices(Split::Train);
    let b = smg_data::batches(&train, 4, 1, 0);
    let t = cache.batch(&b[0], &candle_core::Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[4, 80, 256]);
}

#[test]
fn bad_manifest_lines_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("m.jsonl");
    std::fs::write(&p, "{\"id\": 3}\n").unwrap();
    let e = read_manifest(&p).unwrap_err().to_string();
    assert!(e.contains("m.jsonl:1"), "{e}");
    let e = Dataset::open_sound(tmp.path(), &ClipConfig::small()).unwrap_err().to_string();
    assert!(e.contains("smg data build"), "{e}");
}

#[test]
fn music_set_is_split_by_tune_or_groove_and_keeps_tags() {
    use smg_data::{build_set, SetKind};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let render = dir.join("music/render");
    let mut lines = String::new();
    // 4 grooves rendered twice each, and 4 tunes: 12 renders of 8 s (3 clips each).
    for g in 0..4 {
        for take in 0..2 {
            let file = format!("music/render/mma-g{g}-{take}.wav");
            write(&dir.join(&file), &tone(8.0, 220.0 + 30.0 * g as f32, 22050), 22050);
            lines += &format!(
                "{{\"file\": \"{file}\", \"source\": \"mma:g{g}\", \"kind\": \"mma groove\", \"genre\": \"waltz\", \"instruments\": [\"piano\", \"bass\"], \"meter\": \"3/4\", \"tempo\": 120, \"mode\": \"major\", \"licence\": \"GPL-2+\", \"tags\": [\"3/4\", \"bass\", \"major\", \"medium tempo\", \"piano\", \"waltz\"]}}\n"
            );
        }
    }
    for t in 0..4 {
        let file = format!("music/render/abc-t{t}.wav");
        write(&dir.join(&file), &tone(8.0, 440.0, 22050), 22050);
        lines += &format!(
            "{{\"file\": \"{file}\", \"source\": \"tunes.abc#X{t}\", \"kind\": \"abc tune\", \"genre\": \"jig\", \"instruments\": [\"violin\"], \"meter\": \"6/8\", \"tempo\": 80, \"mode\": \"dorian\", \"licence\": \"PD\", \"tags\": [\"6/8\", \"dorian\", \"jig\", \"slow tempo\", \"violin\"]}}\n"
        );
    }
    std::fs::create_dir_all(&render).unwrap();
    std::fs::write(render.join("sources.jsonl"), lines).unwrap();
    let cfg = ClipConfig::small();
    let r = build_set(dir, SetKind::Music, &cfg, false).unwrap();
    assert_eq!((r.sources, r.clips), (12, 12 * 3));
    let ds = Dataset::open(dir, SetKind::Music, &cfg).unwrap();
    let mut split_of: HashMap<&str, Split> = HashMap::new();
    for rec in &ds.records {
        assert_eq!(rec.set, "music");
        assert!(rec.tags.len() >= 5, "{:?}", rec.tags);
        assert!(rec.captions.iter().any(|c| c.contains(&rec.category)), "{:?}", rec.captions);
        let prev = split_of.insert(&rec.source, rec.split);
        assert!(prev.is_none() || prev == Some(rec.split), "{} in two splits", rec.source);
    }
    assert_eq!(split_of.len(), 8, "4 grooves + 4 tunes are the split groups");
}
