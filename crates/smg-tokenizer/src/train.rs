//! Training SpecVQGAN (SPEC.md §2.3): L1 reconstruction + codebook loss, hinge GAN loss from a
//! configurable step with a fixed weight (SpecVQGAN's 0.8 by default) or one balanced against
//! the L1 gradient, two Adam optimisers (β = 0.5, 0.9); seeded,
//! with a progress bar, a metrics log, periodic validation, atomic checkpoints and exact resume.
//! EMA codebook updates with dead-code restarts when the model's config asks for them. A run can
//! start from a trained tokenizer and fine-tune its decoder alone, the codes staying fixed.

use crate::adam::Adam;
use crate::discriminator::Discriminator;
use crate::quantizer::usage;
use crate::specvqgan::{Config, SpecVqGan};
use candle_core::{DType, Device, ModuleT, Result, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use smg_core::SeededVarMap;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Optimisation settings; `Default` follows SPEC.md §2.3 scaled to small batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// First step with the adversarial loss (SpecVQGAN: 30001).
    pub disc_start: usize,
    pub disc_weight: f64,
    pub disc_ndf: usize,
    pub seed: u64,
    pub log_every: usize,
    pub val_every: usize,
    pub ckpt_every: usize,
    /// EMA mode: codes whose EMA count falls below this are restarted.
    pub restart_below: f64,
    /// Train on random time crops of this many frames (a multiple of the downsampling factor;
    /// 0 = whole clips). The model is convolutional, so crops cut the cost of a step without
    /// changing what it learns locally; validation always uses whole clips.
    #[serde(default)]
    pub crop_frames: usize,
    /// From this step on, the learning rate follows a half cosine from `lr` down to 0 at
    /// `steps` (a decay phase after constant-rate training); `None` keeps it constant.
    #[serde(default)]
    pub lr_decay_start: Option<usize>,
    /// Train the decoder (and `post_quant_conv`) alone, with the encoder and codebook frozen:
    /// every clip keeps its codes, so a generator trained on them stays valid. The loss is the
    /// reconstruction L1 (+ the adversarial term from `disc_start`); no codebook updates.
    #[serde(default)]
    pub decoder_only: bool,
    /// Scale the adversarial term so that its gradient at the reconstruction has the norm of
    /// the L1 term's, times `disc_weight` (the balance of taming-transformers' adaptive weight,
    /// taken at the decoder's output instead of its last layer). SpecVQGAN pins the adaptive
    /// weight to 1 (SPEC.md §2.3); a fixed hinge weight against an L1 of ≈0.05 keeps pulling the
    /// reconstruction away from its input as the discriminator improves.
    #[serde(default)]
    pub disc_adaptive: bool,
    /// Weight of the feature-matching term from `disc_start` on (MelGAN, HiFi-GAN): the mean
    /// over the discriminator's hidden layers of the L1 distance between its activations on the
    /// clip and on the reconstruction, a reconstruction loss in the discriminator's learnt
    /// features; 0 = off.
    #[serde(default)]
    pub feature_matching: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 2000,
            batch_size: 32,
            lr: 1e-3,
            beta1: 0.5,
            beta2: 0.9,
            disc_start: 30001,
            disc_weight: 0.8,
            disc_ndf: 16,
            seed: 0,
            log_every: 10,
            val_every: 200,
            ckpt_every: 200,
            restart_below: 0.03,
            crop_frames: 0,
            lr_decay_start: None,
            decoder_only: false,
            disc_adaptive: false,
            feature_matching: 0.0,
        }
    }
}

/// One line of the metrics log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub step: usize,
    pub rec_l1: f32,
    pub codebook: f32,
    pub g_adv: f32,
    pub d_loss: f32,
    pub codes_used: usize,
    pub perplexity: f64,
    pub restarts: usize,
    /// Wall-clock seconds of the training step (0 in logs written before it was recorded).
    #[serde(default)]
    pub seconds: f64,
    /// Weight the adversarial term had (`disc_weight`, times the balance when adaptive).
    #[serde(default)]
    pub adv_weight: f64,
    /// The feature-matching term (unweighted; 0 when off).
    #[serde(default)]
    pub fm: f32,
    pub val_l1: Option<f32>,
    pub val_codes_used: Option<usize>,
}

