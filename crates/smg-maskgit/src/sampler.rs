//! Iterative parallel decoding (SPEC.md §3.6): sample every unknown token, keep the confident
//! ones, re-mask the rest on a schedule; classifier-free guidance with the conditional and
//! unconditional passes batched together. All randomness comes from one seeded RNG on the CPU,
//! so the same seed gives the same tokens on any device.

use crate::schedule::{CfgSchedule, Draw, Guidance, Gumbel, MaskSchedule, Remask, RemaskRule, Schedule, Temperature, TokenDraw};
use crate::{MaskGitError, MaskedVit, Result};
use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};

/// The sampler's settings; every piece is a trait object a notebook can replace.
#[derive(Debug)]
pub struct Sampler {
    pub iterations: usize,
    pub schedule: Box<dyn MaskSchedule>,
    pub guidance: Box<dyn CfgSchedule>,
    pub temperature: Box<dyn Temperature>,
    pub remask: Box<dyn RemaskRule>,
    /// How a token is drawn from the guided distribution (default: the paper's categorical draw).
    pub draw: Box<dyn TokenDraw>,
    pub seed: u64,
    /// Keep every iteration's tokens and confidences in the output.
    pub keep_history: bool,
}

impl Default for Sampler {
    /// The paper's settings: 16 iterations, cosine schedule, CFG 3 with linear warm-up, Gumbel 1.5
    /// annealed, lowest-confidence re-masking, categorical draws.
    fn default() -> Self {
        Self {
            iterations: 16,
            schedule: Box::new(Schedule::Cosine),
            guidance: Box::new(Guidance::Linear(3.0)),
            temperature: Box::new(Gumbel::Annealed(1.5)),
            remask: Box::new(Remask::LowestConfidence),
            draw: Box::new(Draw::Categorical),
            seed: 0,
            keep_history: false,
        }
    }
}

/// One decoding step, for visualisation.
#[derive(Debug, Clone)]
pub struct Step {
    /// Tokens sampled at this step (every position filled), `(B, N)`.
    pub sampled: Vec<Vec<u32>>,
    /// Which positions are still masked after this step.
    pub masked: Vec<Vec<bool>>,
    /// Probability of each sampled token (1 for known tokens).
    pub confidence: Vec<Vec<f32>>,
}

#[derive(Debug, Clone)]
pub struct SampleOutput {
    /// Final tokens `(B, N)` as u32.
    pub tokens: Tensor,
    pub history: Vec<Step>,
}

fn gumbel(rng: &mut impl Rng) -> f64 {
    let u: f64 = rng.random_range(1e-20..1.0);
    -(-u.ln()).ln()
}

impl Sampler {
    /// Checks the settings against a start grid with `unknown` masked tokens.
    fn validate(&self, iterations: usize, unknown: usize) -> Result<()> {
        if iterations == 0 {
            return Err(MaskGitError::Invalid("the sampler needs at least 1 iteration".into()));
        }
        self.draw.check().map_err(MaskGitError::Invalid)?;
        if unknown > 0 && iterations > unknown {
            return Err(MaskGitError::Invalid(format!(
                "{iterations} iterations for {unknown} masked tokens: use at most one iteration per masked token"
            )));
        }
        for i in 0..iterations {
            let (tau, s) = (self.temperature.at(i, iterations), self.guidance.scale(i, iterations));
            let phi = self.guidance.rescale(i, iterations);
            if !(0.0..=1.0).contains(&phi) {
                return Err(MaskGitError::Invalid(format!("guidance rescale must be in [0, 1], got {phi} at step {i}")));
            }
            if !(tau >= 0.0 && tau.is_finite()) {
                return Err(MaskGitError::Invalid(format!("Gumbel temperature must be finite and ≥ 0, got {tau} at step {i}")));
            }
            if !s.is_finite() {
                return Err(MaskGitError::Invalid(format!("guidance scale must be finite, got {s} at step {i}")));
            }
        }
        Ok(())
    }

    /// Fills the masked positions (`mask_id`) of `tokens` `(B, N)` given conditioning
    /// `(B, cond_dim)` (zero rows = unconditional). Known tokens are kept as they are; the
    /// number re-masked at each step follows the schedule applied to each row's initial count.
    pub fn sample(&self, model: &MaskedVit, tokens: &Tensor, cond: &Tensor) -> Result<SampleOutput> {
        self.sample_with(model, tokens, cond, self.seed, self.iterations)
    }

