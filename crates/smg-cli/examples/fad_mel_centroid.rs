//! Where FAD-mel's spectral-centroid statistic comes from (`smg_eval::mel_statistics`,
//! SPEC.md §6): the centroid of a frame is taken over the clip's values above its minimum, so a
//! frame of exact digital silence counts 0, while a decoder draws a faint residual there whose
//! centroid can sit anywhere. For the real held-out clips of `sound-medium` and their
//! reconstructions by each tokenizer given, prints the share of frames at the clip's floor, the
//! mean centroid (the FAD-mel statistic), and the reconstructions' mean centroid on the frames
//! that are digital silence in the real clip and on those that sound.
//!
//! `SMG_DATA_DIR=… cargo run --release -p smg-cli --example fad_mel_centroid -- TOKENIZER_DIR…`

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ndarray::Array2;
use smg_data::{ClipConfig, Dataset, Split};

/// Each frame's centroid in band units ([`smg_eval::frame_centroids`], the FAD-mel statistic's).
fn centroids(m: &Array2<f32>) -> Vec<f64> {
    let (bands, frames) = m.dim();
    smg_eval::frame_centroids(&m.iter().copied().collect::<Vec<_>>(), bands, frames)
}

/// Frames of `real` that are exact digital silence (every band at the clip's minimum).
fn silent_frames(real: &Array2<f32>) -> Vec<bool> {
    let lo = real.iter().fold(f32::INFINITY, |a, &v| a.min(v));
    real.columns().into_iter().map(|col| col.iter().all(|&v| v == lo)).collect()
}

fn report(name: &str, mels: &[Array2<f32>], real: &[Array2<f32>]) {
    let (mut all, mut silent, mut sounding, mut floor) = ((0.0, 0), (0.0, 0), (0.0, 0), 0usize);
    for (m, r) in mels.iter().zip(real) {
        let mine = silent_frames(m);
        for ((c, s), own) in centroids(m).into_iter().zip(silent_frames(r)).zip(mine) {
            let bin = if s { &mut silent } else { &mut sounding };
            *bin = (bin.0 + c, bin.1 + 1);
            all = (all.0 + c, all.1 + 1);
            floor += own as usize;
        }
    }
    let mean = |x: (f64, usize)| x.0 / x.1.max(1) as f64;
    println!(
        "| {name} | {:.1}% | {:.2} | {:.2} | {:.2} |",
        100.0 * floor as f64 / all.1.max(1) as f64,
        mean(all),
        mean(silent),
        mean(sounding)
    );
}

fn main() -> Result<()> {
    let data = std::env::var_os("SMG_DATA_DIR").map(std::path::PathBuf::from).context("set SMG_DATA_DIR to the data folder")?;
    let ds = Dataset::open_sound(&data, &ClipConfig::medium())?;
    let cache = ds.mels(&smg_audio::MelTransform::hifigan(), true)?;
    let real = ds.split_indices(Split::Test).iter().map(|&i| smg_audio::tensor_to_array(&cache.mels[i])).collect::<Result<Vec<_>, _>>()?;
    let silent: usize = real.iter().map(|r| silent_frames(r).into_iter().filter(|&s| s).count()).sum();
    println!("{} test clips of sound-medium; {silent} of their frames are digital silence", real.len());
    println!("| mels | frames at the clip's floor | mean centroid (bands) | on the real clip's silent frames | on its sounding frames |");
    println!("|---|---|---|---|---|");
    report("real clips", &real, &real);
    for dir in std::env::args().skip(1) {
        let tok = smg_tokenizer::SpecVqGan::from_pretrained(std::path::Path::new(&dir), &Device::Cpu)?;
        let mut recs = Vec::with_capacity(real.len());
        for chunk in real.chunks(16) {
            let units = chunk
                .iter()
                .map(|x| smg_audio::array_to_tensor(&smg_audio::norm::to_tokenizer_range(x), &Device::Cpu))
                .collect::<Result<Vec<_>, _>>()?;
            let y = tok.decode(&tok.encode(&Tensor::stack(&units, 0)?)?)?.clamp(-1f32, 1f32)?;
            for i in 0..chunk.len() {
                recs.push(smg_audio::norm::to_vocoder_range(&smg_audio::tensor_to_array(&y.get(i)?)?));
            }
        }
        report(&dir, &recs, &real);
    }
    Ok(())
}
