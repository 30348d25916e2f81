//! Whole recordings through the windowed zero-shot tasks with the shipped small models: wall
//! time and peak memory (resident set) for 3 s, 30 s, 5 min and 10 min inputs (44.1 kHz stereo,
//! 16-bit values), for
//!
//! - time inpainting of a fixed 1 s gap in the middle (time should stay flat: only the window
//!   around the gap is generated), and of a gap of a third of the recording (time linear in the
//!   gap);
//! - bandwidth extension from 4 kHz with low-frequency replacement (time linear in the length).
//!
//! Each case runs in a child process of its own, so its peak resident set (`VmHWM`) is its own;
//! the "input" column is the memory of the decoded recording itself (channels × samples × 4
//! bytes) for comparison. The process holds the input and the edited copy it returns (2×), the
//! models (≈ 30 MB) and, for bandwidth extension, the whole file at the model's rate. The vocoder is Griffin-Lim with 32 iterations (HiFi-GAN adds a
//! constant factor per window).
//!
//! Run: `cargo bench --bench windowed` (about 15 minutes on 2 cores; `SMG_BENCH_QUICK=1` stops
//! at 5 minutes of audio and skips the 10-minute bandwidth extension).

use candle_core::Device;
use smg_audio::{Audio, GriffinLimConfig, MelTransform, SampleFormat};
use smg_maskgit::{Guidance, MaskedVit, Sampler};
use smg_pipeline::{Pipeline, Vocoder, WindowOptions};
use std::process::Command;
use std::time::Instant;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pipeline() -> Pipeline {
    let dev = Device::Cpu;
    Pipeline {
        tokenizer: smg_tokenizer::SpecVqGan::from_pretrained(&repo().join("data/checkpoints/tokenizer-small"), &dev).unwrap(),
        generator: MaskedVit::from_pretrained(&repo().join("data/checkpoints/maskgit-small"), &dev).unwrap(),
        text: None,
        vocoder: Vocoder::GriffinLim(GriffinLimConfig { n_iter: 32, ..Default::default() }),
        mel: MelTransform::hifigan(),
        device: dev,
    }
}

/// A stereo 44.1 kHz recording: two detuned tones with a slow tremolo and some noise.
fn recording(seconds: f64) -> Audio {
    let sr = 44100u32;
    let n = (seconds * sr as f64) as usize;
    let ch = |f: f64, seed: usize| -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f64 / sr as f64;
                let v = 0.3 * (2.0 * std::f64::consts::PI * f * t).sin() * (0.6 + 0.4 * (2.0 * std::f64::consts::PI * 0.5 * t).sin())
                    + 0.02 * (((i * 2654435761 + seed) % 1000) as f64 / 500.0 - 1.0);
                ((v * 32768.0).round() / 32768.0) as f32
            })
            .collect()
    };
    Audio {
        channels: vec![ch(220.0, 1), ch(331.0, 2)],
        sample_rate: sr,
        format: "WAV PCM 16-bit".into(),
        sample_format: SampleFormat::Int(16),
    }
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Child: runs one case and prints `seconds windows peak_mb`.
fn child(task: &str, seconds: f64) {
    let p = pipeline();
    let rec = recording(seconds);
    let s = Sampler { guidance: Box::new(Guidance::Off), ..Default::default() };
    let cond = p.condition(None).unwrap();
    let opt = WindowOptions::default();
    let t = Instant::now();
    let e = match task {
        "inpaint-1s" => p.inpaint_recording(&rec, seconds / 2.0 - 0.5, seconds / 2.0 + 0.5, &cond, &s, &opt, &mut |_, _| {}),
        "inpaint-third" => p.inpaint_recording(&rec, seconds / 3.0, 2.0 * seconds / 3.0, &cond, &s, &opt, &mut |_, _| {}),
        "bwe" => p.bandwidth_extension_recording(&rec, 4000.0, true, &cond, &s, &opt, &mut |_, _| {}),
        other => panic!("unknown case {other}"),
    }
    .unwrap();
    println!("{:.3} {} {:.1}", t.elapsed().as_secs_f64(), e.windows, peak_rss_mb());
}

fn main() {
    if let (Ok(task), Ok(sec)) = (std::env::var("SMG_WINDOWED_CASE"), std::env::var("SMG_WINDOWED_SECONDS")) {
        child(&task, sec.parse().unwrap());
        return;
    }
    let quick = std::env::var("SMG_BENCH_QUICK").is_ok_and(|v| v == "1");
    let lengths: &[f64] = if quick { &[3.0, 30.0, 300.0] } else { &[3.0, 30.0, 300.0, 600.0] };
    println!(
        "windowed zero-shot tasks, shipped small models, Griffin-Lim 32 iterations; CPU: {} ({} threads)",
        smg_tests::cpu_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| task | input | windows | seconds | seconds per input minute | peak RSS (MB) | input itself (MB) | peak / input |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for task in ["inpaint-1s", "inpaint-third", "bwe"] {
        for &sec in lengths {
            if task == "bwe" && quick && sec > 30.0 {
                continue;
            }
            let out = Command::new(std::env::current_exe().unwrap())
                .env("SMG_WINDOWED_CASE", task)
                .env("SMG_WINDOWED_SECONDS", sec.to_string())
                .output()
                .expect("run the case");
            let text = String::from_utf8_lossy(&out.stdout);
            let v: Vec<&str> = text.split_whitespace().collect();
            if !out.status.success() || v.len() != 3 {
                println!("| {task} | {sec} s | failed: {} |", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
                continue;
            }
            let s: f64 = v[0].parse().unwrap();
            let input_mb = 2.0 * sec * 44100.0 * 4.0 / 1048576.0;
            let rss: f64 = v[2].parse().unwrap_or(f64::NAN);
            let len = if sec >= 60.0 { format!("{} min", sec / 60.0) } else { format!("{sec} s") };
            println!("| {task} | {len} | {} | {s:.1} | {:.2} | {rss:.0} | {input_mb:.0} | {:.1} |", v[1], s / (sec / 60.0), rss / input_mb);
        }
    }
}
