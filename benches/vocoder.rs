//! Vocoder speed on CPU (issue 6): real-time factor (seconds of compute per second of audio) of
//! HiFi-GAN universal (candle's own conv1d / conv_transpose1d: the straightforward port, which
//! is this run's baseline) and of Griffin-Lim (64 iterations) on a 10 s mel. Prints a table.
//! Run: `cargo bench --bench vocoder` (needs the fetched weights; about a minute on 2 cores).

use candle_core::{Device, Tensor};
use smg_audio::{GriffinLimConfig, MelTransform};
use std::time::Instant;

fn main() {
    let data = std::env::var_os("SMG_DATA_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| std::path::PathBuf::from("data"));
    let frames = 861; // 10 s at 22 050 Hz / 256
    let audio_s = (frames * 256) as f64 / 22050.0;
    let mel = Tensor::randn(-5f32, 1.5, (80, frames), &Device::Cpu).unwrap();
    println!("| vocoder | seconds for {audio_s:.1} s of audio | real-time factor |");
    println!("|---|---|---|");
    match smg_vocoder::HifiGan::load_v1(&data.join("weights/hifigan_universal.safetensors"), &Device::Cpu) {
        Ok(g) => {
            g.synthesize(&mel.narrow(1, 0, 64).unwrap()).unwrap(); // warm-up
            let t = Instant::now();
            g.synthesize(&mel).unwrap();
            let s = t.elapsed().as_secs_f64();
            println!("| HiFi-GAN universal, candle conv1d (baseline) | {s:.2} | {:.2} |", s / audio_s);
        }
        Err(e) => println!("| HiFi-GAN universal | skipped: {e} | |"),
    }
    let mt = MelTransform::hifigan();
    let a = smg_audio::tensor_to_array(&mel).unwrap();
    let t = Instant::now();
    smg_audio::mel_to_audio(&mt, &a, &GriffinLimConfig::default()).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!("| Griffin-Lim, 64 iterations | {s:.2} | {:.2} |", s / audio_s);
}
