//! The FAD embedders and the probe metrics against independent references made by
//! tests/fixtures/make_embed_fixtures.py: librosa + a numpy forward pass of aiSFX with the released
//! weights, a numpy transcription of torchvggish's front end, and scikit-learn's ROC-AUC / AP.

use candle_core::{DType, Device, Module};
use smg_embed::{aisfx, vggish, Embedder};

fn fixture(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(smg_tests::fixture(&format!("eval/{name}.json"))).unwrap()).unwrap()
}

/// The fixture's test signal (same formula as make_embed_fixtures.py `signal`).
fn signal(sr: u32, seconds: f64) -> Vec<f32> {
    let n = (sr as f64 * seconds) as usize;
    let pi = std::f64::consts::PI;
    (0..n)
        .map(|i| {
            let t = i as f64 / sr as f64;
            let chirp = 0.3 * (2.0 * pi * (200.0 * t + 0.5 * 3000.0 * t * t / seconds)).sin();
            let tones = 0.2 * (2.0 * pi * 440.0 * t).sin() * (1.0 + 0.5 * (2.0 * pi * 3.0 * t).sin()) + 0.1 * (2.0 * pi * 5200.0 * t).sin();
            let clicks = 0.4 * (-((t * 7.0) % 1.0) * 40.0).exp() * (2.0 * pi * 1500.0 * t).sin();
            (chirp + tones + clicks) as f32
        })
        .collect()
}

fn matrix(v: &serde_json::Value) -> Vec<Vec<f64>> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn aisfx_front_end_and_network_match_the_numpy_reference() {
    let f = fixture("aisfx");
    let y = signal(44100, 3.5);
    let model = aisfx::Aisfx::load(&smg_tests::asset("weights/aisfx.safetensors"), &Device::Cpu).unwrap();
    let spec = model.front.spectrogram(&y);
    let want = matrix(&f["spectrogram"]);
    assert_eq!(spec.dim(), (want.len(), want[0].len()));
    let mut worst = 0f64;
    for (t, row) in want.iter().enumerate() {
        for (m, &w) in row.iter().enumerate() {
            worst = worst.max((spec[[t, m]] as f64 - w).abs());
        }
    }
    println!("aisfx spectrogram: max |rust - librosa| = {worst:.2e} (values in [0, ~1])");
    assert!(worst < 2e-4, "spectrogram differs by {worst}");
    let emb = model.embed(&y, 44100).unwrap();
    let want = matrix(&f["embeddings"]);
    assert_eq!((emb.len(), emb[0].len()), (want.len(), 512));
    let scale = want.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let worst = emb.iter().flatten().zip(want.iter().flatten()).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    println!("aisfx embeddings: max |rust - numpy| = {worst:.2e}, max |value| = {scale:.3}");
    assert!(worst < 1e-3 * scale.max(1.0), "embeddings differ by {worst}");
}

#[test]
fn vggish_front_end_matches_torchvggish() {
    let f = fixture("vggish_frontend");
    let cfg = vggish::Config::official();
    let fe = vggish::FrontEnd::new(&cfg);
    let y = signal(16000, 2.1);
    let lm = fe.log_mel(&y);
    let want = matrix(&f["log_mel"]);
    assert_eq!(lm.dim(), (want.len(), 64));
    let worst = want
        .iter()
        .enumerate()
        .flat_map(|(t, r)| r.iter().enumerate().map(move |(m, &w)| (t, m, w)))
        .fold(0f64, |a, (t, m, w)| a.max((lm[[t, m]] as f64 - w).abs()));
    println!("vggish log-mel: max |rust - numpy| = {worst:.2e}");
    assert!(worst < 1e-3, "log-mel differs by {worst}");
    let ex = fe.examples(&y, &Device::Cpu).unwrap();
    assert_eq!(ex.dims(), &[f["examples"].as_u64().unwrap() as usize, 1, 96, 64]);
    assert!(fe.examples(&y[..8000], &Device::Cpu).unwrap_err().to_string().contains("at least"));
}

