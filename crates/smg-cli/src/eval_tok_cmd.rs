//! `smg eval tokenizer`: tokenizers side by side on the same held-out clips (SPEC.md §2, §10):
//! whole-clip mel L1 in the tokenizer's [−1, 1] range, codebook use, and how often an
//! independent judge (logistic regression on mel statistics, fitted on real training clips)
//! still names the right category after encode → decode, beside its accuracy on the real clips;
//! and FAD-mel of the decoder's own mels to the real clips, statistic block by block.

use crate::eval_cmd::{open_corpus, split_mels};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use smg_data::Split;
use smg_pipeline::judge::{self, Judge};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct TokenizerEvalArgs {
    /// Tokenizer folders (exported or training folders), compared in this order.
    #[arg(required = true)]
    tokenizers: Vec<PathBuf>,
    /// Corpus whose held-out clips are encoded: `small` or `medium` (same 2.97 s window).
    #[arg(long, default_value = "small")]
    corpus: String,
    /// Held-out split: test or valid.
    #[arg(long, default_value = "test")]
    split: String,
    /// Also write the report as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One tokenizer's held-out numbers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TokenizerScore {
    pub tokenizer: String,
    pub parameters: usize,
    /// Mean |x − decode(encode(x))| over whole clips, in the tokenizer's [−1, 1] mel range.
    pub mel_l1: f64,
    pub codes_used: usize,
    pub codebook: usize,
    pub perplexity: f64,
    /// Judge accuracy on the reconstructions (balanced over the held-out clips as they come).
    pub judge_accuracy: f64,
    /// Reconstruction accuracy over real-clip accuracy.
    pub ceiling_ratio: f64,
    /// FAD-mel of the reconstructions (the decoder's own mels) to the real held-out clips, then
    /// on each block of the statistics alone (`smg_eval::frechet_by_block`); absent in reports
    /// written before it was measured.
    #[serde(default)]
    pub fad_mel: Vec<(String, f64)>,
}

/// What `smg eval tokenizer` measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TokenizerReport {
    pub corpus: String,
    pub split: String,
    pub clips: usize,
    pub categories: usize,
    pub chance: f64,
    pub real_accuracy: f64,
    pub tokenizers: Vec<TokenizerScore>,
}

