//! # specmaskgit: the notebook prelude
//!
//! One crate for Evcxr notebooks: it re-exports the workspace's building blocks (audio front
//! end, device selection, candle) and adds notebook display only: spectrogram, waveform,
//! token-grid and line plots, and audio players, each shown inline by evcxr and savable to a
//! file. It holds no model logic.
//!
//! ```ignore
//! use specmaskgit::prelude::*;
//! let device = notebook_init();
//! ```

pub mod notebook;
pub use smg_display::{display, plot};

pub use candle_core as candle;
pub use candle_nn;
pub use ndarray;
pub use rand;
pub use serde_json;
pub use smg_audio as audio;
pub use smg_clap as conditioning;
pub use smg_core as core;
pub use smg_data as data;
pub use smg_embed as embed;
pub use smg_eval as eval;
pub use smg_maskgit as maskgit;
pub use smg_pipeline as pipeline;
pub use smg_tokenizer as tokenizer;
pub use smg_vocoder as vocoder;

/// The spectrogram studio (a local web page to paint a region and hear the model fill it in),
/// started from a cell.
pub mod studio {
    pub use smg_studio::{JobRequest, SamplerSettings, Studio, StudioConfig, Task};

    /// Starts the studio with the shipped models of `size` (`"small"`, `"medium"` once trained,
    /// or `"auto"`: medium where present outside quick mode) on a free port of 127.0.0.1 and returns it; as a cell's last expression (or with
    /// `.evcxr_display()`) it shows the page inline, with a link to open it in a tab of its own.
    /// It keeps serving while the kernel lives. Panics with the reason when the models cannot be
    /// loaded.
    pub fn show(size: &str) -> Studio {
        let cfg = StudioConfig {
            port: 0,
            model: size.into(),
            ..StudioConfig::new(crate::notebook::repo_dir().join("data/checkpoints"), crate::notebook::data_dir())
        };
        Studio::start(cfg).unwrap_or_else(|e| panic!("starting the studio: {e}"))
    }
}

/// Everything a notebook cell usually needs.
pub mod prelude {
    pub use crate::display::{players_row, AudioPlayer, Figure, Html};
    pub use crate::notebook::{
        checkpoint_dir, corpus_config, data_dir, model_size, notebook_init, output_dir, pretrained, quick_mode, quick_or, repo_dir,
        sampler_preset,
    };
    pub use crate::plot::{
        bar_chart, heatmap, histogram, line_plot, spectrogram, token_grid, waveform, BarChart, Heatmap, LinePlot, Spectrogram, TokenGrid,
        Waveform,
    };
    pub use candle_core::{DType, Device, Tensor};
    pub use ndarray::{Array1, Array2};
    pub use serde_json;
    pub use smg_audio::{
        self as audio, fit_to_frames, load, load_mono, mel_to_audio, peak_normalize, prepare_clip, resample, write_wav, write_wav_channels,
        Audio, GriffinLimConfig, MelConfig, MelTransform, SampleFormat, WavEncoding,
    };
    pub use smg_clap::{AudioEncoder, Conditioner, TextEncoder};
    pub use smg_core::fast::{amx_available, set_precision, set_train_precision, set_vocoder_precision, Precision};
    pub use smg_core::{best_device, DeviceChoice};
    pub use smg_data::{self as data, ClipConfig, ClipRecord, Dataset, SetKind, Split};
    pub use smg_embed::{fad_between, Aisfx, Clip, Embedder, FadReport, MelStats, Vggish};
    pub use smg_eval::{LinearProbe, ProbeConfig, ProbeData};
    pub use smg_maskgit::{
        tasks::Grid, CfgSchedule, Draw, Guidance, Gumbel, MaskSchedule, MaskedVit, Remask, RemaskRule, Rescaled, Sampler, SamplerPreset,
        Schedule, Temperature, TokenDraw,
    };
    pub use smg_pipeline::{judge, low_frequency_replacement, represent, Edit, Generated, Pipeline, Region, Vocoder, WindowOptions};
    pub use smg_tokenizer::SpecVqGan;
}
