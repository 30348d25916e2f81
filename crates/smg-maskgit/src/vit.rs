//! The masked ViT of SpecMaskGIT (SPEC.md §3.1–3.4): timm-style pre-norm blocks over the token
//! grid, the conditioning embedding projected and appended as one extra sequence element, a
//! learned mask token, fixed 2-D sin-cos positions, and the paper's *conditional mask* (masked
//! positions carry the projected conditioning embedding) as a switch for the ablation.
//! Tensor names follow timm's ViT (`blocks.N.norm1`, `blocks.N.attn.qkv`, …, `norm`, `head`).

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use smg_core::fast::{Act, Linear};
use smg_core::ops::LayerNorm;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Codebook size; the mask id is `vocab` itself.
    pub vocab: usize,
    /// Token grid (rows = mel bands, cols = time).
    pub rows: usize,
    pub cols: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_dim: usize,
    /// Width of the conditioning embedding (384: the project's MiniLM space; 512 for LAION-CLAP).
    pub cond_dim: usize,
    /// Masked positions carry the conditioning embedding ("C", the paper's default) instead of
    /// the learned mask token ("M", the ablation).
    pub conditional_mask: bool,
}

impl Config {
    /// The paper's generator: 24 blocks, width 768, 8 heads, FFN 3072 over the 5 × 53 grid
    /// of the paper tokenizer (≈170M parameters).
    pub fn paper() -> Self {
        Self { vocab: 1024, rows: 5, cols: 53, dim: 768, depth: 24, heads: 8, mlp_dim: 3072, cond_dim: 384, conditional_mask: true }
    }

    /// Sized for 2 CPU cores (SPEC.md §10): 3 blocks, width 128, 4 heads, FFN 512 over the small
    /// tokenizer's 5 × 16 grid of 512 codes.
    pub fn small() -> Self {
        Self { vocab: 512, rows: 5, cols: 16, dim: 128, depth: 3, heads: 4, mlp_dim: 512, cond_dim: 384, conditional_mask: true }
    }

    /// Sized for ≈12 hours of 2 CPU cores on the broad corpus: 6 blocks, width 256, 4 heads,
    /// FFN 1024 over the medium tokenizer's 5 × 16 grid of 1024 codes.
    pub fn medium() -> Self {
        Self { vocab: 1024, dim: 256, depth: 6, heads: 4, mlp_dim: 1024, ..Self::small() }
    }

    /// The named configurations: `small`, `medium`, `paper`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "small" => Some(Self::small()),
            "medium" => Some(Self::medium()),
            "paper" => Some(Self::paper()),
            _ => None,
        }
    }

    pub fn seq_len(&self) -> usize {
        self.rows * self.cols
    }

    /// The mask token id.
    pub fn mask_id(&self) -> u32 {
        self.vocab as u32
    }
}

/// Fixed 2-D sin-cos position embedding `(rows·cols, dim)` in Audio-MAE's layout (SPEC.md §3.3):
/// the first dim/2 channels encode the column (time) index, the last dim/2 the row (band) index;
/// each half is `[sin(p·ω_k), cos(p·ω_k)]` with ω_k = 10000^(−k/(dim/4)).
pub fn sincos_2d(rows: usize, cols: usize, dim: usize, device: &Device) -> Result<Tensor> {
    if !dim.is_multiple_of(4) {
        candle_core::bail!("sin-cos position embedding needs a width divisible by 4, got {dim}");
    }
    let q = dim / 4;
    let mut v = vec![0f32; rows * cols * dim];
    for h in 0..rows {
        for w in 0..cols {
            let row = &mut v[(h * cols + w) * dim..(h * cols + w + 1) * dim];
            for k in 0..q {
                let omega = 1.0 / 10000f64.powf(k as f64 / q as f64);
                let (pw, ph) = (w as f64 * omega, h as f64 * omega);
                row[k] = pw.sin() as f32;
                row[q + k] = pw.cos() as f32;
                row[2 * q + k] = ph.sin() as f32;
                row[3 * q + k] = ph.cos() as f32;
            }
        }
    }
    Tensor::from_vec(v, (rows * cols, dim), device)
}

