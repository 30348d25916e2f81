//! Seeded weight initialisation. candle's CPU device cannot be seeded (`Device::set_seed` fails
//! on CPU), so a model built from a plain `VarMap` starts from different weights each run. A
//! [`SeededVarMap`] draws every new variable from its own seeded RNG, following the
//! initialisation hint the layer asked for, in creation order: the same seed gives the same model.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};

/// A `VarMap` whose new variables come from a seeded RNG.
#[derive(Clone)]
pub struct SeededVarMap {
    pub varmap: VarMap,
    rng: Arc<Mutex<rand::rngs::StdRng>>,
    /// Hand out detached tensors (no autograd), as weights loaded from a file are.
    frozen: bool,
}

impl SeededVarMap {
    pub fn new(seed: u64) -> Self {
        Self { varmap: VarMap::new(), rng: Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed))), frozen: false }
    }

    /// A `VarBuilder` of the same seeded weights handed out as plain tensors, like weights loaded
    /// from a checkpoint: a model built from it runs the inference fast paths (`smg_core::fast`)
    /// and cannot be trained. Benchmarks and tests of inference use it.
    pub fn frozen_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Self { frozen: true, ..self.clone() }), dtype, device.clone())
    }

    /// A `VarBuilder` that creates (or returns existing) variables in this map.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    fn draw(&self, shape: &Shape, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        let mut rng = self.rng.lock().expect("rng lock");
        let normal = |rng: &mut rand::rngs::StdRng, mean: f64, std: f64| {
            // Box-Muller
            let u1: f64 = rng.random::<f64>().max(1e-300);
            let u2: f64 = rng.random();
            (mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        };
        match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => (0..n).map(|_| rng.random_range(lo..up) as f32).collect(),
            Init::Randn { mean, stdev } => (0..n).map(|_| normal(&mut rng, mean, stdev)).collect(),
            Init::Kaiming { dist, fan, non_linearity } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        (0..n).map(|_| rng.random_range(-b..b) as f32).collect()
                    }
                    NormalOrUniform::Normal => (0..n).map(|_| normal(&mut rng, 0.0, std)).collect(),
                }
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        {
            let data = self.varmap.data().lock().expect("varmap lock");
            if let Some(v) = data.get(name) {
                if v.shape() != &s {
                    candle_core::bail!("shape mismatch for {name}: {:?} vs {:?}", v.shape(), s);
                }
                return Ok(if self.frozen { v.as_tensor().detach() } else { v.as_tensor().clone() });
            }
        }
        let values = self.draw(&s, h);
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let t = if self.frozen { var.as_tensor().detach() } else { var.as_tensor().clone() };
        self.varmap.data().lock().expect("varmap lock").insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data = self.varmap.data().lock().expect("varmap lock");
        data.get(name).map(|v| v.as_tensor().clone()).ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().expect("varmap lock").contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights() {
        let make = |seed| {
            let m = SeededVarMap::new(seed);
            let vb = m.var_builder(DType::F32, &Device::Cpu);
            candle_nn::linear(4, 3, vb.pp("l")).unwrap();
            let w = m.varmap.data().lock().unwrap()["l.weight"].as_tensor().to_vec2::<f32>().unwrap();
            w
        };
        assert_eq!(make(1), make(1));
        assert_ne!(make(1), make(2));
    }
}
