//! Whole recordings through the windowed zero-shot tasks, on random weights: the output keeps
//! the input's length, rate, channels and sample format, every sample outside the edit and its
//! crossfades is the input's bit for bit, long gaps and long generation take several windows,
//! and bad input is refused with a message that names the problem.

mod common;

use candle_core::Tensor;
use smg_audio::{Audio, SampleFormat};
use smg_maskgit::{Guidance, Sampler};
use smg_pipeline::{Pipeline, Region, WindowOptions};

fn pipeline() -> Pipeline {
    common::pipeline(2)
}

fn sampler(seed: u64) -> Sampler {
    Sampler { iterations: 4, guidance: Box::new(Guidance::Off), seed, ..Default::default() }
}

/// A recording whose samples are exact 16-bit values, like a decoded PCM file.
fn recording(seconds: f64, rate: u32, channels: usize) -> Audio {
    let n = (seconds * rate as f64).round() as usize;
    let chans = (0..channels)
        .map(|c| {
            (0..n)
                .map(|i| {
                    let t = i as f64 / rate as f64;
                    let v = 0.3 * (2.0 * std::f64::consts::PI * (220.0 * (c + 1) as f64 + 40.0 * t) * t).sin()
                        + 0.05 * ((i * 7919 + c) % 97) as f64 / 97.0;
                    ((v * 32768.0).round() / 32768.0) as f32
                })
                .collect()
        })
        .collect();
    Audio { channels: chans, sample_rate: rate, format: "WAV PCM 16-bit".into(), sample_format: SampleFormat::Int(16) }
}

fn null(p: &Pipeline) -> Tensor {
    p.condition(None).unwrap()
}

