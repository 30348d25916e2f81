//! Vocoder speed on CPU: real-time factor (seconds of compute per second of audio) of
//! HiFi-GAN universal on a 10 s mel, the straightforward candle port (`forward_plain`: candle's
//! conv1d / conv_transpose1d, this run's baseline) beside the fused CPU kernels (`forward_fast`,
//! what `forward` runs on CPU; in f32 and with bf16 ResBlock products on AMX, with the bf16
//! output's signal-to-noise ratio against the f32 one), and of Griffin-Lim (64 iterations). Prints a table; the speed-up
//! column is the baseline's time over each row's, so the machine's load cancels out.
//! Run: `cargo bench --bench vocoder` (needs the fetched weights; about a minute on 2 cores).

use candle_core::{Device, Tensor};
use smg_audio::{GriffinLimConfig, MelTransform};
use std::time::Instant;

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let data = std::env::var_os("SMG_DATA_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| std::path::PathBuf::from("data"));
    let frames = 861; // 10 s at 22 050 Hz / 256
    let audio_s = (frames * 256) as f64 / 22050.0;
    let mel = Tensor::randn(-5f32, 1.5, (1, 80, frames), &Device::Cpu).unwrap();
    println!("| vocoder | seconds for {audio_s:.1} s of audio | real-time factor | speed-up over the baseline |");
    println!("|---|---|---|---|");
    let mut base = None;
    match smg_vocoder::HifiGan::load_v1(&data.join("weights/hifigan_universal.safetensors"), &Device::Cpu) {
        Ok(g) => {
            let short = mel.narrow(2, 0, 64).unwrap();
            g.forward_plain(&short).unwrap(); // warm-up
            g.forward_fast(&short).unwrap();
            let s = best_of(1, || g.forward_plain(&mel).unwrap());
            base = Some(s);
            println!("| HiFi-GAN universal, candle conv1d (baseline) | {s:.2} | {:.3} | 1.0× |", s / audio_s);
            let f = best_of(3, || g.forward_fast(&mel).unwrap());
            println!("| HiFi-GAN universal, fused CPU kernels (f32) | {f:.2} | {:.3} | {:.1}× |", f / audio_s, s / f);
            if smg_kernels::amx::available() {
                // ResBlock products in bf16 on AMX (`SMG_VOCODER_PRECISION=bf16`), against f32.
                let y32 = g.forward_fast(&mel).unwrap();
                smg_core::fast::set_vocoder_precision(smg_core::fast::Precision::Bf16);
                let y16 = g.forward_fast(&mel).unwrap();
                let h = best_of(3, || g.forward_fast(&mel).unwrap());
                smg_core::fast::set_vocoder_precision(smg_core::fast::Precision::F32);
                let d = (&y16 - &y32).unwrap();
                let snr = 10.0
                    * (y32.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
                        / d.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().max(1e-30))
                    .log10();
                println!(
                    "| HiFi-GAN universal, ResBlocks bf16 on AMX (SNR against f32 {snr:.1} dB) | {h:.2} | {:.3} | {:.1}× |",
                    h / audio_s,
                    s / h
                );
            }
        }
        Err(e) => println!("| HiFi-GAN universal | skipped: {e} | | |"),
    }
    let mt = MelTransform::hifigan();
    let a = smg_audio::tensor_to_array(&mel.squeeze(0).unwrap()).unwrap();
    let s = best_of(1, || smg_audio::mel_to_audio(&mt, &a, &GriffinLimConfig::default()).unwrap());
    let ratio = base.map_or(String::new(), |b| format!("{:.1}×", b / s));
    println!("| Griffin-Lim, 64 iterations | {s:.2} | {:.3} | {ratio} |", s / audio_s);
}
