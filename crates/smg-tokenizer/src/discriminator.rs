//! PatchGAN discriminator with batch norm (SPEC.md §2.3; taming `NLayerDiscriminator`, n_layers 3).
//! Tensor names follow the PyTorch `nn.Sequential`: `main.0` … `main.11`.

use candle_core::{Module, ModuleT, Result, Tensor, Var};
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

    /// The same discriminator with its parameters detached from autograd, for the generator's
    /// adversarial loss: gradients reach the generator's output through it, none are computed
    /// for the discriminator's weights (the generator's optimiser would discard them). The batch
    /// norms still update the shared running statistics in training mode.
    pub fn frozen(&self) -> Result<Self> {
        let mid = self
            .mid
            .iter()
            .map(|(c, bn)| {
                let bn = match bn.weight_and_bias() {
                    Some((w, b)) => BatchNorm::new_with_momentum(
                        w.elem_count(),
                        bn.running_mean().clone(),
                        bn.running_var().clone(),
                        w.detach(),
                        b.detach(),
                        bn.eps(),
                        bn.momentum(),
                    )?,
                    None => bn.clone(),
                };
                Ok((c.detach(), bn))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { first: self.first.detach(), mid, last: self.last.detach() })
    }

    /// Patch logits (B, 1, h, w) and the activations of every hidden layer before them (after
    /// each leaky ReLU), for feature matching; `train` uses batch statistics.
    pub fn forward_features_t(&self, x: &Tensor, train: bool) -> Result<(Tensor, Vec<Tensor>)> {
        let mut h = leaky(&self.first.forward(x)?)?;
        let mut features = vec![h.clone()];
        for (c, bn) in &self.mid {
            let y = c.forward(&h)?;
            h = leaky(&match bn.weight_and_bias() {
                // Training on CPU f32: one node (`smg_core::batch_norm`), same statistics.
                Some((w, b)) if train && smg_core::fast::cpu_custom_ops(&y) => {
                    let running = (Var::from_tensor(bn.running_mean())?, Var::from_tensor(bn.running_var())?);
                    smg_core::batch_norm::batch_norm_train(&y, w, b, (&running.0, &running.1), bn.momentum(), bn.eps())?
                }
                _ => bn.forward_t(&y, train)?,
            })?;
            features.push(h.clone());
        }
        Ok((self.last.forward(&h)?, features))
    }
}

impl ModuleT for Discriminator {
    /// Patch logits (B, 1, h, w) of (B, 1, n_mels, T) images; `train` uses batch statistics.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_features_t(x, train)?.0)
    }
}

fn leaky(x: &Tensor) -> Result<Tensor> {
    smg_core::train_ops::leaky_relu(x, 0.2)
}
