//! Contrastive training of the audio branch against frozen MiniLM caption embeddings
//! (SPEC.md §5: the CLAP objective, with the text tower frozen).
//!
//! Loss: symmetric cross-entropy over the batch's audio × caption cosine similarities scaled by a
//! learnable temperature (`logit_scale`, CLIP's init ln(1/0.07), capped at ln 100). Several clips
//! in a batch can carry the same caption ("kick"); those pairs count as positives (the target is
//! spread uniformly over them) instead of being pushed apart as negatives.

pub use crate::corpus::ClapData;
use crate::{AudioEncoder, AudioEncoderConfig, ClapError, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use smg_core::adam::Adam;
use smg_core::checkpoint;
use smg_core::SeededVarMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClapTrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup: usize,
    pub seed: u64,
    /// Random time crop in frames (augmentation; multiple of 16; 0 = whole clips).
    pub crop_frames: usize,
    /// Random loudness shift, ± this many units of the normalised mel (0.1 = ±5 dB).
    pub gain_jitter: f32,
    pub log_every: usize,
    pub val_every: usize,
}

impl Default for ClapTrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.01,
            warmup: 50,
            seed: 0,
            crop_frames: 192,
            gain_jitter: 0.1,
            log_every: 10,
            val_every: 100,
        }
    }
}

/// One line of the metrics log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClapMetrics {
    pub step: usize,
    pub loss: f32,
    pub temperature: f32,
    pub lr: f64,
    /// Wall-clock seconds of the training step (0 in logs written before it was recorded).
    #[serde(default)]
    pub seconds: f64,
    pub val: Option<crate::eval::ClapScores>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    step: usize,
    opt_step: usize,
    model: AudioEncoderConfig,
    train: ClapTrainConfig,
}

pub struct ClapTrainer {
    pub model: AudioEncoder,
    pub logit_scale: Var,
    pub cfg: ClapTrainConfig,
    pub step: usize,
    pub out_dir: PathBuf,
    vm: candle_nn::VarMap,
    opt: Adam,
    device: Device,
}

const MAX_LOGIT_SCALE: f64 = 4.605_170_185_988_092; // ln 100

impl ClapTrainer {
    /// A fresh run, or the continuation of the one checkpointed in `out_dir` when `resume`.
    pub fn new(model_cfg: &AudioEncoderConfig, cfg: ClapTrainConfig, out_dir: &Path, resume: bool, device: &Device) -> Result<Self> {
        let svm = SeededVarMap::new(cfg.seed);
        let vb: VarBuilder = svm.var_builder(DType::F32, device);
        let model = AudioEncoder::new(model_cfg, vb.pp("audio"))?;
        // Registers the temperature as a variable of the run (CLIP's init, ln(1/0.07)).
        vb.get_with_hints((), "logit_scale", candle_nn::Init::Const((1.0f64 / 0.07).ln()))?;
        let vm = svm.varmap;
        let vars = checkpoint::named_vars(&vm, |_| false);
        let logit_scale = vars.iter().find(|(n, _)| n == "logit_scale").map(|(_, v)| v.clone()).expect("registered above");
        let mut t = Self {
            opt: Adam::adamw(vars, cfg.lr, 0.9, 0.999, cfg.weight_decay)?,
            model,
            logit_scale,
            cfg,
            step: 0,
            out_dir: out_dir.to_path_buf(),
            vm,
            device: device.clone(),
        };
        if resume && checkpoint::exists(out_dir) {
            let (map, state): (_, State) = checkpoint::load(out_dir, device)?;
            if state.model != t.model.config {
                return Err(ClapError::Invalid(format!(
                    "checkpoint in {} was made with another audio encoder configuration",
                    out_dir.display()
                )));
            }
            checkpoint::restore_vars(&map, &checkpoint::named_vars(&t.vm, |_| false))?;
            t.opt.load_state("optim", &map, state.opt_step)?;
            t.step = state.step;
        }
        Ok(t)
    }

