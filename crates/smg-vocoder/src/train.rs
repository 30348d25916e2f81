//! Training a vocoder (SPEC.md §4; jik876/hifi-gan `train.py`, sony/bigvsan `train.py`): random
//! waveform segments and their mels; per step one discriminator update (LSGAN or SAN loss) and
//! one generator update (mel-L1 ×45 + feature matching ×2 + adversarial), AdamW (0.8, 0.99) with
//! exponential decay per epoch, optional gradient-norm clipping (BigVSAN: 1000). Seeded (weights,
//! batches, segment offsets), with a progress bar, a metrics log, held-out mel-L1 validation,
//! atomic checkpoints and exact resume. Starts from scratch or from a checkpoint (fine-tuning
//! the universal HiFi-GAN: its weight-normed `weight_g` / `weight_v` are folded into plain weights
//! that are then trained).

use crate::discriminator::Discriminators;
use crate::loss::{discriminator_loss, feature_loss, generator_loss, MelSpec};
use crate::{BigVsan, BigVsanConfig, HifiGan, HifiGanConfig};
use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use smg_core::adam::Adam;
use smg_core::checkpoint::{self, named_vars};
use smg_core::SeededVarMap;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which generator, in which configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "lowercase")]
pub enum GeneratorConfig {
    Hifigan(HifiGanConfig),
    Bigvsan(BigVsanConfig),
}

impl GeneratorConfig {
    pub fn hop(&self) -> usize {
        match self {
            Self::Hifigan(c) => c.hop(),
            Self::Bigvsan(c) => c.hop(),
        }
    }
}

/// A generator of either family (`impl Module`: mel `(B, 80, T)` → waveform `(B, T·hop)`).
#[derive(Debug, Clone)]
pub enum Generator {
    HifiGan(HifiGan),
    BigVsan(BigVsan),
}

impl Generator {
    pub fn new(cfg: &GeneratorConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg {
            GeneratorConfig::Hifigan(c) => Self::HifiGan(HifiGan::new(c, vb)?),
            GeneratorConfig::Bigvsan(c) => Self::BigVsan(BigVsan::new(c, vb)?),
        })
    }

    /// The differentiable candle path (training).
    pub fn forward_plain(&self, mel: &Tensor) -> Result<Tensor> {
        match self {
            Self::HifiGan(g) => g.forward_plain(mel),
            Self::BigVsan(g) => g.forward_plain(mel),
        }
    }

    /// Loads what [`Trainer::export`] wrote (`config.json` + `vocoder.safetensors`) or a training
    /// folder's checkpoint.
    pub fn load_trained(dir: &Path, device: &Device) -> Result<Self> {
        let (cfg, weights) = if dir.join(EXPORT_CONFIG).is_file() {
            let text = std::fs::read_to_string(dir.join(EXPORT_CONFIG))?;
            let cfg: GeneratorConfig =
                serde_json::from_str(&text).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", dir.join(EXPORT_CONFIG).display())))?;
            (cfg, dir.join(EXPORT_WEIGHTS))
        } else if checkpoint::exists(dir) {
            let text = std::fs::read_to_string(dir.join(checkpoint::STATE_FILE))?;
            let state: State = serde_json::from_str(&text)
                .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", dir.join(checkpoint::STATE_FILE).display())))?;
            (state.generator, dir.join(checkpoint::TENSORS_FILE))
        } else {
            candle_core::bail!("{}: neither an exported vocoder ({EXPORT_CONFIG}) nor a training checkpoint", dir.display());
        };
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device)? };
        Self::new(&cfg, vb.pp("generator"))
    }
}

impl Module for Generator {
    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        match self {
            Self::HifiGan(g) => g.forward(mel),
            Self::BigVsan(g) => g.forward(mel),
        }
    }
}

pub const EXPORT_CONFIG: &str = "config.json";
pub const EXPORT_WEIGHTS: &str = "vocoder.safetensors";

