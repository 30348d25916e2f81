//! Reading audio files (WAV through `hound`; FLAC, OGG Vorbis, MP3 and exotic WAV through
//! `symphonia`), mixing to mono and writing WAV. Formats are recognised by content, never by
//! extension (ASSETS.md: some `.ogg` files in the Debian packages are WAV).

use crate::error::{check_finite, AudioError, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A decoded file: one `Vec<f32>` per channel, samples in [-1, 1].
#[derive(Debug, Clone)]
pub struct Audio {
    pub channels: Vec<Vec<f32>>,
    pub sample_rate: u32,
    /// Container/codec as detected from the file's bytes, e.g. `"WAV PCM 16-bit"`.
    pub format: String,
    /// How the samples were stored, so an edited file can be written back bit for bit.
    pub sample_format: SampleFormat,
}

/// Storage of a decoded file's samples: what [`write_wav_channels`] needs to write untouched
/// samples back exactly as they were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// Integer PCM of this many bits (read as `v / 2^(bits-1)`).
    Int(u16),
    /// 32-bit IEEE float.
    Float,
    /// A compressed or exotic codec decoded to f32 (FLAC, Vorbis, MP3, ADPCM, …): written back as
    /// 32-bit float WAV, which holds the decoded samples exactly.
    Decoded,
}

impl SampleFormat {
    /// The WAV encoding that writes these samples back unchanged.
    pub fn wav_encoding(self) -> WavEncoding {
        match self {
            SampleFormat::Int(b) if (1..=32).contains(&b) => WavEncoding::Pcm(b),
            _ => WavEncoding::Float32,
        }
    }
}

/// What `smg info` prints: format, rate, channels, duration, peak.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub format: String,
    pub sample_rate: u32,
    pub channels: usize,
    pub frames: usize,
    pub duration_s: f64,
    pub peak: f32,
}

impl std::fmt::Display for AudioInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "format: {}\nsample rate: {} Hz\nchannels: {}\nframes: {}\nduration: {:.3} s\npeak: {:.4} ({:.1} dBFS)",
            self.format,
            self.sample_rate,
            self.channels,
            self.frames,
            self.duration_s,
            self.peak,
            20.0 * (self.peak.max(1e-10) as f64).log10()
        )
    }
}

impl Audio {
    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    pub fn duration_s(&self) -> f64 {
        self.frames() as f64 / self.sample_rate as f64
    }

    /// Largest absolute sample over all channels.
    pub fn peak(&self) -> f32 {
        self.channels.iter().flat_map(|c| c.iter()).fold(0f32, |m, x| m.max(x.abs()))
    }

    pub fn info(&self) -> AudioInfo {
        AudioInfo {
            format: self.format.clone(),
            sample_rate: self.sample_rate,
            channels: self.channels.len(),
            frames: self.frames(),
            duration_s: self.duration_s(),
            peak: self.peak(),
        }
    }

    /// Mean of the channels (the usual down-mix; SPEC.md §1 works on mono audio).
    pub fn to_mono(&self) -> Vec<f32> {
        mix_to_mono(&self.channels)
    }
}