    pub fn save_checkpoint(&self) -> Result<()> {
        let mut map: std::collections::HashMap<String, Tensor> =
            checkpoint::named_vars(&self.vm, |_| false).into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        map.extend(self.opt.state("optim")?);
        let state = State { step: self.step, opt_step: self.opt.step, model: self.model.config.clone(), train: self.cfg.clone() };
        Ok(checkpoint::save(&self.out_dir, &map, &state)?)
    }

    /// Writes the audio encoder alone (`audio_encoder.safetensors` + `audio_encoder.json`).
    pub fn export(&self, dir: &Path) -> Result<()> {
        let map: std::collections::HashMap<String, Tensor> =
            checkpoint::named_vars(&self.vm, |_| false).into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        crate::audio::save_pretrained(&map, &self.model.config, dir)
    }

    /// Learning rate at `step`: linear warm-up, then cosine decay to 0.
    pub fn lr_at(&self, step: usize) -> f64 {
        let (w, n) = (self.cfg.warmup, self.cfg.steps.max(1));
        if step < w {
            return self.cfg.lr * (step + 1) as f64 / w as f64;
        }
        let p = (step - w) as f64 / (n - w).max(1) as f64;
        self.cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos())
    }

    /// The batch of step `self.step`: clip indices, their (cropped, gain-shifted) mels and the
    /// caption drawn for each, all from (seed, step).
    fn batch(&self, data: &ClapData, order: &[usize]) -> Result<(Tensor, Vec<String>)> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.cfg.seed ^ ((self.step as u64 + 1) << 24));
        let mut mels = Vec::with_capacity(order.len());
        let mut caps = Vec::with_capacity(order.len());
        for &i in order {
            let m = &data.mels[i];
            let frames = m.dim(1)?;
            let crop = self.cfg.crop_frames;
            let m = if crop > 0 && crop < frames { m.narrow(1, rng.random_range(0..=frames - crop), crop)? } else { m.clone() };
            let gain = if self.cfg.gain_jitter > 0.0 { rng.random_range(-self.cfg.gain_jitter..=self.cfg.gain_jitter) } else { 0.0 };
            mels.push(m.affine(1.0, gain as f64)?.clamp(-1f32, 1f32)?);
            let c = &data.captions[i];
            if c.is_empty() {
                return Err(ClapError::Invalid(format!("training clip {i} has no caption")));
            }
            caps.push(c[rng.random_range(0..c.len())].clone());
        }
        Ok((Tensor::stack(&mels, 0)?.to_device(&self.device)?, caps))
    }

    /// One optimisation step on the batch `order` (indices into `data`); returns the loss.
    pub fn train_step(&mut self, data: &ClapData, order: &[usize]) -> Result<f32> {
        // On a thread of rayon's pool: see `smg_core::threads::on_pool`.
        smg_core::threads::on_pool(|| self.train_step_here(data, order))
    }

    /// [`Self::train_step`] on the calling thread.
    fn train_step_here(&mut self, data: &ClapData, order: &[usize]) -> Result<f32> {
        let (x, caps) = self.batch(data, order)?;
        let text = caps
            .iter()
            .map(|c| data.text.get(c).cloned().ok_or_else(|| ClapError::Invalid(format!("no text embedding for caption '{c}'"))))
            .collect::<Result<Vec<_>>>()?;
        let text = Tensor::stack(&text, 0)?.to_device(&self.device)?;
        let a = self.model.embed(&x)?;
        let logits = a.matmul(&text.t()?)?.broadcast_mul(&self.logit_scale.as_tensor().exp()?)?;
        let n = caps.len();
        let mut target = vec![0f32; n * n];
        for i in 0..n {
            let pos: Vec<usize> = (0..n).filter(|&j| caps[j] == caps[i]).collect();
            for &j in &pos {
                target[i * n + j] = 1.0 / pos.len() as f32;
            }
        }
        let target = Tensor::from_vec(target, (n, n), &self.device)?;
        let ce = |l: &Tensor| -> Result<Tensor> {
            let lsm = candle_nn::ops::log_softmax(l, D::Minus1)?;
            Ok((lsm * &target)?.sum(1)?.neg()?.mean_all()?)
        };
        let loss = ((ce(&logits)? + ce(&logits.t()?)?)? * 0.5)?;
        let loss_v = loss.to_scalar::<f32>()?;
        if !loss_v.is_finite() {
            return Err(ClapError::Invalid(format!("loss became {loss_v} at step {}", self.step)));
        }
        let grads = loss.backward()?;
        self.opt.lr = self.lr_at(self.step);
        self.opt.step_clipped(&grads, 1.0)?;
        let s = self.logit_scale.as_tensor().clamp(0f32, MAX_LOGIT_SCALE as f32)?;
        self.logit_scale.set(&s)?;
        self.step += 1;
        Ok(loss_v)
    }

    /// Trains until `cfg.steps`, scoring on `valid` every `val_every` steps; appends metrics
    /// to `out_dir/metrics.jsonl` and checkpoints atomically at each validation.
    pub fn fit(&mut self, train: &ClapData, valid: Option<(&ClapData, &crate::TextEncoder)>, progress: bool) -> Result<Vec<ClapMetrics>> {
        self.fit_until(train, valid, self.cfg.steps, progress)
    }

    /// [`ClapTrainer::fit`], but stops after step `stop` (≤ `cfg.steps`; the schedule still
    /// spans `cfg.steps`), e.g. to train in slices from a notebook.
    pub fn fit_until(
        &mut self,
        train: &ClapData,
        valid: Option<(&ClapData, &crate::TextEncoder)>,
        stop: usize,
        progress: bool,
    ) -> Result<Vec<ClapMetrics>> {
        let stop = stop.min(self.cfg.steps);
        if train.mels.is_empty() {
            return Err(ClapError::Invalid("no training clips".into()));
        }
        std::fs::create_dir_all(&self.out_dir)?;
        let log_path = self.out_dir.join("metrics.jsonl");
        checkpoint::truncate_log(&log_path, self.step)?;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let bar = if progress { indicatif::ProgressBar::new(self.cfg.steps as u64) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(
            indicatif::ProgressStyle::with_template("clap [{bar:30}] {pos}/{len} steps ({per_sec}, ETA {eta}) {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_position(self.step as u64);
        let idx: Vec<usize> = (0..train.mels.len()).collect();
        let bs = self.cfg.batch_size.min(idx.len()).max(2);
        let per_epoch = idx.len() / bs;
        let mut out = Vec::new();
        while self.step < stop {
            let epoch = self.step / per_epoch.max(1);
            let batches = smg_data::batches(&idx, bs, self.cfg.seed, epoch as u64);
            let order = batches[self.step % per_epoch.max(1)].clone();
            let lr = self.lr_at(self.step);
            let t0 = std::time::Instant::now();
            let loss = self.train_step(train, &order)?;
            let seconds = t0.elapsed().as_secs_f64();
            let done = self.step;
            let mut m = ClapMetrics {
                step: done - 1,
                loss,
                temperature: 1.0 / self.logit_scale.as_tensor().exp()?.to_scalar::<f32>()?,
                lr,
                seconds,
                val: None,
            };
            let validate = (self.cfg.val_every > 0 && done.is_multiple_of(self.cfg.val_every)) || done == self.cfg.steps;
            if validate {
                if let Some((v, text)) = valid {
                    m.val = Some(crate::eval::score(&self.model, text, v)?);
                }
            }
            if validate || done.is_multiple_of(self.cfg.log_every.max(1)) {
                writeln!(log, "{}", serde_json::to_string(&m).map_err(|e| ClapError::Format(e.to_string()))?)?;
                bar.set_message(format!("loss {loss:.3}"));
            }
            if validate || done == stop {
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