/// Optimisation settings; `Default` is HiFi-GAN V1's `config_v1.json` with a CPU-sized batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    /// Samples per training segment (a multiple of the hop; HiFi-GAN 8192).
    pub segment: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// AdamW's decoupled weight decay (PyTorch's default 0.01, which both official trainers keep).
    pub weight_decay: f64,
    /// Learning rate × `lr_decay` after every epoch (`ExponentialLR`, γ = 0.999).
    pub lr_decay: f64,
    /// Linear learning-rate warm-up over this many steps (0 = none, as the official trainers).
    /// Fine-tuning without the optimiser state needs it: Adam's first steps move every weight
    /// by about the learning rate whatever the gradient's size.
    #[serde(default)]
    pub warmup: usize,
    pub mel_weight: f64,
    pub fm_weight: f64,
    /// Clip each model's gradient norm (BigVSAN: 1000); `None` = no clipping (HiFi-GAN).
    pub grad_clip: Option<f64>,
    pub seed: u64,
    pub log_every: usize,
    pub val_every: usize,
    pub ckpt_every: usize,
    /// First step whose generator loss has the adversarial and feature-matching terms; before
    /// it the generator learns from the mel-L1 alone while the discriminators already train (a
    /// fine-tuned generator is not pushed around by fresh discriminators). 0 = from the start.
    #[serde(default)]
    pub gan_start: usize,
    /// Divides the discriminators' hidden widths (1 = official; >1 for tests and short CPU runs).
    #[serde(default = "one")]
    pub disc_width_div: usize,
}

fn one() -> usize {
    1
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 4,
            segment: 8192,
            lr: 2e-4,
            beta1: 0.8,
            beta2: 0.99,
            weight_decay: 0.01,
            lr_decay: 0.999,
            warmup: 0,
            mel_weight: 45.0,
            fm_weight: 2.0,
            grad_clip: None,
            seed: 1234,
            log_every: 10,
            val_every: 100,
            ckpt_every: 50,
            disc_width_div: 1,
            gan_start: 0,
        }
    }
}

/// One line of the metrics log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub step: usize,
    /// Mel-L1 of the training batch (the loss mel, before ×45).
    pub mel_l1: f32,
    pub feature_matching: f32,
    pub g_adv: f32,
    pub d_loss: f32,
    pub lr: f64,
    /// Wall-clock seconds of the step.
    #[serde(default)]
    pub seconds: f64,
    /// Held-out mel-L1 (the project's mel, inference path), when validated.
    pub val_mel_l1: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    step: usize,
    opt_g_step: usize,
    opt_d_step: usize,
    generator: GeneratorConfig,
    train: TrainConfig,
}

pub struct Trainer {
    pub generator: Generator,
    pub disc: Discriminators,
    pub gen_config: GeneratorConfig,
    pub cfg: TrainConfig,
    pub step: usize,
    pub out_dir: PathBuf,
    vm_g: VarMap,
    vm_d: VarMap,
    opt_g: Adam,
    opt_d: Adam,
    loss_mel: MelSpec,
    mel: smg_audio::MelTransform,
    device: Device,
}

fn prefixed(vm: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    named_vars(vm, |_| false).into_iter().map(|(n, v)| (format!("{prefix}.{n}"), v)).collect()
}

/// Plain (detached) copies of a map's variables, for a model that runs without autograd.
fn detached(vm: &VarMap) -> HashMap<String, Tensor> {
    named_vars(vm, |_| false).into_iter().map(|(n, v)| (n, v.as_tensor().detach())).collect()
}