#[test]
fn vggish_runs_on_random_weights_under_torchvggish_names() {
    let cfg = vggish::Config::official();
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let model = vggish::Vggish::new(&cfg, vb).unwrap();
    let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    let want = [
        "embeddings.0.bias",
        "embeddings.0.weight",
        "embeddings.2.bias",
        "embeddings.2.weight",
        "embeddings.4.bias",
        "embeddings.4.weight",
        "features.0.bias",
        "features.0.weight",
        "features.11.bias",
        "features.11.weight",
        "features.13.bias",
        "features.13.weight",
        "features.3.bias",
        "features.3.weight",
        "features.6.bias",
        "features.6.weight",
        "features.8.bias",
        "features.8.weight",
    ];
    assert_eq!(names, want);
    let data = vm.data().lock().unwrap();
    assert_eq!(data["embeddings.0.weight"].dims(), &[4096, 512 * 4 * 6]);
    drop(data);
    let y = signal(22050, 2.5);
    let e = model.embed(&y, 22050).unwrap();
    assert_eq!((e.len(), e[0].len()), (2, 128));
    assert!(e.iter().flatten().all(|v| v.is_finite()));
    assert_eq!(e, model.embed(&y, 22050).unwrap(), "deterministic");
    // The flatten is NHWC (torchvggish transposes before view): check on the feature map directly.
    let ex = model.front.examples(&smg_audio::resample(&y, 22050, 16000).unwrap(), &Device::Cpu).unwrap();
    assert_eq!(model.net.forward(&ex).unwrap().dims(), &[2, 128]);
}

#[test]
fn embedders_refuse_bad_clips() {
    let m = smg_embed::MelStats::default();
    assert!(m.embed(&[], 22050).unwrap_err().to_string().contains("empty"));
    assert!(m.embed(&[0.0, f32::NAN, 0.0], 22050).unwrap_err().to_string().contains("sample 1"));
    assert!(m.embed(&[0.0; 100], 0).unwrap_err().to_string().contains("sample rate"));
    assert!(smg_embed::by_name("openl3", std::path::Path::new("."), &Device::Cpu).err().unwrap().to_string().contains("unknown embedder"));
    assert!(smg_embed::Vggish::load(std::path::Path::new("/nonexistent/vggish.safetensors"), &Device::Cpu)
        .err()
        .unwrap()
        .to_string()
        .contains("no VGGish weights"));
}

#[test]
fn fad_of_a_set_with_itself_is_zero_and_grows_with_a_shift() {
    let m = smg_embed::MelStats::default();
    let clip = |k: usize, gain: f32| {
        let y: Vec<f32> = signal(22050, 1.0 + 0.1 * k as f64).iter().map(|v| v * gain).collect();
        smg_embed::Clip::new(format!("c{k}"), y, 22050)
    };
    let a: Vec<_> = (0..6).map(|k| clip(k, 1.0)).collect();
    let b: Vec<_> = (0..6).map(|k| clip(k, 0.1)).collect();
    let same = smg_embed::fad_between(&m, &a, &a, false).unwrap();
    let diff = smg_embed::fad_between(&m, &a, &b, false).unwrap();
    assert!(same.fad.abs() < 1e-6 * diff.fad, "{} vs {}", same.fad, diff.fad);
    assert!(diff.fad > 1.0);
    assert_eq!(diff.clips, [6, 6]);
    assert!(smg_embed::fad_between(&m, &a, &[], false).is_err());
}

#[test]
fn roc_auc_and_average_precision_match_scikit_learn() {
    let f = fixture("metrics");
    let s = matrix(&f["scores"]);
    let y: Vec<Vec<bool>> = serde_json::from_value::<Vec<Vec<u8>>>(f["labels"].clone())
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|v| v == 1).collect())
        .collect();
    for j in 0..s[0].len() {
        let col: Vec<f64> = s.iter().map(|r| r[j]).collect();
        let lab: Vec<bool> = y.iter().map(|r| r[j]).collect();
        let auc = smg_eval::roc_auc(&col, &lab).unwrap().unwrap();
        let ap = smg_eval::average_precision(&col, &lab).unwrap().unwrap();
        let (wa, wp) = (f["roc_auc"][j].as_f64().unwrap(), f["average_precision"][j].as_f64().unwrap());
        println!("label {j}: ROC-AUC {auc:.12} sklearn {wa:.12}; AP {ap:.12} sklearn {wp:.12}");
        assert!((auc - wa).abs() < 1e-12 && (ap - wp).abs() < 1e-12);
    }
    let m = smg_eval::macro_scores(&s, &y).unwrap();
    assert!((m.roc_auc - f["macro_roc_auc"].as_f64().unwrap()).abs() < 1e-12);
    assert!((m.average_precision - f["macro_average_precision"].as_f64().unwrap()).abs() < 1e-12);
}
