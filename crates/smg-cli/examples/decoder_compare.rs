//! Held-out clips beside their reconstructions by several tokenizers, as one PNG: a row per
//! clip (the first test clip of each category named), a column for the clip and one per
//! tokenizer, all in the clip's own colour range. Shows what a decoder does to the texture,
//! e.g. the medium tokenizer's reconstruction-only decoder against the one trained against a
//! discriminator (data/checkpoints/tokenizer-medium/TRAINING.md, phase 4):
//!
//! ```bash
//! SMG_DATA_DIR=... cargo run --release -p smg-cli --example decoder_compare -- out.png \
//!     data/checkpoints/tokenizer-medium-l1 data/checkpoints/tokenizer-medium
//! ```
//! `SMG_COMPARE_CATEGORIES` (comma-separated) picks the categories of sound-medium's test split.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use image::{GenericImage, ImageReader, RgbImage};
use smg_audio::MelTransform;
use smg_data::{ClipConfig, Dataset, Split};
use smg_tokenizer::SpecVqGan;
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, tokenizers @ ..] = args.as_slice() else { bail!("usage: decoder_compare OUT.png TOKENIZER_DIR...") };
    if tokenizers.is_empty() {
        bail!("name at least one tokenizer folder");
    }
    let data = std::env::var_os("SMG_DATA_DIR").map(PathBuf::from).context("set SMG_DATA_DIR to the folder holding corpus/")?;
    let cats = std::env::var("SMG_COMPARE_CATEGORIES").unwrap_or_else(|_| "woman speaking,game music,snare drum,outdoor ambience".into());
    let ds = Dataset::open_sound(&data, &ClipConfig::medium())?;
    let cache = ds.mels(&MelTransform::hifigan(), false)?;
    let test = ds.split_indices(Split::Test);
    let models =
        tokenizers.iter().map(|d| SpecVqGan::from_pretrained(d.as_ref(), &Device::Cpu)).collect::<candle_core::Result<Vec<_>>>()?;
    let (w, h) = (420u32, 200u32);
    let cats: Vec<&str> = cats.split(',').map(str::trim).collect();
    let mut grid = RgbImage::new(w * (1 + models.len() as u32), h * cats.len() as u32);
    for (r, cat) in cats.iter().enumerate() {
        let &i = test.iter().find(|&&i| ds.records[i].category == *cat).with_context(|| format!("no test clip of category {cat:?}"))?;
        let real = smg_audio::tensor_to_array(&cache.mels[i])?;
        let (lo, hi) = real.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let mut mels = vec![("real".to_string(), real.clone())];
        let unit = smg_audio::array_to_tensor(&smg_audio::norm::to_tokenizer_range(&real), &Device::Cpu)?.unsqueeze(0)?;
        for (m, dir) in models.iter().zip(tokenizers) {
            let rec: Tensor = m.decode(&m.encode(&unit)?)?.clamp(-1f32, 1f32)?.squeeze(0)?;
            let name = std::path::Path::new(dir).file_name().map_or(dir.clone(), |n| n.to_string_lossy().into_owned());
            mels.push((name, smg_audio::norm::to_vocoder_range(&smg_audio::tensor_to_array(&rec)?)));
        }
        for (c, (name, mel)) in mels.iter().enumerate() {
            let fig = smg_display::plot::spectrogram(mel).title(format!("{cat}: {name}")).range(lo, hi).size(w, h).render()?;
            let img = ImageReader::new(std::io::Cursor::new(&fig.png)).with_guessed_format()?.decode()?.to_rgb8();
            grid.copy_from(&img, c as u32 * w, r as u32 * h)?;
        }
    }
    grid.save(out)?;
    eprintln!("wrote {out}");
    Ok(())
}
