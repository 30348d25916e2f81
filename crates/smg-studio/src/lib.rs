//! # smg-studio: paint a mask, hear the model fill it in
//!
//! A local web server with one embedded page (plain HTML/CSS/JS, no build step) and the HTTP API
//! that page uses. Pick a corpus clip, upload a recording or generate from a prompt; drag over
//! the mel spectrogram to select a time range or paint a time × frequency region (snapped to the
//! token grid); press Generate and watch the token grid fill in step by step, then compare the
//! original and the result. The tasks are the zero-shot ones of SPEC.md §3.7 run through the
//! windowed path of `smg-pipeline` (recordings of any length, rate and channel count; every
//! sample outside the edit comes back bit for bit) and text-to-audio (§3.6).
//!
//! One worker thread owns the models and runs jobs in order; requests from several tabs queue
//! behind each other. A Griffin-Lim preview is ready first, the neural vocoder's result after it.
//!
//! ```ignore
//! let studio = smg_studio::Studio::start(smg_studio::StudioConfig::new(checkpoints, data))?;
//! println!("{}", studio.url());
//! studio.wait();
//! ```

mod api;
mod jobs;
mod store;
mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

pub use jobs::{JobRequest, SamplerSettings, Task};

#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("loading the models: {0}")]
    Models(String),
    #[error("the studio's {0} thread could not start: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StudioError>;

/// Where the studio listens, which models it loads and what it accepts.
#[derive(Debug, Clone)]
pub struct StudioConfig {
    /// Address to listen on (default 127.0.0.1: only this machine can connect).
    pub host: IpAddr,
    /// Port (default 8765; 0 = any free port).
    pub port: u16,
    /// Model size: `"small"` (shipped) or `"medium"` (where its checkpoints exist).
    pub model: String,
    /// The folder with `tokenizer-<size>` and `maskgit-<size>` (the checkout's `data/checkpoints`).
    pub checkpoints: PathBuf,
    /// The data folder (fetched weights and built corpora).
    pub data_dir: PathBuf,
    /// Which built sound corpus the page lists clips from (`small` or `medium`).
    pub corpus: String,
    /// Largest upload accepted, in bytes (default 64 MiB).
    pub max_upload_bytes: usize,
    /// Longest recording accepted, in seconds (default 600).
    pub max_duration_s: f64,
    /// Most jobs waiting at once (default 32); more are refused with 503 until some finish.
    pub max_queue: usize,
}

impl StudioConfig {
    /// The defaults: 127.0.0.1:8765, the small models, the small corpus.
    pub fn new(checkpoints: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8765,
            model: "small".into(),
            checkpoints: checkpoints.into(),
            data_dir: data_dir.into(),
            corpus: "small".into(),
            max_upload_bytes: 64 << 20,
            max_duration_s: 600.0,
            max_queue: 32,
        }
    }
}

/// A running studio: the server thread and the model worker live until [`Studio::stop`] or the
/// end of the process (dropping the handle leaves them serving, as a notebook kernel wants).
pub struct Studio {
    addr: SocketAddr,
    server: Option<std::thread::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    state: Arc<store::State>,
}

impl Studio {
    /// Loads the models, binds the address and starts serving in background threads. Errors
    /// name what failed: a missing checkpoint folder, an address in use.
    pub fn start(cfg: StudioConfig) -> Result<Self> {
        if cfg.max_duration_s.is_nan() || cfg.max_duration_s <= 0.0 || cfg.max_upload_bytes == 0 || cfg.max_queue == 0 {
            return Err(StudioError::Invalid("upload size, duration and queue limits must be positive".into()));
        }
        let addr = SocketAddr::new(cfg.host, cfg.port);
        let listener = std::net::TcpListener::bind(addr).map_err(|source| StudioError::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| StudioError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| StudioError::Bind { addr, source })?;
        let (state, worker_rx) = store::State::new(cfg.clone());
        let state = Arc::new(state);
        let info = worker::spawn(state.clone(), worker_rx, &cfg)?;
        state.set_info(info);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = api::router(state.clone());
        let server = std::thread::Builder::new()
            .name("smg-studio-http".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return eprintln!("smg studio: no async runtime: {e}"),
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return eprintln!("smg studio: {e}"),
                    };
                    let stop = async {
                        let _ = rx.await;
                    };
                    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                        eprintln!("smg studio: server stopped: {e}");
                    }
                });
            })
            .map_err(|e| StudioError::Thread("server", e))?;
        Ok(Self { addr, server: Some(server), shutdown: Some(tx), state })
    }

    /// The address it listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}/", self.addr.port())
    }

    /// One line about the loaded models (size, grid, vocoder, text encoder).
    pub fn describe(&self) -> String {
        self.state.info().map(|i| i.describe()).unwrap_or_default()
    }

    /// Blocks until the server stops (the command line's `smg studio`).
    pub fn wait(mut self) {
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }

    /// Stops serving and waits for the server thread; queued jobs are dropped.
    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait();
    }

    /// The page in an `<iframe>` (for notebooks), with a link to open it in its own tab.
    pub fn iframe_html(&self, height_px: u32) -> String {
        let url = self.url();
        format!(
            "<div><a href=\"{url}\" target=\"_blank\">Open the spectrogram studio in a new tab ({url})</a></div>\
             <iframe src=\"{url}\" style=\"width:100%;height:{height_px}px;border:1px solid #ccc\"></iframe>"
        )
    }

    /// Shows the page inline in evcxr.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT", self.iframe_html(900));
    }
}

impl Drop for Studio {
    fn drop(&mut self) {
        // Keep serving: a notebook may drop the handle while the kernel (and the page) lives on.
        if let Some(tx) = self.shutdown.take() {
            std::mem::forget(tx);
        }
    }
}
