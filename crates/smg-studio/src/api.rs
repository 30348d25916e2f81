//! The HTTP API (README, "Spectrogram studio"): the page at `/`, recordings under
//! `/api/audio`, corpus clips under `/api/clips`, jobs under `/api/jobs` and one blocking
//! endpoint per task. Every error is a JSON `{"error": …}` with a 4xx status for a bad request
//! and 5xx for a failure of the server; no request can stop the server.

use crate::jobs::{JobRequest, JobState, JobStatus, Task};
use crate::store::{audio_ref, lock, State};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use smg_audio::Audio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const PAGE: &str = include_str!("page.html");

type S = AxState<Arc<State>>;

/// An error answer: status and message.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult<T> = std::result::Result<T, ApiError>;

pub fn router(state: Arc<State>) -> Router {
    let limit = state.cfg.max_upload_bytes;
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/health", get(health))
        .route("/api/clips", get(clips))
        .route("/api/clips/{n}", post(load_clip))
        .route("/api/audio", post(upload).layer(DefaultBodyLimit::max(limit)))
        .route("/api/audio/{id}", get(audio_info))
        .route("/api/audio/{id}/wav", get(audio_wav))
        .route("/api/audio/{id}/mel", get(audio_mel))
        .route("/api/jobs", post(submit))
        .route("/api/jobs/{id}", get(job))
        .route("/api/inpaint", post(|s: S, b: Bytes| run_sync(s, b, Task::Inpaint)))
        .route("/api/bandwidth-extension", post(|s: S, b: Bytes| run_sync(s, b, Task::BandwidthExtension)))
        .route("/api/generate", post(|s: S, b: Bytes| run_sync(s, b, Task::Generate)))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such page or endpoint (the API is under /api)".into()) })
        .with_state(state)
}

async fn health(AxState(st): S) -> Json<Value> {
    let queued = lock(&st.jobs).queue.len();
    Json(json!({
        "ok": true,
        "models": st.info(),
        "queued": queued,
        "limits": { "max_upload_bytes": st.cfg.max_upload_bytes, "max_duration_s": st.cfg.max_duration_s, "max_queue": st.cfg.max_queue },
    }))
}

/// The test clips of the built corpus, once per server.
fn corpus(st: &State) -> &'static std::result::Result<smg_data::Dataset, String> {
    static CORPUS: OnceLock<std::result::Result<smg_data::Dataset, String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let cfg = smg_data::ClipConfig::by_name(&st.cfg.corpus).map_err(|e| e.to_string())?;
        smg_data::Dataset::open_sound(&st.cfg.data_dir, &cfg).map_err(|e| e.to_string())
    })
}

async fn clips(AxState(st): S) -> ApiResult<Json<Value>> {
    let ds = corpus(&st).as_ref().map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("no corpus clips: {e}")))?;
    let mut list: Vec<Value> = ds
        .split_indices(smg_data::Split::Test)
        .into_iter()
        .map(|i| {
            let r = &ds.records[i];
            json!({
                "n": i, "label": r.label, "category": r.category, "package": r.package,
                "duration_s": r.audio_samples as f64 / r.sample_rate as f64,
                "whole_recording": ds.data_dir.join(&r.source).is_file(),
            })
        })
        .collect();
    list.sort_by(|a, b| (a["category"].as_str(), a["label"].as_str()).cmp(&(b["category"].as_str(), b["label"].as_str())));
    Ok(Json(json!({ "corpus": ds.config.name, "clips": list })))
}

#[derive(Deserialize)]
struct ClipQuery {
    /// Load the whole source recording (its own rate and channels) instead of the clip.
    #[serde(default)]
    whole: bool,
}

async fn load_clip(AxState(st): S, Path(n): Path<usize>, Query(q): Query<ClipQuery>) -> ApiResult<Json<Value>> {
    let ds = corpus(&st).as_ref().map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("no corpus clips: {e}")))?;
    let r = ds
        .records
        .get(n)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no clip number {n} (the corpus has {})", ds.records.len())))?;
    let path = ds.data_dir.join(if q.whole { &r.source } else { &r.path });
    let name = if q.whole { format!("{} (whole recording)", r.label) } else { r.label.clone() };
    let audio = tokio::task::spawn_blocking(move || smg_audio::load(&path))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the clip: {e}")))?;
    check_duration(&st, &audio)?;
    Ok(Json(keep(&st, name, audio)))
}