/// Averages channels sample by sample.
pub fn mix_to_mono(channels: &[Vec<f32>]) -> Vec<f32> {
    match channels.len() {
        0 => Vec::new(),
        1 => channels[0].clone(),
        n => {
            let len = channels.iter().map(Vec::len).min().unwrap_or(0);
            let scale = 1.0 / n as f32;
            (0..len).map(|i| channels.iter().map(|c| c[i]).sum::<f32>() * scale).collect()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Container {
    Wav,
    Flac,
    Ogg,
    Mp3,
    Aiff,
}

fn sniff(path: &Path) -> Result<Container> {
    let io_err = |source| AudioError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(AudioError::IsDirectory { path: path.to_path_buf() });
    }
    if meta.len() == 0 {
        return Err(AudioError::EmptyFile { path: path.to_path_buf() });
    }
    let mut head = [0u8; 12];
    let mut f = File::open(path).map_err(io_err)?;
    let n = read_up_to(&mut f, &mut head).map_err(io_err)?;
    let h = &head[..n];
    if h.starts_with(b"RIFF") || h.starts_with(b"RIFX") || h.starts_with(b"RF64") {
        if n >= 12 && &h[8..12] == b"WAVE" {
            if let Some(tag) = wav_format_tag(path) {
                // PCM, IEEE float, extensible (hound); ADPCM, A-law, µ-law (symphonia).
                if ![1u16, 3, 0xFFFE, 2, 0x11, 6, 7].contains(&tag) {
                    return Err(AudioError::Unsupported {
                        path: path.to_path_buf(),
                        detail: format!(
                            "WAV with codec format tag 0x{tag:04x}{}",
                            if tag == 0x674f || tag == 0x6750 { " (Ogg Vorbis inside WAV)" } else { "" }
                        ),
                    });
                }
            }
            return Ok(Container::Wav);
        }
        return Err(AudioError::Corrupt { path: path.to_path_buf(), detail: "RIFF file without a WAVE header (truncated?)".into() });
    }
    if h.starts_with(b"FORM") && n >= 12 && (&h[8..12] == b"AIFF" || &h[8..12] == b"AIFC") {
        return Ok(Container::Aiff);
    }
    if h.starts_with(b"fLaC") {
        return Ok(Container::Flac);
    }
    if h.starts_with(b"OggS") {
        return Ok(Container::Ogg);
    }
    if h.starts_with(b"ID3") || (n >= 2 && h[0] == 0xFF && (h[1] & 0xE0) == 0xE0) {
        return Ok(Container::Mp3);
    }
    let hex: Vec<String> = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
    Err(AudioError::Unsupported { path: path.to_path_buf(), detail: format!("unrecognised leading bytes {}", hex.join(" ")) })
}

/// The `wFormatTag` of a RIFF/WAVE file's `fmt ` chunk, if it can be found.
fn wav_format_tag(path: &Path) -> Option<u16> {
    let bytes = std::fs::read(path).ok()?;
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        if id == b"fmt " {
            return bytes.get(pos + 8..pos + 10).map(|b| u16::from_le_bytes([b[0], b[1]]));
        }
        pos += 8 + len + (len & 1);
    }
    None
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Decodes an audio file into per-channel f32 samples at the file's own rate.
///
/// Errors name the file and the problem: a directory, an empty file, an unrecognised format,
/// a truncated header, a file with no samples, or NaN/Inf samples.
pub fn load(path: impl AsRef<Path>) -> Result<Audio> {
    let path = path.as_ref();
    let audio = match sniff(path)? {
        Container::Wav => match load_wav_hound(path) {
            Ok(a) => a,
            // hound is strict (odd block alignments, 64-bit float, extensible variants);
            // symphonia may still read the file. If neither can, report hound's reason.
            Err(e @ (AudioError::Unsupported { .. } | AudioError::Corrupt { .. })) => load_symphonia(path, "WAV").map_err(|_| e)?,
            Err(e) => return Err(e),
        },
        Container::Aiff => load_symphonia(path, "AIFF")?,
        Container::Flac => load_symphonia(path, "FLAC")?,
        Container::Ogg => load_symphonia(path, "OGG")?,
        Container::Mp3 => load_symphonia(path, "MP3")?,
    };
    let what = path.display().to_string();
    if audio.frames() == 0 {
        return Err(AudioError::NoSamples { what });
    }
    for c in &audio.channels {
        check_finite(c, &what)?;
    }
    Ok(audio)
}

fn load_wav_hound(path: &Path) -> Result<Audio> {
    let p = || path.to_path_buf();
    let reader = hound::WavReader::open(path).map_err(|e| map_hound(e, p()))?;
    let spec = reader.spec();
    let n_ch = spec.channels as usize;
    if n_ch == 0 {
        return Err(AudioError::Corrupt { path: p(), detail: "header declares 0 channels".into() });
    }
    let expected = reader.len() as usize;
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(AudioError::Unsupported { path: p(), detail: format!("{}-bit float WAV", spec.bits_per_sample) });
            }
            reader.into_samples::<f32>().collect::<std::result::Result<_, _>>().map_err(|e| truncated(e, p(), expected))?
        }
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !(1..=32).contains(&bits) {
                return Err(AudioError::Unsupported { path: p(), detail: format!("{bits}-bit integer WAV") });
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| truncated(e, p(), expected))?
        }
    };
    let format = match spec.sample_format {
        hound::SampleFormat::Float => "WAV float 32-bit".to_string(),
        hound::SampleFormat::Int => format!("WAV PCM {}-bit", spec.bits_per_sample),
    };
    Ok(Audio {
        channels: deinterleave(&interleaved, n_ch),
        sample_rate: spec.sample_rate,
        format,
        sample_format: match spec.sample_format {
            hound::SampleFormat::Float => SampleFormat::Float,
            hound::SampleFormat::Int => SampleFormat::Int(spec.bits_per_sample),
        },
    })
}

