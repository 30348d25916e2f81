//! Time of one held-out evaluation (three masking ratios) of the medium masked ViT: through the
//! training graph (`train::evaluate` on the trainer's own model) against the trainer's frozen
//! copy (`Trainer::evaluate`, the fused inference kernels).
//! `cargo run --release -p smg-maskgit --example eval_speed [rows]` (default 640 rows).
use candle_core::{DType, Device, Tensor};
use smg_maskgit::train::{evaluate, TokenData, TrainConfig, Trainer};
use smg_maskgit::Config;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::args().nth(1).map_or(Ok(640), |s| s.parse())?;
    let cfg = Config::medium();
    let dev = Device::Cpu;
    let tokens = Tensor::rand(0f32, cfg.vocab as f32, (rows, cfg.seq_len()), &dev)?.floor()?.to_dtype(DType::U32)?;
    let cond = Tensor::randn(0f32, 1.0, (rows, cfg.cond_dim), &dev)?;
    let data = TokenData { tokens: &tokens, cond: &cond };
    let dir = tempfile::tempdir()?;
    let trainer = Trainer::new(&cfg, TrainConfig::default(), dir.path(), false, &dev)?;
    let ratios = [0.1, 0.5, 0.9];
    for round in 0..2 {
        let t = Instant::now();
        let graph = evaluate(&trainer.model, &data, &ratios, 0.1)?;
        let tg = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let frozen = trainer.evaluate(&data, &ratios)?;
        let tf = t.elapsed().as_secs_f64();
        println!(
            "round {round}: {rows} rows × 3 ratios: training graph {tg:.2} s, frozen copy {tf:.2} s ({:.1}×); accuracy at 0.5: {:.4} / {:.4}",
            tg / tf,
            graph[1].accuracy,
            frozen[1].accuracy
        );
    }
    Ok(())
}
