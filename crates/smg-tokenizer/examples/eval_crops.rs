//! Held-out L1 of a tokenizer checkpoint on whole clips and on time crops (diagnostic).
//! `cargo run --release --example eval_crops -- <checkpoint dir> <frames per crop> [train|valid|test]`
use candle_core::{Device, Tensor};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let crop: usize = args[2].parse().unwrap();
    let m = smg_tokenizer::SpecVqGan::from_pretrained(&dir, &Device::Cpu).unwrap();
    let data = std::path::PathBuf::from(std::env::var("SMG_DATA_DIR").unwrap());
    let ds = smg_data::Dataset::open_sound(&data, &smg_data::ClipConfig::small()).unwrap();
    let cache = ds.mels(&smg_audio::MelTransform::hifigan(), false).unwrap();
    let split = match args.get(3).map(|s| s.as_str()) {
        Some("train") => smg_data::Split::Train,
        Some("test") => smg_data::Split::Test,
        _ => smg_data::Split::Valid,
    };
    let idx: Vec<usize> = ds.split_indices(split).into_iter().take(139).collect();
    let (mut full, mut cropped) = (0f64, 0f64);
    let mut codes: Vec<u32> = Vec::new();
    for &i in &idx {
        let x = smg_audio::norm::log_mel_to_unit_tensor(&cache.mels[i]).unwrap().unsqueeze(0).unwrap();
        let l1 = |x: &Tensor| -> f64 {
            let y = m.decode(&m.encode(x).unwrap()).unwrap();
            (y - x).unwrap().abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap() as f64
        };
        full += l1(&x);
        codes.extend(m.encode(&x).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap());
        let n = 256 / crop;
        cropped += (0..n).map(|k| l1(&x.narrow(2, k * crop, crop).unwrap())).sum::<f64>() / n as f64;
    }
    let (_, u) = smg_tokenizer::usage(&codes, m.config.n_embed);
    println!(
        "{} clips: whole clips L1 {:.4}; {crop}-frame crops L1 {:.4}; codes used {} of {} ({:.0}%), perplexity {:.0}",
        idx.len(),
        full / idx.len() as f64,
        cropped / idx.len() as f64,
        u.used,
        m.config.n_embed,
        100.0 * u.used as f64 / m.config.n_embed as f64,
        u.perplexity
    );
}