fn truncated(e: hound::Error, path: PathBuf, expected: usize) -> AudioError {
    AudioError::Corrupt { path, detail: format!("data ends early ({e}); header promised {expected} samples") }
}

fn map_hound(e: hound::Error, path: PathBuf) -> AudioError {
    match e {
        // The file was already opened and sniffed, so a read failure here is a short header.
        hound::Error::IoError(source) => AudioError::Corrupt { path, detail: format!("truncated WAV header ({source})") },
        hound::Error::FormatError(msg) => AudioError::Corrupt { path, detail: format!("malformed WAV: {msg}") },
        hound::Error::Unsupported => AudioError::Unsupported { path, detail: "WAV codec not supported by hound".into() },
        other => AudioError::Corrupt { path, detail: other.to_string() },
    }
}

fn deinterleave(interleaved: &[f32], n_ch: usize) -> Vec<Vec<f32>> {
    let frames = interleaved.len() / n_ch;
    (0..n_ch).map(|c| (0..frames).map(|i| interleaved[i * n_ch + c]).collect()).collect()
}

fn load_symphonia(path: &Path, container: &str) -> Result<Audio> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
    use symphonia::core::errors::Error as SymError;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let p = || path.to_path_buf();
    let file = File::open(path).map_err(|source| AudioError::Io { path: p(), source })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let probed = symphonia::default::get_probe()
        .format(&Hint::new(), mss, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(what) => AudioError::Unsupported { path: p(), detail: format!("{container}: {what}") },
            other => AudioError::Corrupt { path: p(), detail: format!("{container}: {other}") },
        })?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Unsupported { path: p(), detail: format!("{container} without a decodable audio track") })?
        .clone();
    let codec_name = symphonia::default::get_codecs()
        .get_codec(track.codec_params.codec)
        .map(|d| d.short_name.to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::Unsupported { path: p(), detail: format!("{container} codec '{codec_name}': {e}") })?;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut n_ch = track.codec_params.channels.map_or(0, |c| c.count());
    let mut interleaved: Vec<f32> = Vec::new();
    let mut bad_packets = 0usize;
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(AudioError::Corrupt { path: p(), detail: format!("{container}: {e}") }),
        };
        if packet.track_id() != track.id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                let spec = *buf.spec();
                rate = spec.rate;
                n_ch = spec.channels.count();
                let mut sb = SampleBuffer::<f32>::new(buf.capacity() as u64, spec);
                sb.copy_interleaved_ref(buf);
                interleaved.extend_from_slice(sb.samples());
            }
            Err(SymError::DecodeError(_)) => bad_packets += 1,
            Err(SymError::IoError(_)) => break,
            Err(e) => return Err(AudioError::Corrupt { path: p(), detail: format!("{container}: {e}") }),
        }
    }
    if n_ch == 0 || rate == 0 {
        return Err(AudioError::Corrupt { path: p(), detail: format!("{container}: no decodable audio ({bad_packets} bad packets)") });
    }
    Ok(Audio {
        channels: deinterleave(&interleaved, n_ch),
        sample_rate: rate,
        format: format!("{container} {codec_name}"),
        sample_format: SampleFormat::Decoded,
    })
}

/// Sample encoding of a written WAV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavEncoding {
    /// 16-bit PCM: plays everywhere (browsers, the notebook player). Samples are clipped to [-1, 1].
    Pcm16,
    /// 32-bit float: lossless for the f32 pipeline.
    Float32,
    /// Integer PCM of 1–32 bits, scaled by `2^(bits-1)` exactly as [`load`] reads it, so samples
    /// that were read from such a file are written back bit for bit. Clipped to the range.
    Pcm(u16),
}