/// Everything needed to continue a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    step: usize,
    /// Adam step counts (the discriminator's starts at `disc_start`).
    opt_g_step: usize,
    opt_d_step: usize,
    model: Config,
    train: TrainConfig,
}

pub struct Trainer {
    pub model: SpecVqGan,
    pub disc: Discriminator,
    pub cfg: TrainConfig,
    pub step: usize,
    pub out_dir: PathBuf,
    vm_g: VarMap,
    vm_d: VarMap,
    opt_g: Adam,
    opt_d: Adam,
    device: Device,
}

use smg_core::checkpoint::{self, named_vars};

impl Trainer {
    /// A fresh run, or the continuation of the one checkpointed in `out_dir` when `resume`.
    pub fn new(model_cfg: &Config, cfg: TrainConfig, out_dir: &Path, resume: bool, device: &Device) -> Result<Self> {
        // Seeded initialisation (candle's CPU RNG cannot be seeded).
        let sg = SeededVarMap::new(cfg.seed);
        let sd = SeededVarMap::new(cfg.seed.wrapping_add(1));
        let model = SpecVqGan::new(model_cfg, sg.var_builder(DType::F32, device))?;
        let disc = Discriminator::new(cfg.disc_ndf, 3, sd.var_builder(DType::F32, device).pp("loss.discriminator"))?;
        let (vm_g, vm_d) = (sg.varmap, sd.varmap);
        let (ema, decoder_only) = (model_cfg.ema, cfg.decoder_only);
        let g_vars = named_vars(&vm_g, |n| {
            (ema && n.starts_with("quantize.")) || (decoder_only && !(n.starts_with("decoder.") || n.starts_with("post_quant_conv.")))
        });
        let d_vars = named_vars(&vm_d, |n| n.contains("running_"));
        let mut t = Self {
            opt_g: Adam::new(g_vars, cfg.lr, cfg.beta1, cfg.beta2)?,
            opt_d: Adam::new(d_vars, cfg.lr, cfg.beta1, cfg.beta2)?,
            model,
            disc,
            cfg,
            step: 0,
            out_dir: out_dir.to_path_buf(),
            vm_g,
            vm_d,
            device: device.clone(),
        };
        if resume && t.checkpoint_path().is_file() {
            t.load_checkpoint()?;
        }
        Ok(t)
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.out_dir.join(checkpoint::TENSORS_FILE)
    }

    /// Writes weights, discriminator, optimiser moments and the step, atomically.
    pub fn save_checkpoint(&self) -> Result<()> {
        std::fs::create_dir_all(&self.out_dir)?;
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (n, v) in named_vars(&self.vm_g, |_| false) {
            map.insert(n, v.as_tensor().clone());
        }
        for (n, v) in named_vars(&self.vm_d, |_| false) {
            map.insert(n, v.as_tensor().clone());
        }
        map.extend(self.opt_g.state("optim.g")?);
        map.extend(self.opt_d.state("optim.d")?);
        let state = State {
            step: self.step,
            opt_g_step: self.opt_g.step,
            opt_d_step: self.opt_d.step,
            model: self.model.config.clone(),
            train: self.cfg.clone(),
        };
        checkpoint::save(&self.out_dir, &map, &state)
    }

    /// Writes the model alone (no discriminator, no optimiser state) as a pretrained tokenizer
    /// that [`SpecVqGan::from_pretrained`] loads.
    pub fn export(&self, dir: &Path) -> Result<()> {
        let map: HashMap<String, Tensor> = named_vars(&self.vm_g, |_| false).into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        crate::save_pretrained(&map, &self.model.config, dir)
    }

    fn load_checkpoint(&mut self) -> Result<()> {
        let (map, state): (HashMap<String, Tensor>, State) = checkpoint::load(&self.out_dir, &self.device)?;
        if state.model != self.model.config {
            candle_core::bail!("checkpoint in {} was made with another model configuration", self.out_dir.display());
        }
        if state.train.disc_ndf != self.cfg.disc_ndf {
            candle_core::bail!(
                "checkpoint in {} has a discriminator of width {}, not {}",
                self.out_dir.display(),
                state.train.disc_ndf,
                self.cfg.disc_ndf
            );
        }
        checkpoint::restore_vars(&map, &named_vars(&self.vm_g, |_| false))?;
        checkpoint::restore_vars(&map, &named_vars(&self.vm_d, |_| false))?;
        self.opt_g.load_state("optim.g", &map, state.opt_g_step)?;
        self.opt_d.load_state("optim.d", &map, state.opt_d_step)?;
        self.step = state.step;
        Ok(())
    }