    /// [`Sampler::sample`] with another seed and iteration count, for loops that decode many
    /// grids with one sampler (windows of a long recording: one seed each, and at most one
    /// iteration per masked token when a window has only a few).
    pub fn sample_with(&self, model: &MaskedVit, tokens: &Tensor, cond: &Tensor, seed: u64, iterations: usize) -> Result<SampleOutput> {
        let cfg = &model.config;
        let (b, n) = tokens.dims2()?;
        let v = cfg.vocab;
        let mask_id = cfg.mask_id();
        let dev = tokens.device().clone();
        let mut cur: Vec<Vec<u32>> = tokens.to_dtype(DType::U32)?.to_vec2()?;
        if let Some(bad) = cur.iter().flatten().find(|&&t| t > mask_id) {
            return Err(MaskGitError::Invalid(format!("token id {bad} is outside the codebook (0..{v}, mask = {mask_id})")));
        }
        let n0: Vec<usize> = cur.iter().map(|r| r.iter().filter(|&&t| t == mask_id).count()).collect();
        self.validate(iterations, n0.iter().copied().max().unwrap_or(0))?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let uncond = self.guidance.needs_uncond();
        let cond2 = if uncond { Tensor::cat(&[cond, &cond.zeros_like()?], 0)? } else { cond.clone() };
        let t_total = iterations;
        let mut history = Vec::new();
        let mut last_sampled = cur.clone();
        for i in 0..t_total {
            let x = Tensor::new(cur.clone(), &dev)?;
            let x2 = if uncond { Tensor::cat(&[&x, &x], 0)? } else { x };
            let logits = model.forward(&x2, &cond2)?.to_dtype(DType::F32)?;
            let s = self.guidance.scale(i, t_total);
            let l = if uncond {
                let (lc, lu) = (logits.narrow(0, 0, b)?, logits.narrow(0, b, b)?);
                let g = (&lu + ((&lc - &lu)? * s)?)?;
                match self.guidance.rescale(i, t_total) {
                    phi if phi > 0.0 => {
                        let spread = |t: &Tensor| -> Result<Tensor> { Ok(t.var_keepdim(candle_core::D::Minus1)?.sqrt()?) };
                        // φ·σc/σg + (1 − φ), per position; σg = 0 only when every logit is equal.
                        let f = ((spread(&lc)? / (spread(&g)? + 1e-12)?)? * phi)? + (1.0 - phi);
                        g.broadcast_mul(&f?)?
                    }
                    _ => g,
                }
            } else {
                logits
            };
            let mut logp: Vec<Vec<Vec<f32>>> = crate::vit::log_softmax(&l)?.to_device(&candle_core::Device::Cpu)?.to_vec3()?;
            let tau = self.temperature.at(i, t_total);
            let ratio = self.schedule.mask_ratio((i + 1) as f64 / t_total as f64);
            let mut step = Step { sampled: Vec::new(), masked: Vec::new(), confidence: Vec::new() };
            for r in 0..b {
                let mut sampled = cur[r].clone();
                let mut conf = vec![1f32; n];
                let mut scores: Vec<(f64, usize)> = Vec::new();
                for p in 0..n {
                    if cur[r][p] != mask_id {
                        continue;
                    }
                    let row = &mut logp[r][p];
                    if row.iter().any(|x| !x.is_finite() && *x != f32::NEG_INFINITY) || row.iter().all(|x| *x == f32::NEG_INFINITY) {
                        return Err(MaskGitError::Invalid(format!("non-finite logits at iteration {i}, row {r}, position {p}")));
                    }
                    self.draw.filter(&mut row[..v], i, t_total);
                    // Categorical sample = argmax(log p + Gumbel).
                    let (mut best, mut arg) = (f64::NEG_INFINITY, 0usize);
                    for (k, &lp) in row.iter().enumerate().take(v) {
                        let z = lp as f64 + gumbel(&mut rng);
                        if z > best {
                            best = z;
                            arg = k;
                        }
                    }
                    sampled[p] = arg as u32;
                    let p_sel = (row[arg] as f64).exp();
                    conf[p] = p_sel as f32;
                    scores.push((self.remask.score(p_sel, gumbel(&mut rng), tau), p));
                }
                let unknown = scores.len();
                let mut next = sampled.clone();
                if unknown > 0 && i + 1 < t_total {
                    let k = ((n0[r] as f64 * ratio).floor() as usize).min(unknown - 1).max(1.min(unknown - 1));
                    scores.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    for &(_, p) in scores.iter().take(k) {
                        next[p] = mask_id;
                    }
                }
                if self.keep_history {
                    step.masked.push(next.iter().map(|&t| t == mask_id).collect());
                    step.sampled.push(sampled.clone());
                    step.confidence.push(conf);
                }
                last_sampled[r] = sampled;
                cur[r] = next;
            }
            if self.keep_history {
                history.push(step);
            }
        }
        Ok(SampleOutput { tokens: Tensor::new(last_sampled, &dev)?, history })
    }
}
