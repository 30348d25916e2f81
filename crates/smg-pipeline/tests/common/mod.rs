//! A pipeline on random weights (small tokenizer, a one-block generator, Griffin-Lim with a few
//! iterations): fast enough for plumbing tests, which check what the pipeline keeps and
//! changes, not how it sounds.

use candle_core::{DType, Device};
use smg_audio::{GriffinLimConfig, MelTransform};
use smg_core::SeededVarMap;
use smg_maskgit::MaskedVit;
use smg_pipeline::{Pipeline, Vocoder};
use smg_tokenizer::{Config, SpecVqGan};

pub fn pipeline(griffin_lim_iters: usize) -> Pipeline {
    let tok = SpecVqGan::new(&Config::small(), SeededVarMap::new(1).var_builder(DType::F32, &Device::Cpu)).unwrap();
    let gcfg = smg_maskgit::Config { dim: 16, depth: 1, heads: 2, mlp_dim: 32, ..smg_maskgit::Config::small() };
    let generator = MaskedVit::new(&gcfg, SeededVarMap::new(2).var_builder(DType::F32, &Device::Cpu)).unwrap();
    Pipeline {
        tokenizer: tok,
        generator,
        text: None,
        vocoder: Vocoder::GriffinLim(GriffinLimConfig { n_iter: griffin_lim_iters, ..Default::default() }),
        mel: MelTransform::hifigan(),
        device: Device::Cpu,
    }
}