    /// Starts a fresh run from the tokenizer saved in `dir` (by [`Self::export`] or `smg half`;
    /// f16/bf16 weights are widened), e.g. to fine-tune its decoder. The configurations must
    /// match, except that a decoder-only run may give the decoder another size: then the
    /// encoder, codebook and `post_quant_conv` are loaded and the decoder starts fresh, so every
    /// clip keeps its codes. A run that has already taken steps is left alone.
    pub fn init_from(&mut self, dir: &Path) -> Result<()> {
        if self.step > 0 {
            return Ok(());
        }
        let saved = crate::pretrained::read_config(dir)?;
        let same = saved == self.model.config;
        let other_decoder = self.cfg.decoder_only && saved.same_codes(&self.model.config);
        if !(same || other_decoder) {
            candle_core::bail!(
                "the tokenizer in {} has another configuration than the one being trained (only a decoder-only run may change the decoder's size)",
                dir.display()
            );
        }
        let map = candle_core::safetensors::load(dir.join(crate::pretrained::WEIGHTS_FILE), &self.device)?
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        checkpoint::restore_vars(&map, &named_vars(&self.vm_g, |n| !same && n.starts_with("decoder.")))
    }

    fn codebook_vars(&self) -> Option<(Var, Var, Var)> {
        let data = self.vm_g.data().lock().expect("varmap lock");
        Some((
            data.get("quantize.embedding.weight")?.clone(),
            data.get("quantize.ema_cluster_size")?.clone(),
            data.get("quantize.ema_embed_sum")?.clone(),
        ))
    }

