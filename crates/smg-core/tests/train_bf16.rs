//! Linear layers, 3 × 3 convolutions and the fused transformer block trained with bf16 products
//! (`smg train --precision bf16`) against the f32 reference: values and gradients within bf16's
//! rounding. A test binary of its own because the training precision is process-wide.
use candle_core::{Tensor, Var};
use smg_core::fast::{set_train_precision, train_bf16, Precision};
use smg_core::test_util::rand;
use smg_core::train_ops::linear;
use std::sync::Mutex;

/// The training precision is process-wide and tests run on parallel threads: one at a time.
static PRECISION: Mutex<()> = Mutex::new(());

/// Values and gradients of `Σ r ⊙ linear(x, W, b)` at the current training precision.
fn run(x: &Tensor, w: &Tensor, b: &Tensor) -> Vec<Vec<f32>> {
    values_and_grads(&[x, w, b], |t| linear(t[0], t[1], Some(t[2])).unwrap())
}

/// The output and the gradients of every input of `Σ r ⊙ layer(inputs)` (`r` seeded) at the
/// current training precision.
fn values_and_grads(inputs: &[&Tensor], layer: impl Fn(&[&Tensor]) -> Tensor) -> Vec<Vec<f32>> {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let y = layer(&vars.iter().map(|v| v.as_tensor()).collect::<Vec<_>>());
    let r = rand(y.dims(), 9);
    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![y.flatten_all().unwrap().to_vec1().unwrap()];
    out.extend(vars.iter().map(|v| g.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap()));
    out
}

/// Runs `run` in f32 and twice with bf16 products and checks every output: within `tol` of the
/// largest f32 magnitude where bf16 products are expected (`bf16`, by default where the CPU
/// computes them natively), the first `differ` outputs then not equal to f32; else equal to
/// f32 rounding (1e-5). The two bf16 runs are bit-identical (seeded runs stay reproducible).
fn check_against_f32(run: impl Fn() -> Vec<Vec<f32>>, bf16: Option<bool>, tol: f32, differ: usize) {
    set_train_precision(Precision::F32);
    let reference = run();
    set_train_precision(Precision::Bf16);
    let got = run();
    let again = run();
    let bf16 = bf16.unwrap_or_else(train_bf16);
    set_train_precision(Precision::F32);
    for (i, (a, r)) in got.iter().zip(&reference).enumerate() {
        let scale = r.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
        let err = a.iter().zip(r).fold(0f32, |m, (a, r)| m.max((a - r).abs()));
        let tol = if bf16 { tol } else { 1e-5 };
        assert!(err <= tol * scale, "output {i}: {err} against scale {scale}");
        if bf16 && i < differ {
            assert!(err > 0.0, "output {i}: bf16 products gave exactly the f32 result");
        }
    }
    assert!(got.iter().flatten().zip(again.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn bf16_linear_values_and_gradients_stay_near_f32() {
    // Rows as in a masked-ViT batch (several items × tokens), odd depths and ragged tiles.
    let _one = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    let (x, w, b) = (rand(&[3, 70, 129], 1), rand(&[45, 129], 2), rand(&[45], 3));
    // bf16 keeps 8 significant bits: relative error ≈ 2^-8 per product, averaging over the depth.
    // The bias gradient (a column sum) is f32 either way: only the first three must differ.
    check_against_f32(|| run(&x, &w, &b), None, 2e-2, 3);
}

/// A convolution's values and gradients with bf16 products against f32: within `1e-2` of the
/// largest magnitude where `bf16` (bf16 products expected), else equal to f32 rounding;
/// bit-reproducible either way.
fn check_conv(x: &[usize], w: &[usize], stride: usize, padding: usize, bf16: bool) {
    let (x, w, b) = (rand(x, 1), rand(w, 2), rand(&[w[0]], 3));
    let run = || values_and_grads(&[&x, &w, &b], |t| smg_core::conv::conv2d(t[0], t[1], Some(t[2]), stride, padding).unwrap());
    check_against_f32(run, Some(bf16), 1e-2, 3);
}

#[test]
fn bf16_conv3x3_values_and_gradients_stay_near_f32() {
    let _one = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    // Channel counts off the 32-channel blocks and rows off the 32-column runs of the bf16
    // kernels (AMX tiles, or the AVX-512 BF16 dot product without AMX).
    let native = train_bf16_possible() && smg_kernels::conv3x3_amx::applies(48, 40);
    check_conv(&[2, 48, 6, 40], &[40, 48, 3, 3], 1, 1, native);
}

/// Whether bf16 training products are computed natively here.
fn train_bf16_possible() -> bool {
    set_train_precision(Precision::Bf16);
    let native = train_bf16();
    set_train_precision(Precision::F32);
    native
}

/// Values and gradients (input and all twelve parameters) of `Σ r ⊙ block(x)` for the fused
/// transformer block (`smg_core::vit_block`) at the current training precision.
fn run_block(x: &Tensor, params: &[Tensor], heads: usize) -> Vec<Vec<f32>> {
    let inputs: Vec<&Tensor> = std::iter::once(x).chain(params).collect();
    values_and_grads(&inputs, |t| {
        let p = smg_core::vit_block::BlockParams {
            norm1: (t[1], t[2]),
            qkv: (t[3], t[4]),
            proj: (t[5], t[6]),
            norm2: (t[7], t[8]),
            fc1: (t[9], t[10]),
            fc2: (t[11], t[12]),
            eps: 1e-6,
            heads,
        };
        smg_core::vit_block::block(t[0], &p).unwrap().expect("the CPU path")
    })
}

/// The fused transformer block with bf16 products (AMX tiles where present; the bias,
/// residual and GELU passes over each product's rows) against f32: every value and gradient
/// within bf16's rounding, bit-reproducible. Rows (2 × 20) and the hidden width (80) leave
/// ragged tiles.
#[test]
fn bf16_transformer_block_stays_near_f32() {
    let _one = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    let (d, h, heads) = (32, 80, 2);
    let shapes: [&[usize]; 12] = [&[d], &[d], &[3 * d, d], &[3 * d], &[d, d], &[d], &[d], &[d], &[h, d], &[h], &[d, h], &[d]];
    let params: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let t = (rand(s, i as u64 + 1) * 0.6).unwrap();
            if i == 0 || i == 6 {
                (t + 1.0).unwrap()
            } else {
                t
            }
        })
        .collect();
    let x = (rand(&[2, 20, d], 50) * 2.0).unwrap();
    check_against_f32(|| run_block(&x, &params, heads), None, 3e-2, 0);
}
