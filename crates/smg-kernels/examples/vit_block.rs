//! One paper-ViT block (batch 2 × 266 tokens, width 768, 8 heads, MLP 3072) through
//! `smg_kernels::vit::Block`, f32 and fused bf16, and attention alone at both precisions;
//! times ×24 = one forward of the 24-block generator.
#[path = "support/mod.rs"]
mod support;
use smg_kernels::attention::attention_at;
use smg_kernels::vit::{Block, Dense, Norm};
use smg_kernels::{PackedWeight, Precision};
use support::best;

fn data(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

fn main() {
    let (b, l, d, f, heads) = (2usize, 266usize, 768usize, 3072usize, 8usize);
    let dense = |n: usize, k: usize, seed: u64| Dense {
        weight: std::sync::Arc::new(PackedWeight::new(data(n * k, seed, (3.0 / k as f32).sqrt()), n, k)),
        bias: data(n, seed + 100, 0.02),
    };
    let norm = || Norm { weight: vec![1.0; d], bias: vec![0.0; d], eps: 1e-6 };
    let blk = Block {
        norm1: norm(),
        qkv: dense(3 * d, d, 2),
        proj: dense(d, d, 3),
        norm2: norm(),
        fc1: dense(f, d, 5),
        fc2: dense(d, f, 6),
        heads,
    };
    let x0 = data(b * l * d, 9, 1.0);
    let qkv = blk.qkv.weight.forward(&blk.norm1.rows(&x0), b * l, Some(&blk.qkv.bias), smg_kernels::Act::None, Precision::F32);
    println!("AMX: {}", smg_kernels::amx::available());
    let only_bf16 = std::env::args().any(|a| a == "bf16");
    for p in [Precision::F32, Precision::Bf16] {
        if only_bf16 && p == Precision::F32 {
            continue;
        }
        let att = best(if only_bf16 { 40 } else { 5 }, || {
            std::hint::black_box(attention_at(&qkv, b, l, heads, d / heads, p));
        });
        let mut x = x0.clone();
        let mut scratch = smg_kernels::vit::Scratch::default();
        let blk_t = best(if only_bf16 { 40 } else { 5 }, || {
            x.copy_from_slice(&x0);
            blk.forward_with(&mut x, b, l, p, &mut scratch);
        });
        println!("{p:?}: block ×24 {:.0} ms (attention alone ×24 {:.0} ms)", blk_t * 24e3, att * 24e3);
    }
    // 24 blocks (the same weights) as one model: block by block over the whole batch, and with
    // the batch items on threads of their own (`forward_blocks`), alternating, best of 5 each.
    let blocks: Vec<Block> = (0..24)
        .map(|_| Block {
            norm1: norm(),
            qkv: Dense { weight: blk.qkv.weight.clone(), bias: blk.qkv.bias.clone() },
            proj: Dense { weight: blk.proj.weight.clone(), bias: blk.proj.bias.clone() },
            norm2: norm(),
            fc1: Dense { weight: blk.fc1.weight.clone(), bias: blk.fc1.bias.clone() },
            fc2: Dense { weight: blk.fc2.weight.clone(), bias: blk.fc2.bias.clone() },
            heads,
        })
        .collect();
    let mut x = x0.clone();
    let (mut whole, mut split) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        whole = whole.min(best(1, || {
            x.copy_from_slice(&x0);
            let mut scratch = smg_kernels::vit::Scratch::default();
            for blk in &blocks {
                blk.forward_with(&mut x, b, l, Precision::F32, &mut scratch);
            }
        }));
        split = split.min(best(1, || {
            x.copy_from_slice(&x0);
            smg_kernels::vit::forward_blocks(&blocks, &mut x, b, l, Precision::F32);
        }));
    }
    println!("F32, 24 blocks: block by block {:.0} ms, items on their own threads {:.0} ms", whole * 1e3, split * 1e3);
    let (mut a, mut c) = (x0.clone(), x0.clone());
    blk.forward(&mut a, b, l, Precision::F32);
    blk.forward(&mut c, b, l, Precision::Bf16);
    let e = a.iter().zip(&c).map(|(a, c)| (a - c).abs()).fold(0f32, f32::max);
    println!("bf16 vs f32 block output: max abs diff {e:.4}");
}
