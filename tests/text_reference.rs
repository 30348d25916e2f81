//! The MiniLM text branch against an independent numpy BERT (tests/fixtures/make_minilm_fixture.py):
//! word pieces equal, embeddings within 1e-4, truncation reported, empty prompts and empty batches.

use smg_clap::{TextEncoder, MAX_TOKENS};
use smg_tests::{asset, fixture};

fn load() -> TextEncoder {
    TextEncoder::load(&asset("weights/minilm"), &candle_core::Device::Cpu).expect("MiniLM loads")
}

#[test]
fn embeddings_match_the_numpy_reference() {
    let enc = load();
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("text/minilm.json")).unwrap()).unwrap();
    let rows = fx["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let out = enc.embed(&texts).unwrap();
    let got: Vec<Vec<f32>> = out.embeddings.to_vec2().unwrap();
    let mut worst = 0f32;
    for (i, r) in rows.iter().enumerate() {
        let ids: Vec<u32> = r["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(enc.token_ids(texts[i]).unwrap(), ids, "word pieces of {:?}", texts[i]);
        assert_eq!(out.token_counts[i], ids.len());
        let want: Vec<f32> = r["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let d = got[i].iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "prompt {i} ({:?}): max |diff| {d}", texts[i]);
        worst = worst.max(d);
        assert_eq!(out.truncated.contains(&i), r["truncated"].as_bool().unwrap(), "truncation flag of prompt {i}");
    }
    println!("max |rust - numpy| over 10 prompts x 384 dims: {worst:e}");
    // The long prompt is past the limit and is reported as truncated, not silently cut.
    assert!(out.token_counts[9] > MAX_TOKENS && out.truncated == vec![9]);
}

#[test]
fn batching_does_not_change_an_embedding_and_empty_batches_are_refused() {
    let enc = load();
    let alone = enc.embed(&["a dog barking in the distance"]).unwrap().embeddings;
    let batched =
        enc.embed(&["a dog barking in the distance", "a much longer prompt about rain on a tin roof at night"]).unwrap().embeddings;
    let d = (alone.get(0).unwrap() - batched.get(0).unwrap()).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 1e-5, "padding changed the embedding by {d}");
    assert!(enc.embed(&[]).unwrap_err().to_string().contains("empty"));
}

#[test]
fn a_missing_model_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = TextEncoder::load(dir.path(), &candle_core::Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("config.json") && e.contains("missing"), "{e}");
}