/// Replaces every `X.weight_g` / `X.weight_v` pair by the plain `X.weight = g · v / ‖v‖`. The
/// models fold weight norm once when they are built, so training the pair would leave the
/// folded weight stale; fine-tuning therefore trains the folded weights directly (the official
/// trainers keep the parametrisation; the function the generator computes is the same).
fn fold_weight_norm(data: &mut HashMap<String, Var>) -> Result<()> {
    let bases: Vec<String> = data.keys().filter_map(|k| k.strip_suffix(".weight_v").map(str::to_string)).collect();
    for base in bases {
        let (Some(v), Some(g)) = (data.remove(&format!("{base}.weight_v")), data.remove(&format!("{base}.weight_g"))) else {
            candle_core::bail!("{base}: weight_v without weight_g");
        };
        let v = v.as_tensor().detach();
        let rank = v.rank();
        let norm = v.sqr()?.flatten_from(1)?.sum_keepdim(1)?.sqrt()?;
        let mut shape = vec![v.dim(0)?];
        shape.resize(rank, 1);
        let w = v.broadcast_mul(&g.as_tensor().detach().reshape(shape.as_slice())?.broadcast_div(&norm.reshape(shape.as_slice())?)?)?;
        data.insert(format!("{base}.weight"), Var::from_tensor(&w)?);
    }
    Ok(())
}

