//! Diagnostic: reconstruction L1 of the same clips through `forward_train` and through
//! `encode` → `decode` (they must agree). `path_check <training folder>`
use candle_core::{Device, Tensor};
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let m = smg_tokenizer::SpecVqGan::from_pretrained(&dir, &Device::Cpu).unwrap();
    let data = std::path::PathBuf::from(std::env::var("SMG_DATA_DIR").unwrap());
    let ds = smg_data::Dataset::open_sound(&data, &smg_data::ClipConfig::small()).unwrap();
    let cache = ds.mels(&smg_audio::MelTransform::hifigan(), false).unwrap();
    let idx: Vec<usize> = ds.split_indices(smg_data::Split::Valid).into_iter().take(16).collect();
    let x = Tensor::stack(&idx.iter().map(|&i| smg_audio::norm::log_mel_to_unit_tensor(&cache.mels[i]).unwrap()).collect::<Vec<_>>(), 0)
        .unwrap();
    let f = m.forward_train(&x.unsqueeze(1).unwrap()).unwrap();
    let a = (f.reconstruction.squeeze(1).unwrap() - &x).unwrap().abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
    let t = m.encode(&x).unwrap();
    let b = (m.decode(&t).unwrap() - &x).unwrap().abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
    let i1: Vec<u32> = f.quantized.idx_flat.to_vec1().unwrap();
    let i2: Vec<u32> = t.flatten_all().unwrap().to_vec1().unwrap();
    let same = i1.iter().zip(&i2).filter(|(a, b)| a == b).count();
    println!("forward_train L1 {a:.4}; encode/decode L1 {b:.4}; identical indices {same}/{} (orders may differ)", i1.len());
}