fn untouched_outside(input: &Audio, out: &Audio, from_s: f64, to_s: f64, fade_s: f64) {
    assert_eq!(out.sample_rate, input.sample_rate);
    assert_eq!(out.channels.len(), input.channels.len());
    let sr = input.sample_rate as f64;
    let (a, b) = (((from_s - fade_s) * sr).floor().max(0.0) as usize, ((to_s + fade_s) * sr).ceil() as usize);
    for (ci, (x, y)) in input.channels.iter().zip(&out.channels).enumerate() {
        assert_eq!(x.len(), y.len(), "channel {ci} keeps its length");
        for i in (0..x.len()).filter(|i| *i < a || *i >= b) {
            assert_eq!(x[i].to_bits(), y[i].to_bits(), "channel {ci}, sample {i} ({:.4} s) is the input's", i as f64 / sr);
        }
        assert!(y.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn inpainting_a_long_stereo_recording_changes_only_the_range() {
    let p = pipeline();
    let input = recording(35.0, 44100, 2);
    let opt = WindowOptions::default();
    let mut calls = 0;
    let e = p.inpaint_recording(&input, 5.0, 7.0, &null(&p), &sampler(3), &opt, &mut |_, _| calls += 1).unwrap();
    assert_eq!(e.windows, 1);
    assert!(calls >= 2, "progress is reported");
    untouched_outside(&input, &e.audio, 5.0, 7.0, 0.05);
    let (c0, c1) = e.changed;
    assert_eq!((c0, c1), (5 * 44100 - 882, 7 * 44100 + 882), "20 ms crossfades each side");
    // The new part is mono: the same in both channels, and not the input.
    let (l, r) = (&e.audio.channels[0][c0 + 882..c1 - 882], &e.audio.channels[1][c0 + 882..c1 - 882]);
    assert_eq!(l, r);
    assert_ne!(l, &input.channels[0][c0 + 882..c1 - 882]);
    assert!(e.notes.iter().any(|n| n.contains("mono")) && e.notes.iter().any(|n| n.contains("44100")));
    // Same seed, same audio; another seed, other audio.
    let again = p.inpaint_recording(&input, 5.0, 7.0, &null(&p), &sampler(3), &opt, &mut |_, _| {}).unwrap();
    assert_eq!(again.audio.channels, e.audio.channels);
    let other = p.inpaint_recording(&input, 5.0, 7.0, &null(&p), &sampler(4), &opt, &mut |_, _| {}).unwrap();
    assert_ne!(other.audio.channels, e.audio.channels);
}

/// Energy of `x` in `[lo, hi)` Hz (one DFT over the whole slice).
fn band_energy(x: &[f32], sr: f64, lo: f64, hi: f64) -> f64 {
    let n = x.len();
    let (k0, k1) = ((lo * n as f64 / sr).ceil() as usize, (hi * n as f64 / sr).floor() as usize);
    (k0..k1.min(n / 2))
        .map(|k| {
            let w = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            let (re, im) = x
                .iter()
                .enumerate()
                .fold((0.0, 0.0), |(re, im), (i, &v)| (re + v as f64 * (w * i as f64).cos(), im - v as f64 * (w * i as f64).sin()));
            re * re + im * im
        })
        .sum()
}

#[test]
fn a_painted_region_changes_only_its_band_and_its_time() {
    let p = pipeline();
    let input = recording(6.0, 22050, 1);
    let edges = p.grid().row_edges_hz(&p.mel.config);
    let (r0, r1) = (2, 4);
    let region = Region { from_s: 2.0, to_s: 3.0, rows: Some((r0, r1)) };
    let opt = WindowOptions::default();
    let e = p.inpaint_region(&input, region, &null(&p), &sampler(1), &opt, &mut |_, _| {}).unwrap();
    untouched_outside(&input, &e.audio, 2.0, 3.0, 0.05);
    assert!(!e.history.is_empty() || e.windows == 1);
    // Inside the time range, well below the band the recording is (nearly) its own; the band
    // itself is the model's.
    let (a, b) = (2 * 22050 + 2205, 3 * 22050 - 2205);
    let (x, y) = (&input.channels[0][a..b], &e.audio.channels[0][a..b]);
    let diff: Vec<f32> = x.iter().zip(y).map(|(u, v)| v - u).collect();
    let below = band_energy(&diff, 22050.0, 0.0, edges[r0] * 0.7) / band_energy(x, 22050.0, 0.0, edges[r0] * 0.7).max(1e-9);
    assert!(below < 1e-3, "relative change below the band: {below}");
    assert!(band_energy(&diff, 22050.0, edges[r0] * 1.2, edges[r1] * 0.9) > 0.0, "the band changed");
    // Rows out of the grid are refused.
    let bad = Region { rows: Some((3, 3)), ..region };
    let err = p.inpaint_region(&input, bad, &null(&p), &sampler(1), &opt, &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("rows 3..3"), "{err}");
}

#[test]
fn a_gap_longer_than_a_window_takes_several_and_ends_at_the_edges() {
    let p = pipeline();
    let input = recording(20.0, 22050, 1);
    let opt = WindowOptions { crossfade_s: 0.05, ..Default::default() };
    let e = p.inpaint_recording(&input, 2.5, 11.0, &null(&p), &sampler(0), &opt, &mut |_, _| {}).unwrap();
    assert!(e.windows >= 4, "{} windows", e.windows);
    untouched_outside(&input, &e.audio, 2.5, 11.0, 0.05);
    // Gaps at the very start and the very end: no crossfade outside the recording.
    let e = p.inpaint_recording(&input, 0.0, 1.0, &null(&p), &sampler(0), &opt, &mut |_, _| {}).unwrap();
    untouched_outside(&input, &e.audio, 0.0, 1.0, 0.05);
    assert_eq!(e.changed.0, 0);
    let e = p.inpaint_recording(&input, 19.0, 20.0, &null(&p), &sampler(0), &opt, &mut |_, _| {}).unwrap();
    untouched_outside(&input, &e.audio, 19.0, 20.0, 0.05);
    assert_eq!(e.changed.1, input.frames());
}

#[test]
fn very_short_and_very_long_recordings() {
    let p = pipeline();
    // 0.1 s: shorter than one token column, still edited in place at its own length.
    let input = recording(0.1, 16000, 1);
    let e = p.inpaint_recording(&input, 0.02, 0.05, &null(&p), &sampler(0), &WindowOptions::default(), &mut |_, _| {}).unwrap();
    untouched_outside(&input, &e.audio, 0.02, 0.05, 0.02);
    // 10 minutes at 16 kHz: one window regenerated, nothing else touched.
    let input = recording(600.0, 16000, 1);
    let e = p.inpaint_recording(&input, 301.0, 302.0, &null(&p), &sampler(0), &WindowOptions::default(), &mut |_, _| {}).unwrap();
    assert_eq!(e.windows, 1);
    untouched_outside(&input, &e.audio, 301.0, 302.0, 0.02);
}

#[test]
fn errors_name_the_recording_and_the_problem() {
    let p = pipeline();
    let input = recording(4.4, 22050, 1);
    let opt = WindowOptions::default();
    let err = |from: f64, to: f64, input: &Audio, opt: &WindowOptions| {
        p.inpaint_recording(input, from, to, &null(&p), &sampler(0), opt, &mut |_, _| {}).unwrap_err().to_string()
    };
    let e = err(5.0, 7.0, &input, &opt);
    assert!(e.contains("after the end of the recording") && e.contains("4.400 s"), "{e}");
    let e = err(4.0, 7.0, &input, &opt);
    assert!(e.contains("ends at 7 s") && e.contains("4.400 s"), "{e}");
    let e = err(2.0, 1.0, &input, &opt);
    assert!(e.contains("empty or negative"), "{e}");
    let e = err(1.0, 2.0, &input, &WindowOptions { crossfade_s: 0.2, ..Default::default() });
    assert!(e.contains("crossfade"), "{e}");
    let tiny = recording(100.0 / 22050.0, 22050, 1);
    let e = err(0.0, 0.001, &tiny, &opt);
    assert!(e.contains("shorter than one mel frame"), "{e}");
    let mut nan = recording(1.0, 22050, 2);
    nan.channels[1][100] = f32::NAN;
    let e = err(0.1, 0.2, &nan, &opt);
    assert!(e.contains("channel 1") && e.contains("NaN"), "{e}");
    let many = Sampler { iterations: 200, ..sampler(0) };
    let e = p.inpaint_recording(&input, 1.0, 2.0, &null(&p), &many, &opt, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("at most one iteration per masked token"), "{e}");
}

#[test]
fn bandwidth_extension_of_a_whole_recording_keeps_the_low_band() {
    let p = pipeline();
    let input = recording(9.0, 32000, 2);
    let e =
        p.bandwidth_extension_recording(&input, 2000.0, true, &null(&p), &sampler(1), &WindowOptions::default(), &mut |_, _| {}).unwrap();
    assert!(e.windows >= 3, "{} windows", e.windows);
    assert_eq!(e.audio.sample_rate, 32000);
    for (x, y) in input.channels.iter().zip(&e.audio.channels) {
        assert_eq!(x.len(), y.len());
        // Below the cut-off the output is the input: compare low-passed versions.
        let h = smg_audio::splice::lowpass_fir(32000, 1500.0, 200.0).unwrap();
        let (lx, ly) = (smg_audio::splice::fir_filter(x, &h), smg_audio::splice::fir_filter(y, &h));
        let err = lx[4000..x.len() - 4000].iter().zip(&ly[4000..x.len() - 4000]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 0.02, "low band differs by {err}");
    }
    assert_ne!(e.audio.channels[0], e.audio.channels[1], "each channel keeps its own low band");
    let e =
        p.bandwidth_extension_recording(&input, 2000.0, false, &null(&p), &sampler(1), &WindowOptions::default(), &mut |_, _| {}).unwrap();
    assert_eq!(e.audio.channels[0], e.audio.channels[1], "without LFR the resynthesis is in every channel");
    let err = p
        .bandwidth_extension_recording(&input, 9000.0, true, &null(&p), &sampler(1), &WindowOptions::default(), &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut-off"), "{err}");
}

#[test]
fn long_generation_has_the_asked_length_and_is_seeded() {
    let p = pipeline();
    let cond = null(&p);
    let mut total = 0;
    let a = p.generate_long(&cond, 7.0, &sampler(5), &WindowOptions::default(), &mut |_, t| total = t).unwrap();
    assert_eq!(a.len(), 7 * 22050);
    assert!(total >= 3, "{total} windows for 7 s");
    assert!(a.iter().all(|v| v.is_finite()));
    let keep = Sampler { keep_history: true, ..sampler(5) };
    let (b, history) = p.generate_long_steps(&cond, 7.0, &keep, &WindowOptions::default(), &mut |_, _| {}).unwrap();
    assert_eq!(a, b);
    // One entry of decoding steps per window: the first fills a fully masked grid, each later
    // one keeps the previous window's tail and starts half a window on.
    assert_eq!(history.len(), total);
    assert!(history[0].mask.iter().all(|&m| m) && history[0].start_s == 0.0);
    for (w, prev) in history.iter().skip(1).zip(&history) {
        assert!(w.start_s > prev.start_s, "windows out of order");
        assert!(w.mask.iter().any(|&m| !m) && w.mask.iter().any(|&m| m), "a later window keeps some tokens and fills some");
        assert_eq!(w.steps.len(), 4);
    }
    let short = p.generate_long(&cond, 1.0, &sampler(5), &WindowOptions::default(), &mut |_, _| {}).unwrap();
    assert_eq!(short.len(), 22050);
    for d in [0.0, -1.0, f64::NAN] {
        let e = p.generate_long(&cond, d, &sampler(5), &WindowOptions::default(), &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("duration"), "{e}");
    }
}

#[test]
fn edited_files_are_written_back_bit_for_bit() {
    let p = pipeline();
    let dir = tempfile::tempdir().unwrap();
    for bits in [16u16, 24] {
        let path = dir.path().join(format!("in{bits}.wav"));
        let spec = hound::WavSpec { channels: 2, sample_rate: 48000, bits_per_sample: bits, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        let full = 1i64 << (bits - 1);
        for i in 0..48000 * 4 {
            for c in 0..2i64 {
                let v = ((i as i64 * (37 + c) * 7919) % (2 * full / 3)) - full / 3;
                w.write_sample(v as i32).unwrap();
            }
        }
        w.finalize().unwrap();
        let input = smg_audio::load(&path).unwrap();
        assert_eq!(input.sample_format, SampleFormat::Int(bits));
        let e = p.inpaint_recording(&input, 1.0, 1.5, &null(&p), &sampler(0), &WindowOptions::default(), &mut |_, _| {}).unwrap();
        let out = dir.path().join(format!("out{bits}.wav"));
        smg_audio::write_wav_channels(&out, &e.audio.channels, 48000, input.sample_format.wav_encoding()).unwrap();
        let read = |p: &std::path::Path| -> (hound::WavSpec, Vec<i32>) {
            let r = hound::WavReader::open(p).unwrap();
            (r.spec(), r.into_samples::<i32>().map(|s| s.unwrap()).collect())
        };
        let ((si, xi), (so, xo)) = (read(&path), read(&out));
        assert_eq!(si, so, "same rate, channels and bits");
        assert_eq!(xi.len(), xo.len());
        let (c0, c1) = e.changed;
        let mut differ = 0;
        for (k, (a, b)) in xi.iter().zip(&xo).enumerate() {
            if (c0..c1).contains(&(k / 2)) {
                differ += (a != b) as usize;
            } else {
                assert_eq!(a, b, "{bits}-bit sample {k}");
            }
        }
        assert!(differ > 0);
    }
}
