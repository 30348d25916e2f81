//! The studio's HTTP API against the shipped small models: uploads (good, junk, empty, too
//! large), the blocking task endpoints, jobs from several clients at once (all served, in
//! order) and bad requests, after all of which the server still answers.

use smg_studio::{Studio, StudioConfig};
use smg_tests::http;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn studio() -> Studio {
    let data = std::env::var_os("SMG_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("data"));
    let cfg = StudioConfig {
        port: 0,
        max_upload_bytes: 1 << 20,
        max_duration_s: 30.0,
        ..StudioConfig::new(repo().join("data/checkpoints"), data)
    };
    Studio::start(cfg).expect("the studio starts with the shipped small models")
}

fn json(s: &Studio, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (code, b) = http(s.addr(), method, path, body.as_bytes());
    (code, serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&b))))
}

/// A 2 s 16-bit mono WAV of a decaying tone with some noise.
fn wav() -> Vec<u8> {
    let x: Vec<f32> =
        (0..44100).map(|i| ((i as f32 * 0.05).sin() * (-(i as f32) / 20000.0).exp() * 0.5) + ((i * 7919 % 101) as f32 / 1010.0)).collect();
    smg_audio::wav_bytes(&x, 22050, smg_audio::WavEncoding::Pcm(16)).unwrap()
}