/// `Linear` with MAE's init: xavier-uniform weight, zero bias.
fn xavier_linear(cin: usize, cout: usize, vb: VarBuilder) -> Result<Linear> {
    let a = (6.0 / (cin + cout) as f64).sqrt();
    let w = vb.get_with_hints((cout, cin), "weight", Init::Uniform { lo: -a, up: a })?;
    let b = vb.get_with_hints(cout, "bias", Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

fn layer_norm(dim: usize, vb: VarBuilder) -> Result<LayerNorm> {
    let w = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
    let b = vb.get_with_hints(dim, "bias", Init::Const(0.0))?;
    Ok(LayerNorm::new(w, b, 1e-6))
}

#[derive(Debug, Clone)]
struct Attention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let qkv = self.qkv.forward(x)?;
        if let Some(out) = smg_core::fast::attention(&qkv, self.heads)? {
            return self.proj.forward(&out);
        }
        self.proj.forward(&smg_core::train_ops::attention(&qkv, self.heads)?)
    }
}

#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: layer_norm(cfg.dim, vb.pp("norm1"))?,
            attn: Attention {
                qkv: xavier_linear(cfg.dim, 3 * cfg.dim, vb.pp("attn.qkv"))?,
                proj: xavier_linear(cfg.dim, cfg.dim, vb.pp("attn.proj"))?,
                heads: cfg.heads,
            },
            norm2: layer_norm(cfg.dim, vb.pp("norm2"))?,
            fc1: xavier_linear(cfg.dim, cfg.mlp_dim, vb.pp("mlp.fc1"))?,
            fc2: xavier_linear(cfg.mlp_dim, cfg.dim, vb.pp("mlp.fc2"))?,
        })
    }
}

impl Block {
    /// The block as one autograd node on CPU f32 (`smg_core::vit_block`); `None` elsewhere.
    fn fused_train(&self, x: &Tensor) -> Result<Option<Tensor>> {
        fn lin(l: &Linear) -> Result<(&Tensor, &Tensor)> {
            Ok((l.weight(), l.bias().ok_or_else(|| candle_core::Error::Msg("transformer block: linear layer without bias".into()))?))
        }
        let p = smg_core::vit_block::BlockParams {
            norm1: (&self.norm1.weight, &self.norm1.bias),
            qkv: lin(&self.attn.qkv)?,
            proj: lin(&self.attn.proj)?,
            norm2: (&self.norm2.weight, &self.norm2.bias),
            fc1: lin(&self.fc1)?,
            fc2: lin(&self.fc2)?,
            eps: self.norm1.eps,
            heads: self.attn.heads,
        };
        if self.norm2.eps != self.norm1.eps {
            return Ok(None);
        }
        smg_core::vit_block::block(x, &p)
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.fused_train(x)? {
            return Ok(y);
        }
        let x = (x + self.attn.forward(&self.norm1.forward(x)?)?)?;
        let h = self.fc2.forward(&self.fc1.forward_act(&self.norm2.forward(&x)?, Act::Gelu)?)?;
        x + h
    }
}

/// The generator: tokens with masks + conditioning → logits over the codebook at every position.
#[derive(Debug, Clone)]
pub struct MaskedVit {
    pub config: Config,
    token_emb: candle_nn::Embedding,
    cond_proj: Linear,
    mask_token: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Linear,
    /// The blocks in `smg_kernels::vit` form, built on first fused inference (shared by clones).
    fused: Arc<OnceLock<Vec<smg_kernels::vit::Block>>>,
}

fn kernel_norm(ln: &LayerNorm) -> Result<smg_kernels::vit::Norm> {
    Ok(smg_kernels::vit::Norm { weight: ln.weight.to_vec1()?, bias: ln.bias.to_vec1()?, eps: ln.eps as f32 })
}

