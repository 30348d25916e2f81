//! Notebook plumbing: make a failing cell fail the whole run, quick mode, repository paths.
//!
//! evcxr turns a panic or an `Err` into printed text, and headless runners (nbclient,
//! nbconvert) do not see that as a failure. [`notebook_init`] installs a panic hook that prints
//! the message and then aborts the kernel's child process, which the runner does see. Notebooks
//! therefore `unwrap()`/`expect()` instead of using `?`.

use std::path::PathBuf;
use std::sync::Once;

static INIT: Once = Once::new();

/// Call in the first cell of every notebook: installs the fail-loudly panic hook, registers the
/// plot font, and returns the best device (printing which one it picked).
pub fn notebook_init() -> candle_core::Device {
    INIT.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("SMG_CELL_FAILED: {info}");
            eprintln!("(the notebook run stops here: specmaskgit::notebook_init makes every panic fatal)");
            std::process::abort();
        }));
        smg_display::plot::ensure_font();
        smg_core::alloc::keep_freed_memory();
        smg_core::threads::settle_thread_count();
    });
    let choice = smg_core::best_device();
    println!("specmaskgit {} | device: {} | quick mode: {}", env!("CARGO_PKG_VERSION"), choice, quick_mode());
    choice.device
}

/// True when `SMG_QUICK` is set to anything but `0`/empty: notebooks then use tiny counts so CI
/// can execute them; people get the full run by leaving it unset.
pub fn quick_mode() -> bool {
    std::env::var("SMG_QUICK").map(|v| !v.is_empty() && v != "0").unwrap_or(false)
}

/// Picks `quick` in quick mode and `full` otherwise.
pub fn quick_or<T>(quick: T, full: T) -> T {
    if quick_mode() {
        quick
    } else {
        full
    }
}

/// Root of the repository this prelude was built from.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

/// The data folder: `SMG_DATA_DIR` if set, else `data/` of the repository.
pub fn data_dir() -> PathBuf {
    std::env::var_os("SMG_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| repo_dir().join("data"))
}

/// The shipped models of one size (`"small"`, `"medium"` once trained, or `"auto"`: medium where
/// present outside quick mode) with MiniLM and the best
/// fetched vocoder (`Pipeline::pretrained`); panics with the reason when they cannot be loaded.
pub fn pretrained(size: &str, device: &candle_core::Device) -> smg_pipeline::Pipeline {
    match smg_pipeline::Pipeline::pretrained(size, &repo_dir().join("data/checkpoints"), &data_dir(), device) {
        Ok(p) => p,
        Err(e) => panic!("loading the {size} models: {e}"),
    }
}

/// The model size `pretrained("auto", …)` loads: `"medium"` where the medium tokenizer and
/// generator are shipped and quick mode is off, else `"small"` (`smg_pipeline::resolve_size`).
/// Notebooks name checkpoints as `format!("maskgit-{}", model_size())`.
pub fn model_size() -> &'static str {
    smg_pipeline::resolve_size("auto", &repo_dir().join("data/checkpoints"))
}

/// The sampler preset of the shipped generator of `size` (`"auto"` as in [`pretrained`]): the
/// setting measured best on it, from `sampler.json` in its folder, which `smg generate` and the
/// studio use too. `sampler_preset("auto").with_seed(seed).sampler(true)` gives the guided sampler.
pub fn sampler_preset(size: &str) -> smg_maskgit::SamplerPreset {
    match smg_pipeline::sampler_preset(size, &repo_dir().join("data/checkpoints")) {
        Ok(p) => p,
        Err(e) => panic!("the {size} generator's sampler preset: {e}"),
    }
}

/// The sound corpus the models of [`model_size`] were trained on (`sound-small` or
/// `sound-medium`; the same 2.97 s window), whose held-out clips the evaluations use.
pub fn corpus_config() -> smg_data::ClipConfig {
    match model_size() {
        "medium" => smg_data::ClipConfig::medium(),
        _ => smg_data::ClipConfig::small(),
    }
}

/// A checkpoint this project trained and ships in `data/checkpoints/<name>` (each folder has a
/// TRAINING.md with the command that reproduced it).
pub fn checkpoint_dir(name: &str) -> PathBuf {
    repo_dir().join("data").join("checkpoints").join(name)
}

/// Where notebooks save figures and audio: `SMG_OUTPUT_DIR` or `notebooks/output/`.
pub fn output_dir() -> PathBuf {
    std::env::var_os("SMG_OUTPUT_DIR").map(PathBuf::from).unwrap_or_else(|| repo_dir().join("notebooks").join("output"))
}
