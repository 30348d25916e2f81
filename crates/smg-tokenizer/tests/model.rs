//! Shapes, parameter counts and the encode/decode API of the SpecVQGAN port.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use smg_tokenizer::{Config, SpecVqGan};

#[test]
fn paper_configuration_has_72_1m_parameters() {
    let n = SpecVqGan::parameter_count(&Config::paper()).unwrap();
    eprintln!("paper tokenizer: {n} parameters");
    assert!((n as f64 - 72.1e6).abs() < 0.5e6, "{n}");
}

#[test]
fn paper_grid_is_5_by_53_and_small_grid_5_by_16() {
    assert_eq!(Config::paper().grid(848), (5, 53));
    assert_eq!(Config::small().grid(256), (5, 16));
    let n = SpecVqGan::parameter_count(&Config::small()).unwrap();
    eprintln!("small tokenizer: {n} parameters");
    assert!(n > 500_000 && n < 3_000_000, "{n}");
}

#[test]
fn small_model_round_trips_shapes_and_pads_odd_lengths() {
    let cfg = Config::small();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let m = SpecVqGan::new(&cfg, vb).unwrap();
    let mel = (Tensor::randn(0f32, 0.3, (2, 80, 250), &Device::Cpu).unwrap()).clamp(-1f32, 1f32).unwrap();
    let tokens = m.encode(&mel).unwrap();
    assert_eq!(tokens.dims(), &[2, 5, 16], "250 frames are padded to 256");
    assert_eq!(tokens.dtype(), DType::U32);
    let out = m.decode(&tokens).unwrap();
    assert_eq!(out.dims(), &[2, 80, 256]);
    let too_big = Tensor::full(600u32, (1, 5, 16), &Device::Cpu).unwrap();
    let e = m.decode(&too_big).unwrap_err().to_string();
    assert!(e.contains("out of range"), "{e}");
    let wrong = Tensor::zeros((1, 64, 256), DType::F32, &Device::Cpu).unwrap();
    assert!(m.encode(&wrong).unwrap_err().to_string().contains("80"));
}

#[test]
fn fused_group_norm_matches_the_plain_composition_and_its_gradients() {
    use candle_core::{Module, Var};
    for swish in [true, false] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let gn = smg_tokenizer::fused::GroupNormAct::new(4, 8, 1e-6, swish, vb).unwrap();
        // non-trivial affine parameters
        for (name, v) in vm.data().lock().unwrap().iter() {
            let t =
                (Tensor::randn(0f32, 0.5, v.shape(), &Device::Cpu).unwrap() + if name.ends_with("weight") { 1.0 } else { 0.0 }).unwrap();
            v.set(&t).unwrap();
        }
        let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, (2, 8, 5, 7), &Device::Cpu).unwrap() + 0.7).unwrap()).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 8, 5, 7), &Device::Cpu).unwrap();
        let fast = gn.forward(x.as_tensor()).unwrap();
        let slow = gn.forward_reference(x.as_tensor()).unwrap();
        let d = (&fast - &slow).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-4, "forward diff {d}");
        let gf = (fast * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = (slow * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for t in [x.as_tensor(), &gn.weight, &gn.bias] {
            let a = gf.get(t).unwrap();
            let b = gs.get(t).unwrap();
            let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-3, "swish={swish}: gradient diff {d}");
        }
    }
}