    /// Learning rate at `step` (constant, or the cosine decay phase).
    pub fn lr_at(&self, step: usize) -> f64 {
        match self.cfg.lr_decay_start {
            Some(s0) if step >= s0 && self.cfg.steps > s0 => {
                let p = ((step - s0) as f64 / (self.cfg.steps - s0) as f64).min(1.0);
                self.cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
            _ => self.cfg.lr,
        }
    }

    /// One optimisation step on a batch of normalised mels (B, 1, n_mels, T).
    pub fn train_step(&mut self, x: &Tensor) -> Result<Metrics> {
        // On a thread of rayon's pool: see `smg_core::threads::on_pool`.
        smg_core::threads::on_pool(|| self.train_step_here(x))
    }

    /// [`Self::train_step`] on the calling thread.
    fn train_step_here(&mut self, x: &Tensor) -> Result<Metrics> {
        let step = self.step;
        let adv = step >= self.cfg.disc_start;
        let decoder_only = self.cfg.decoder_only;
        let f = if decoder_only { self.model.forward_decoder_train(x)? } else { self.model.forward_train(x)? };
        let rec = (&f.reconstruction - x)?.abs()?.mean_all()?;
        let mut g_loss = if decoder_only { rec.clone() } else { (&rec + &f.quantized.loss)? };
        let (mut g_adv, mut adv_weight, mut fake_features) = (0f32, 0f64, None);
        if adv {
            let (g, weight) = if self.cfg.disc_adaptive {
                self.balanced_adversarial(&f.reconstruction)?
            } else {
                // One pass of the frozen discriminator serves the hinge and feature-matching terms.
                let (logits, features) = self.disc.frozen()?.forward_features_t(&f.reconstruction, true)?;
                fake_features = Some(features);
                (logits.mean_all()?.neg()?, self.cfg.disc_weight)
            };
            g_adv = g.to_scalar::<f32>()?;
            adv_weight = weight;
            g_loss = (g_loss + (g * weight)?)?;
        }
        let mut fm = 0f32;
        if adv && self.cfg.feature_matching > 0.0 {
            let term = self.feature_matching(x, &f.reconstruction, fake_features)?;
            fm = term.to_scalar::<f32>()?;
            g_loss = (g_loss + (term * self.cfg.feature_matching)?)?;
        }
        let grads = g_loss.backward()?;
        self.opt_g.lr = self.lr_at(step);
        self.opt_d.lr = self.opt_g.lr;
        self.opt_g.step(&grads)?;
        let mut restarts = 0;
        if self.model.config.ema && !decoder_only {
            if let Some((w, cs, es)) = self.codebook_vars() {
                let mut rng = rand::rngs::StdRng::seed_from_u64(self.cfg.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                restarts = self.model.quantize.ema_update((&w, &cs, &es), &f.quantized, self.cfg.restart_below, &mut rng)?;
            }
        }
        let mut d_loss = 0f32;
        if adv {
            let real = self.disc.forward_t(x, true)?;
            let fake = self.disc.forward_t(&f.reconstruction.detach(), true)?;
            let d = ((real.affine(-1.0, 1.0)?.relu()?.mean_all()? + fake.affine(1.0, 1.0)?.relu()?.mean_all()?)? * 0.5)?;
            d_loss = d.to_scalar::<f32>()?;
            let grads = d.backward()?;
            self.opt_d.step(&grads)?;
        }
        let idx: Vec<u32> = f.quantized.idx_flat.to_vec1()?;
        let (_, u) = usage(&idx, self.model.config.n_embed);
        self.step += 1;
        Ok(Metrics {
            step,
            rec_l1: rec.to_scalar()?,
            codebook: f.quantized.loss.to_scalar()?,
            g_adv,
            d_loss,
            codes_used: u.used,
            perplexity: u.perplexity,
            restarts,
            seconds: 0.0,
            adv_weight,
            fm,
            val_l1: None,
            val_codes_used: None,
        })
    }

    /// Mean over the discriminator's hidden layers of the mean |D_l(x) − D_l(x̂)|, the clip's
    /// activations held fixed; gradients reach the reconstruction only. `fake`: the frozen
    /// discriminator's activations on x̂ when the hinge term already computed them.
    fn feature_matching(&self, x: &Tensor, rec: &Tensor, fake: Option<Vec<Tensor>>) -> Result<Tensor> {
        let d = self.disc.frozen()?;
        let (_, real) = d.forward_features_t(x, true)?;
        let fake = match fake {
            Some(f) => f,
            None => d.forward_features_t(rec, true)?.1,
        };
        let n = real.len() as f64;
        let mut total: Option<Tensor> = None;
        for (r, f) in real.iter().zip(&fake) {
            let l = (f - r.detach())?.abs()?.mean_all()?;
            total = Some(match total {
                None => l,
                Some(t) => (t + l)?,
            });
        }
        total.ok_or_else(|| candle_core::Error::Msg("the discriminator has no hidden layers".into()))?.affine(1.0 / n, 0.0)
    }

    /// The hinge term through its gradient at the reconstruction: `Σ x̂ ⊙ sg(∇x̂ g)` has the value
    /// of nothing useful but the gradient of g = −mean D(x̂), so the discriminator runs once and
    /// its gradient is scaled by `disc_weight · ‖∇x̂ L1‖ / ‖∇x̂ g‖` (‖∇x̂ L1‖ = 1/√N for the mean
    /// absolute error over N values), clamped to [0, 10⁴]. Returns (g, weight) with g's value.
    fn balanced_adversarial(&self, rec: &Tensor) -> Result<(Tensor, f64)> {
        let leaf = Var::from_tensor(&rec.detach())?;
        let g = self.disc.frozen()?.forward_t(leaf.as_tensor(), true)?.mean_all()?.neg()?;
        let grad =
            g.backward()?.remove(leaf.as_tensor()).ok_or_else(|| candle_core::Error::Msg("no gradient at the reconstruction".into()))?;
        let norm = grad.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()? as f64;
        let balance = ((1.0 / (rec.elem_count() as f64).sqrt()) / (norm + 1e-12)).clamp(0.0, 1e4);
        let value = g.to_scalar::<f32>()? as f64;
        // Σ x̂ ⊙ ∇ − Σ sg(x̂) ⊙ ∇ + g: gradient ∇, value g.
        let surrogate = ((rec * &grad)?.sum_all()? - (rec.detach() * &grad)?.sum_all()?)?.affine(1.0, value)?;
        Ok((surrogate, self.cfg.disc_weight * balance))
    }

    /// Mean L1 of reconstructions of `mels` (each (n_mels, T), normalised) and the number of
    /// distinct codes they use.
    pub fn validate(&self, mels: &[Tensor]) -> Result<(f32, usize)> {
        let mut total = 0f64;
        let mut codes = Vec::new();
        for chunk in mels.chunks(self.cfg.batch_size.max(1)) {
            let x = Tensor::stack(chunk, 0)?.unsqueeze(1)?.to_device(&self.device)?;
            let tokens = self.model.encode(&x.squeeze(1)?)?;
            let y = self.model.decode(&tokens)?.unsqueeze(1)?;
            total += (y - &x)?.abs()?.mean_all()?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            codes.extend(tokens.flatten_all()?.to_vec1::<u32>()?);
        }
        let (_, u) = usage(&codes, self.model.config.n_embed);
        Ok(((total / mels.len().max(1) as f64) as f32, u.used))
    }

    /// The `k`-th clip of the current step's batch, cropped to `cfg.crop_frames` at an offset
    /// drawn from (seed, step, k), so a resumed run sees the same crops.
    fn crop(&self, mel: &Tensor, k: usize) -> Result<Tensor> {
        let (frames, crop) = (mel.dim(1)?, self.cfg.crop_frames);
        if crop == 0 || crop >= frames {
            return Ok(mel.clone());
        }
        if crop % self.model.config.factor() != 0 {
            candle_core::bail!("crop_frames {crop} is not a multiple of the downsampling factor {}", self.model.config.factor());
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.cfg.seed ^ 0xC0FFEE ^ ((self.step as u64) << 20) ^ k as u64);
        let start = rand::Rng::random_range(&mut rng, 0..=frames - crop);
        mel.narrow(1, start, crop)
    }

    /// Trains until `cfg.steps` on `train` (normalised mels, each (n_mels, T) with T a multiple
    /// of 16), validating on `valid`; appends metrics to `out_dir/metrics.jsonl` and checkpoints
    /// atomically. A resumed trainer continues at its step with the same batches.
    pub fn fit(&mut self, train: &[Tensor], valid: &[Tensor], progress: bool) -> Result<Vec<Metrics>> {
        if train.is_empty() {
            candle_core::bail!("no training clips");
        }
        std::fs::create_dir_all(&self.out_dir)?;
        let log_path = self.out_dir.join("metrics.jsonl");
        checkpoint::truncate_log(&log_path, self.step)?;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let bar = if progress { indicatif::ProgressBar::new(self.cfg.steps as u64) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(
            indicatif::ProgressStyle::with_template("tokenizer [{bar:30}] {pos}/{len} steps ({per_sec}, ETA {eta}) {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_position(self.step as u64);
        let idx: Vec<usize> = (0..train.len()).collect();
        let per_epoch = train.len().div_ceil(self.cfg.batch_size);
        let mut out = Vec::new();
        while self.step < self.cfg.steps {
            let epoch = self.step / per_epoch;
            let batches = smg_data::batches(&idx, self.cfg.batch_size, self.cfg.seed, epoch as u64);
            let b = &batches[self.step % per_epoch];
            let clips = b.iter().enumerate().map(|(k, &i)| self.crop(&train[i], k)).collect::<Result<Vec<_>>>()?;
            let x = Tensor::stack(&clips, 0)?.unsqueeze(1)?.to_device(&self.device)?;
            let t0 = std::time::Instant::now();
            let mut m = self.train_step(&x)?;
            m.seconds = t0.elapsed().as_secs_f64();
            let done = self.step;
            if ((self.cfg.val_every > 0 && done.is_multiple_of(self.cfg.val_every)) || done == self.cfg.steps) && !valid.is_empty() {
                let (l1, used) = self.validate(valid)?;
                m.val_l1 = Some(l1);
                m.val_codes_used = Some(used);
            }
            if m.val_l1.is_some() || done.is_multiple_of(self.cfg.log_every.max(1)) {
                writeln!(log, "{}", serde_json::to_string(&m).map_err(|e| candle_core::Error::Msg(e.to_string()))?)?;
                bar.set_message(format!("L1 {:.4} codes {} ppl {:.0}", m.rec_l1, m.codes_used, m.perplexity));
            }
            if (self.cfg.ckpt_every > 0 && done.is_multiple_of(self.cfg.ckpt_every)) || done == self.cfg.steps {
                log.flush()?;
                self.save_checkpoint()?;
            }
            bar.inc(1);
            out.push(m);
        }
        bar.finish_and_clear();
        Ok(out)
    }
}