impl MaskedVit {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if !cfg.dim.is_multiple_of(cfg.heads) {
            candle_core::bail!("width {} does not split into {} heads", cfg.dim, cfg.heads);
        }
        let normal = Init::Randn { mean: 0.0, stdev: 0.02 };
        let emb = vb.get_with_hints((cfg.vocab, cfg.dim), "token_emb.weight", normal)?;
        let pos = sincos_2d(cfg.rows, cfg.cols, cfg.dim, vb.device())?;
        let pos = Tensor::cat(&[pos, Tensor::zeros((1, cfg.dim), DType::F32, vb.device())?], 0)?;
        Ok(Self {
            token_emb: candle_nn::Embedding::new(emb, cfg.dim),
            cond_proj: xavier_linear(cfg.cond_dim, cfg.dim, vb.pp("cond_proj"))?,
            mask_token: vb.get_with_hints((1, 1, cfg.dim), "mask_token", normal)?,
            pos,
            blocks: (0..cfg.depth).map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}")))).collect::<Result<_>>()?,
            norm: layer_norm(cfg.dim, vb.pp("norm"))?,
            head: xavier_linear(cfg.dim, cfg.vocab, vb.pp("head"))?,
            config: cfg.clone(),
            fused: Arc::new(OnceLock::new()),
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.pos.device()
    }

    /// Logits `(B, N, vocab)` for tokens `(B, N)` (u32; `vocab` = masked) and conditioning
    /// `(B, cond_dim)`, where an all-zero row means "unconditional" and is replaced by the
    /// learned mask token (classifier-free guidance, SPEC.md §3.4).
    pub fn forward(&self, tokens: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let (b, n) = tokens.dims2()?;
        let all: Vec<u32> = (0..(b * n) as u32).collect();
        self.forward_rows(tokens, cond, &all)?.reshape((b, n, self.config.vocab))
    }

