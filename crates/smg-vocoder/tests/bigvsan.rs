//! BigVSAN generator on random weights (no official checkpoint is reachable here): sizes of the
//! two official configurations, loading under the official weight-normed tensor names, and the
//! CPU kernels against the candle ops.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use smg_core::SeededVarMap;
use smg_vocoder::{BigVsan, BigVsanConfig};
use std::collections::HashMap;

fn count(cfg: &BigVsanConfig) -> usize {
    let vm = candle_nn::VarMap::new();
    BigVsan::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let n = vm.all_vars().iter().map(|v| v.elem_count()).sum();
    n
}

#[test]
fn official_configurations_have_their_sizes() {
    let paper = count(&BigVsanConfig::paper());
    assert!((110_000_000..114_500_000).contains(&paper), "22 kHz 80-band: {paper}");
    let base = count(&BigVsanConfig::base());
    assert!((13_500_000..14_500_000).contains(&base), "base: {base}");
    println!("BigVSAN parameters: 22 kHz 80-band {paper}, base {base}");
}

#[test]
fn loads_official_weight_norm_names_and_kernels_match_candle_ops() {
    let cfg = BigVsanConfig::tiny();
    let svm = SeededVarMap::new(3);
    let trainable = BigVsan::new(&cfg, svm.var_builder(DType::F32, &Device::Cpu)).unwrap();
    // Random weights of a useful scale under the plain names, and the same weights as the
    // official checkpoint stores them: weight_v with weight_g = ‖v‖ per output channel (so
    // g·v/‖v‖ is the same weight); α and biases keep their names.
    let (mut plain_map, mut wn_map) = (HashMap::new(), HashMap::new());
    for (name, var) in svm.varmap.data().lock().unwrap().iter() {
        let dims = var.as_tensor().dims().to_vec();
        let t = if name.ends_with(".weight") {
            let fan_in: usize = dims[1..].iter().product();
            Tensor::randn(0f32, 1.0 / (fan_in as f32).sqrt(), dims.as_slice(), &Device::Cpu).unwrap()
        } else if name.ends_with(".alpha") {
            (Tensor::rand(0.5f32, 1.5, dims.as_slice(), &Device::Cpu)).unwrap()
        } else {
            Tensor::randn(0f32, 0.1, dims.as_slice(), &Device::Cpu).unwrap()
        };
        plain_map.insert(name.clone(), t.clone());
        match name.strip_suffix(".weight") {
            Some(stem) => {
                let g = t.sqr().unwrap().sum_keepdim(2).unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
                wn_map.insert(format!("{stem}.weight_v"), t);
                wn_map.insert(format!("{stem}.weight_g"), g);
            }
            None => {
                wn_map.insert(name.clone(), t);
            }
        }
    }
    for must in [
        "conv_pre.weight_v",
        "ups.0.0.weight_g",
        "resblocks.0.convs1.2.weight_v",
        "resblocks.1.convs2.0.bias",
        "resblocks.0.activations.5.act.alpha",
        "activation_post.act.alpha",
        "conv_post.weight_v",
    ] {
        assert!(wn_map.contains_key(must), "missing {must}");
    }
    let plain = BigVsan::new(&cfg, VarBuilder::from_tensors(plain_map, DType::F32, &Device::Cpu)).unwrap();
    let loaded = BigVsan::new(&cfg, VarBuilder::from_tensors(wn_map, DType::F32, &Device::Cpu)).unwrap();
    let mel = Tensor::randn(-5f32, 1.5, (2, 80, 12), &Device::Cpu).unwrap();
    let want = plain.forward_plain(&mel).unwrap();
    assert_eq!(want.dims(), &[2, 12 * cfg.hop()]);
    let top = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(top > 0.05, "output too small to compare: {top}");
    let diff = |y: &Tensor| (y - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let d_loaded = diff(&loaded.forward_plain(&mel).unwrap());
    let d_fast = diff(&loaded.forward_fast(&mel).unwrap());
    println!("official names: {d_loaded:e}; CPU kernels vs candle ops: {d_fast:e}");
    assert!(d_loaded < 1e-5, "weight-norm folding differs by {d_loaded}");
    assert!(d_fast < 1e-4, "kernels differ by {d_fast}");
    // Under autograd the transposed convolutions run as conv1d over zero-stuffed input: same values.
    let (a, b) = (trainable.forward_plain(&mel).unwrap(), trainable.forward_fast(&mel).unwrap());
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let d = (&a - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(scale > 0.0 && d <= 1e-4 * scale + 1e-7, "autograd path differs by {d} (scale {scale})");
    // Gradients reach α and the upsampling weights through the candle path (training).
    let loss = trainable.forward_plain(&mel).unwrap().sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let alpha = svm.varmap.data().lock().unwrap()["resblocks.0.activations.0.act.alpha"].as_tensor().clone();
    assert!(grads.get(&alpha).is_some(), "no gradient for alpha");
    let up = svm.varmap.data().lock().unwrap()["ups.0.0.weight"].as_tensor().clone();
    assert!(grads.get(&up).is_some(), "no gradient for ups.0.0.weight");
}
