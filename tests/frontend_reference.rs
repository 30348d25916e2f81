//! The mel front end against the librosa/numpy reference written by
//! `tests/fixtures/make_audio_fixtures.py` (SPEC.md §1, §1.1).

use ndarray::Array2;
use smg_audio::{norm, MelTransform};
use smg_tests::{fixture, max_abs_diff_where};

fn npy(rel: &str) -> Array2<f32> {
    ndarray_npy::read_npy(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn filterbank_matches_librosa_slaney() {
    let ours = MelTransform::hifigan().filter_matrix();
    let reference = npy("audio/mel_basis.npy");
    let (err, _) = max_abs_diff_where(&ours, &reference, |_| true);
    let peak = reference.iter().fold(0f32, |m, v| m.max(*v));
    assert!(err / peak < 1e-5, "filterbank max abs diff {err} (peak {peak})");
}

#[test]
fn log_mel_matches_librosa_on_chirp_noise_and_speech() {
    let mt = MelTransform::hifigan();
    for name in ["chirp", "noise_bursts", "speech"] {
        let audio = smg_audio::load(fixture(&format!("audio/{name}.wav"))).unwrap();
        assert_eq!(audio.sample_rate, 22050);
        let ours = mt.log_mel(&audio.to_mono()).unwrap();
        let reference = npy(&format!("audio/{name}.logmel.npy"));
        assert_eq!(ours.dim(), reference.dim(), "{name}: shape");
        let (err, n) = max_abs_diff_where(&ours, &reference, |r| r > -9.0);
        assert!(n > 1000, "{name}: only {n} bins above -9");
        assert!(err < 5e-3, "{name}: max |log-mel diff| {err} over {n} bins above -9");
        eprintln!("{name}: max |log-mel diff| = {err:.2e} over {n} bins");

        let unit = norm::to_tokenizer_range(&ours);
        let unit_ref = npy(&format!("audio/{name}.unit.npy"));
        let (err_u, _) = max_abs_diff_where(&unit, &unit_ref, |r| r > -0.8);
        assert!(err_u < 1e-3, "{name}: max |normalised diff| {err_u}");
        assert!(unit.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}

#[test]
fn a_symmetric_window_would_be_caught() {
    // Guard that the tolerance above really detects window-convention errors.
    let audio = smg_audio::load(fixture("audio/chirp.wav")).unwrap();
    let mut mt = MelTransform::hifigan();
    let n = mt.stft.n_fft;
    mt.stft.window = (0..n).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos()) as f32).collect();
    let wrong = mt.log_mel(&audio.to_mono()).unwrap();
    let (err, _) = max_abs_diff_where(&wrong, &npy("audio/chirp.logmel.npy"), |r| r > -9.0);
    assert!(err > 5e-3, "symmetric window only off by {err}");
}
