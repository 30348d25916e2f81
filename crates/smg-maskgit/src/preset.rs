//! The sampler a trained generator is best used with (SPEC.md §3.6), stored beside its
//! weights as `sampler.json`, so the command line, the studio and notebooks pick each
//! generator's measured setting without hard-coding one for all.

use crate::schedule::{guidance_named, Draw, Gumbel, Schedule};
use crate::{MaskGitError, Result, Sampler};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of a generator's sampler preset, beside `maskgit.json`.
pub const PRESET_FILE: &str = "sampler.json";

/// A sampler's settings as plain values (the command line's flags, the studio's knobs).
/// Missing fields take [`SamplerPreset::default`]'s values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplerPreset {
    /// Decoding iterations (paper: 16).
    pub iterations: usize,
    /// Classifier-free guidance scale when there is a prompt (0 = off; paper: 3).
    pub guidance: f64,
    /// `constant`, `linear`, `linear-from-conditional` or `linear-to-conditional`.
    pub guidance_schedule: String,
    /// Guidance rescale φ in [0, 1] (0 = plain CFG).
    pub guidance_rescale: f64,
    /// Gumbel temperature of the re-masking confidence, annealed to 0 (paper: 1.5).
    pub temperature: f64,
    /// How a token is drawn: `categorical`, `temperature:T`, `top-p:P` or `top-k:K`.
    pub draw: String,
    /// `cosine`, `linear`, `square` or `arccos`.
    pub mask_schedule: String,
    /// Seed of every random draw (presets stored with a generator leave it at 0).
    pub seed: u64,
    /// Where the setting was measured (free text, shown to the user).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub measured: String,
}

impl Default for SamplerPreset {
    /// The setting measured best on the shipped small generator: constant CFG 3 rescaled with
    /// φ = 1, softmax temperature 0.8, Gumbel 1.5 annealed, 16 cosine iterations
    /// (`data/checkpoints/maskgit-small/TRAINING.md`, "How a token is drawn"). Used for a
    /// generator folder without `sampler.json`.
    fn default() -> Self {
        Self {
            iterations: 16,
            guidance: 3.0,
            guidance_schedule: "constant".into(),
            guidance_rescale: 1.0,
            temperature: 1.5,
            draw: "temperature:0.8".into(),
            mask_schedule: "cosine".into(),
            seed: 0,
            measured: String::new(),
        }
    }
}

impl SamplerPreset {
    /// The paper's draw with constant guidance: categorical draws, plain CFG 3 (no rescale),
    /// Gumbel 1.5 annealed, 16 cosine iterations (SPEC.md §3.6; the CFG warm-up aside).
    pub fn paper_constant() -> Self {
        Self { guidance_rescale: 0.0, draw: "categorical".into(), ..Self::default() }
    }

    /// The preset stored in the generator folder `dir` (`sampler.json`), or the default when
    /// there is none; a malformed file is an error naming it.
    pub fn for_generator(dir: &Path) -> Result<Self> {
        let path = dir.join(PRESET_FILE);
        if !path.is_file() {
            return Ok(Self::default());
        }
        let preset: Self = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .map_err(|e| MaskGitError::Invalid(format!("{}: {e}", path.display())))?;
        preset.check().map_err(|e| MaskGitError::Invalid(format!("{}: {e}", path.display())))?;
        Ok(preset)
    }

