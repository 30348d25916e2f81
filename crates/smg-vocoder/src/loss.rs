//! Vocoder training losses (SPEC.md §4): a differentiable log-mel for the ×45 mel-L1 term,
//! feature matching (L1, ×2), LSGAN (HiFi-GAN) and SAN (BigVSAN) adversarial losses.

use crate::discriminator::{dft_basis, magnitude, reflect_pad, Logits, Verdict};
use candle_core::{Device, Result, Tensor};

/// HiFi-GAN's `mel_spectrogram` as candle ops: reflect padding `(n_fft − hop)/2`, periodic Hann,
/// `sqrt(re² + im² + 1e-9)`, Slaney mel bands, `ln(max(·, 1e-5))`. `(B, T)` → `(B, n_mels, T/hop)`.
#[derive(Debug, Clone)]
pub struct MelSpec {
    n_fft: usize,
    hop: usize,
    basis: Tensor,
    /// `(n_mels, n_fft/2 + 1)`.
    filters: Tensor,
}

impl MelSpec {
    /// The mel of `smg_audio::MelConfig` `cfg` (use `f_max = sr/2` for HiFi-GAN's loss mel,
    /// `fmax_for_loss: null`).
    pub fn new(cfg: &smg_audio::MelConfig, device: &Device) -> Result<Self> {
        let window = smg_audio::stft::hann_periodic(cfg.n_fft);
        let basis = dft_basis(cfg.n_fft, &window, device)?;
        let fb = smg_audio::mel::slaney_mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max);
        let (m, f) = fb.dim();
        let filters = Tensor::from_vec(fb.iter().copied().collect::<Vec<f32>>(), (m, f), device)?;
        Ok(Self { n_fft: cfg.n_fft, hop: cfg.hop_length, basis, filters })
    }

    /// Natural-log mel of waveforms `(B, T)`.
    pub fn forward(&self, y: &Tensor) -> Result<Tensor> {
        let pad = (self.n_fft - self.hop) / 2;
        let mag = magnitude(&reflect_pad(y, pad, pad)?, &self.basis, self.n_fft, self.hop, 1e-9)?;
        let b = mag.dim(0)?;
        self.filters.broadcast_left(b)?.matmul(&mag)?.maximum(1e-5)?.log()
    }
}

/// `Σ_discriminators Σ_layers mean|real − fake|` (HiFi-GAN `feature_loss` before its ×2).
pub fn feature_loss(real: &[Verdict], fake: &[Verdict]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (r, g) in real.iter().zip(fake) {
        for (a, b) in r.fmaps.iter().zip(&g.fmaps) {
            let l = (a.detach() - b)?.abs()?.mean_all()?;
            total = Some(match total {
                Some(t) => (t + l)?,
                None => l,
            });
        }
    }
    total.ok_or_else(|| candle_core::Error::Msg("feature_loss: no feature maps".into()))
}

fn sum(terms: Vec<Tensor>) -> Result<Tensor> {
    let mut it = terms.into_iter();
    let first = it.next().ok_or_else(|| candle_core::Error::Msg("loss over no discriminators".into()))?;
    it.try_fold(first, |a, b| a + b)
}

/// The discriminators' loss on real and generated verdicts: LSGAN
/// `mean((1 − D(y))²) + mean(D(ŷ)²)`, or for SAN outputs (sony/bigvsan `discriminator_loss`)
/// `mean(softplus(1 − fun_r)²) + mean(softplus(fun_g)²) + mean(softplus(1 − dir_r)²) − mean(softplus(1 − dir_g)²)`.
pub fn discriminator_loss(real: &[Verdict], fake: &[Verdict]) -> Result<Tensor> {
    let sp = |x: &Tensor| -> Result<Tensor> { softplus(x)?.sqr()?.mean_all() };
    let mut terms = Vec::new();
    for (r, g) in real.iter().zip(fake) {
        terms.push(match (&r.logits, &g.logits) {
            (Logits::Plain(dr), Logits::Plain(dg)) => (dr.affine(-1.0, 1.0)?.sqr()?.mean_all()? + dg.sqr()?.mean_all()?)?,
            (Logits::San { fun: fr, dir: dr }, Logits::San { fun: fg, dir: dg }) => {
                (((sp(&fr.affine(-1.0, 1.0)?)? + sp(fg)?)? + sp(&dr.affine(-1.0, 1.0)?)?)? - sp(&dg.affine(-1.0, 1.0)?)?)?
            }
            _ => candle_core::bail!("discriminator_loss: real and generated verdicts differ in kind"),
        });
    }
    sum(terms)
}

/// The generator's adversarial loss: LSGAN `mean((1 − D(ŷ))²)`, SAN `mean(softplus(1 − D(ŷ))²)`.
pub fn generator_loss(fake: &[Verdict], san: bool) -> Result<Tensor> {
    let terms = fake
        .iter()
        .map(|v| {
            let d = v.logits.main().affine(-1.0, 1.0)?;
            if san {
                softplus(&d)?.sqr()?.mean_all()
            } else {
                d.sqr()?.mean_all()
            }
        })
        .collect::<Result<Vec<_>>>()?;
    sum(terms)
}

/// `ln(1 + eˣ)`, stable for large |x|: `max(x, 0) + ln(1 + e^{−|x|})`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The differentiable mel equals the front end's (`smg_audio::MelTransform`) on real-ish audio.
    #[test]
    fn mel_matches_the_front_end() {
        let cfg = smg_audio::MelConfig::hifigan();
        let n = 4096;
        let y: Vec<f32> = (0..n).map(|i| (0.3 * (i as f32 * 0.05).sin() + 0.2 * (i as f32 * 0.31).sin()) * (i as f32 / n as f32)).collect();
        let reference = smg_audio::MelTransform::new(cfg.clone()).log_mel(&y).unwrap();
        let ours = MelSpec::new(&cfg, &Device::Cpu)
            .unwrap()
            .forward(&Tensor::from_vec(y, (1, n), &Device::Cpu).unwrap())
            .unwrap()
            .squeeze(0)
            .unwrap();
        let ours = ours.to_vec2::<f32>().unwrap();
        assert_eq!((ours.len(), ours[0].len()), reference.dim());
        let mut worst = 0f32;
        for (r, row) in ours.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                worst = worst.max((v - reference[[r, c]]).abs());
            }
        }
        assert!(worst < 2e-3, "log-mel differs by {worst}");
    }

    #[test]
    fn softplus_is_stable() {
        let x = Tensor::new(&[-100f32, -1.0, 0.0, 1.0, 100.0], &Device::Cpu).unwrap();
        let v = softplus(&x).unwrap().to_vec1::<f32>().unwrap();
        let want = [0.0, 0.313_261_7, std::f32::consts::LN_2, 1.313_261_7, 100.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
