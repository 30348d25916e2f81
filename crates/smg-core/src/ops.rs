//! Differentiable versions of candle-nn's fused kernels. `candle_nn::ops::softmax_last_dim`
//! and `candle_nn::LayerNorm` (on contiguous input, through `ops::layer_norm`) are applied with
//! `apply_op*_no_bwd`: their outputs are cut from the autograd graph, so nothing before them
//! receives a gradient. These wrappers take the fused kernel when no gradient is needed
//! (inference) and an equivalent composition of differentiable ops when one is (training).

use candle_core::{Module, Result, Tensor, D};

/// Softmax over the last axis; differentiable when `x` is part of an autograd graph.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// LayerNorm over the last axis with weight and bias (timm / PyTorch semantics).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self { weight, bias, eps }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.track_op() || self.weight.track_op() || self.bias.track_op() {
            crate::train_ops::layer_norm(x, &self.weight, &self.bias, self.eps)
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps as f32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn gradients_flow_and_both_paths_agree() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::arange(0f32, 12.0, &dev).unwrap().reshape((3, 4)).unwrap().sin().unwrap()).unwrap();
        let w = Tensor::new(&[1.0f32, 2.0, 0.5, -1.0], &dev).unwrap();
        let b = Tensor::new(&[0.1f32, 0.0, -0.2, 0.3], &dev).unwrap();
        let ln = LayerNorm::new(w, b, 1e-6);
        let y_train = ln.forward(x.as_tensor()).unwrap();
        let y_infer = ln.forward(&x.as_tensor().detach()).unwrap();
        let d = (&y_train - &y_infer).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "paths differ by {d}");
        let s = softmax_last_dim(&y_train).unwrap();
        let s2 = softmax_last_dim(&y_infer).unwrap();
        assert!((&s - &s2).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-6);
        let loss =
            (s.narrow(1, 0, 1).unwrap().sum_all().unwrap() + y_train.sqr().unwrap().narrow(1, 2, 1).unwrap().sum_all().unwrap()).unwrap();
        let g = loss.backward().unwrap();
        let gx = g.get(x.as_tensor()).expect("x receives a gradient");
        assert!(gx.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
    }
}
