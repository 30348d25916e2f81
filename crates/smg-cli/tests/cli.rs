//! The `smg` binary end to end: info, mel (matched against the librosa fixture), griffin-lim,
//! and one-line errors with a non-zero exit on bad input.

use ndarray::Array2;
use std::path::PathBuf;
use std::process::Command;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(rel)
}

fn smg(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smg")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn info_reports_format_rate_channels_duration_peak() {
    let (ok, out, err) = smg(&["info", fixture("audio/speech.wav").to_str().unwrap()]);
    assert!(ok, "{err}");
    for key in ["format: WAV PCM 16-bit", "sample rate: 22050 Hz", "channels: 1", "duration:", "peak:"] {
        assert!(out.contains(key), "missing {key:?} in\n{out}");
    }
}

#[test]
fn mel_matches_the_librosa_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("speech.npy");
    let (ok, _, err) = smg(&["mel", fixture("audio/speech.wav").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let ours: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    let reference: Array2<f32> = ndarray_npy::read_npy(fixture("audio/speech.logmel.npy")).unwrap();
    assert_eq!(ours.dim(), reference.dim());
    let err = ours.iter().zip(reference.iter()).filter(|(_, r)| **r > -9.0).map(|(a, r)| (a - r).abs()).fold(0f32, f32::max);
    assert!(err < 5e-3, "max |diff| {err}");

    let wav = dir.path().join("gl.wav");
    let (ok, _, err) = smg(&["griffin-lim", out.to_str().unwrap(), "-o", wav.to_str().unwrap(), "--iterations", "16"]);
    assert!(ok, "{err}");
    let (ok, info, _) = smg(&["info", wav.to_str().unwrap()]);
    assert!(ok && info.contains("sample rate: 22050 Hz"), "{info}");
}

#[test]
fn errors_are_one_line_with_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let bad_npy = dir.path().join("bad.npy");
    std::fs::write(&bad_npy, b"not numpy").unwrap();
    let out = dir.path().join("x.npy");
    let wrong_shape = dir.path().join("wrong_shape.npy");
    ndarray_npy::write_npy(&wrong_shape, &Array2::<f32>::zeros((64, 10))).unwrap();
    let nan_mel = dir.path().join("nan.npy");
    let mut m = Array2::<f32>::zeros((80, 10));
    m[[1, 1]] = f32::NAN;
    ndarray_npy::write_npy(&nan_mel, &m).unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let cases: Vec<Vec<String>> = vec![
        vec!["info".into(), empty.display().to_string()],
        vec!["info".into(), d.clone()],
        vec!["mel".into(), fixture("audio/mel_basis.npy").display().to_string(), "-o".into(), out.display().to_string()],
        vec!["griffin-lim".into(), bad_npy.display().to_string(), "-o".into(), format!("{d}/y.wav")],
        vec!["griffin-lim".into(), wrong_shape.display().to_string(), "-o".into(), format!("{d}/y.wav")],
        vec!["griffin-lim".into(), nan_mel.display().to_string(), "-o".into(), format!("{d}/y.wav")],
    ];
    for args in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = smg(&a);
        assert!(!ok, "{a:?} should fail");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{a:?}: not one line:\n{err}");
        assert!(lines[0].starts_with("error: "), "{a:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    }
    assert!(!out.exists(), "a failed command must not leave output behind");
    assert!(!dir.path().join("y.wav").exists(), "a failed command must not leave output behind");
}

#[test]
fn tokenize_and_detokenize_with_a_checkpoint() {
    use smg_tokenizer::{Config, TrainConfig, Trainer};
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("tok");
    // A tiny tokenizer over the real 80-band mel, trained for one step: enough to test the CLI.
    let cfg = Config {
        ch: 8,
        ch_mult: vec![1, 1, 1, 1, 1],
        num_res_blocks: 1,
        attn_resolutions: vec![16],
        resolution: 256,
        z_channels: 8,
        embed_dim: 8,
        n_embed: 16,
        num_groups: 4,
        ..Config::small()
    };
    let tc = TrainConfig { steps: 1, batch_size: 2, val_every: 0, ..Default::default() };
    let mut t = Trainer::new(&cfg, tc, &ckpt, false, &candle_core::Device::Cpu).unwrap();
    let x = candle_core::Tensor::zeros((80, 256), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    t.fit(&[x.clone(), x], &[], false).unwrap();
    let tokens = dir.path().join("t.npy");
    let c = ckpt.to_str().unwrap();
    let (ok, _, err) = smg(&["tokenize", fixture("audio/speech.wav").to_str().unwrap(), "-o", tokens.to_str().unwrap(), "--checkpoint", c]);
    assert!(ok, "{err}");
    let grid: Array2<u32> = ndarray_npy::read_npy(&tokens).unwrap();
    assert_eq!(grid.dim(), (5, 25), "395 frames pad to 400 = 25 columns of 16");
    assert!(grid.iter().all(|&v| v < 16));
    let wav = dir.path().join("back.wav");
    let (ok, _, err) = smg(&["detokenize", tokens.to_str().unwrap(), "-o", wav.to_str().unwrap(), "--checkpoint", c]);
    assert!(ok, "{err}");
    let (ok, info, _) = smg(&["info", wav.to_str().unwrap()]);
    assert!(ok && info.contains("frames: 102400"), "{info}");
    let (ok, _, err) = smg(&[
        "tokenize",
        fixture("audio/speech.wav").to_str().unwrap(),
        "-o",
        tokens.to_str().unwrap(),
        "--checkpoint",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("no trained tokenizer"), "{err}");
}

/// The CLI reads fetched assets from SMG_DATA_DIR (scripts/test.sh sets it) or data/.
fn minilm_present() -> bool {
    let d =
        std::env::var_os("SMG_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    let ok = d.join("weights/minilm/model.safetensors").is_file();
    assert!(ok, "MiniLM is missing under {}: run `bash scripts/setup.sh`", d.display());
    ok
}

#[test]
fn embed_text_prints_unit_vectors_and_states_truncation() {
    minilm_present();
    let long = "a train whistle far away ".repeat(80);
    let (ok, out, err) = smg(&["embed", "text", "a dog barking", "", &long]);
    assert!(ok, "{err}");
    let rows: Vec<Vec<f32>> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.len(), 384);
        let n: f32 = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-3, "norm {n}");
    }
    assert!(err.contains("prompt 3") && err.contains("only the first 256"), "{err}");
}

#[test]
fn embed_audio_with_the_shipped_encoder() {
    let (ok, out, err) = smg(&["embed", "audio", fixture("audio/speech.wav").to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: Vec<f32> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v.len(), 384);
    let (ok, _, err) = smg(&["embed", "audio", fixture("audio/speech.wav").to_str().unwrap(), "--checkpoint", "/nonexistent"]);
    assert!(!ok && err.contains("missing") && err.lines().count() == 1, "{err}");
}

/// `smg generate` with the shipped generator: a 2.97 s WAV, the same bytes for the same seed,
/// different audio for another seed, and absurd settings refused in one line without output.
#[test]
fn generate_is_seeded_and_refuses_absurd_settings() {
    minilm_present();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["generate", "a dog barking", "-o", out, "--vocoder", "griffin-lim", "--griffin-lim", "4"];
        args.extend_from_slice(extra);
        smg(&args)
    };
    let (ok, _, err) = run(&p("a.wav"), &["--seed", "1", "--steps", "8"]);
    assert!(ok, "{err}");
    // The output line names the sampler: the small generator's preset, with the flag given.
    assert!(err.contains("sampler: 8 iterations") && err.contains("draw temperature:0.8"), "{err}");
    assert!(err.contains("rescaled (φ 1)") && err.contains("sampler.json and the flags given"), "{err}");
    let (ok, _, err) = run(&p("b.wav"), &["--seed", "1", "--steps", "8"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&p("c.wav"), &["--seed", "2", "--steps", "8"]);
    assert!(ok, "{err}");
    let (a, b, c) = (std::fs::read(p("a.wav")).unwrap(), std::fs::read(p("b.wav")).unwrap(), std::fs::read(p("c.wav")).unwrap());
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c, "another seed, other audio");
    let (ok, info, _) = smg(&["info", &p("a.wav")]);
    assert!(ok && info.contains("frames: 65536"), "{info}");
    // The shipped medium models, which `auto` picks outside quick mode: the same window length.
    if PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/checkpoints/maskgit-medium").is_dir() {
        let (ok, _, err) = run(&p("m.wav"), &["--seed", "1", "--steps", "8", "--model", "medium"]);
        assert!(ok, "{err}");
        assert!(err.contains("CFG 3 constant, Gumbel 1.5 annealed, draw categorical"), "the medium generator's preset: {err}");
        let (ok, info, _) = smg(&["info", &p("m.wav")]);
        assert!(ok && info.contains("frames: 65536"), "{info}");
        assert_ne!(a, std::fs::read(p("m.wav")).unwrap(), "another generator, other audio");
    }
    for (extra, needle) in [
        (&["--steps", "0"][..], "at least 1 iteration"),
        (&["--steps", "500"][..], "at most one iteration"),
        (&["--temperature=-1", "--steps", "8"][..], "temperature"),
    ] {
        let (ok, _, err) = run(&p("bad.wav"), extra);
        assert!(!ok && err.contains(needle) && err.trim().lines().count() == 1, "{extra:?}: {err}");
        assert!(!dir.path().join("bad.wav").exists());
    }
    // A generator folder whose sampler.json is malformed is refused, naming the file.
    let gen = dir.path().join("gen");
    std::fs::create_dir_all(&gen).unwrap();
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/checkpoints/maskgit-small");
    for f in ["maskgit.json", "maskgit.safetensors"] {
        std::fs::copy(shipped.join(f), gen.join(f)).unwrap();
    }
    std::fs::write(gen.join("sampler.json"), r#"{"draw": "loudest"}"#).unwrap();
    let (ok, _, err) = run(&p("bad.wav"), &["--generator", gen.to_str().unwrap()]);
    assert!(!ok && err.contains("sampler.json") && err.contains("loudest") && err.trim().lines().count() == 1, "{err}");
    assert!(!dir.path().join("bad.wav").exists());
    // `--draw` reaches the sampler (same seed, a nucleus draw: other audio) and bad draws are refused.
    let (ok, _, err) = run(&p("d.wav"), &["--seed", "1", "--steps", "8", "--draw", "top-p:0.5"]);
    assert!(ok, "{err}");
    assert_ne!(a, std::fs::read(p("d.wav")).unwrap(), "a nucleus draw changes the tokens");
    for (draw, needle) in [("top-p:1.5", "top-p must be in (0, 1]"), ("top-k:0", "at least 1 code"), ("nucleus", "a draw is categorical")] {
        let (ok, _, err) = run(&p("bad.wav"), &["--draw", draw]);
        assert!(!ok && err.contains(needle), "{draw}: {err}");
        assert!(!dir.path().join("bad.wav").exists());
    }
}

#[test]
fn eval_sustain_scores_each_prompt_over_its_seeds() {
    minilm_present();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.json");
    let (ok, table, err) = smg(&["eval", "sustain", "a church bell", "rain", "--seeds", "2", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(table.contains("| a church bell |") && table.contains("| rain |"), "{table}");
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for r in rows.as_array().unwrap() {
        let s: Vec<f64> = r["sustain"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|v| *v > 0.0 && *v <= 1.0), "{s:?}");
        let span: Vec<f64> = r["span"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        // The span runs from the first to the last loud frame, so it covers every loud frame.
        assert!(span.iter().zip(&s).all(|(p, s)| p >= s && *p <= 1.0), "{span:?} {s:?}");
    }
    let (ok, _, err) = smg(&["eval", "sustain", "--seeds", "0"]);
    assert!(!ok && err.contains("--seeds"), "{err}");
    // The small generator's preset (its sampler.json), with a warmer re-masking temperature.
    let warm = dir.path().join("warm.json");
    let args =
        ["eval", "sustain", "a church bell", "--seeds", "1", "--draw", "temperature:0.8", "--cfg-rescale", "1", "--temperature", "3"];
    let (ok, table, err) = smg(&[&args[..], &["--out", warm.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    assert!(table.contains("rescale 1") && table.contains("Gumbel 3 annealed") && table.contains("temperature:0.8 draws"), "{table}");
    let bell = |f: &std::path::Path| {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(f).unwrap()).unwrap()[0]["sustain"][0].clone()
    };
    assert_ne!(bell(&warm), bell(&out), "the sampler settings changed nothing");
    let bad: [(&[&str], &str); 3] =
        [(&["--temperature=-1"], "--temperature"), (&["--cfg-rescale", "2"], "rescale"), (&["--draw", "top-k:0"], "--draw")];
    for (flags, needle) in bad {
        let (ok, _, err) = smg(&[&["eval", "sustain", "rain", "--seeds", "1"], flags].concat());
        assert!(!ok && err.contains(needle), "{flags:?}: {err}");
    }
}

/// A stereo 48 kHz 16-bit recording of `seconds`, written as WAV.
fn stereo_recording(path: &std::path::Path, seconds: f64) {
    let spec = hound::WavSpec { channels: 2, sample_rate: 48000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(seconds * 48000.0) as usize {
        let t = i as f64 / 48000.0;
        w.write_sample((8000.0 * (2.0 * std::f64::consts::PI * 330.0 * t).sin()) as i16).unwrap();
        w.write_sample((6000.0 * (2.0 * std::f64::consts::PI * 523.0 * t).sin()) as i16).unwrap();
    }
    w.finalize().unwrap();
}

fn samples(path: &std::path::Path) -> (hound::WavSpec, Vec<i16>) {
    let r = hound::WavReader::open(path).unwrap();
    (r.spec(), r.into_samples::<i16>().map(|s| s.unwrap()).collect())
}

/// Inpainting and bandwidth extension give the whole recording back: its length, rate,
/// channels and encoding, with every sample outside the edit and its crossfades unchanged, and
/// errors that name the recording's real duration.
#[test]
fn inpaint_and_bandwidth_extension_keep_the_whole_recording() {
    let dir = tempfile::tempdir().unwrap();
    let speech = fixture("audio/speech.wav");
    let out = dir.path().join("inpainted.wav");
    let (ok, _, err) = smg(&[
        "inpaint",
        speech.to_str().unwrap(),
        "--from",
        "1.0",
        "--to",
        "2.0",
        "-o",
        out.to_str().unwrap(),
        "--vocoder",
        "griffin-lim",
        "--griffin-lim",
        "4",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("as the input") && err.contains("1 window"), "{err}");
    let (ok, info, _) = smg(&["info", out.to_str().unwrap()]);
    assert!(ok && info.contains("frames: 101163"), "the 4.59 s input comes back whole: {info}");

    let stereo = dir.path().join("stereo.wav");
    stereo_recording(&stereo, 12.0);
    let out = dir.path().join("stereo_out.wav");
    let (ok, _, err) = smg(&[
        "inpaint",
        stereo.to_str().unwrap(),
        "--from",
        "5",
        "--to",
        "7",
        "-o",
        out.to_str().unwrap(),
        "--vocoder",
        "griffin-lim",
        "--griffin-lim",
        "4",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("48000 Hz") && err.contains("2 channels") && err.contains("mono"), "the output line says what happened: {err}");
    let ((si, xi), (so, xo)) = (samples(&stereo), samples(&out));
    assert_eq!(si, so);
    assert_eq!(xi.len(), xo.len());
    let (c0, c1) = (2 * (5 * 48000 - 960), 2 * (7 * 48000 + 960));
    assert!(
        xi.iter().zip(&xo).enumerate().all(|(k, (a, b))| (c0..c1).contains(&k) || a == b),
        "outside 4.98-7.02 s every sample is the input's"
    );
    assert!(xi[c0..c1] != xo[c0..c1]);

    let out = dir.path().join("bwe.wav");
    let (ok, _, err) = smg(&[
        "bwe",
        stereo.to_str().unwrap(),
        "--cutoff",
        "2000",
        "-o",
        out.to_str().unwrap(),
        "--vocoder",
        "griffin-lim",
        "--griffin-lim",
        "4",
    ]);
    assert!(ok && err.contains("below the cut-off kept"), "{err}");
    assert_eq!(samples(&out).1.len(), xi.len());
    let (ok, _, err) =
        smg(&["bwe", speech.to_str().unwrap(), "--cutoff", "2000", "--lfr", "-o", out.to_str().unwrap(), "--griffin-lim", "4"]);
    assert!(ok, "{err}");

    let bad = dir.path().join("bad.wav");
    for (args, needle) in [
        (vec!["--from", "2.0", "--to", "1.0"], "empty or negative"),
        (vec!["--from", "15", "--to", "17"], "after the end of the recording (12.000 s long)"),
        (vec!["--from", "11", "--to", "13"], "ends at 13 s, after the end of the recording (12.000 s long)"),
        (vec!["--from", "1", "--to", "2", "--crossfade-ms", "80"], "--crossfade-ms"),
        (vec!["--from", "1", "--to", "2", "--vocoder", "wavenet"], "--vocoder must be"),
        (vec!["--from", "1", "--to", "2", "--model", "huge"], "--model must be small, medium or auto"),
    ] {
        let mut a = vec!["inpaint", stereo.to_str().unwrap(), "-o", bad.to_str().unwrap()];
        a.extend(args);
        let (ok, _, err) = smg(&a);
        assert!(!ok && err.contains(needle) && err.trim().lines().count() == 1, "{needle}: {err}");
        assert!(!bad.exists(), "nothing written on error");
    }
}

/// `smg generate --duration` longer than a window: outpainted to exactly that length.
#[test]
fn long_generation_by_outpainting() {
    minilm_present();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("long.wav");
    let (ok, _, err) = smg(&[
        "generate",
        "rain on a roof",
        "--duration",
        "6.5",
        "-o",
        out.to_str().unwrap(),
        "--vocoder",
        "griffin-lim",
        "--griffin-lim",
        "4",
        "--steps",
        "8",
    ]);
    assert!(ok && err.contains("windows"), "{err}");
    let (ok, info, _) = smg(&["info", out.to_str().unwrap()]);
    assert!(ok && info.contains(&format!("frames: {}", (6.5f64 * 22050.0).round() as usize)), "{info}");
    let (ok, _, err) = smg(&["generate", "rain", "--duration=-1", "-o", out.to_str().unwrap()]);
    assert!(!ok && err.contains("duration"), "{err}");
}

#[test]
fn fad_between_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for f in ["speech.wav", "chirp.wav", "noise_bursts.wav"] {
        std::fs::copy(fixture(&format!("audio/{f}")), a.join(f)).unwrap();
        std::fs::copy(fixture(&format!("audio/{f}")), b.join(f)).unwrap();
    }
    let report = dir.path().join("fad.json");
    let fad = |b: &std::path::Path| -> f64 {
        let (ok, out, err) =
            smg(&["fad", a.to_str().unwrap(), b.to_str().unwrap(), "--embedder", "mel", "--out", report.to_str().unwrap()]);
        assert!(ok && out.starts_with("FAD-mel "), "{out} {err}");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        v["fad"].as_f64().unwrap()
    };
    assert!(fad(&b).abs() < 1e-3, "same clips");
    std::fs::remove_file(b.join("speech.wav")).unwrap();
    std::fs::copy(fixture("audio/tone440.flac"), b.join("tone.flac")).unwrap();
    assert!(fad(&b) > 1.0, "different clips");
    // the default embedder (aisfx) reads the fetched weights
    let (ok, out, err) = smg(&["fad", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(ok && out.starts_with("FAD-aisfx "), "{out} {err}");
    let (ok, _, err) = smg(&["fad", a.to_str().unwrap(), b.to_str().unwrap(), "--embedder", "openl3"]);
    assert!(!ok && err.contains("unknown embedder"), "{err}");
    std::fs::remove_file(b.join("tone.flac")).unwrap();
    std::fs::remove_file(b.join("chirp.wav")).unwrap();
    let (ok, _, err) = smg(&["fad", a.to_str().unwrap(), b.to_str().unwrap(), "--embedder", "mel"]);
    assert!(!ok && err.contains("at least 2"), "{err}");
}

#[test]
fn eval_tokenizer_reproduces_the_documented_held_out_l1() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("tok.json");
    let tok = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/checkpoints/tokenizer-small");
    let (ok, out, err) =
        smg(&["eval", "tokenizer", tok.to_str().unwrap(), "--corpus", "small", "--split", "valid", "--out", report.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("| tokenizer | parameters | mel L1 |"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let t = &v["tokenizers"][0];
    // data/checkpoints/tokenizer-small/TRAINING.md: valid whole-clip L1 0.0556, 497 of 512 codes
    let l1 = t["mel_l1"].as_f64().unwrap();
    assert!((l1 - 0.0556).abs() < 0.002, "L1 {l1}");
    assert!((480..=512).contains(&t["codes_used"].as_u64().unwrap()), "{t}");
    let (real, rec) = (v["real_accuracy"].as_f64().unwrap(), t["judge_accuracy"].as_f64().unwrap());
    assert!(real > 3.0 * v["chance"].as_f64().unwrap() && rec > 0.0 && rec <= 1.0, "{v}");
    // FAD-mel of the decoder's own mels, on all statistics and then block by block.
    let fad = t["fad_mel"].as_array().unwrap();
    let names: Vec<&str> = fad.iter().map(|b| b[0].as_str().unwrap()).collect();
    assert_eq!(names[..4], ["all", "band means", "band spreads", "frame-to-frame change"], "{t}");
    assert!(fad.iter().all(|b| b[1].as_f64().unwrap().is_finite() && b[1].as_f64().unwrap() >= 0.0), "{t}");
    assert!(fad[0][1].as_f64().unwrap() > 0.0 && out.contains("| tokenizer | all | band means |"), "{out}");
    let (ok, _, err) = smg(&["eval", "tokenizer", tok.to_str().unwrap(), "--corpus", "huge"]);
    assert!(!ok && err.contains("--corpus must be small or medium"), "{err}");
    let (ok, _, err) = smg(&["eval", "tokenizer", dir.path().to_str().unwrap()]);
    assert!(!ok && err.contains("loading the tokenizer"), "{err}");
}

#[test]
fn half_checkpoint_loads_in_place_of_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/checkpoints/tokenizer-small");
    let half = dir.path().join("half");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::copy(shipped.join("config.json"), half.join("config.json")).unwrap();
    let (w, h) = (shipped.join("tokenizer.safetensors"), half.join("tokenizer.safetensors"));
    let (ok, out, err) = smg(&["half", w.to_str().unwrap(), h.to_str().unwrap()]);
    assert!(ok && out.contains("largest change"), "{out} {err}");
    let ratio = std::fs::metadata(&h).unwrap().len() as f64 / std::fs::metadata(&w).unwrap().len() as f64;
    assert!((0.45..0.6).contains(&ratio), "size ratio {ratio}");
    let grid = |ckpt: &std::path::Path| -> Array2<u32> {
        let t = dir.path().join("t.npy");
        let (ok, _, err) = smg(&[
            "tokenize",
            fixture("audio/speech.wav").to_str().unwrap(),
            "-o",
            t.to_str().unwrap(),
            "--checkpoint",
            ckpt.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        ndarray_npy::read_npy(&t).unwrap()
    };
    let (a, b) = (grid(&shipped), grid(&half));
    let same = a.iter().zip(b.iter()).filter(|(x, y)| x == y).count() as f64 / a.len() as f64;
    assert!(same > 0.9, "only {same:.2} of the tokens agree");
    let (ok, _, err) = smg(&["half", w.to_str().unwrap(), w.to_str().unwrap()]);
    assert!(!ok && err.contains("overwrite"), "{err}");
    let (ok, _, err) = smg(&["half", fixture("audio/speech.wav").to_str().unwrap(), h.to_str().unwrap()]);
    assert!(!ok && err.contains("reading"), "{err}");
}

#[test]
fn tokenizer_training_refuses_bad_loss_weights_and_decoder_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    for flag in ["--feature-matching=-1", "--disc-weight=NaN", "--decoder-width=2,2", "--disc-ndf=0"] {
        let (ok, _, err) = smg(&["train", "tokenizer", "--config", "small", "--steps", "1", flag, "--out", out.to_str().unwrap()]);
        let name = flag.split('=').next().unwrap();
        assert!(!ok && err.contains(name), "{flag}: {err}");
        assert!(!out.exists(), "nothing is written for a refused run");
    }
}

/// A committed report of `smg eval generation` (the medium generator through the first
/// adversarial decoder); the tests below read its numbers.
fn first_decoder_aisfx_report() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/checkpoints/medium-eval/first-decoder/generation_medium_aisfx.json")
}

#[test]
fn a_saved_generation_report_prints_its_tables_and_bad_ones_are_named() {
    let report = first_decoder_aisfx_report();
    let (ok, out, err) = smg(&["eval", "report", report.to_str().unwrap()]);
    assert!(ok, "{err}");
    // The real clips pass 39 of the 49 categories; the reconstructions 17, 16 of those 39.
    assert!(out.contains("| real test clips | 722 | 0.756 | 37.1 | 0.574 | – | 39 of 49 |"), "{out}");
    assert!(out.contains("| tokenizer reconstructions | 722 | 0.353 | 17.3 | 0.122 | – | 17 of 49 (16 of the real clips' 39) |"), "{out}");
    assert!(out.contains("| category | held-out clips |"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"sets\": 3}").unwrap();
    let (ok, _, err) = smg(&["eval", "report", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("not a report of `smg eval generation`"), "{err}");
    let (ok, _, err) = smg(&["eval", "report", dir.path().join("none.json").to_str().unwrap()]);
    assert!(!ok && err.contains("reading"), "{err}");
}

#[cfg(unix)]
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let report = first_decoder_aisfx_report();
    let mut child = Command::new(env!("CARGO_BIN_EXE_smg"))
        .args(["eval", "report", report.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before the first line is written
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("internal error") && out.status.code() != Some(101), "{:?}: {err}", out.status);
}
