//! The swappable pieces of the sampler (SPEC.md §3.6), each a small trait with the paper's
//! choice and the usual alternatives, so a notebook cell can plug in its own without touching
//! the decoding loop.

use std::f64::consts::FRAC_PI_2;

/// Fraction of the initially masked tokens that stay masked after step `i` of `t`
/// (`progress` = (i + 1) / t ∈ (0, 1]).
pub trait MaskSchedule: std::fmt::Debug {
    fn mask_ratio(&self, progress: f64) -> f64;
}

/// The standard MaskGIT schedules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// cos(π/2 · r): the paper's and MaskGIT's default.
    Cosine,
    /// 1 − r.
    Linear,
    /// 1 − r².
    Square,
    /// arccos(r) / (π/2) (Besnier's default).
    Arccos,
}

impl MaskSchedule for Schedule {
    fn mask_ratio(&self, r: f64) -> f64 {
        let r = r.clamp(0.0, 1.0);
        match self {
            Schedule::Cosine => (FRAC_PI_2 * r).cos(),
            Schedule::Linear => 1.0 - r,
            Schedule::Square => 1.0 - r * r,
            Schedule::Arccos => r.acos() / FRAC_PI_2,
        }
        .clamp(0.0, 1.0)
    }
}

/// Classifier-free guidance scale at step `i` of `t`: logits = ℓu + s·(ℓc − ℓu) (paper Eq. 2).
pub trait CfgSchedule: std::fmt::Debug {
    fn scale(&self, i: usize, t: usize) -> f64;
    /// Whether the sampler needs the unconditional pass at all.
    fn needs_uncond(&self) -> bool {
        true
    }
    /// Guidance rescale φ ∈ [0, 1] at step `i` of `t` (0: plain CFG). See [`Rescaled`].
    fn rescale(&self, _i: usize, _t: usize) -> f64 {
        0.0
    }
}

/// Any guidance schedule with *guidance rescale* (Lin et al. 2024, "Common diffusion noise
/// schedules and sample steps are flawed", §3.4), carried over to logits: at every position the
/// guided logits ℓ are scaled so that their spread over the codebook matches the conditional
/// logits', ℓ ← φ·ℓ·σ(ℓc)/σ(ℓ) + (1 − φ)·ℓ. Guidance still decides the *order* of the codes,
/// but not how sharp the guided distribution (s·ℓc − (s−1)·ℓu) is: because a softmax ignores
/// shifts, this is a per-position temperature σ(ℓ)/σ(ℓc) at φ = 1. The spread is taken over all
/// codes, so the unlikely tail weighs in: on the shipped small generator the guided tokens end up
/// *less* confident than the plain conditional model's (mean probability of the first
/// iteration's tokens 0.03 against 0.20, and 0.38 with plain CFG 3; notebook 05): guidance with
/// more diversity than no guidance. Not in the paper; added to lower the Fréchet distance of guided samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescaled<G> {
    pub guidance: G,
    pub phi: f64,
}