impl WavEncoding {
    /// Words for output lines: `"16-bit PCM"`, `"32-bit float"`.
    pub fn describe(self) -> String {
        match self {
            WavEncoding::Pcm16 => "16-bit PCM".into(),
            WavEncoding::Float32 => "32-bit float".into(),
            WavEncoding::Pcm(b) => format!("{b}-bit PCM"),
        }
    }
}

/// Writes mono samples as a WAV file, atomically (a temporary file renamed into place), so a
/// crash never leaves a half-written file behind.
pub fn write_wav(path: impl AsRef<Path>, samples: &[f32], sample_rate: u32, encoding: WavEncoding) -> Result<()> {
    let path = path.as_ref();
    let bytes = wav_bytes(samples, sample_rate, encoding)?;
    let err = |e: std::io::Error| AudioError::Write { path: path.to_path_buf(), detail: e.to_string() };
    let tmp = path.with_extension("wav.partial");
    std::fs::write(&tmp, &bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Encodes mono samples as the bytes of a WAV file (used by [`write_wav`] and the notebook
/// audio player).
pub fn wav_bytes(samples: &[f32], sample_rate: u32, encoding: WavEncoding) -> Result<Vec<u8>> {
    wav_bytes_channels(std::slice::from_ref(&samples), sample_rate, encoding)
}

/// Writes one `Vec<f32>` per channel (all of one length) as a WAV file, atomically.
pub fn write_wav_channels<C: AsRef<[f32]>>(path: impl AsRef<Path>, channels: &[C], sample_rate: u32, encoding: WavEncoding) -> Result<()> {
    let path = path.as_ref();
    let bytes = wav_bytes_channels(channels, sample_rate, encoding)?;
    let err = |e: std::io::Error| AudioError::Write { path: path.to_path_buf(), detail: e.to_string() };
    let tmp = path.with_extension("wav.partial");
    std::fs::write(&tmp, &bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Encodes channels (interleaved on write) as the bytes of a WAV file.
pub fn wav_bytes_channels<C: AsRef<[f32]>>(channels: &[C], sample_rate: u32, encoding: WavEncoding) -> Result<Vec<u8>> {
    if channels.is_empty() || channels.len() > u16::MAX as usize {
        return Err(AudioError::InvalidArgument(format!("cannot write {} channels", channels.len())));
    }
    let frames = channels[0].as_ref().len();
    for (i, c) in channels.iter().enumerate() {
        check_finite(c.as_ref(), &format!("samples to write (channel {i})"))?;
        if c.as_ref().len() != frames {
            return Err(AudioError::InvalidArgument(format!("channel {i} has {} samples, channel 0 {frames}", c.as_ref().len())));
        }
    }
    if sample_rate == 0 {
        return Err(AudioError::InvalidArgument("sample rate 0".into()));
    }
    let (bits, float) = match encoding {
        WavEncoding::Pcm16 => (16, false),
        WavEncoding::Float32 => (32, true),
        WavEncoding::Pcm(b) if (1..=32).contains(&b) => (b, false),
        WavEncoding::Pcm(b) => return Err(AudioError::InvalidArgument(format!("{b}-bit PCM cannot be written"))),
    };
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate,
        bits_per_sample: bits,
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut cursor = std::io::Cursor::new(Vec::with_capacity(frames * channels.len() * 4 + 64));
    let werr = |e: hound::Error| AudioError::InvalidArgument(format!("WAV encoding failed: {e}"));
    {
        let mut w = hound::WavWriter::new(&mut cursor, spec).map_err(werr)?;
        let full = (1u64 << (bits - 1)) as f64;
        for i in 0..frames {
            for c in channels {
                let s = c.as_ref()[i];
                match encoding {
                    WavEncoding::Pcm16 => w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).map_err(werr)?,
                    WavEncoding::Float32 => w.write_sample(s).map_err(werr)?,
                    WavEncoding::Pcm(_) => {
                        let v = (s as f64 * full).round().clamp(-full, full - 1.0) as i32;
                        w.write_sample(v).map_err(werr)?
                    }
                }
            }
        }
        w.finalize().map_err(werr)?;
    }
    Ok(cursor.into_inner())
}
