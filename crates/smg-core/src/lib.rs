//! Shared plumbing for every SpecMaskGIT-rs crate: picking the compute device.
//!
//! The rest of the workspace takes a `&Device` explicitly; this crate only answers
//! "which device should a notebook or the command line use by default?".

pub mod adam;
pub mod alloc;
pub mod batch_norm;
pub mod checkpoint;
pub mod conv;
pub mod conv1d;
pub mod conv_down;
pub mod cross_entropy;
pub mod fast;
pub mod ops;
pub mod seeded;
pub mod threads;
pub mod train_ops;
pub mod vit_block;

/// Seeded test data for the workspace's unit and integration tests (not part of the API).
#[doc(hidden)]
pub mod test_util {
    use candle_core::{Device, Tensor};

    /// Uniform values in [−1, 1) from a seeded xorshift, as a CPU f32 tensor of `shape`.
    pub fn rand(shape: &[usize], seed: u64) -> Tensor {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

pub use candle_core::Device;
pub use seeded::SeededVarMap;

/// The device [`best_device`] picked and why, printable for notebooks and logs.
#[derive(Debug, Clone)]
pub struct DeviceChoice {
    pub device: Device,
    /// One line that says what was picked, e.g. `"CUDA device 0"` or
    /// `"CPU (built without the `cuda` feature)"`.
    pub description: String,
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Whether this build carries candle's CUDA backend (the workspace feature `cuda`).
pub const fn built_with_cuda() -> bool {
    cfg!(feature = "cuda")
}

/// Picks the best available device: CUDA device 0 when the crate was built with the
/// `cuda` feature and a GPU answers, otherwise the CPU. The environment variable
/// `SMG_DEVICE=cpu` forces the CPU even in a CUDA build.
pub fn best_device() -> DeviceChoice {
    let forced_cpu = std::env::var("SMG_DEVICE").map(|v| v.eq_ignore_ascii_case("cpu")).unwrap_or(false);
    if forced_cpu {
        return cpu_choice("SMG_DEVICE=cpu".to_string());
    }
    if !built_with_cuda() {
        return cpu_choice("built without the `cuda` feature".to_string());
    }
    match Device::new_cuda(0) {
        Ok(device) => DeviceChoice { device, description: "CUDA device 0".to_string() },
        Err(e) => cpu_choice(format!("CUDA build, but no GPU answered: {e}")),
    }
}

fn cpu_choice(reason: String) -> DeviceChoice {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    DeviceChoice { device: Device::Cpu, description: format!("CPU, {threads} threads ({reason})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_cpu_without_cuda_and_says_why() {
        let choice = best_device();
        if !built_with_cuda() {
            assert!(choice.device.is_cpu());
            assert!(choice.description.starts_with("CPU"), "{}", choice.description);
        }
        assert!(!choice.to_string().is_empty());
    }
}