impl<G: CfgSchedule> CfgSchedule for Rescaled<G> {
    fn scale(&self, i: usize, t: usize) -> f64 {
        self.guidance.scale(i, t)
    }
    fn needs_uncond(&self) -> bool {
        self.guidance.needs_uncond()
    }
    fn rescale(&self, _i: usize, _t: usize) -> f64 {
        self.phi
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Guidance {
    /// Conditional logits only (scale 1, no unconditional pass).
    Off,
    /// The same scale at every step.
    Constant(f64),
    /// Linear warm-up 0 → scale over the steps (the paper's setting, with scale 3).
    Linear(f64),
    /// Linear warm-up 1 → scale: starts from the plain conditional model rather than the
    /// unconditional one (the `(1+w)ℓc − w·ℓu`, w: 0 → scale−1, form of Besnier's MaskGIT).
    LinearFromConditional(f64),
    /// Linear decay scale → 1: full guidance while the first iterations lay out most of the
    /// grid, the plain conditional model for the last tokens (not in the paper; its mirror
    /// image, tried to lower the Fréchet distance of guided samples).
    LinearToConditional(f64),
}

impl CfgSchedule for Guidance {
    fn scale(&self, i: usize, t: usize) -> f64 {
        match *self {
            Guidance::Off => 1.0,
            Guidance::Constant(s) => s,
            Guidance::Linear(s) => s * i as f64 / (t.max(2) - 1) as f64,
            Guidance::LinearFromConditional(s) => 1.0 + (s - 1.0) * i as f64 / (t.max(2) - 1) as f64,
            Guidance::LinearToConditional(s) => s + (1.0 - s) * i as f64 / (t.max(2) - 1) as f64,
        }
    }
    fn needs_uncond(&self) -> bool {
        !matches!(self, Guidance::Off)
    }
}

/// Gumbel-noise temperature on the re-masking confidence at step `i` of `t`.
pub trait Temperature: std::fmt::Debug {
    fn at(&self, i: usize, t: usize) -> f64;
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gumbel {
    /// τ·(1 − (i+1)/t): linear annealing to 0 at the last step (paper: τ = 1.5).
    Annealed(f64),
    Constant(f64),
}

impl Temperature for Gumbel {
    fn at(&self, i: usize, t: usize) -> f64 {
        match *self {
            Gumbel::Annealed(tau) => tau * (1.0 - (i + 1) as f64 / t.max(1) as f64),
            Gumbel::Constant(tau) => tau,
        }
    }
}

/// Which of the freshly sampled tokens are masked again: the `k` with the smallest returned
/// score are re-masked. Known (given) tokens are never passed here.
pub trait RemaskRule: std::fmt::Debug {
    /// `p_sel`: probability of the sampled token, `g`: a standard Gumbel draw, `tau`: the
    /// temperature of this step.
    fn score(&self, p_sel: f64, g: f64, tau: f64) -> f64;
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Remask {
    /// ln p + τ·G: lowest confidence, perturbed by annealed Gumbel noise (MaskGIT, MAGE, paper).
    LowestConfidence,
    /// Pure noise: a random choice of tokens (the usual ablation).
    Random,
}

impl RemaskRule for Remask {
    fn score(&self, p_sel: f64, g: f64, tau: f64) -> f64 {
        match self {
            Remask::LowestConfidence => p_sel.max(1e-30).ln() + tau * g,
            Remask::Random => g,
        }
    }
}

/// How a token is drawn at an unknown position: a filter that turns that position's (guided)
/// log-probabilities into the ones it is sampled from, in place. The sampler draws the token and
/// takes its confidence from the filtered distribution, so the re-masking rule sees the same
/// distribution the token came from.
pub trait TokenDraw: std::fmt::Debug {
    /// Rewrites `logp` (log-probabilities over the codebook, summing to 1) at step `i` of `t`;
    /// codes that may not be drawn get −∞. The result must again sum to 1.
    fn filter(&self, logp: &mut [f32], i: usize, t: usize);
    /// Rejects settings that make no sense (a clear message), before any decoding.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The usual ways to draw a token. [`Draw::Categorical`] is the paper's (MaskGIT, MAGE: a
/// categorical draw from the softmax, SPEC.md §3.6). The others cut the tail a label-smoothed
/// model (ε = 0.1 spreads a tenth of the mass over all codes, SPEC.md §3.5) keeps, from which a
/// plain draw picks a near-random code about once in ten.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Draw {
    /// A plain categorical draw (the paper's).
    Categorical,
    /// Softmax temperature T: log p / T, renormalised (Besnier's MaskGIT `sm_temp`); T < 1 sharpens.
    Temperature(f64),
    /// Nucleus sampling (Holtzman et al. 2020): the fewest most likely codes whose probability
    /// reaches p, renormalised.
    TopP(f64),
    /// The k most likely codes, renormalised.
    TopK(usize),
}

/// `logp` renormalised in place (log-sum-exp over the finite entries).
fn renormalise(logp: &mut [f32]) {
    let max = logp.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logp.iter().map(|&x| ((x - max) as f64).exp()).sum();
    let lse = max as f64 + sum.ln();
    logp.iter_mut().for_each(|x| *x = (*x as f64 - lse) as f32);
}

/// Keeps the `keep` most likely codes (ties broken by code index), the rest to −∞.
fn keep_top(logp: &mut [f32], keep: usize) {
    if keep >= logp.len() {
        return;
    }
    let mut order: Vec<usize> = (0..logp.len()).collect();
    order.sort_by(|&a, &b| logp[b].total_cmp(&logp[a]).then(a.cmp(&b)));
    for &k in &order[keep..] {
        logp[k] = f32::NEG_INFINITY;
    }
}

impl TokenDraw for Draw {
    fn filter(&self, logp: &mut [f32], _i: usize, _t: usize) {
        match *self {
            Draw::Categorical => return,
            Draw::Temperature(t) => logp.iter_mut().for_each(|x| *x = (*x as f64 / t) as f32),
            Draw::TopK(k) => keep_top(logp, k),
            Draw::TopP(p) => {
                let mut probs: Vec<f32> = logp.iter().map(|&x| x.exp()).collect();
                probs.sort_by(|a, b| b.total_cmp(a));
                let (mut acc, mut keep) = (0f64, 0usize);
                while keep < probs.len() && (keep == 0 || acc < p) {
                    acc += probs[keep] as f64;
                    keep += 1;
                }
                keep_top(logp, keep);
            }
        }
        renormalise(logp);
    }

    fn check(&self) -> std::result::Result<(), String> {
        match *self {
            Draw::Temperature(t) if !(t > 0.0 && t.is_finite()) => Err(format!("softmax temperature must be finite and > 0, got {t}")),
            Draw::TopP(p) if !(p > 0.0 && p <= 1.0) => Err(format!("top-p must be in (0, 1], got {p}")),
            Draw::TopK(0) => Err("top-k must keep at least 1 code".into()),
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    /// `cosine`, `linear`, `square` or `arccos`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "cosine" => Schedule::Cosine,
            "linear" => Schedule::Linear,
            "square" => Schedule::Square,
            "arccos" => Schedule::Arccos,
            other => return Err(format!("a mask schedule is cosine, linear, square or arccos, not {other:?}")),
        })
    }
}

/// The guidance that a scale, a schedule name and a rescale φ name (SPEC.md §3.6; scale 0 =
/// off): `constant`, `linear` (0 → scale, the paper's warm-up), `linear-from-conditional`
/// (1 → scale) or `linear-to-conditional` (scale → 1), with guidance rescale φ ∈ [0, 1]
/// ([`Rescaled`]; 0 = plain CFG). The command line's `--cfg`, `--cfg-schedule`, `--cfg-rescale`.
pub fn guidance_named(scale: f64, schedule: &str, rescale: f64) -> std::result::Result<Box<dyn CfgSchedule>, String> {
    if !scale.is_finite() {
        return Err(format!("the guidance scale must be a finite number, not {scale}"));
    }
    let g = match (scale, schedule) {
        (0.0, _) => return Ok(Box::new(Guidance::Off)),
        (c, "constant") => Guidance::Constant(c),
        (c, "linear") => Guidance::Linear(c),
        (c, "linear-from-conditional") => Guidance::LinearFromConditional(c),
        (c, "linear-to-conditional") => Guidance::LinearToConditional(c),
        (_, s) => {
            return Err(format!("a guidance schedule is constant, linear, linear-from-conditional or linear-to-conditional, not {s:?}"))
        }
    };
    if !(0.0..=1.0).contains(&rescale) {
        return Err(format!("the guidance rescale must be in [0, 1], not {rescale}"));
    }
    Ok(if rescale > 0.0 { Box::new(Rescaled { guidance: g, phi: rescale }) } else { Box::new(g) })
}

impl std::str::FromStr for Draw {
    type Err = String;
    /// `categorical`, `temperature:T`, `top-p:P` or `top-k:K` (the command line's `--draw`).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("a draw is categorical, temperature:T, top-p:P or top-k:K, not {s:?}");
        let d = match s.split_once(':') {
            None if s == "categorical" => Draw::Categorical,
            Some(("temperature", v)) => Draw::Temperature(v.parse().map_err(|_| bad())?),
            Some(("top-p", v)) => Draw::TopP(v.parse().map_err(|_| bad())?),
            Some(("top-k", v)) => Draw::TopK(v.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        d.check()?;
        Ok(d)
    }
}

impl std::fmt::Display for Draw {
    /// The form [`Draw::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Draw::Categorical => write!(f, "categorical"),
            Draw::Temperature(t) => write!(f, "temperature:{t}"),
            Draw::TopP(p) => write!(f, "top-p:{p}"),
            Draw::TopK(k) => write!(f, "top-k:{k}"),
        }
    }
}
