//! Rich values for evcxr: a PNG figure and an audio player. Each shows inline when it is the
//! last expression of a notebook cell (evcxr calls `evcxr_display`) and each can be saved.

use base64::Engine;
use smg_audio::WavEncoding;
use std::path::Path;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn emit(mime: &str, payload: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{payload}\nEVCXR_END_CONTENT");
}

/// Writes `bytes` to `path` through a temporary file and a rename (no half-written files).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// A rendered plot as PNG bytes.
#[derive(Clone)]
pub struct Figure {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Debug for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Figure({}x{}, {} bytes of PNG)", self.width, self.height, self.png.len())
    }
}

impl Figure {
    /// Saves the PNG (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        write_atomic(path.as_ref(), &self.png)
    }

    /// Shows the figure inline in evcxr.
    pub fn evcxr_display(&self) {
        emit("image/png", &b64(&self.png));
    }

    /// An `<img>` tag carrying the PNG, for composing HTML.
    pub fn to_html(&self) -> String {
        format!("<img src=\"data:image/png;base64,{}\"/>", b64(&self.png))
    }
}

/// Raw HTML shown inline; also a page builder for showing many figures and players from one
/// cell (evcxr keeps only the last output of each kind per cell, so a loop that displays items
/// one by one would lose all but the last: push them into one `Html` and end the cell with it).
#[derive(Debug, Clone, Default)]
pub struct Html(pub String);

impl Html {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a line of (escaped) text.
    pub fn text(&mut self, t: impl AsRef<str>) -> &mut Self {
        self.0 += &format!("<div style=\"font-family:monospace;font-size:90%\">{}</div>", html_escape(t.as_ref()));
        self
    }

    /// Appends a heading.
    pub fn heading(&mut self, t: impl AsRef<str>) -> &mut Self {
        self.0 += &format!("<h4>{}</h4>", html_escape(t.as_ref()));
        self
    }

    pub fn figure(&mut self, f: &Figure) -> &mut Self {
        self.0 += &format!("<div>{}</div>", f.to_html());
        self
    }

    pub fn player(&mut self, p: &AudioPlayer) -> &mut Self {
        self.0 += &p.to_html();
        self
    }

    pub fn evcxr_display(&self) {
        emit("text/html", &self.0);
    }
}

/// An HTML `<audio controls>` element carrying a 16-bit WAV as base64.
#[derive(Clone)]
pub struct AudioPlayer {
    pub wav: Vec<u8>,
    pub label: String,
    pub sample_rate: u32,
    pub seconds: f64,
}

impl std::fmt::Debug for AudioPlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AudioPlayer({:?}, {:.2} s at {} Hz)", self.label, self.seconds, self.sample_rate)
    }
}

impl AudioPlayer {
    /// A player for mono `samples` at `sample_rate`. Fails on NaN/Inf samples.
    pub fn new(samples: &[f32], sample_rate: u32) -> smg_audio::Result<Self> {
        Ok(Self {
            wav: smg_audio::wav_bytes(samples, sample_rate, WavEncoding::Pcm16)?,
            label: String::new(),
            sample_rate,
            seconds: samples.len() as f64 / sample_rate.max(1) as f64,
        })
    }

    /// Sets the caption shown beside the player.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The HTML element (caption + player).
    pub fn to_html(&self) -> String {
        let caption = if self.label.is_empty() {
            String::new()
        } else {
            format!("<div style=\"font-family:sans-serif;font-size:90%\">{}</div>", html_escape(&self.label))
        };
        format!("<div>{caption}<audio controls preload=\"auto\" src=\"data:audio/wav;base64,{}\"></audio></div>", b64(&self.wav))
    }

    /// Saves the WAV (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        write_atomic(path.as_ref(), &self.wav)
    }

    pub fn evcxr_display(&self) {
        emit("text/html", &self.to_html());
    }
}

/// Several players side by side, e.g. original vs resynthesis.
pub fn players_row(players: &[AudioPlayer]) -> Html {
    let cells: String = players.iter().map(|p| format!("<td style=\"padding-right:1em\">{}</td>", p.to_html())).collect();
    Html(format!("<table><tr>{cells}</tr></table>"))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
