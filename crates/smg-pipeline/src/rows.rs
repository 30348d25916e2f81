//! Training rows for the generator (SPEC.md §3.5): token grids of the corpus with the
//! conditioning embedding each is trained against, computed once and cached by the caller.

use candle_core::Tensor;

/// What a training row's condition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CondSource {
    /// The audio branch's embedding of the clip (the paper's choice).
    Audio,
    /// The MiniLM embedding of each of the clip's captions.
    Text,
    /// Both: one audio row per clip and one text row per caption.
    Mix,
}

/// Token grids `(N, rows·cols)` and audio embeddings `(N, 384)` of the clips `idx`.
pub fn tokens_and_embeddings(
    tok: &smg_tokenizer::SpecVqGan,
    clap: &smg_clap::AudioEncoder,
    mels: &[Tensor],
    idx: &[usize],
) -> crate::Result<(Tensor, Tensor)> {
    let (mut t, mut c) = (Vec::new(), Vec::new());
    for chunk in idx.chunks(32) {
        let x = Tensor::stack(&chunk.iter().map(|&i| mels[i].clone()).collect::<Vec<_>>(), 0)?;
        let g = tok.encode(&x)?;
        let (b, r, k) = g.dims3()?;
        t.push(g.reshape((b, r * k))?);
        c.push(clap.embed(&x)?);
    }
    Ok((Tensor::cat(&t, 0)?, Tensor::cat(&c, 0)?))
}

/// Training rows for the chosen conditioning source. The paper conditions on CLAP *audio*
/// embeddings and prompts with *text* at inference, relying on CLAP's alignment. Our small audio
/// branch is aligned with MiniLM far less tightly than LAION-CLAP (test recall@1 0.38), so text
/// prompts would land off the training distribution; `Mix` keeps the paper's audio rows and adds
/// one row per caption of the same clip (same tokens, caption embedding as the condition).
pub fn cond_rows(
    source: CondSource,
    tokens: &Tensor,
    audio: &Tensor,
    captions: &[Vec<String>],
    text: Option<&smg_clap::TextEncoder>,
) -> crate::Result<(Tensor, Tensor)> {
    let (mut t, mut c) = (Vec::new(), Vec::new());
    if source != CondSource::Text {
        t.push(tokens.clone());
        c.push(audio.clone());
    }
    if source != CondSource::Audio {
        let text = text.ok_or_else(|| crate::PipelineError::Invalid("text conditioning needs the MiniLM text encoder".into()))?;
        let mut rows = Vec::new();
        let mut strings = Vec::new();
        for (i, caps) in captions.iter().enumerate() {
            for cap in caps {
                rows.push(i as u32);
                strings.push(cap.as_str());
            }
        }
        // Captions are templates, so most strings repeat: embed each distinct one once.
        let mut distinct: Vec<&str> = strings.clone();
        distinct.sort();
        distinct.dedup();
        let mut emb = Vec::new();
        for chunk in distinct.chunks(128) {
            emb.push(text.embed(chunk)?.embeddings);
        }
        let emb = Tensor::cat(&emb, 0)?;
        let pick: Vec<u32> = strings.iter().map(|s| distinct.binary_search(s).expect("listed above") as u32).collect();
        let idx = Tensor::new(rows.as_slice(), tokens.device())?;
        t.push(tokens.index_select(&idx, 0)?);
        c.push(emb.index_select(&Tensor::new(pick.as_slice(), emb.device())?, 0)?.to_device(tokens.device())?);
    }
    Ok((Tensor::cat(&t, 0)?, Tensor::cat(&c, 0)?))
}
