//! The in-place Adam / AdamW update (CPU f32) against the same update composed of candle ops
//! (`SMG_FAST=0`), over several steps with weight decay, decay-exempt variables and gradient
//! clipping, and its checkpoint state round trip. A test binary of its own because the fast path
//! switch is process-wide.
use candle_core::{backprop::GradStore, Device, Tensor, Var};
use smg_core::adam::Adam;
use smg_core::test_util::rand;

/// Variables (one of them bigger than a rayon chunk) and a loss whose gradients depend on them.
fn vars() -> Vec<(String, Var)> {
    [("w", vec![70_001]), ("b", vec![7]), ("emb", vec![13, 5])]
        .into_iter()
        .enumerate()
        .map(|(i, (n, s))| (n.to_string(), Var::from_tensor(&rand(&s, i as u64 + 1)).unwrap()))
        .collect()
}

fn grads(vs: &[(String, Var)], step: u64) -> GradStore {
    // Σ r ⊙ v² has gradient 2 r ⊙ v: different every step and large enough to be clipped.
    let mut loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu).unwrap();
    for (i, (_, v)) in vs.iter().enumerate() {
        let r = (rand(v.dims(), 100 + step * 10 + i as u64) * 3.0).unwrap();
        loss = (loss + (v.as_tensor().sqr().unwrap() * r).unwrap().sum_all().unwrap()).unwrap();
    }
    loss.backward().unwrap()
}

/// Weights and norms after 4 steps (2 clipped, 2 plain), with the fast path on or off.
fn run(fast: bool) -> (Vec<Vec<f32>>, Vec<f64>, Adam) {
    smg_kernels::set_fast(fast);
    let vs = vars();
    let mut opt = Adam::adamw(vs.clone(), 1e-2, 0.9, 0.95, 0.05).unwrap();
    opt.set_no_decay(|n| n == "b");
    let mut norms = vec![];
    for step in 0..4 {
        let g = grads(&vs, step);
        if step < 2 {
            norms.push(opt.step_clipped(&g, 1.0).unwrap());
        } else {
            opt.step(&g).unwrap();
        }
    }
    let w = vs.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect();
    smg_kernels::set_fast(true);
    (w, norms, opt)
}

#[test]
fn in_place_update_matches_candle_ops_and_its_state_round_trips() {
    let (fast, fast_norms, opt) = run(true);
    let (reference, ref_norms, _) = run(false);
    for (a, b) in fast_norms.iter().zip(&ref_norms) {
        assert!(*a > 1.0 && (a - b).abs() < 1e-4 * b, "gradient norms {a} and {b}");
    }
    for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "variable {i}: weights differ by {worst}");
    }
    // Clipping inside the update equals clipping the gradients first.
    smg_kernels::set_fast(true);
    let (vs1, vs2) = (vars(), vars());
    let (mut o1, mut o2) = (Adam::new(vs1.clone(), 1e-2, 0.9, 0.99).unwrap(), Adam::new(vs2.clone(), 1e-2, 0.9, 0.99).unwrap());
    let n1 = o1.step_clipped(&grads(&vs1, 7), 0.5).unwrap();
    let mut g2 = grads(&vs2, 7);
    let n2 = o2.clip_grad_norm(&mut g2, 0.5).unwrap();
    o2.step(&g2).unwrap();
    assert!((n1 - n2).abs() < 1e-9 * n1);
    for ((_, a), (_, b)) in vs1.iter().zip(&vs2) {
        let d = (a.as_tensor() - b.as_tensor()).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
    }
    // The state is a copy: a later in-place step does not change a saved checkpoint, and a
    // restored optimiser owns its moments.
    let saved = opt.state("optim").unwrap();
    let before: Vec<f32> = saved["optim.m.w"].to_vec1().unwrap();
    let mut o3 = Adam::new(vars(), 1e-2, 0.9, 0.95).unwrap();
    o3.load_state("optim", &saved, 4).unwrap();
    let vs3 = vars();
    let mut o4 = Adam::new(vs3.clone(), 1e-2, 0.9, 0.95).unwrap();
    o4.load_state("optim", &saved, 4).unwrap();
    o4.step(&grads(&vs3, 9)).unwrap();
    assert_eq!(saved["optim.m.w"].to_vec1::<f32>().unwrap(), before);
    assert!(o3.state("optim").unwrap()["optim.m.w"].to_vec1::<f32>().unwrap() == before);
}
