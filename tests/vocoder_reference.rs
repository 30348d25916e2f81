//! HiFi-GAN universal (converted official checkpoint) against an independent float64 numpy port
//! of the original generator (tests/fixtures/make_hifigan_fixture.py), on 64 frames of a chirp.

use candle_core::{DType, Device, Tensor};
use ndarray::{Array1, Array2};
use smg_tests::{asset, fixture};
use smg_vocoder::{HifiGan, HifiGanConfig};

#[test]
fn universal_hifigan_matches_the_numpy_reference() {
    let w = asset("weights/hifigan_universal.safetensors");
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[w], DType::F32, &Device::Cpu).unwrap() };
    let g = HifiGan::new(&HifiGanConfig::v1(), vb.pp("generator")).unwrap();
    let mel: Array2<f32> = ndarray_npy::read_npy(fixture("vocoder/hifigan_universal.mel.npy")).unwrap();
    let want: Array1<f32> = ndarray_npy::read_npy(fixture("vocoder/hifigan_universal.wav.npy")).unwrap();
    let (r, c) = mel.dim();
    let x = Tensor::from_vec(mel.iter().copied().collect::<Vec<f32>>(), (1, r, c), &Device::Cpu).unwrap();
    // Both the candle port and the fused CPU kernels (what `forward` runs here) match the fixture.
    for (name, y) in [("plain", g.forward_plain(&x).unwrap()), ("fast", g.forward_fast(&x).unwrap())] {
        let y: Vec<f32> = y.squeeze(0).unwrap().to_vec1().unwrap();
        assert_eq!(y.len(), c * 256);
        let d = y.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("{name}: max |rust - numpy| = {d:e} over {} samples", y.len());
        assert!(d < 1e-4, "{name}: max abs difference {d}");
    }
}

#[test]
fn a_wrongly_shaped_checkpoint_is_named() {
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    HifiGan::new(&HifiGanConfig::v2(), vb.clone()).unwrap();
    // Loading V1 from V2's tensors fails on the first mismatched tensor, by name.
    let map: std::collections::HashMap<String, Tensor> =
        vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let vb2 = candle_nn::VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    let e = HifiGan::new(&HifiGanConfig::v1(), vb2).err().unwrap().to_string();
    assert!(e.contains("ups.0.weight") && e.contains("shape mismatch"), "{e}");
}
