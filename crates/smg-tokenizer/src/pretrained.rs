//! Saving and loading a trained tokenizer: `config.json` (the [`Config`]) next to
//! `tokenizer.safetensors` (model tensors under their PyTorch names, no optimiser state).

use crate::{Config, SpecVqGan};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

pub const WEIGHTS_FILE: &str = "tokenizer.safetensors";
pub const CONFIG_FILE: &str = "config.json";

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Writes `tensors` and `cfg` to `dir` atomically (temporary files, then renames).
pub fn save_pretrained(tensors: &HashMap<String, Tensor>, cfg: &Config, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let w_tmp = dir.join(format!("{WEIGHTS_FILE}.partial"));
    candle_core::safetensors::save(tensors, &w_tmp)?;
    let c_tmp = dir.join(format!("{CONFIG_FILE}.partial"));
    std::fs::write(&c_tmp, serde_json::to_string_pretty(cfg).map_err(msg)? + "\n")?;
    std::fs::rename(&w_tmp, dir.join(WEIGHTS_FILE))?;
    std::fs::rename(&c_tmp, dir.join(CONFIG_FILE))?;
    Ok(())
}

/// The [`Config`] saved in `dir` by [`save_pretrained`].
pub(crate) fn read_config(dir: &Path) -> Result<Config> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| msg(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| msg(format!("{}: {e}", path.display())))
}

impl SpecVqGan {
    /// Loads a tokenizer saved by [`save_pretrained`], or the latest checkpoint of a training
    /// folder (`state.json` + `checkpoint.safetensors`). A missing tensor or one of the wrong
    /// shape is an error that names it.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let (cfg, weights) = if dir.join(CONFIG_FILE).is_file() {
            (read_config(dir)?, dir.join(WEIGHTS_FILE))
        } else if dir.join("state.json").is_file() {
            let text = std::fs::read_to_string(dir.join("state.json"))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(msg)?;
            let cfg: Config =
                serde_json::from_value(v["model"].clone()).map_err(|e| msg(format!("{}: {e}", dir.join("state.json").display())))?;
            (cfg, dir.join("checkpoint.safetensors"))
        } else {
            candle_core::bail!("{}: no trained tokenizer here (expected {CONFIG_FILE} + {WEIGHTS_FILE})", dir.display());
        };
        if !weights.is_file() {
            candle_core::bail!("{}: missing", weights.display());
        }
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        Self::new(&cfg, vb).map_err(|e| msg(format!("{}: {e}", weights.display())))
    }
}