impl Trainer {
    /// A fresh run (from scratch, or from the generator weights in `init`: a `.safetensors`
    /// with the generator at the top level or under `generator.`), or the continuation of the
    /// run checkpointed in `out_dir` when `resume`.
    pub fn new(
        gen_cfg: &GeneratorConfig,
        cfg: TrainConfig,
        out_dir: &Path,
        resume: bool,
        init: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        if cfg.segment == 0 || !cfg.segment.is_multiple_of(gen_cfg.hop()) {
            candle_core::bail!("segment of {} samples is not a positive multiple of the hop {}", cfg.segment, gen_cfg.hop());
        }
        if cfg.batch_size == 0 || !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
            candle_core::bail!("batch size must be positive and the learning rate positive and finite");
        }
        let sg = SeededVarMap::new(cfg.seed);
        if let Some(path) = init {
            let map =
                candle_core::safetensors::load(path, device).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
            let mut data = sg.varmap.data().lock().expect("varmap lock");
            let prefixed = map.keys().any(|k| k.starts_with("generator."));
            for (k, t) in map {
                let name = if prefixed {
                    match k.strip_prefix("generator.") {
                        Some(n) => n.to_string(),
                        None => continue,
                    }
                } else {
                    k
                };
                data.insert(name, Var::from_tensor(&t.to_dtype(DType::F32)?)?);
            }
            fold_weight_norm(&mut data)?;
        }
        let generator = Generator::new(gen_cfg, sg.var_builder(DType::F32, device))?;
        let sd = SeededVarMap::new(cfg.seed.wrapping_add(1));
        let disc = match gen_cfg {
            GeneratorConfig::Hifigan(_) => Discriminators::hifigan(cfg.disc_width_div, sd.var_builder(DType::F32, device))?,
            GeneratorConfig::Bigvsan(_) => Discriminators::bigvsan(cfg.disc_width_div, sd.var_builder(DType::F32, device))?,
        };
        let (vm_g, vm_d) = (sg.varmap, sd.varmap);
        // PyTorch's AdamW decays every parameter, biases included; the official runs did.
        let opt_g = Adam::adamw(named_vars(&vm_g, |_| false), cfg.lr, cfg.beta1, cfg.beta2, cfg.weight_decay)?;
        let opt_d = Adam::adamw(named_vars(&vm_d, |_| false), cfg.lr, cfg.beta1, cfg.beta2, cfg.weight_decay)?;
        let mut loss_cfg = smg_audio::MelConfig::hifigan();
        loss_cfg.f_max = loss_cfg.sample_rate as f64 / 2.0; // `fmax_for_loss: null`
        let mut t = Self {
            generator,
            disc,
            gen_config: gen_cfg.clone(),
            cfg,
            step: 0,
            out_dir: out_dir.to_path_buf(),
            vm_g,
            vm_d,
            opt_g,
            opt_d,
            loss_mel: MelSpec::new(&loss_cfg, device)?,
            mel: smg_audio::MelTransform::hifigan(),
            device: device.clone(),
        };
        if resume && checkpoint::exists(out_dir) {
            t.load_checkpoint()?;
        }
        Ok(t)
    }

    /// Generator parameters (trainable tensors).
    pub fn generator_params(&self) -> usize {
        named_vars(&self.vm_g, |_| false).iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Discriminator parameters.
    pub fn discriminator_params(&self) -> usize {
        named_vars(&self.vm_d, |_| false).iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Weights of both models and both optimisers' moments, written atomically; the tensors
    /// file also loads as a generator checkpoint (generator under `generator.`).
    pub fn save_checkpoint(&self) -> Result<()> {
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (n, v) in prefixed(&self.vm_g, "generator").into_iter().chain(prefixed(&self.vm_d, "disc")) {
            map.insert(n, v.as_tensor().clone());
        }
        map.extend(self.opt_g.state("optim.g")?);
        map.extend(self.opt_d.state("optim.d")?);
        let state = State {
            step: self.step,
            opt_g_step: self.opt_g.step,
            opt_d_step: self.opt_d.step,
            generator: self.gen_config.clone(),
            train: self.cfg.clone(),
        };
        checkpoint::save(&self.out_dir, &map, &state)
    }

    fn load_checkpoint(&mut self) -> Result<()> {
        let (map, state): (HashMap<String, Tensor>, State) = checkpoint::load(&self.out_dir, &self.device)?;
        if state.generator != self.gen_config {
            candle_core::bail!("checkpoint in {} was made with another generator configuration", self.out_dir.display());
        }
        checkpoint::restore_vars(&map, &prefixed(&self.vm_g, "generator"))?;
        checkpoint::restore_vars(&map, &prefixed(&self.vm_d, "disc"))?;
        self.opt_g.load_state("optim.g", &map, state.opt_g_step)?;
        self.opt_d.load_state("optim.d", &map, state.opt_d_step)?;
        self.step = state.step;
        Ok(())
    }

    /// Writes the generator alone (`config.json`, `vocoder.safetensors` with tensors under
    /// `generator.`), which [`Generator::load_trained`] reads.
    pub fn export(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let map: HashMap<String, Tensor> = prefixed(&self.vm_g, "generator").into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        let tmp = dir.join(format!("{EXPORT_WEIGHTS}.partial"));
        candle_core::safetensors::save(&map, &tmp)?;
        std::fs::rename(&tmp, dir.join(EXPORT_WEIGHTS))?;
        let json = serde_json::to_string_pretty(&self.gen_config).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        std::fs::write(dir.join(EXPORT_CONFIG), json + "\n")?;
        Ok(())
    }

    /// Learning rate at `step`: `lr · lr_decay^epoch`, times `(step + 1)/warmup` while warming up.
    pub fn lr_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        let warm = if step < self.cfg.warmup { (step + 1) as f64 / self.cfg.warmup as f64 } else { 1.0 };
        warm * self.cfg.lr * self.cfg.lr_decay.powi((step / steps_per_epoch.max(1)) as i32)
    }

    /// One discriminator and one generator update on waveforms `(B, segment)` and their
    /// natural-log mels `(B, 80, segment/hop)`.
    pub fn train_step(&mut self, wave: &Tensor, mel: &Tensor, lr: f64) -> Result<Metrics> {
        // On a thread of rayon's pool: see `smg_core::threads::on_pool`.
        smg_core::threads::on_pool(|| self.train_step_here(wave, mel, lr))
    }

    /// [`Self::train_step`] on the calling thread.
    fn train_step_here(&mut self, wave: &Tensor, mel: &Tensor, lr: f64) -> Result<Metrics> {
        let t0 = std::time::Instant::now();
        let y_hat = self.generator.forward_plain(mel)?;
        let t = wave.dim(1)?.min(y_hat.dim(1)?);
        let (y, y_hat) = (wave.narrow(1, 0, t)?, y_hat.narrow(1, 0, t)?);
        if !y_hat.sum_all()?.to_scalar::<f32>()?.is_finite() {
            candle_core::bail!("generator output is not finite at step {} (lower the learning rate?)", self.step);
        }
        self.opt_g.lr = lr;
        self.opt_d.lr = lr;
        // Discriminator update on the detached generator output.
        let real = self.disc.forward(&y, true)?;
        let fake = self.disc.forward(&y_hat.detach(), true)?;
        let d_loss = discriminator_loss(&real, &fake)?;
        let grads = d_loss.backward()?;
        match self.cfg.grad_clip {
            Some(c) => {
                self.opt_d.step_clipped(&grads, c)?;
            }
            None => self.opt_d.step(&grads)?,
        }
        // Generator update against the (just updated) discriminators, held fixed.
        let frozen = self.frozen_discriminators()?;
        let y_mel = self.loss_mel.forward(&y)?;
        let mel_l1 = (self.loss_mel.forward(&y_hat)? - y_mel)?.abs()?.mean_all()?;
        let (adv, fm, total) = if self.step >= self.cfg.gan_start {
            let real = frozen.forward(&y.detach(), false)?;
            let fake = frozen.forward(&y_hat, false)?;
            let fm = feature_loss(&real, &fake)?;
            let adv = generator_loss(&fake, frozen.san)?;
            let total = ((&adv + (&fm * self.cfg.fm_weight)?)? + (&mel_l1 * self.cfg.mel_weight)?)?;
            (adv.to_scalar::<f32>()?, fm.to_scalar::<f32>()?, total)
        } else {
            (f32::NAN, f32::NAN, (&mel_l1 * self.cfg.mel_weight)?)
        };
        let grads = total.backward()?;
        match self.cfg.grad_clip {
            Some(c) => {
                self.opt_g.step_clipped(&grads, c)?;
            }
            None => self.opt_g.step(&grads)?,
        }
        let m = Metrics {
            step: self.step,
            mel_l1: mel_l1.to_scalar()?,
            feature_matching: fm,
            g_adv: adv,
            d_loss: d_loss.to_scalar()?,
            lr,
            seconds: t0.elapsed().as_secs_f64(),
            val_mel_l1: None,
        };
        if !(m.mel_l1.is_finite() && m.d_loss.is_finite()) {
            candle_core::bail!("loss is not finite at step {}: {m:?}", self.step);
        }
        self.step += 1;
        Ok(m)
    }

    /// The discriminators on detached weights: the generator's loss then builds no gradient
    /// for them.
    fn frozen_discriminators(&self) -> Result<Discriminators> {
        let vb = VarBuilder::from_tensors(detached(&self.vm_d), DType::F32, &self.device);
        match self.gen_config {
            GeneratorConfig::Hifigan(_) => Discriminators::hifigan(self.cfg.disc_width_div, vb),
            GeneratorConfig::Bigvsan(_) => Discriminators::bigvsan(self.cfg.disc_width_div, vb),
        }
    }

    /// The current generator on plain tensors (the fast inference path on CPU).
    pub fn inference_generator(&self) -> Result<Generator> {
        let vb = VarBuilder::from_tensors(detached(&self.vm_g), DType::F32, &self.device);
        Generator::new(&self.gen_config, vb)
    }

    /// Mean held-out mel-L1 (the project's mel, SPEC.md §1) of resynthesising each natural-log
    /// mel `(80, T)` in `mels`.
    pub fn validate(&self, mels: &[Tensor]) -> Result<f64> {
        let g = self.inference_generator()?;
        let mut total = 0f64;
        for m in mels {
            let audio: Vec<f32> = g.forward(&m.unsqueeze(0)?.to_device(&self.device)?)?.squeeze(0)?.to_vec1()?;
            let ours = self.mel.log_mel(&audio).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let want = smg_audio::tensor_to_array(m).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            total += smg_audio::mel::mel_l1(&want, &ours);
        }
        Ok(total / mels.len().max(1) as f64)
    }

    /// The `k`-th segment of the current step: a window of `cfg.segment` samples of `clip` at an
    /// offset drawn from (seed, step, k) (zero-padded when the clip is shorter), and its mel.
    fn segment(&self, clip: &[f32], k: usize) -> Result<(Vec<f32>, Tensor)> {
        let n = self.cfg.segment;
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.cfg.seed ^ 0x5EC7 ^ ((self.step as u64) << 20) ^ k as u64);
        let mut seg = vec![0f32; n];
        if clip.len() > n {
            let start = rng.random_range(0..=clip.len() - n);
            seg.copy_from_slice(&clip[start..start + n]);
        } else {
            seg[..clip.len()].copy_from_slice(clip);
        }
        let mel = self.mel.log_mel(&seg).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok((seg, smg_audio::array_to_tensor(&mel, &self.device).map_err(|e| candle_core::Error::Msg(e.to_string()))?))
    }

    /// Trains until `cfg.steps` on the waveforms `train` (22 050 Hz mono), validating on the
    /// natural-log mels `valid`; appends metrics to `out_dir/metrics.jsonl` and checkpoints
    /// atomically. A resumed trainer continues at its step with the same batches and segments.
    pub fn fit(&mut self, train: &[Vec<f32>], valid: &[Tensor], progress: bool) -> Result<Vec<Metrics>> {
        if train.is_empty() {
            candle_core::bail!("no training clips");
        }
        std::fs::create_dir_all(&self.out_dir)?;
        let log_path = self.out_dir.join("metrics.jsonl");
        checkpoint::truncate_log(&log_path, self.step)?;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let bar = if progress { indicatif::ProgressBar::new(self.cfg.steps as u64) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(
            indicatif::ProgressStyle::with_template("vocoder [{bar:30}] {pos}/{len} steps ({per_sec}, ETA {eta}) {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_position(self.step as u64);
        let idx: Vec<usize> = (0..train.len()).collect();
        let per_epoch = train.len().div_ceil(self.cfg.batch_size);
        let mut out = Vec::new();
        if self.step == 0 && !valid.is_empty() && self.cfg.val_every > 0 {
            let v = self.validate(valid)?;
            let m = Metrics {
                step: 0,
                mel_l1: f32::NAN,
                feature_matching: f32::NAN,
                g_adv: f32::NAN,
                d_loss: f32::NAN,
                lr: self.cfg.lr,
                seconds: 0.0,
                val_mel_l1: Some(v),
            };
            writeln!(log, "{}", serde_json::to_string(&m).map_err(|e| candle_core::Error::Msg(e.to_string()))?)?;
            bar.set_message(format!("held-out mel-L1 {v:.4}"));
        }
        while self.step < self.cfg.steps {
            let epoch = self.step / per_epoch;
            let batches = smg_data::batches(&idx, self.cfg.batch_size, self.cfg.seed, epoch as u64);
            let b = &batches[self.step % per_epoch];
            let (mut waves, mut mels) = (Vec::new(), Vec::new());
            for (k, &i) in b.iter().enumerate() {
                let (w, m) = self.segment(&train[i], k)?;
                waves.extend(w);
                mels.push(m);
            }
            let wave = Tensor::from_vec(waves, (b.len(), self.cfg.segment), &self.device)?;
            let mel = Tensor::stack(&mels, 0)?;
            let lr = self.lr_at(self.step, per_epoch);
            let mut m = self.train_step(&wave, &mel, lr)?;
            let done = self.step;
            if ((self.cfg.val_every > 0 && done.is_multiple_of(self.cfg.val_every)) || done == self.cfg.steps) && !valid.is_empty() {
                m.val_mel_l1 = Some(self.validate(valid)?);
            }
            if m.val_mel_l1.is_some() || done.is_multiple_of(self.cfg.log_every.max(1)) {
                writeln!(log, "{}", serde_json::to_string(&m).map_err(|e| candle_core::Error::Msg(e.to_string()))?)?;
                let val = m.val_mel_l1.map(|v| format!(" held-out {v:.4}")).unwrap_or_default();
                bar.set_message(format!("mel-L1 {:.3} D {:.3}{val}", m.mel_l1, m.d_loss));
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
