//! smg-eval's Fréchet distance against the scipy route of the FAD reference (SPEC.md §6):
//! fixture from tests/fixtures/make_eval_fixtures.py (numpy mean, np.cov, scipy.linalg.sqrtm).

use smg_eval::{frechet_distance, Gaussian};

#[test]
fn frechet_distance_matches_scipy() {
    let text = std::fs::read_to_string(smg_tests::fixture("eval/frechet.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let rows = |k: &str| -> Vec<Vec<f64>> { serde_json::from_value(case[k].clone()).unwrap() };
        let want = case["fd"].as_f64().unwrap();
        let got = frechet_distance(&Gaussian::fit(&rows("a")).unwrap(), &Gaussian::fit(&rows("b")).unwrap()).unwrap();
        let rel = (got - want).abs() / want.abs();
        println!("{}: rust {got:.12} scipy {want:.12} relative difference {rel:.2e}", case["name"]);
        assert!(rel < 1e-6, "{}: {got} vs {want}", case["name"]);
    }
}