    /// Logits `(R, vocab)` at the token positions `rows` only (row-major indices `b·N + t` into
    /// the `(B, N)` grid): the final norm and the output head run on those rows alone, as the
    /// training loss needs only the masked positions (SPEC.md §3.5).
    pub fn forward_rows(&self, tokens: &Tensor, cond: &Tensor, rows: &[u32]) -> Result<Tensor> {
        let n = self.config.seq_len();
        let h = self.embed(tokens, cond)?;
        let (b, d, l) = (tokens.dim(0)?, self.config.dim, n + 1);
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= b * n) {
            candle_core::bail!("position {bad} outside the {b} × {n} token grid");
        }
        // Row r of the grid is row (r / N)·(N + 1) + r % N of the sequence (the conditioning
        // element, last in each item, gets no logits).
        let at = |r: u32| (r as usize / n) * l + r as usize % n;
        if let Some(x) = self.fused_blocks(&h, None)? {
            let norm = kernel_norm(&self.norm)?;
            let mut sel = vec![0f32; rows.len() * d];
            for (o, &r) in sel.chunks_exact_mut(d).zip(rows) {
                norm.row(&x[at(r) * d..(at(r) + 1) * d], o);
            }
            let head = self.head.dense()?;
            let y = head.weight.forward(&sel, rows.len(), Some(&head.bias), smg_core::fast::Act::None, smg_core::fast::precision());
            return Tensor::from_vec(y, (rows.len(), self.config.vocab), h.device());
        }
        let mut h = h;
        for blk in &self.blocks {
            h = blk.forward(&h)?;
        }
        let idx: Vec<u32> = rows.iter().map(|&r| at(r) as u32).collect();
        let h = h.reshape((b * l, d))?.index_select(&Tensor::new(idx.as_slice(), h.device())?, 0)?;
        self.head.forward(&self.norm.forward(&h)?)
    }

    /// The input sequence `(B, N + 1, D)`: token (or mask / conditional-mask) embeddings, the
    /// conditioning element, plus positions.
    fn embed(&self, tokens: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let cfg = &self.config;
        let (b, n) = tokens.dims2()?;
        if n != cfg.seq_len() {
            candle_core::bail!("token sequence of {n}, the model expects {} ({} × {})", cfg.seq_len(), cfg.rows, cfg.cols);
        }
        let (bc, cd) = cond.dims2()?;
        if bc != b || cd != cfg.cond_dim {
            candle_core::bail!("conditioning is {bc} × {cd}, expected {b} × {}", cfg.cond_dim);
        }
        let dev = tokens.device();
        let m = self.mask_token.reshape((1, cfg.dim))?;
        let is_null = cond.sqr()?.sum_keepdim(1)?.eq(0f32)?; // (B, 1)
        let c = is_null.broadcast_as((b, cfg.dim))?.where_cond(&m.broadcast_as((b, cfg.dim))?, &self.cond_proj.forward(cond)?)?;
        let is_mask = tokens.ge(cfg.mask_id())?; // (B, N)
        let safe = is_mask.where_cond(&Tensor::zeros((b, n), DType::U32, dev)?, tokens)?;
        let e = self.token_emb.forward(&safe)?; // (B, N, D)
        let fill = if cfg.conditional_mask { c.unsqueeze(1)? } else { m.unsqueeze(0)? }.broadcast_as((b, n, cfg.dim))?;
        let e = is_mask.unsqueeze(2)?.broadcast_as((b, n, cfg.dim))?.where_cond(&fill, &e)?;
        Tensor::cat(&[e, c.unsqueeze(1)?], 1)?.broadcast_add(&self.pos)
    }

    /// Clip features for the linear probe (SPEC.md §7): the output of every block (index 0 =
    /// first block; the last one is taken before the final norm) averaged over the token
    /// positions (not the conditioning element), each `(B, D)`. Call it with unmasked tokens and
    /// a zero (unconditional) `cond`, as the paper's representation experiment does.
    pub fn block_features(&self, tokens: &Tensor, cond: &Tensor) -> Result<Vec<Tensor>> {
        let n = self.config.seq_len();
        let mut h = self.embed(tokens, cond)?;
        let mut out = Vec::with_capacity(self.blocks.len());
        let (b, d) = (tokens.dim(0)?, self.config.dim);
        let mut means = Vec::new();
        let mut mean = |x: &[f32]| {
            let mut m = vec![0f32; b * d];
            for bi in 0..b {
                for t in 0..n {
                    let row = &x[(bi * (n + 1) + t) * d..(bi * (n + 1) + t + 1) * d];
                    m[bi * d..(bi + 1) * d].iter_mut().zip(row).for_each(|(m, &v)| *m += v / n as f32);
                }
            }
            means.push(m);
        };
        let fused = self.fused_blocks(&h, Some(&mut mean))?;
        if fused.is_some() {
            return means.into_iter().map(|m| Tensor::from_vec(m, (b, d), h.device())).collect();
        }
        for blk in &self.blocks {
            h = blk.forward(&h)?;
            out.push(h.narrow(1, 0, n)?.mean(1)?);
        }
        Ok(out)
    }

    /// The residual stream after every block, by the fused CPU kernels of `smg_kernels::vit`,
    /// calling `each` with it after each block (`None`: only the last one is wanted, and the
    /// items of the batch may run on separate threads, `smg_kernels::vit::forward_blocks`);
    /// `Ok(None)` where the kernels do not apply (training, a GPU, `SMG_FAST=0`): the caller then
    /// runs the candle blocks.
    fn fused_blocks(&self, h: &Tensor, mut each: Option<&mut dyn FnMut(&[f32])>) -> Result<Option<Vec<f32>>> {
        if !smg_core::fast::eligible(h)
            || !self.head.is_frozen_cpu()
            || !self.blocks.iter().all(|b| b.fc1.is_frozen_cpu() && b.attn.qkv.is_frozen_cpu())
        {
            return Ok(None);
        }
        let blocks = match self.fused.get() {
            Some(b) => b,
            None => {
                let built = self
                    .blocks
                    .iter()
                    .map(|b| {
                        Ok(smg_kernels::vit::Block {
                            norm1: kernel_norm(&b.norm1)?,
                            qkv: b.attn.qkv.dense()?,
                            proj: b.attn.proj.dense()?,
                            norm2: kernel_norm(&b.norm2)?,
                            fc1: b.fc1.dense()?,
                            fc2: b.fc2.dense()?,
                            heads: b.attn.heads,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let _ = self.fused.set(built);
                self.fused.get().expect("just set")
            }
        };
        let (b, l, _) = h.dims3()?;
        let mut x = h.flatten_all()?.to_vec1::<f32>()?;
        let precision = smg_core::fast::precision();
        match each.as_mut() {
            None => smg_kernels::vit::forward_blocks(blocks, &mut x, b, l, precision),
            Some(each) => {
                let mut scratch = smg_kernels::vit::Scratch::default();
                for blk in blocks {
                    blk.forward_with(&mut x, b, l, precision, &mut scratch);
                    each(&x);
                }
            }
        }
        Ok(Some(x))
    }

    /// Number of trainable parameters of a model built with `cfg`.
    pub fn parameter_count(cfg: &Config) -> Result<usize> {
        let vm = candle_nn::VarMap::new();
        Self::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))?;
        Ok(vm.all_vars().iter().map(|v| v.elem_count()).sum())
    }
}

/// Log-probabilities over the codebook (last axis).
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(logits, D::Minus1)
}