fn check_duration(st: &State, a: &Audio) -> ApiResult<()> {
    if a.duration_s() > st.cfg.max_duration_s {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the recording is {:.1} s long; the studio takes at most {:.0} s", a.duration_s(), st.cfg.max_duration_s),
        ));
    }
    Ok(())
}

fn keep(st: &State, name: String, audio: Audio) -> Value {
    json!(lock(&st.store).keep(name, audio))
}

#[derive(Deserialize)]
struct UploadQuery {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/audio?name=…` with the file as the body.
async fn upload(
    AxState(st): S,
    Query(q): Query<UploadQuery>,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = body.map_err(|e| {
        ApiError(
            e.status(),
            format!("the upload could not be read ({}); the studio takes files up to {} MiB", e.body_text(), st.cfg.max_upload_bytes >> 20),
        )
    })?;
    if body.is_empty() {
        return Err(bad("the upload is empty: send the audio file as the request body"));
    }
    let name: String = q.name.unwrap_or_else(|| "upload".into()).chars().filter(|c| !c.is_control()).take(120).collect();
    let shown = name.clone();
    let audio = tokio::task::spawn_blocking(move || decode(&body, &shown))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(bad)?;
    check_duration(&st, &audio)?;
    Ok(Json(keep(&st, name, audio)))
}

/// Decodes an uploaded file (any format `smg_audio::load` reads) through a temporary file.
fn decode(bytes: &[u8], name: &str) -> std::result::Result<Audio, String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("smg-studio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("no temporary folder for the upload: {e}"))?;
    let path = dir.join(format!("upload-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::write(&path, bytes).map_err(|e| format!("could not keep the upload: {e}"))?;
    let out = smg_audio::load(&path);
    let _ = std::fs::remove_file(&path);
    out.map_err(|e| {
        format!("{name:?} is not audio the studio can read: {}", e.to_string().replace(&path.display().to_string(), "the file"))
    })
}

fn entry(st: &State, id: &str) -> ApiResult<Arc<crate::store::Entry>> {
    lock(&st.store)
        .get(id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no recording with id {id:?} (it may have been dropped: load it again)")))
}

async fn audio_info(AxState(st): S, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = entry(&st, &id)?;
    Ok(Json(json!(audio_ref(&id, &e.name, &e.audio))))
}

/// The recording as a WAV in its own sample format (so untouched samples stay bit-identical).
async fn audio_wav(AxState(st): S, Path(id): Path<String>) -> ApiResult<Response> {
    let e = entry(&st, &id)?;
    let bytes = tokio::task::spawn_blocking(move || {
        smg_audio::wav_bytes_channels(&e.audio.channels, e.audio.sample_rate, e.audio.sample_format.wav_encoding())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "audio/wav"), (header::CACHE_CONTROL, "no-store")], bytes).into_response())
}

/// The model's view of the recording: the natural-log mel of its mono mix at the model's rate,
/// quantised to bytes over the top 11.5 nats (≈ 100 dB), base64, band-major (`bands × frames`).
async fn audio_mel(AxState(st): S, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = entry(&st, &id)?;
    let out = tokio::task::spawn_blocking(move || -> std::result::Result<Value, String> {
        let mt = smg_audio::MelTransform::hifigan();
        let a = &e.audio;
        let scale = 1.0 / a.channels.len() as f32;
        let mono: Vec<f32> = (0..a.frames()).map(|i| a.channels.iter().map(|c| c[i]).sum::<f32>() * scale).collect();
        let x = smg_audio::resample(&mono, a.sample_rate, mt.config.sample_rate).map_err(|e| e.to_string())?;
        let m = mt.log_mel(&x).map_err(|e| e.to_string())?;
        let (bands, frames) = m.dim();
        let hi = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lo = m.iter().copied().fold(f32::INFINITY, f32::min).max(hi - 11.5);
        let span = (hi - lo).max(1e-6);
        let q: Vec<u8> = m.iter().map(|&v| (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        Ok(json!({
            "bands": bands, "frames": frames, "lo": lo, "hi": hi,
            "seconds_per_frame": mt.config.hop_length as f64 / mt.config.sample_rate as f64,
            "data": base64::engine::general_purpose::STANDARD.encode(q),
        }))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(out))
}

/// A job request from a JSON body, `task` taken from the body or forced by the endpoint.
fn parse_request(st: &State, body: &[u8], task: Option<Task>) -> ApiResult<JobRequest> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the request body is not JSON: {e}")))?;
    if let (Some(t), Some(obj)) = (task, v.as_object_mut()) {
        obj.insert("task".into(), json!(t));
    }
    let info = st.info().ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the models are still loading".into()))?;
    if let Some(obj) = v.as_object_mut() {
        with_preset(obj, &info.sampler);
    }
    let req: JobRequest = serde_json::from_value(v).map_err(|e| bad(format!("bad request: {e}")))?;
    req.check(info).map_err(bad)?;
    if let Some(id) = &req.audio {
        entry(st, id)?;
    }
    Ok(req)
}

/// Fills the sampler fields a request leaves out with the loaded generator's preset.
fn with_preset(req: &mut serde_json::Map<String, Value>, preset: &crate::SamplerSettings) {
    let Ok(Value::Object(defaults)) = serde_json::to_value(preset) else { return };
    let sampler = req.entry("sampler").or_insert_with(|| json!({}));
    if let Some(given) = sampler.as_object_mut() {
        for (k, d) in defaults {
            given.entry(k).or_insert(d);
        }
    }
}

fn submit_checked(st: &State, req: JobRequest) -> ApiResult<u64> {
    st.submit(req).map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e))
}

async fn submit(AxState(st): S, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req = parse_request(&st, &body, None)?;
    let id = submit_checked(&st, req)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "url": format!("/api/jobs/{id}") }))))
}

fn status(st: &State, id: u64) -> Option<JobStatus> {
    let jobs = lock(&st.jobs);
    let mut j = jobs.map.get(&id)?.clone();
    j.queue_position = jobs.queue.iter().position(|&q| q == id);
    Some(j)
}

async fn job(AxState(st): S, Path(id): Path<u64>) -> ApiResult<Json<JobStatus>> {
    status(&st, id).map(Json).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))
}

/// The blocking task endpoints: queue the job, wait for it, answer with its final status.
async fn run_sync(AxState(st): S, body: Bytes, task: Task) -> ApiResult<Json<JobStatus>> {
    let req = parse_request(&st, &body, Some(task))?;
    let id = submit_checked(&st, req)?;
    loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let Some(j) = status(&st, id) else {
            return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("job {id} disappeared")));
        };
        match j.state {
            JobState::Done => return Ok(Json(j)),
            JobState::Failed => {
                let code = if j.bad_request { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
                return Err(ApiError(code, j.error.unwrap_or_default()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_keeps_its_sampler_fields_and_takes_the_rest_from_the_preset() {
        let preset = smg_maskgit::SamplerPreset::paper_constant();
        let mut req = json!({"task": "generate", "prompt": "rain", "sampler": {"seed": 4, "guidance": 2.0}});
        with_preset(req.as_object_mut().unwrap(), &preset);
        let r: JobRequest = serde_json::from_value(req).unwrap();
        assert_eq!((r.sampler.seed, r.sampler.guidance), (4, 2.0));
        assert_eq!((r.sampler.draw.as_str(), r.sampler.guidance_rescale), ("categorical", 0.0));
        let mut bare = json!({"task": "generate", "prompt": "rain"});
        with_preset(bare.as_object_mut().unwrap(), &preset);
        assert_eq!(serde_json::from_value::<JobRequest>(bare).unwrap().sampler, preset);
        // A sampler that is not an object is left for the typed parse to refuse.
        let mut odd = json!({"task": "generate", "prompt": "rain", "sampler": 3});
        with_preset(odd.as_object_mut().unwrap(), &preset);
        assert!(serde_json::from_value::<JobRequest>(odd).is_err());
    }
}
