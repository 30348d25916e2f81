//! Masked ViT shapes and sizes, sampler determinism and guards, zero-shot masks.

use candle_core::{DType, Device, Tensor};
use smg_core::SeededVarMap;
use smg_maskgit::tasks::{apply_mask, Grid};
use smg_maskgit::{Config, Guidance, Gumbel, MaskSchedule, MaskedVit, Sampler, Schedule};

fn tiny() -> Config {
    Config { vocab: 16, rows: 2, cols: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 32, cond_dim: 8, conditional_mask: true }
}

fn model(cfg: &Config, seed: u64) -> MaskedVit {
    MaskedVit::new(cfg, SeededVarMap::new(seed).var_builder(DType::F32, &Device::Cpu)).unwrap()
}

fn cond(b: usize, d: usize) -> Tensor {
    let v: Vec<f32> = (0..b * d).map(|i| ((i * 37 % 11) as f32 - 5.0) / 5.0).collect();
    Tensor::from_vec(v, (b, d), &Device::Cpu).unwrap()
}

#[test]
fn paper_configuration_has_about_170m_parameters() {
    let n = MaskedVit::parameter_count(&Config::paper()).unwrap();
    assert!((168_000_000..174_000_000).contains(&n), "{n}");
    let s = MaskedVit::parameter_count(&Config::small()).unwrap();
    assert!((500_000..1_000_000).contains(&s), "{s}");
}

#[test]
fn forward_shapes_and_errors() {
    let cfg = tiny();
    let m = model(&cfg, 0);
    let t = Tensor::new(&[[1u32, 2, 16, 3, 16, 16, 0, 5]], &Device::Cpu).unwrap();
    let l = m.forward(&t, &cond(1, 8)).unwrap();
    assert_eq!(l.dims(), &[1, 8, 16]);
    let e = m.forward(&t.narrow(1, 0, 7).unwrap(), &cond(1, 8)).unwrap_err().to_string();
    assert!(e.contains("token sequence of 7"), "{e}");
    let e = m.forward(&t, &cond(1, 5)).unwrap_err().to_string();
    assert!(e.contains("conditioning"), "{e}");
}