    /// Writes the preset as `dir/sampler.json`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| MaskGitError::Invalid(e.to_string()))?;
        std::fs::write(dir.join(PRESET_FILE), json + "\n")?;
        Ok(())
    }

    /// Why the settings cannot make a sampler, if they cannot.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.iterations == 0 {
            return Err("the sampler needs at least 1 iteration".into());
        }
        if !(self.temperature.is_finite() && (0.0..=100.0).contains(&self.temperature)) {
            return Err(format!("the Gumbel temperature must be between 0 and 100, not {}", self.temperature));
        }
        if !(-100.0..=100.0).contains(&self.guidance) {
            return Err(format!("the guidance scale must be between -100 and 100, not {}", self.guidance));
        }
        guidance_named(self.guidance, &self.guidance_schedule, self.guidance_rescale)?;
        self.draw.parse::<Draw>()?;
        self.mask_schedule.parse::<Schedule>()?;
        Ok(())
    }

    /// The same settings with another seed.
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// The sampler these settings name, with guidance only when `guided` (unconditional
    /// filling has nothing to guide towards, SPEC.md §3.7).
    pub fn sampler(&self, guided: bool) -> std::result::Result<Sampler, String> {
        self.check()?;
        let guidance = if guided {
            guidance_named(self.guidance, &self.guidance_schedule, self.guidance_rescale)?
        } else {
            Box::new(crate::Guidance::Off)
        };
        Ok(Sampler {
            iterations: self.iterations,
            schedule: Box::new(self.mask_schedule.parse::<Schedule>()?),
            guidance,
            temperature: Box::new(Gumbel::Annealed(self.temperature)),
            draw: Box::new(self.draw.parse::<Draw>()?),
            seed: self.seed,
            ..Default::default()
        })
    }

    /// One line for logs, e.g. `16 iterations (cosine), CFG 3 constant, Gumbel 1.5 annealed,
    /// draw categorical`.
    pub fn describe(&self) -> String {
        let cfg = match (self.guidance, self.guidance_rescale) {
            (0.0, _) => "no guidance".to_string(),
            (g, r) if r > 0.0 => format!("CFG {g} {} rescaled (φ {r})", self.guidance_schedule),
            (g, _) => format!("CFG {g} {}", self.guidance_schedule),
        };
        format!("{} iterations ({}), {cfg}, Gumbel {} annealed, draw {}", self.iterations, self.mask_schedule, self.temperature, self.draw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_the_default_and_a_saved_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SamplerPreset::for_generator(dir.path()).unwrap(), SamplerPreset::default());
        let p = SamplerPreset { measured: "here".into(), ..SamplerPreset::paper_constant() };
        p.save(dir.path()).unwrap();
        assert_eq!(SamplerPreset::for_generator(dir.path()).unwrap(), p);
    }

    #[test]
    fn partial_files_fill_in_and_bad_ones_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PRESET_FILE), r#"{"draw": "categorical"}"#).unwrap();
        let p = SamplerPreset::for_generator(dir.path()).unwrap();
        assert_eq!(p.draw, "categorical");
        assert_eq!(p.guidance_rescale, SamplerPreset::default().guidance_rescale);
        for (body, needle) in [
            (r#"{"drawing": "categorical"}"#, "drawing"),
            (r#"{"draw": "softmax"}"#, "softmax"),
            (r#"{"guidance_rescale": 2}"#, "rescale"),
            (r#"{"temperature": -1}"#, "Gumbel"),
            (r#"{"iterations": 0}"#, "iteration"),
            ("not json", PRESET_FILE),
        ] {
            std::fs::write(dir.path().join(PRESET_FILE), body).unwrap();
            let e = SamplerPreset::for_generator(dir.path()).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(PRESET_FILE), "{body}: {e}");
        }
    }

    #[test]
    fn sampler_follows_the_settings() {
        let p = SamplerPreset::paper_constant();
        let s = p.with_seed(5).sampler(true).unwrap();
        assert_eq!((s.iterations, s.seed), (16, 5));
        assert_eq!(s.guidance.scale(0, 16), 3.0);
        assert_eq!(s.guidance.rescale(0, 16), 0.0);
        let d = SamplerPreset::default().sampler(true).unwrap();
        assert_eq!(d.guidance.rescale(0, 16), 1.0);
        assert!(!SamplerPreset::default().sampler(false).unwrap().guidance.needs_uncond(), "no guidance without a prompt");
    }
}
