//! PatchGAN discriminator with batch norm (SPEC.md §2.3; taming `NLayerDiscriminator`, n_layers 3).
//! Tensor names follow the PyTorch `nn.Sequential`: `main.0` … `main.11`.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{batch_norm, BatchNorm, Init, VarBuilder};
use smg_core::conv::Conv2d;

#[derive(Debug, Clone)]
pub struct Discriminator {
    first: Conv2d,
    mid: Vec<(Conv2d, BatchNorm)>,
    last: Conv2d,
}

impl Discriminator {
    /// `ndf` base width (64 in the paper), `n_layers` (3), 1 input channel.
    pub fn new(ndf: usize, n_layers: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("main");
        let w_init = Init::Randn { mean: 0.0, stdev: 0.02 };
        let conv_b = |cin, cout, stride, vb: VarBuilder| -> Result<Conv2d> {
            let w = vb.get_with_hints((cout, cin, 4, 4), "weight", w_init)?;
            let b = vb.get_with_hints(cout, "bias", Init::Const(0.0))?;
            Ok(Conv2d::new(w, Some(b), stride, 1))
        };
        let conv_nb = |cin, cout, stride, vb: VarBuilder| -> Result<Conv2d> {
            let w = vb.get_with_hints((cout, cin, 4, 4), "weight", w_init)?;
            Ok(Conv2d::new(w, None, stride, 1))
        };
        let first = conv_b(1, ndf, 2, vb.pp("0"))?;
        let mut mid = Vec::new();
        let mut idx = 2;
        let mut mult = 1;
        for n in 1..=n_layers {
            let prev = mult;
            mult = (1 << n).min(8);
            let stride = if n < n_layers { 2 } else { 1 };
            let c = conv_nb(ndf * prev, ndf * mult, stride, vb.pp(idx.to_string()))?;
            let vbn = vb.pp((idx + 1).to_string());
            // BN weight ~ N(1, 0.02), bias 0 (taming weights_init)
            let _ = vbn.get_with_hints(ndf * mult, "weight", Init::Randn { mean: 1.0, stdev: 0.02 })?;
            let bn = batch_norm(ndf * mult, candle_nn::BatchNormConfig { eps: 1e-5, ..Default::default() }, vbn)?;
            mid.push((c, bn));
            idx += 3;
        }
        let last = conv_b(ndf * mult, 1, 1, vb.pp(idx.to_string()))?;
        Ok(Self { first, mid, last })
    }
}

impl ModuleT for Discriminator {
    /// Patch logits (B, 1, h, w) of (B, 1, n_mels, T) images; `train` uses batch statistics.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = leaky(&self.first.forward(x)?)?;
        for (c, bn) in &self.mid {
            h = leaky(&bn.forward_t(&c.forward(&h)?, train)?)?;
        }
        self.last.forward(&h)
    }
}

fn leaky(x: &Tensor) -> Result<Tensor> {
    smg_core::train_ops::leaky_relu(x, 0.2)
}
