//! Training checkpoints that survive a crash: tensors (weights and optimiser moments) in one
//! safetensors file and the run's state in a JSON file, each written to a temporary file and
//! renamed into place, so a kill mid-write leaves the previous checkpoint intact.

use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;
use std::path::Path;

pub const TENSORS_FILE: &str = "checkpoint.safetensors";
pub const STATE_FILE: &str = "state.json";

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Writes `tensors` and `state` (any serialisable run state) into `dir`, atomically.
pub fn save<S: serde::Serialize>(dir: &Path, tensors: &HashMap<String, Tensor>, state: &S) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let t_tmp = dir.join(format!("{TENSORS_FILE}.partial"));
    candle_core::safetensors::save(tensors, &t_tmp)?;
    let s_tmp = dir.join(format!("{STATE_FILE}.partial"));
    std::fs::write(&s_tmp, serde_json::to_string_pretty(state).map_err(msg)?)?;
    std::fs::rename(&t_tmp, dir.join(TENSORS_FILE))?;
    std::fs::rename(&s_tmp, dir.join(STATE_FILE))?;
    Ok(())
}

/// Whether `dir` holds a checkpoint written by [`save`].
pub fn exists(dir: &Path) -> bool {
    dir.join(TENSORS_FILE).is_file() && dir.join(STATE_FILE).is_file()
}

/// Reads a checkpoint written by [`save`].
pub fn load<S: serde::de::DeserializeOwned>(dir: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, S)> {
    let map = candle_core::safetensors::load(dir.join(TENSORS_FILE), device)?;
    let text = std::fs::read_to_string(dir.join(STATE_FILE))?;
    let state = serde_json::from_str(&text).map_err(|e| msg(format!("{}: {e}", dir.join(STATE_FILE).display())))?;
    Ok((map, state))
}

/// Copies each checkpoint tensor into the variable of the same name; a missing tensor or a
/// shape mismatch is an error that names it.
pub fn restore_vars(map: &HashMap<String, Tensor>, vars: &[(String, candle_core::Var)]) -> Result<()> {
    for (n, v) in vars {
        let t = map.get(n).ok_or_else(|| msg(format!("checkpoint lacks tensor {n}")))?;
        if t.dims() != v.dims() {
            candle_core::bail!("checkpoint tensor {n} has shape {:?}, expected {:?}", t.dims(), v.dims());
        }
        v.set(t)?;
    }
    Ok(())
}

/// The variables of a `VarMap`, sorted by name (optionally skipping some).
pub fn named_vars(vm: &candle_nn::VarMap, skip: impl Fn(&str) -> bool) -> Vec<(String, candle_core::Var)> {
    let data = vm.data().lock().expect("varmap lock");
    let mut v: Vec<(String, candle_core::Var)> = data.iter().filter(|(n, _)| !skip(n)).map(|(n, v)| (n.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Drops lines of a JSONL metrics log whose `step` field is at or after `step` (a resumed run
/// rewrites them).
pub fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).map(|s| (s as usize) < step).unwrap_or(false)
        })
        .collect();
    let mut s = kept.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    std::fs::write(path, s)?;
    Ok(())
}
