//! `relevance`: ranking quality on the Cranfield collection through the project's own path
//! (memories → `MemoryStore` → segment → reader), and with `--peers` tantivy's BM25 on the same
//! text. `cargo xtask relevance [--peers]` runs it.
//!
//! Usage: `relevance --data DIR [--peers]`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use benches::cranfield::{Cranfield, Metrics};
use memory_store::{Embed, EmbedError, Memory, MemoryStore, Query, Ranking, SearchOptions};

/// How deep rankings go (MAP looks past the top 10).
const DEPTH: usize = 1000;

fn doc_id(number: u32) -> uuid::Uuid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(b"cranfld\0");
    b[12..].copy_from_slice(&number.to_be_bytes());
    uuid::Uuid::from_bytes(b)
}

fn doc_number(id: &uuid::Uuid) -> u32 {
    let b = id.as_bytes();
    u32::from_be_bytes([b[12], b[13], b[14], b[15]])
}

/// BM25F with the textbook parameters on every field: the same memories built into one segment
/// with `Bm25fParams::CLASSIC` and searched directly (the store builds with the defaults).
fn classic(c: &Cranfield, memories: &[Memory]) -> anyhow::Result<Metrics> {
    let mut builder =
        semantic_index::SegmentBuilder::new().rank_params(semantic_index::Bm25fParams::CLASSIC)?;
    let docs: Vec<semantic_index::Document> = memories.iter().map(Memory::to_document).collect();
    builder.add_batch(&docs)?;
    let segment = shm_reader::Segment::from_bytes(shm_reader::aligned(&builder.to_bytes()?))?;
    let options = SearchOptions { limit: DEPTH, ..SearchOptions::default() };
    let mut hits = shm_reader::Hits::with_capacity(DEPTH);
    let mut metrics = Metrics::default();
    for (i, text) in c.queries.iter().enumerate() {
        hits.clear();
        let query = Query::from_text(text);
        segment.search(&query, &options, &shm_reader::DeletedSet::empty(), 0, &mut hits);
        let ranked: Vec<u32> =
            hits.iter().map(|h| doc_number(&uuid::Uuid::from_bytes(h.id))).collect();
        metrics.add(c, i as u32 + 1, &ranked);
    }
    Ok(metrics)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let peers = args.iter().any(|a| a == "--peers");
    let Some(data) = args.iter().position(|a| a == "--data").and_then(|i| args.get(i + 1)) else {
        bail!("usage: relevance --data DIR [--peers]");
    };
    if peers && !cfg!(feature = "peers") {
        bail!("--peers needs the `peers` feature (cargo xtask relevance --peers builds it)");
    }
    let c = Cranfield::load(&PathBuf::from(data))?;

    let dir = tempfile::tempdir()?;
    let mut store = MemoryStore::open(dir.path().join("store"))?;
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let memories: Vec<Memory> = c
        .docs
        .iter()
        .map(|d| {
            let mut m = Memory::new("cranfield", d.title.clone());
            m.id = doc_id(d.number);
            m.synthesis = d.text.clone();
            m.timestamp = epoch;
            m
        })
        .collect();
    store.store_batch(memories.clone()).context("storing the collection")?;

    let mut rows: Vec<(String, Metrics)> = Vec::new();
    for ranking in [Ranking::Bm25f, Ranking::Jaccard] {
        let mut metrics = Metrics::default();
        let options = SearchOptions { limit: DEPTH, ranking, ..SearchOptions::default() };
        for (i, text) in c.queries.iter().enumerate() {
            let results = store.search(&Query::from_text(text), &options)?;
            let ranked: Vec<u32> = results.hits.iter().map(|h| doc_number(&h.id)).collect();
            metrics.add(&c, i as u32 + 1, &ranked);
        }
        let default = if ranking == Ranking::default() { " (default)" } else { "" };
        let name = match ranking {
            Ranking::Bm25f => {
                let p = semantic_index::Bm25fParams::DEFAULT;
                format!("bm25f{default}: k1 {}, b {}, weights {:?}", p.k1, p.b[0], p.weights)
            }
            _ => format!("{}{default}", ranking.name()),
        };
        rows.push((name, metrics));
        if ranking == Ranking::Bm25f {
            rows.push((
                "bm25f classic: k1 1.2, b 0.75, weights [1.0, 1.0, 1.0]".into(),
                classic(&c, &memories)?,
            ));
        }
    }

    // Semantic rows: the store embeds the collection with all-MiniLM-L6-v2 (when installed) and
    // searches by vector alone and by reciprocal rank fusion with the lexical ranking.
    let model_dir = embeddings::default_model_dir()?;
    if embeddings::is_installed(&model_dir) {
        let model = MiniLm(embeddings::Embedder::load(&model_dir)?);
        let started = std::time::Instant::now();
        let embedded = store.embed_pending(&model, &mut |_, _| {})?;
        eprintln!("embedded {embedded} documents in {:.1} s", started.elapsed().as_secs_f64());
        let mut vector = Metrics::default();
        let mut hybrid = Metrics::default();
        for (i, text) in c.queries.iter().enumerate() {
            let v = model.0.embed_query(text)?;
            let query = Query::from_text(text).with_embedding(&v);
            for (ranking, metrics) in
                [(Ranking::Vector, &mut vector), (Ranking::Hybrid, &mut hybrid)]
            {
                let options = SearchOptions { limit: DEPTH, ranking, ..SearchOptions::default() };
                let results = store.search(&query, &options)?;
                let ranked: Vec<u32> = results.hits.iter().map(|h| doc_number(&h.id)).collect();
                metrics.add(&c, i as u32 + 1, &ranked);
            }
        }
        rows[0].0 = rows[0].0.replace(" (default)", " (default without vectors)");
        rows.push(("vector: minilm, cosine alone".into(), vector));
        rows.push((
            "hybrid (default with vectors): rrf k 60 of bm25f and minilm, top 100 each".into(),
            hybrid,
        ));
    } else {
        eprintln!(
            "no embedding model in {}: `cargo xtask model` installs it for the hybrid rows",
            model_dir.display()
        );
    }

    #[cfg(feature = "peers")]
    if peers {
        let t = benches::peers::TantivyText::build(
            c.docs.iter().map(|d| (u64::from(d.number), format!("{} {}", d.title, d.text))),
            &dir.path().join("tantivy"),
        )?;
        let mut bm25 = Metrics::default();
        for (i, text) in c.queries.iter().enumerate() {
            let ranking: Vec<u32> =
                t.search_text(text, DEPTH)?.into_iter().map(|n| n as u32).collect();
            bm25.add(&c, i as u32 + 1, &ranking);
        }
        rows.push(("tantivy bm25 (peer)".into(), bm25));
    }

    println!(
        "Cranfield: {} documents, {} queries, ranked to depth {DEPTH}",
        c.docs.len(),
        c.queries.len()
    );
    println!("nDCG@10: gain 2^(5-grade)-1 over grades 1-4; MAP and P@10: grades 1-3 relevant;");
    println!("queries with no grade 1-3 document are skipped (as trec_eval does).\n");
    println!("| ranking | nDCG@10 | MAP | P@10 | queries |");
    println!("|---|---:|---:|---:|---:|");
    for (name, m) in &rows {
        let (ndcg, map, p10, n) = m.means();
        println!("| {name} | {ndcg:.4} | {map:.4} | {p10:.4} | {n} |");
    }
    Ok(())
}

/// The embedding model as the store uses it.
struct MiniLm(embeddings::Embedder);

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
