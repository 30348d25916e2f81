//! Decoding every WAV flavour and the compressed formats of the corpus, mixing, resampling,
//! and clear errors on bad input (issue: empty file, truncated header, zero samples, NaN/Inf,
//! 1-sample file, unsupported codec, a directory).

use smg_audio::{AudioError, MelTransform};
use smg_tests::fixture;
use std::path::{Path, PathBuf};

fn tone(n: usize, sr: u32, freq: f32, amp: f32) -> Vec<f32> {
    (0..n).map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / sr as f32).sin()).collect()
}

/// Dominant frequency by counting rising zero crossings.
fn zero_crossing_freq(x: &[f32], sr: u32) -> f32 {
    let n = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    n as f32 * sr as f32 / x.len() as f32
}

fn write_wav_int(path: &Path, bits: u16, channels: u16, data: &[Vec<f32>], sr: u32) {
    let spec = hound::WavSpec { channels, sample_rate: sr, bits_per_sample: bits, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let full = ((1i64 << (bits - 1)) - 1) as f32;
    for i in 0..data[0].len() {
        for ch in data {
            let v = (ch[i] * full).round() as i32;
            if bits == 8 {
                w.write_sample(v as i8).unwrap();
            } else {
                w.write_sample(v).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn reads_every_pcm_wav_width_and_float() {
    let dir = tempfile::tempdir().unwrap();
    let x = tone(2205, 22050, 441.0, 0.5);
    for bits in [8u16, 16, 24, 32] {
        let p = dir.path().join(format!("int{bits}.wav"));
        write_wav_int(&p, bits, 1, std::slice::from_ref(&x), 22050);
        let a = smg_audio::load(&p).unwrap();
        assert_eq!(a.format, format!("WAV PCM {bits}-bit"));
        let tol = if bits == 8 { 1.0 / 100.0 } else { 1e-4 };
        let err = a.channels[0].iter().zip(&x).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(err < tol, "{bits}-bit: error {err}");
    }
    let p = dir.path().join("float.wav");
    smg_audio::write_wav(&p, &x, 22050, smg_audio::WavEncoding::Float32).unwrap();
    let a = smg_audio::load(&p).unwrap();
    assert_eq!(a.channels[0], x);
    assert_eq!(a.format, "WAV float 32-bit");
}

#[test]
fn stereo_44k_is_mixed_and_resampled() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stereo.wav");
    let l = tone(44100, 44100, 500.0, 0.4);
    let r = tone(44100, 44100, 500.0, 0.2);
    write_wav_int(&p, 16, 2, &[l, r], 44100);
    let a = smg_audio::load(&p).unwrap();
    assert_eq!((a.channels.len(), a.sample_rate, a.frames()), (2, 44100, 44100));
    let mono = smg_audio::load_mono(&p, 22050).unwrap();
    assert_eq!(mono.len(), 22050);
    let peak = mono[2000..20000].iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!((peak - 0.3).abs() < 0.01, "mono peak {peak}");
    let f = zero_crossing_freq(&mono, 22050);
    assert!((f - 500.0).abs() < 5.0, "frequency {f}");
}

#[test]
fn decodes_flac_ogg_vorbis_and_mp3() {
    for (ext, codec) in [("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")] {
        let a = smg_audio::load(fixture(&format!("audio/tone440.{ext}"))).unwrap();
        assert!(a.format.starts_with(codec), "{ext}: {}", a.format);
        assert_eq!(a.sample_rate, 22050, "{ext}");
        assert!((a.duration_s() - 0.5).abs() < 0.12, "{ext}: duration {}", a.duration_s());
        let x = a.to_mono();
        // Codec delay and padding sit at the edges; measure in the middle.
        let f = zero_crossing_freq(&x[x.len() / 4..x.len() * 3 / 4], a.sample_rate);
        assert!((f - 440.0).abs() < 25.0, "{ext}: frequency {f}");
        assert!((a.peak() - 0.5).abs() < 0.08, "{ext}: peak {}", a.peak());
    }
}

#[test]
fn format_is_detected_by_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("actually_wav.ogg");
    std::fs::copy(fixture("audio/speech.wav"), &p).unwrap();
    assert!(smg_audio::load(&p).unwrap().format.starts_with("WAV"));
}

fn err_of(p: &Path) -> String {
    let e = smg_audio::load(p).unwrap_err();
    let s = e.to_string();
    assert!(s.contains(&p.display().to_string()) || matches!(e, AudioError::NoSamples { .. }), "error does not name the file: {s}");
    s
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let at = |n: &str| -> PathBuf { dir.path().join(n) };

    std::fs::write(at("empty.wav"), b"").unwrap();
    assert!(err_of(&at("empty.wav")).contains("empty"));

    let wav = std::fs::read(fixture("audio/speech.wav")).unwrap();
    std::fs::write(at("trunc.wav"), &wav[..30]).unwrap();
    assert!(err_of(&at("trunc.wav")).contains("truncated"), "{}", err_of(&at("trunc.wav")));
    std::fs::write(at("riff.wav"), &wav[..6]).unwrap();
    assert!(err_of(&at("riff.wav")).contains("corrupt"));

    smg_audio::write_wav(at("zero.wav"), &[], 22050, smg_audio::WavEncoding::Pcm16).unwrap();
    assert!(err_of(&at("zero.wav")).contains("no samples"));

    smg_audio::write_wav(at("nan.wav"), &[0.0; 8], 22050, smg_audio::WavEncoding::Float32).unwrap();
    let mut bytes = std::fs::read(at("nan.wav")).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(at("nan.wav"), &bytes).unwrap();
    let e = err_of(&at("nan.wav"));
    assert!(e.contains("NaN") && e.contains("sample 7"), "{e}");
    bytes[n - 4..].copy_from_slice(&f32::INFINITY.to_le_bytes());
    std::fs::write(at("inf.wav"), &bytes).unwrap();
    assert!(err_of(&at("inf.wav")).contains("inf"));

    // A 1-sample file loads, but a mel of it is refused with the reason.
    smg_audio::write_wav(at("one.wav"), &[0.5], 22050, smg_audio::WavEncoding::Pcm16).unwrap();
    let one = smg_audio::load(at("one.wav")).unwrap();
    let e = MelTransform::hifigan().log_mel(&one.to_mono()).unwrap_err().to_string();
    assert!(e.contains("too short"), "{e}");

    // Unsupported: a WAV whose codec is neither PCM nor float (format tag 0x0002, MS ADPCM).
    let mut adpcm = wav.clone();
    adpcm[20] = 2;
    adpcm[21] = 0;
    std::fs::write(at("adpcm.wav"), &adpcm).unwrap();
    let e = err_of(&at("adpcm.wav"));
    assert!(e.contains("unsupported") || e.contains("corrupt"), "{e}");
    std::fs::write(at("notes.txt"), b"just some text, no audio").unwrap();
    assert!(err_of(&at("notes.txt")).contains("unsupported audio format"));

    let e = err_of(dir.path());
    assert!(e.contains("directory"), "{e}");

    let e = smg_audio::load(at("missing.wav")).unwrap_err().to_string();
    assert!(e.contains("missing.wav") && e.contains("cannot read"), "{e}");

    // Wrong sample rate is named when a rate-checked mel is asked for.
    let e = MelTransform::hifigan().log_mel_at(&vec![0.0; 4096], 44100).unwrap_err().to_string();
    assert!(e.contains("22050") && e.contains("44100"), "{e}");
}