#[test]
fn conditional_mask_switch_changes_only_masked_inputs() {
    // Without masked tokens the switch has no effect; with masked tokens it does.
    let a = model(&tiny(), 3);
    let b = model(&Config { conditional_mask: false, ..tiny() }, 3);
    let full = Tensor::new(&[[1u32, 2, 3, 4, 5, 6, 7, 8]], &Device::Cpu).unwrap();
    let masked = Tensor::new(&[[1u32, 16, 3, 16, 5, 6, 16, 8]], &Device::Cpu).unwrap();
    let c = cond(1, 8);
    let d = |x: &Tensor, y: &Tensor| (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(d(&a.forward(&full, &c).unwrap(), &b.forward(&full, &c).unwrap()) < 1e-6);
    assert!(d(&a.forward(&masked, &c).unwrap(), &b.forward(&masked, &c).unwrap()) > 1e-4);
    // A zero conditioning row is "unconditional": it differs from a real embedding.
    let z = Tensor::zeros((1, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(d(&a.forward(&masked, &z).unwrap(), &a.forward(&masked, &c).unwrap()) > 1e-4);
}

#[test]
fn sampler_is_seeded_and_keeps_known_tokens() {
    let cfg = tiny();
    let m = model(&cfg, 1);
    let start = Tensor::new(&[[16u32, 16, 16, 16, 16, 16, 16, 16], [1, 2, 16, 16, 5, 16, 7, 8]], &Device::Cpu).unwrap();
    let c = cond(2, 8);
    let s = Sampler { iterations: 3, seed: 7, keep_history: true, ..Default::default() };
    let a = s.sample(&m, &start, &c).unwrap();
    let b = s.sample(&m, &start, &c).unwrap();
    let (av, bv): (Vec<Vec<u32>>, Vec<Vec<u32>>) = (a.tokens.to_vec2().unwrap(), b.tokens.to_vec2().unwrap());
    assert_eq!(av, bv, "same seed, same tokens");
    assert!(av.iter().flatten().all(|&t| t < 16), "every token filled");
    for (p, &t) in [1u32, 2, 16, 16, 5, 16, 7, 8].iter().enumerate() {
        if t != 16 {
            assert_eq!(av[1][p], t, "known token at {p} changed");
        }
    }
    assert_eq!(a.history.len(), 3);
    let still: Vec<usize> = a.history.iter().map(|h| h.masked[0].iter().filter(|&&x| x).count()).collect();
    assert!(still.windows(2).all(|w| w[1] <= w[0]) && *still.last().unwrap() == 0, "{still:?}");
    let other = Sampler { iterations: 3, seed: 8, ..Default::default() }.sample(&m, &start, &c).unwrap();
    let many = (0..5).any(|k| {
        Sampler { iterations: 3, seed: 100 + k, ..Default::default() }.sample(&m, &start, &c).unwrap().tokens.to_vec2::<u32>().unwrap()
            != av
    });
    assert!(many || other.tokens.to_vec2::<u32>().unwrap() != av, "different seeds never changed the output");
}

#[test]
fn absurd_settings_are_refused_with_a_reason() {
    let m = model(&tiny(), 1);
    let start = Tensor::new(&[[16u32, 16, 16, 3, 4, 5, 6, 7]], &Device::Cpu).unwrap();
    let c = cond(1, 8);
    let err = |s: Sampler| s.sample(&m, &start, &c).unwrap_err().to_string();
    assert!(err(Sampler { iterations: 0, ..Default::default() }).contains("at least 1 iteration"));
    assert!(err(Sampler { iterations: 4, ..Default::default() }).contains("4 iterations for 3 masked tokens"));
    assert!(err(Sampler { iterations: 2, temperature: Box::new(Gumbel::Constant(-1.0)), ..Default::default() }).contains("temperature"));
    assert!(err(Sampler { iterations: 2, guidance: Box::new(Guidance::Constant(f64::NAN)), ..Default::default() }).contains("guidance"));
    let bad = Tensor::new(&[[17u32, 16, 16, 3, 4, 5, 6, 7]], &Device::Cpu).unwrap();
    assert!(Sampler { iterations: 2, ..Default::default() }.sample(&m, &bad, &c).unwrap_err().to_string().contains("outside the codebook"));
}

#[test]
fn schedules_start_full_and_end_empty() {
    for s in [Schedule::Cosine, Schedule::Linear, Schedule::Square, Schedule::Arccos] {
        assert!((s.mask_ratio(0.0) - 1.0).abs() < 1e-9 && s.mask_ratio(1.0).abs() < 1e-9, "{s:?}");
        assert!(s.mask_ratio(0.3) > s.mask_ratio(0.6), "{s:?} decreasing");
    }
    assert!((Schedule::Linear.mask_ratio(0.25) - 0.75).abs() < 1e-12);
}

#[test]
fn zero_shot_masks_follow_the_spec() {
    let mel = smg_audio::MelConfig::hifigan();
    let g = Grid { rows: 5, cols: 53, factor: 16 };
    // SPEC.md §3.7: columns 25..35 are 4.64 s – 6.50 s.
    let spc = g.seconds_per_column(&mel);
    assert_eq!(g.columns_for(&mel, 25.0 * spc, 35.0 * spc).unwrap(), (25, 35));
    let m = g.time_mask(25, 35);
    assert_eq!(m.iter().filter(|&&x| x).count(), 50);
    assert!(m[25] && m[4 * 53 + 34] && !m[24] && !m[35]);
    // BWE above 4 kHz regenerates the top token row (mel bands 64-79).
    assert_eq!(g.first_row_above(&mel, 4000.0).unwrap(), 4);
    assert_eq!(g.band_mask(4).iter().filter(|&&x| x).count(), 53);
    assert!(g.columns_for(&mel, 3.0, 2.0).is_err() && g.columns_for(&mel, 100.0, 101.0).is_err());
    assert!(g.first_row_above(&mel, 9000.0).is_err() && g.first_row_above(&mel, -5.0).is_err());
    let t = Tensor::zeros((2, 265), DType::U32, &Device::Cpu).unwrap();
    let masked = apply_mask(&t, &m, 1024).unwrap();
    assert_eq!(masked.to_vec2::<u32>().unwrap()[1].iter().filter(|&&x| x == 1024).count(), 50);
    assert!(apply_mask(&t, &vec![false; 265], 1024).unwrap_err().to_string().contains("no token"));
}

#[test]
fn guidance_schedules_have_their_endpoints() {
    use smg_maskgit::CfgSchedule;
    let t = 16;
    assert_eq!((Guidance::Linear(3.0).scale(0, t), Guidance::Linear(3.0).scale(t - 1, t)), (0.0, 3.0));
    let g = Guidance::LinearFromConditional(3.0);
    assert_eq!((g.scale(0, t), g.scale(t - 1, t)), (1.0, 3.0));
    assert!((g.scale(5, t) - (1.0 + 2.0 * 5.0 / 15.0)).abs() < 1e-12);
    let d = Guidance::LinearToConditional(3.0);
    assert_eq!((d.scale(0, t), d.scale(t - 1, t)), (3.0, 1.0));
    assert_eq!(Guidance::Constant(2.0).scale(7, t), 2.0);
    assert!(!Guidance::Off.needs_uncond() && g.needs_uncond());
}

#[test]
fn guidance_rescale_keeps_the_conditional_sharpness() {
    use smg_maskgit::Rescaled;
    let m = model(&tiny(), 2);
    let start = Tensor::full(16u32, (2, 8), &Device::Cpu).unwrap();
    let c = cond(2, 8);
    let run = |g: Box<dyn smg_maskgit::CfgSchedule>| {
        let out = Sampler { iterations: 2, guidance: g, seed: 3, keep_history: true, ..Default::default() }.sample(&m, &start, &c).unwrap();
        // Mean probability of the tokens sampled at the first step (all positions unknown).
        let conf = &out.history[0].confidence;
        let mean = conf.iter().flatten().sum::<f32>() / conf.iter().flatten().count() as f32;
        (out.tokens.to_vec2::<u32>().unwrap(), mean)
    };
    let (plain_tokens, plain) = run(Box::new(Guidance::Constant(8.0)));
    let (zero_tokens, _) = run(Box::new(Rescaled { guidance: Guidance::Constant(8.0), phi: 0.0 }));
    assert_eq!(plain_tokens, zero_tokens, "φ = 0 is plain guidance");
    let (_, rescaled) = run(Box::new(Rescaled { guidance: Guidance::Constant(8.0), phi: 1.0 }));
    let (_, conditional) = run(Box::new(Guidance::Off));
    assert!(plain > rescaled, "guidance sharpens ({plain}), rescaling undoes it ({rescaled})");
    assert!((rescaled - conditional).abs() < (plain - conditional).abs(), "{rescaled} vs conditional {conditional}, plain {plain}");
    let err = Sampler { iterations: 2, guidance: Box::new(Rescaled { guidance: Guidance::Constant(3.0), phi: 1.5 }), ..Default::default() }
        .sample(&m, &start, &c)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rescale"), "{err}");
}

/// A log-probability row from probabilities.
fn logp_row(p: &[f32]) -> Vec<f32> {
    p.iter().map(|x| x.ln()).collect()
}

fn probs(l: &[f32]) -> Vec<f32> {
    l.iter().map(|x| x.exp()).collect()
}

#[test]
fn token_draws_filter_the_distribution() {
    use smg_maskgit::{Draw, TokenDraw};
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    let base = [0.5f32, 0.25, 0.15, 0.1];
    let run = |d: Draw| {
        let mut l = logp_row(&base);
        d.filter(&mut l, 0, 4);
        probs(&l)
    };
    assert!(close(&run(Draw::Categorical), &base));
    // Top-p 0.7: 0.5 alone is short of it, 0.5 + 0.25 reaches it.
    assert!(close(&run(Draw::TopP(0.7)), &[2.0 / 3.0, 1.0 / 3.0, 0.0, 0.0]), "{:?}", run(Draw::TopP(0.7)));
    assert!(close(&run(Draw::TopP(1.0)), &base));
    assert!(close(&run(Draw::TopP(0.1)), &[1.0, 0.0, 0.0, 0.0]));
    assert!(close(&run(Draw::TopK(3)), &[0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0.0]));
    // Temperature 0.5 squares the probabilities (then renormalises); 1 changes nothing.
    let sq: f32 = base.iter().map(|p| p * p).sum();
    assert!(close(&run(Draw::Temperature(0.5)), &base.map(|p| p * p / sq)));
    assert!(close(&run(Draw::Temperature(1.0)), &base));
    // Parsing and guards.
    assert_eq!("top-p:0.9".parse::<Draw>().unwrap(), Draw::TopP(0.9));
    assert_eq!("categorical".parse::<Draw>().unwrap(), Draw::Categorical);
    assert_eq!("top-k:32".parse::<Draw>().unwrap(), Draw::TopK(32));
    assert_eq!("temperature:0.7".parse::<Draw>().unwrap(), Draw::Temperature(0.7));
    assert_eq!(Draw::TopP(0.9).to_string().parse::<Draw>().unwrap(), Draw::TopP(0.9));
    for bad in ["top-p:0", "top-p:1.5", "temperature:0", "temperature:-1", "top-k:0", "nucleus", "top-p:x"] {
        assert!(bad.parse::<Draw>().is_err(), "{bad}");
    }
}

#[test]
fn sampler_draws_only_inside_the_nucleus() {
    use smg_maskgit::Draw;
    let cfg = tiny();
    let m = model(&cfg, 4);
    let start = Tensor::full(16u32, (3, 8), &Device::Cpu).unwrap();
    let c = cond(3, 8);
    let s = |d: Draw| Sampler {
        iterations: 4,
        guidance: Box::new(Guidance::Constant(2.0)),
        draw: Box::new(d),
        seed: 5,
        keep_history: true,
        ..Default::default()
    };
    // Categorical is the default: bit-identical tokens.
    let plain = s(Draw::Categorical).sample(&m, &start, &c).unwrap();
    let default = Sampler { iterations: 4, guidance: Box::new(Guidance::Constant(2.0)), seed: 5, ..Default::default() }
        .sample(&m, &start, &c)
        .unwrap();
    assert_eq!(plain.tokens.to_vec2::<u32>().unwrap(), default.tokens.to_vec2::<u32>().unwrap());
    // Top-k 1 is greedy: every token of the first step is the argmax of its guided distribution,
    // drawn with confidence 1 under the filtered distribution.
    let greedy = s(Draw::TopK(1)).sample(&m, &start, &c).unwrap();
    assert!(greedy.history[0].confidence.iter().flatten().all(|&p| (p - 1.0).abs() < 1e-6));
    let again = s(Draw::TopK(1)).sample(&m, &start, &c).unwrap();
    assert_eq!(greedy.tokens.to_vec2::<u32>().unwrap(), again.tokens.to_vec2::<u32>().unwrap());
    // A nucleus draw is more confident on average than the plain draw.
    let mean = |o: &smg_maskgit::SampleOutput| {
        let v: Vec<f32> = o.history[0].confidence.iter().flatten().copied().collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    let nucleus = s(Draw::TopP(0.5)).sample(&m, &start, &c).unwrap();
    assert!(mean(&nucleus) > mean(&plain), "{} vs {}", mean(&nucleus), mean(&plain));
    let err = s(Draw::TopP(2.0)).sample(&m, &start, &c).unwrap_err().to_string();
    assert!(err.contains("top-p"), "{err}");
}