pub fn run(a: &TokenizerEvalArgs) -> Result<()> {
    let (ds, cache) = open_corpus(&a.corpus)?;
    let split = crate::eval_cmd::parse_split(&a.split)?;
    let part = |s: Split| split_mels(&ds, &cache, s);
    let (_, train_mels, train_y) = part(Split::Train)?;
    let (_, valid_mels, valid_y) = part(Split::Valid)?;
    let (_, held_mels, held_y) = part(split)?;
    eprintln!("fitting the judge on {} real training clips of sound-{}", train_mels.len(), a.corpus);
    let held_f = judge::judge_features_all(&held_mels)?;
    let judge =
        Judge::fit((&judge::judge_features_all(&train_mels)?, &train_y), (&judge::judge_features_all(&valid_mels)?, &valid_y), &held_f)?;
    let real = judge.score("real", &held_f, &held_y)?;
    let held_stats = mel_stats(&held_mels)?;
    let mut scores = Vec::new();
    for dir in &a.tokenizers {
        let m = smg_tokenizer::SpecVqGan::from_pretrained(dir, &Device::Cpu)
            .with_context(|| format!("loading the tokenizer in {}", dir.display()))?;
        let bar = indicatif::ProgressBar::new(held_mels.len() as u64).with_message(dir.display().to_string());
        let (mut l1, mut codes, mut recs) = (0f64, Vec::<u32>::new(), Vec::new());
        for chunk in held_mels.chunks(16) {
            let units = chunk
                .iter()
                .map(|x| smg_audio::array_to_tensor(&smg_audio::norm::to_tokenizer_range(x), &Device::Cpu))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let x = Tensor::stack(&units, 0)?;
            let tokens = m.encode(&x)?;
            codes.extend(tokens.flatten_all()?.to_vec1::<u32>()?);
            let y = m.decode(&tokens)?.clamp(-1f32, 1f32)?;
            let b = chunk.len();
            l1 += (&y - &x)?.abs()?.mean_keepdim(2)?.mean_keepdim(1)?.flatten_all()?.to_vec1::<f32>()?.iter().sum::<f32>() as f64;
            for i in 0..b {
                recs.push(smg_audio::norm::to_vocoder_range(&smg_audio::tensor_to_array(&y.get(i)?)?));
            }
            bar.inc(b as u64);
        }
        bar.finish_and_clear();
        let (_, u) = smg_tokenizer::usage(&codes, m.config.n_embed);
        let acc = judge.score("reconstructions", &judge::judge_features_all(&recs)?, &held_y)?.accuracy;
        scores.push(TokenizerScore {
            tokenizer: dir.display().to_string(),
            parameters: smg_tokenizer::SpecVqGan::parameter_count(&m.config)?,
            mel_l1: l1 / held_mels.len() as f64,
            codes_used: u.used,
            codebook: m.config.n_embed,
            perplexity: u.perplexity,
            judge_accuracy: acc,
            ceiling_ratio: acc / real.accuracy.max(1e-9),
            fad_mel: smg_eval::frechet_by_block(&held_stats, &mel_stats(&recs)?, held_mels[0].nrows())?,
        });
    }
    let report = TokenizerReport {
        corpus: a.corpus.clone(),
        split: a.split.clone(),
        clips: held_mels.len(),
        categories: judge.classifier.classes.len(),
        chance: judge.chance(),
        real_accuracy: real.accuracy,
        tokenizers: scores,
    };
    print_report(&report);
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// FAD-mel's embedding of each mel ([`smg_eval::mel_statistics`]).
fn mel_stats(mels: &[ndarray::Array2<f32>]) -> Result<Vec<Vec<f64>>> {
    mels.iter()
        .map(|m| {
            let (bands, frames) = m.dim();
            Ok(smg_eval::mel_statistics(&m.iter().copied().collect::<Vec<_>>(), bands, frames)?)
        })
        .collect()
}

fn print_report(r: &TokenizerReport) {
    println!(
        "sound-{} {} split: {} clips, {} categories (chance {:.3}); the judge names {:.1}% of the real clips",
        r.corpus,
        r.split,
        r.clips,
        r.categories,
        r.chance,
        100.0 * r.real_accuracy
    );
    println!("| tokenizer | parameters | mel L1 | codes used | perplexity | judge on reconstructions | of real |");
    println!("|---|---|---|---|---|---|---|");
    for s in &r.tokenizers {
        println!(
            "| {} | {:.2}M | {:.4} | {} / {} | {:.0} | {:.1}% | {:.0}% |",
            s.tokenizer,
            s.parameters as f64 / 1e6,
            s.mel_l1,
            s.codes_used,
            s.codebook,
            s.perplexity,
            100.0 * s.judge_accuracy,
            100.0 * s.ceiling_ratio
        );
    }
    if let Some(first) = r.tokenizers.iter().find(|s| !s.fad_mel.is_empty()) {
        println!("\nFAD-mel of the decoder's own mels to the real clips, on all statistics and on each block alone:");
        println!("| tokenizer | {} |", first.fad_mel.iter().map(|b| b.0.as_str()).collect::<Vec<_>>().join(" | "));
        println!("|---|{}", "---|".repeat(first.fad_mel.len()));
        for s in r.tokenizers.iter().filter(|s| !s.fad_mel.is_empty()) {
            println!("| {} | {} |", s.tokenizer, s.fad_mel.iter().map(|b| format!("{:.1}", b.1)).collect::<Vec<_>>().join(" | "));
        }
    }
}
