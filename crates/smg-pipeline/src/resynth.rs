//! How well a vocoder turns the project's mel back into audio: resynthesise real clips
//! from their natural-log mel (SPEC.md §1) and compare the mel of the result with the input's.
//! The score is the mean absolute difference of natural-log mels (the "mel-L1" of HiFi-GAN's
//! validation, `F.l1_loss(y_mel, y_g_hat_mel)`), over the frames both have.

use crate::{Result, Vocoder};
use ndarray::Array2;
use smg_audio::MelTransform;
use std::time::Instant;

pub use smg_audio::mel::mel_l1;

/// One clip resynthesised.
#[derive(Debug, Clone)]
pub struct Resynthesis {
    pub audio: Vec<f32>,
    /// The mel of `audio`.
    pub mel: Array2<f32>,
    /// [`mel_l1`] against the input mel.
    pub mel_l1: f64,
    /// Seconds the vocoder took.
    pub seconds: f64,
}

/// Vocodes `log_mel` and measures the result against it.
pub fn resynthesize(vocoder: &Vocoder, mt: &MelTransform, log_mel: &Array2<f32>) -> Result<Resynthesis> {
    let t = Instant::now();
    let audio = vocoder.synthesize(mt, log_mel)?;
    let seconds = t.elapsed().as_secs_f64();
    let mel = mt.log_mel(&audio)?;
    Ok(Resynthesis { mel_l1: mel_l1(log_mel, &mel), audio, mel, seconds })
}

/// Mean mel-L1 and real-time factor of one vocoder over many mels.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VocoderScore {
    pub vocoder: String,
    pub clips: usize,
    pub mel_l1: f64,
    /// Standard error of the mean mel-L1.
    pub mel_l1_se: f64,
    pub real_time_factor: f64,
}

/// Scores `vocoder` on every mel of `mels` (natural-log, 22 050 Hz / 256 hop), calling
/// `progress` after each clip.
pub fn score(name: &str, vocoder: &Vocoder, mt: &MelTransform, mels: &[Array2<f32>], mut progress: impl FnMut()) -> Result<VocoderScore> {
    let (mut l1, mut secs, mut audio_s) = (Vec::new(), 0.0, 0.0);
    for m in mels {
        let r = resynthesize(vocoder, mt, m)?;
        l1.push(r.mel_l1);
        secs += r.seconds;
        audio_s += r.audio.len() as f64 / mt.config.sample_rate as f64;
        progress();
    }
    let n = l1.len().max(1) as f64;
    let mean = l1.iter().sum::<f64>() / n;
    let var = l1.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Ok(VocoderScore {
        vocoder: name.to_string(),
        clips: l1.len(),
        mel_l1: mean,
        mel_l1_se: (var / n).sqrt(),
        real_time_factor: secs / audio_s.max(1e-9),
    })
}