pub const WEIGHTS_FILE: &str = "maskgit.safetensors";
pub const CONFIG_FILE: &str = "maskgit.json";

/// Writes a generator's tensors and configuration to `dir`, atomically.
pub fn save_pretrained(tensors: &std::collections::HashMap<String, Tensor>, cfg: &Config, dir: &std::path::Path) -> crate::Result<()> {
    std::fs::create_dir_all(dir)?;
    let w_tmp = dir.join(format!("{WEIGHTS_FILE}.partial"));
    candle_core::safetensors::save(tensors, &w_tmp)?;
    let c_tmp = dir.join(format!("{CONFIG_FILE}.partial"));
    std::fs::write(&c_tmp, serde_json::to_string_pretty(cfg).map_err(|e| crate::MaskGitError::Invalid(e.to_string()))? + "\n")?;
    std::fs::rename(&w_tmp, dir.join(WEIGHTS_FILE))?;
    std::fs::rename(&c_tmp, dir.join(CONFIG_FILE))?;
    Ok(())
}

impl MaskedVit {
    /// Loads a generator written by [`save_pretrained`] or a training folder's checkpoint; a
    /// missing or mis-shaped tensor is an error naming it.
    pub fn from_pretrained(dir: &std::path::Path, device: &Device) -> crate::Result<Self> {
        let bad = |e: String| crate::MaskGitError::Invalid(e);
        let (cfg, weights) = if dir.join(CONFIG_FILE).is_file() {
            let cfg: Config = serde_json::from_str(&std::fs::read_to_string(dir.join(CONFIG_FILE))?)
                .map_err(|e| bad(format!("{}: {e}", dir.join(CONFIG_FILE).display())))?;
            (cfg, dir.join(WEIGHTS_FILE))
        } else if smg_core::checkpoint::exists(dir) {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(smg_core::checkpoint::STATE_FILE))?)
                .map_err(|e| bad(e.to_string()))?;
            (serde_json::from_value(v["model"].clone()).map_err(|e| bad(e.to_string()))?, dir.join(smg_core::checkpoint::TENSORS_FILE))
        } else {
            return Err(bad(format!("{}: no trained generator here (expected {CONFIG_FILE} + {WEIGHTS_FILE})", dir.display())));
        };
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        Self::new(&cfg, vb).map_err(|e| bad(format!("{}: {e}", weights.display())))
    }
}