#[test]
fn the_api_serves_edits_and_refuses_bad_requests_without_dying() {
    let s = studio();
    let (code, h) = json(&s, "GET", "/api/health", "");
    assert_eq!(code, 200);
    assert_eq!(h["ok"], true);
    let (rows, cols) = (h["models"]["rows"].as_u64().unwrap(), h["models"]["cols"].as_u64().unwrap());
    assert!(rows > 0 && cols > 0);
    // The knobs start at the loaded generator's own preset (the small one's sampler.json here).
    let preset = smg_maskgit::SamplerPreset::for_generator(&repo().join("data/checkpoints/maskgit-small")).unwrap();
    let shown: smg_studio::SamplerSettings = serde_json::from_value(h["models"]["sampler"].clone()).unwrap();
    assert_eq!(shown, preset);
    assert!(shown.measured.contains("TRAINING.md"), "{h}");
    let (code, page) = http(s.addr(), "GET", "/", b"");
    assert!(code == 200 && String::from_utf8_lossy(&page).contains("Spectrogram studio"));

    // Uploads: a WAV is accepted; junk, an empty body and a file over the limit are not.
    let (code, a) = json(&s, "POST", "/api/audio?name=tone.wav", &String::from_utf8_lossy(&[]));
    assert_eq!(code, 400, "{a}");
    let (code, a) = {
        let (c, b) = http(s.addr(), "POST", "/api/audio?name=tone.wav", &wav());
        (c, serde_json::from_slice::<serde_json::Value>(&b).unwrap())
    };
    assert_eq!(code, 200, "{a}");
    assert!((a["duration_s"].as_f64().unwrap() - 2.0).abs() < 1e-3 && a["sample_rate"] == 22050);
    let id = a["id"].as_str().unwrap().to_string();
    let (code, e) = json(&s, "POST", "/api/audio?name=notes.txt", "these are not samples");
    assert_eq!(code, 400);
    assert!(e["error"].as_str().unwrap().contains("not audio"), "{e}");
    let (code, _) = http(s.addr(), "POST", "/api/audio?name=big.wav", &vec![b'R'; (1 << 20) + 10]);
    assert_eq!(code, 413);

    // The blocking inpainting endpoint: same length, a preview before the result, the steps.
    let (code, j) =
        json(&s, "POST", "/api/inpaint", &format!(r#"{{"audio":"{id}","from_s":0.5,"to_s":1.2,"sampler":{{"iterations":4,"seed":3}}}}"#));
    assert_eq!(code, 200, "{j}");
    assert_eq!(j["state"], "done");
    assert_eq!(j["result"]["audio"]["frames"], 44100);
    let steps = j["windows"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[0]["masked"].as_array().unwrap().len() as u64, rows * cols);
    let rid = j["result"]["audio"]["id"].as_str().unwrap();
    let (code, out) = http(s.addr(), "GET", &format!("/api/audio/{rid}/wav"), b"");
    assert!(code == 200 && out.len() > 88000);
    let (code, m) = json(&s, "GET", &format!("/api/audio/{id}/mel"), "");
    assert!(code == 200 && m["bands"] == 80, "{m}");

    // Several clients at once: every job is served, none is lost.
    let body = |seed: u32| {
        format!(r#"{{"task":"inpaint","audio":"{id}","from_s":1.0,"to_s":1.5,"rows":[1,3],"sampler":{{"iterations":2,"seed":{seed}}}}}"#)
    };
    let (sr, body) = (&s, &body);
    let ids: Vec<u64> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3).map(|k| sc.spawn(move || json(sr, "POST", "/api/jobs", &body(k)))).collect();
        hs.into_iter()
            .map(|h| {
                let (code, j) = h.join().unwrap();
                assert_eq!(code, 202, "{j}");
                j["id"].as_u64().unwrap()
            })
            .collect()
    });
    for jid in ids {
        let t0 = std::time::Instant::now();
        loop {
            let (code, j) = json(&s, "GET", &format!("/api/jobs/{jid}"), "");
            assert_eq!(code, 200);
            if j["state"] == "done" {
                break;
            }
            assert_ne!(j["state"], "failed", "{j}");
            assert!(t0.elapsed().as_secs() < 300, "job {jid} did not finish");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    // Text-to-audio longer than a window: the asked length, and every window's steps.
    let (code, j) =
        json(&s, "POST", "/api/generate", r#"{"prompt":"rain on a roof","duration_s":5.0,"sampler":{"iterations":2,"seed":1}}"#);
    assert_eq!(code, 200, "{j}");
    assert_eq!(j["result"]["audio"]["frames"], 5 * 22050);
    let windows = j["windows"].as_array().unwrap();
    assert!(windows.len() >= 2, "{} windows for 5 s", windows.len());
    assert!(windows.iter().all(|w| w["steps"].as_array().unwrap().len() == 2));

    // Bad requests get a 4xx with a message naming the problem.
    for (body, needle) in [
        ("{nope", "not JSON"),
        (r#"{"audio":"zzz","from_s":0,"to_s":1}"#, "no recording"),
        (&format!(r#"{{"audio":"{id}","from_s":1,"to_s":0.5}}"#), "empty or negative"),
        (&format!(r#"{{"audio":"{id}","from_s":0,"to_s":1,"sampler":{{"iterations":100000}}}}"#), "iterations"),
        (&format!(r#"{{"audio":"{id}","from_s":0,"to_s":1,"sampler":{{"temperature":-1}}}}"#), "temperature"),
        (&format!(r#"{{"audio":"{id}","from_s":0,"to_s":1,"rows":[3,99]}}"#), "rows"),
        (&format!(r#"{{"audio":"{id}","from_s":5,"to_s":6}}"#), "after the end"),
        (&format!(r#"{{"audio":"{id}","from_s":0,"to_s":1,"sampler":{{"mask_schedule":"zigzag"}}}}"#), "mask schedule"),
        (&format!(r#"{{"audio":"{id}","from_s":0,"to_s":1,"volume":11}}"#), "unknown field"),
    ] {
        let (code, e) = json(&s, "POST", "/api/inpaint", body);
        assert!((400..500).contains(&code), "{body}: {code} {e}");
        assert!(e["error"].as_str().unwrap().contains(needle), "{body}: {e}");
    }
    let (code, e) = json(&s, "POST", "/api/bandwidth-extension", &format!(r#"{{"audio":"{id}","cutoff_hz":99999}}"#));
    assert!(code == 400 && e["error"].as_str().unwrap().contains("cut-off"), "{e}");
    let (code, e) = json(&s, "GET", "/api/jobs/999999", "");
    assert_eq!(code, 404, "{e}");
    let (code, h) = json(&s, "GET", "/api/health", "");
    assert!(code == 200 && h["ok"] == true, "the server still answers");
    s.stop();
}
