//! `smg half`: a copy of a safetensors checkpoint with its f32 tensors stored as f16, half the
//! bytes for the models committed under data/checkpoints. Every loader reads weights through a
//! `VarBuilder` at f32, so the copy loads in place of the original.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Largest magnitude stored as f16 (its largest finite value is 65504); tensors reaching past
/// it (e.g. codebook usage counts) stay f32.
const F16_MAX: f32 = 65000.0;

/// Writes `output` with every f32 tensor of `input` as f16 unless it holds a value beyond f16's
/// range; prints how many bytes that saves and the largest relative change of any tensor.
pub fn run(input: &Path, output: &Path) -> Result<()> {
    if input == output {
        bail!("the output {} would overwrite the input: give another path", output.display());
    }
    let tensors = candle_core::safetensors::load(input, &Device::Cpu).with_context(|| format!("reading {}", input.display()))?;
    if tensors.is_empty() {
        bail!("{} holds no tensors", input.display());
    }
    let (mut before, mut after, mut kept, mut worst) = (0usize, 0usize, Vec::new(), 0f32);
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in tensors {
        before += t.elem_count() * t.dtype().size_in_bytes();
        let t = if t.dtype() == DType::F32 {
            let peak = t.abs()?.max_all()?.to_scalar::<f32>()?;
            if !peak.is_finite() {
                bail!("tensor {name} of {} is not finite", input.display());
            }
            if peak > F16_MAX {
                kept.push(name.clone());
                t
            } else {
                let h = t.to_dtype(DType::F16)?;
                let change = (h.to_dtype(DType::F32)? - &t)?.abs()?.max_all()?.to_scalar::<f32>()? / peak.max(f32::MIN_POSITIVE);
                worst = worst.max(change);
                h
            }
        } else {
            t
        };
        after += t.elem_count() * t.dtype().size_in_bytes();
        out.insert(name, t);
    }
    candle_core::safetensors::save(&out, output).with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{}: {} tensors, {:.2} MB -> {:.2} MB; largest change {:.1e} of a tensor's peak{}",
        output.display(),
        out.len(),
        before as f64 / 1e6,
        after as f64 / 1e6,
        worst,
        if kept.is_empty() { String::new() } else { format!("; kept f32 (beyond f16's range): {}", kept.join(", ")) }
    );
    Ok(())
}
