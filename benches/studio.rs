//! Latency of the spectrogram studio on this machine: a real 2.97 s corpus clip (the first
//! test clip of the small corpus with 2 s of audio), a 1 s time gap inpainted with the shipped
//! small models, measured through the HTTP API exactly as the page does it (submit a job, poll
//! every 10 ms): time to the Griffin-Lim preview and to the vocoder's result. Baselines in the
//! same run: the same edit as one direct library call (`Pipeline::inpaint_recording`) with each
//! vocoder, so the ratios are the studio's overhead (two passes, HTTP, WAV encoding).
//!
//! Run: `cargo bench --bench studio` (about a minute). Results: benches/STUDIO.md.

use serde_json::Value;
use smg_pipeline::{Pipeline, Vocoder, WindowOptions};
use smg_studio::{Studio, StudioConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RUNS: u64 = 7;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data() -> PathBuf {
    std::env::var_os("SMG_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("data"))
}

fn clip() -> PathBuf {
    let manifest = data().join("corpus/sound-small/manifest.jsonl");
    let text =
        std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e} (run `smg data build --config small`)", manifest.display()));
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["split"] == "test" && r["audio_samples"].as_u64().unwrap() >= 2 * r["sample_rate"].as_u64().unwrap())
        .map(|r| data().join(r["path"].as_str().unwrap()))
        .expect("a test clip of 2 s")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn json(s: &Studio, method: &str, path: &str, body: &[u8]) -> Value {
    let (code, b) = smg_tests::http(s.addr(), method, path, body);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(code < 300, "{path}: {code} {v}");
    v
}

fn main() {
    let path = clip();
    let audio = smg_audio::load(&path).unwrap();
    let (from, to) = (1.0, 2.0);
    let pipeline = Pipeline::pretrained("small", &repo().join("data/checkpoints"), &data(), &candle_core::Device::Cpu).unwrap();
    let vocoder_name = pipeline.vocoder.name();
    let null = pipeline.condition(None).unwrap();
    let direct = |p: &Pipeline, seed: u64| {
        let sampler = smg_maskgit::Sampler { seed, guidance: Box::new(smg_maskgit::Guidance::Off), ..Default::default() };
        let t = Instant::now();
        p.inpaint_recording(&audio, from, to, &null, &sampler, &WindowOptions::default(), &mut |_, _| {}).unwrap();
        t.elapsed().as_secs_f64()
    };
    let direct_voc: Vec<f64> = (0..RUNS).map(|k| direct(&pipeline, k)).collect();
    let gl = pipeline.with_vocoder(Vocoder::GriffinLim(smg_audio::GriffinLimConfig { n_iter: 32, ..Default::default() }));
    let direct_gl: Vec<f64> = (0..RUNS).map(|k| direct(&gl, k)).collect();
    drop(gl);

    let studio = Studio::start(StudioConfig { port: 0, ..StudioConfig::new(repo().join("data/checkpoints"), data()) }).unwrap();
    let up = json(&studio, "POST", "/api/audio?name=clip.wav", &std::fs::read(&path).unwrap());
    let id = up["id"].as_str().unwrap().to_string();
    let (mut first, mut result, mut server_preview, mut server_result) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for seed in 0..RUNS {
        let body = format!(r#"{{"task":"inpaint","audio":"{id}","from_s":{from},"to_s":{to},"sampler":{{"seed":{seed}}}}}"#);
        let t = Instant::now();
        let job = json(&studio, "POST", "/api/jobs", body.as_bytes())["id"].as_u64().unwrap();
        let mut seen_preview = false;
        loop {
            std::thread::sleep(Duration::from_millis(10));
            let j = json(&studio, "GET", &format!("/api/jobs/{job}"), b"");
            if !seen_preview && (j["preview"].is_object() || j["result"].is_object()) {
                seen_preview = true;
                let url = j["preview"]["audio"]["url"].as_str().or(j["result"]["audio"]["url"].as_str()).unwrap().to_string();
                let (code, wav) = smg_tests::http(studio.addr(), "GET", &url, b"");
                assert!(code == 200 && wav.len() > 44);
                first.push(t.elapsed().as_secs_f64());
            }
            if j["state"] == "done" {
                let url = j["result"]["audio"]["url"].as_str().unwrap().to_string();
                let (code, _) = smg_tests::http(studio.addr(), "GET", &url, b"");
                assert_eq!(code, 200);
                result.push(t.elapsed().as_secs_f64());
                server_preview.push(j["preview_s"].as_f64().unwrap_or(f64::NAN));
                server_result.push(j["result_s"].as_f64().unwrap());
                break;
            }
            assert_ne!(j["state"], "failed", "{j}");
        }
    }
    studio.stop();
    let (dg, dv) = (median(direct_gl), median(direct_voc));
    println!("## Studio latency: inpainting 1 s of a 2.97 s clip, small models, {RUNS} runs (median)\n");
    println!(
        "CPU: {}, {} threads; vocoder: {vocoder_name}; clip: {}\n",
        smg_tests::cpu_name(),
        candle_core::utils::get_num_threads(),
        path.file_name().unwrap().to_string_lossy()
    );
    println!("| what | seconds | ratio to the direct call |");
    println!("|---|---|---|");
    println!("| direct library call, Griffin-Lim (32 it.) | {dg:.3} | 1.00 |");
    println!("| direct library call, {vocoder_name} | {dv:.3} | 1.00 |");
    let (gl, voc) = ("Griffin-Lim call".to_string(), format!("{vocoder_name} call"));
    for (what, v, base, of) in [
        ("studio: preview audio downloaded (page's view)", first, dg, &gl),
        ("studio: preview ready (server's clock)", server_preview, dg, &gl),
        ("studio: result downloaded (page's view)", result, dv, &voc),
        ("studio: result ready (server's clock)", server_result, dv, &voc),
    ] {
        let m = median(v);
        println!("| {what} | {m:.3} | {:.2} × {of} |", m / base);
    }
}
