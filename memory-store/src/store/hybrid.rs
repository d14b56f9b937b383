//! Vectors beside the segments and hybrid search: the writer embeds memories after they are
//! published (lexical search has them at once), stores one vector file per segment, and
//! publishes a new generation; searches fuse the lexical ranking with the vector ranking.
//!
//! The model itself is not here (this library does not depend on candle): the caller hands an
//! [`Embed`] (the `embeddings` crate's model in `mcs`) to [`MemoryStore::embed_pending`], and a
//! query's vector to [`MemoryStore::search_hybrid`].

use std::collections::HashMap;
use std::path::Path;

use semantic_index::vectors::{encode, vectors_path, VECTORS_DIR};
use shm_reader::vectors::{rrf, QueryVector, SnapshotVectors, VectorHits, Vectors};
use shm_reader::{Hits, Query, SearchOptions};

use super::{found, Error, MemoryStore, Result, SearchResults, Why};
use crate::memory::Memory;

/// How deep each side of a hybrid search ranks before fusion (the measurement: 100).
pub const FUSION_DEPTH: usize = 100;
/// Memories embedded per call of the model (and per progress step).
const EMBED_CHUNK: usize = 256;

/// An error from an [`Embed`] implementation.
pub type EmbedError = Box<dyn std::error::Error + Send + Sync>;

/// A sentence-embedding model as the store uses it: unit vectors of [`Embed::dim`] floats.
pub trait Embed {
    /// A short ASCII name of the model and version (at most 24 bytes), stored in vector files:
    /// vectors of another model are not mixed with this one's.
    fn model_tag(&self) -> &str;
    /// Dimensions.
    fn dim(&self) -> usize;
    /// The vectors of `texts`, `texts.len() × dim` floats in order; `progress` gets the number
    /// of texts done.
    fn embed_documents(
        &self,
        texts: &[&str],
        progress: &mut dyn FnMut(usize),
    ) -> std::result::Result<Vec<f32>, EmbedError>;
}

/// The text of a memory the model embeds: its question, indexed insights and synthesis.
pub fn embedding_text(m: &Memory) -> String {
    let mut text = m.question.clone();
    for part in m.insights.iter().take(5).chain(std::iter::once(&m.synthesis)) {
        if !part.is_empty() {
            text.push_str(". ");
            text.push_str(part);
        }
    }
    text
}

/// Which ranking a search uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fusion {
    /// The lexical ranking alone.
    Lexical,
    /// The vector ranking alone (cosine similarity).
    Vector,
    /// Reciprocal rank fusion of both (k = 60, top [`FUSION_DEPTH`] of each).
    #[default]
    Hybrid,
}

/// What each side contributed to a hybrid hit.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HybridWhy {
    /// Rank (1-based) in the lexical ranking's top [`FUSION_DEPTH`], if there.
    pub lexical_rank: Option<usize>,
    /// Rank (1-based) in the vector ranking's top [`FUSION_DEPTH`], if there.
    pub vector_rank: Option<usize>,
    /// The lexical side's share of the fused score, `1/(60 + rank)`.
    pub lexical_part: f64,
    /// The vector side's share, `1/(60 + rank)`.
    pub vector_part: f64,
    /// Cosine similarity of the memory's vector with the query's.
    pub similarity: Option<f32>,
}

type Ranks = (Option<usize>, Option<usize>, f32);

/// The store's vector files for its current generation, opened when the generation changes.
#[derive(Default)]
pub(crate) struct VectorCache {
    current: Option<SnapshotVectors>,
}

impl MemoryStore {
    fn vectors(&mut self) -> Result<&SnapshotVectors> {
        self.reader.refresh()?;
        let snapshot = self.reader.snapshot();
        let cache = &mut self.vectors.current;
        if cache.as_ref().is_some_and(|v| v.generation() != snapshot.generation()) {
            *cache = None;
        }
        Ok(cache.get_or_insert_with(|| SnapshotVectors::open(&self.dir, &snapshot)))
    }

    /// Memories still waiting for a vector (their segment has no vector file yet).
    pub fn pending_vectors(&mut self) -> Result<u64> {
        self.vectors()?;
        let snapshot = self.reader.snapshot();
        Ok(self.vectors.current.as_ref().map_or(snapshot.len(), |v| v.pending(&snapshot)))
    }

    /// Whether any memory has a vector (then hybrid search is the default).
    pub fn has_vectors(&mut self) -> Result<bool> {
        Ok(self.vectors()?.any())
    }

    /// Vector files left out of search (damaged, or not matching their segment), and why.
    pub fn vector_problems(&mut self) -> Result<Vec<String>> {
        Ok(self.vectors()?.problems().to_vec())
    }

    /// Embeds every live segment that has no vector file yet, writes its vector file (durable
    /// through atomic-write, one per segment: a kill loses at most the segment in progress),
    /// and publishes a new generation so readers map them. Vectors of memories already embedded
    /// in another vector file (a merge's inputs) are copied, not recomputed. `progress` gets
    /// (memories done, memories to do). Returns how many memories were embedded by the model.
    pub fn embed_pending(
        &mut self,
        model: &dyn Embed,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<usize> {
        self.writer()?;
        let snapshot = {
            self.reader.refresh()?;
            self.reader.snapshot()
        };
        let dim = model.dim();
        let vdir = self.dir.join(VECTORS_DIR);
        let todo: Vec<(usize, String)> = snapshot
            .segment_files()
            .enumerate()
            .filter(|(_, (file, _))| !vectors_path(&self.dir, file).exists())
            .map(|(i, (file, _))| (i, file.to_owned()))
            .collect();
        if todo.is_empty() {
            return Ok(0);
        }
        let total: usize =
            todo.iter().map(|(i, _)| snapshot.segment_doc_count(*i).unwrap_or(0) as usize).sum();
        let known = KnownVectors::load(&vdir, model.model_tag(), dim);
        let mut done = 0;
        let mut embedded = 0;
        progress(0, total);
        for (index, file) in &todo {
            let count = snapshot.segment_doc_count(*index).unwrap_or(0);
            let mut ids = Vec::with_capacity(count as usize);
            let mut flat = vec![0.0f32; count as usize * dim];
            let mut texts: Vec<(usize, String)> = Vec::new();
            {
                let records = self.records()?;
                for ordinal in 0..count {
                    let Some(id) = snapshot.segment_doc_id(*index, ordinal) else { continue };
                    ids.push(id);
                    let row = ordinal as usize;
                    if known.copy(&id, &mut flat[row * dim..(row + 1) * dim]) {
                        continue;
                    }
                    // A memory forgotten since (deleted in the segment) keeps a zero vector.
                    if let Some(m) = records.get(&uuid::Uuid::from_bytes(id)) {
                        texts.push((row, embedding_text(m)));
                    }
                }
            }
            done += count as usize - texts.len();
            progress(done, total);
            for chunk in texts.chunks(EMBED_CHUNK) {
                let refs: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
                let base = done;
                let vectors = model
                    .embed_documents(&refs, &mut |n| progress(base + n, total))
                    .map_err(|e| Error::Embed(e.to_string()))?;
                if vectors.len() != refs.len() * dim {
                    return Err(Error::Embed(format!(
                        "the model returned {} floats for {} texts of {dim} dimensions",
                        vectors.len(),
                        refs.len()
                    )));
                }
                for ((row, _), v) in chunk.iter().zip(vectors.chunks_exact(dim)) {
                    flat[row * dim..(row + 1) * dim].copy_from_slice(v);
                }
                done += chunk.len();
                embedded += chunk.len();
                progress(done, total);
            }
            if ids.len() != count as usize {
                return Err(Error::Embed(format!("segment {file}: a document without an id")));
            }
            let bytes = encode(&ids, &flat, dim, model.model_tag())
                .map_err(|e| Error::Embed(format!("segment {file}: {e}")))?;
            let path = vectors_path(&self.dir, file);
            atomic_write::Options::new()
                .mode(semantic_index::layout::PUBLISHED_MODE)
                .write(&path, &bytes)
                .map_err(|e| Error::Io {
                    what: "writing vectors",
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })?;
        }
        // A new generation, same segments: readers look again and map the new files.
        let writer = self.writer()?;
        if let Some(current) = writer.publisher.current() {
            let (seq, segments) = (current.commit_seq, current.segments.clone());
            writer.publisher.publish(seq, segments)?;
            writer.publisher.collect_garbage()?;
        }
        self.reader.refresh()?;
        self.collect_vector_garbage()?;
        Ok(embedded)
    }

    /// Removes vector files whose segment file is gone.
    fn collect_vector_garbage(&mut self) -> Result<()> {
        let vdir = self.dir.join(VECTORS_DIR);
        let seg_dir = self.dir.join(semantic_index::layout::SEGMENTS_DIR);
        let Ok(entries) = std::fs::read_dir(&vdir) else { return Ok(()) };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".vec") else { continue };
            if !seg_dir.join(format!("{stem}.seg")).exists() {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(Error::Io { what: "removing", path: entry.path(), source })
                    }
                }
            }
        }
        Ok(())
    }

    /// Searches with `fusion`: the lexical ranking, the vector ranking of `vector` (the query's
    /// embedding, from the same model as the store's vectors), or their reciprocal rank fusion.
    /// Without vectors in the store, or without `vector`, it is the lexical search. Each hit's
    /// `why.hybrid` says what each side contributed.
    pub fn search_hybrid(
        &mut self,
        query: &Query,
        vector: Option<&[f32]>,
        options: &SearchOptions,
        fusion: Fusion,
    ) -> Result<SearchResults> {
        let Some(vector) = vector.filter(|_| fusion != Fusion::Lexical) else {
            return self.search(query, options);
        };
        if !self.vectors()?.any() {
            return self.search(query, options);
        }
        let snapshot = self.reader.snapshot();
        let Some(vectors) = self.vectors.current.as_ref() else {
            return self.search(query, options);
        };
        let depth = FUSION_DEPTH.max(options.limit);
        let query_vector = QueryVector::new(vector);
        // The vector side: exact scan, then the same filters the lexical side applies.
        let mut vhits = VectorHits::with_capacity(depth * 2);
        vectors.search(&snapshot, &query_vector, &mut vhits);
        let mut vector_ranked: Vec<(u32, u32, f32)> = Vec::with_capacity(depth);
        for h in vhits.as_slice() {
            let Some(doc) = snapshot.segment_doc(h.segment as usize, h.ordinal) else { continue };
            if options.domain.as_deref().is_some_and(|d| doc.domain() != d)
                || (options.sacred_only && !doc.sacred())
                || options.exclude == Some(doc.id())
            {
                continue;
            }
            vector_ranked.push((h.segment, h.ordinal, h.similarity));
            if vector_ranked.len() == depth {
                break;
            }
        }
        let mut lexical = Hits::with_capacity(depth);
        if fusion == Fusion::Hybrid {
            snapshot.search(
                query,
                &SearchOptions { limit: depth, ..options.clone() },
                &mut lexical,
            );
        }
        // (segment, ordinal) → (lexical rank, vector rank, similarity).
        let mut fused: HashMap<(u32, u32), Ranks> = HashMap::new();
        for (rank, h) in lexical.iter().enumerate() {
            fused.entry((h.segment, h.ordinal)).or_insert((None, None, f32::NAN)).0 = Some(rank);
        }
        for (rank, &(s, o, sim)) in vector_ranked.iter().enumerate() {
            let e = fused.entry((s, o)).or_insert((None, None, f32::NAN));
            e.1 = Some(rank);
            e.2 = sim;
        }
        let mut ranked: Vec<((u32, u32), f64, HybridWhy)> = fused
            .into_iter()
            .map(|(key, (l, v, sim))| {
                let (lp, vp) = rrf(l, v);
                let similarity = if sim.is_nan() {
                    vectors.similarity(&query_vector, key.0, key.1)
                } else {
                    Some(sim)
                };
                let why = HybridWhy {
                    lexical_rank: l.map(|r| r + 1),
                    vector_rank: v.map(|r| r + 1),
                    lexical_part: lp,
                    vector_part: vp,
                    similarity,
                };
                let score = match fusion {
                    Fusion::Vector => f64::from(similarity.unwrap_or(0.0)),
                    _ => lp + vp,
                };
                (key, score, why)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(options.limit);
        let hits = ranked
            .into_iter()
            .filter_map(|((s, o), score, hybrid)| {
                let doc = snapshot.segment_doc(s as usize, o)?;
                let lexical_why = lexical
                    .iter()
                    .find(|h| h.segment == s && h.ordinal == o)
                    .and_then(|h| snapshot.explain(query, h, options));
                let why = Why {
                    matched: lexical_why.as_ref().map(|e| e.matched.clone()).unwrap_or_default(),
                    jaccard: lexical_why.as_ref().map_or(0.0, |e| e.jaccard),
                    score_boost: lexical_why.as_ref().map_or(0.0, |e| e.score_boost),
                    sacred_boost: lexical_why.as_ref().map_or(0.0, |e| e.sacred_boost),
                    hybrid: Some(hybrid),
                };
                Some(found(&doc, score, Some(why)))
            })
            .collect();
        Ok(SearchResults {
            keywords: query.keywords().to_vec(),
            generation: snapshot.generation(),
            hits,
        })
    }
}

/// Vectors already computed, by memory id, from the vector files on disk (any generation).
struct KnownVectors {
    files: Vec<Vectors>,
    by_id: HashMap<[u8; 16], (usize, u32)>,
}

impl KnownVectors {
    fn load(dir: &Path, model: &str, dim: usize) -> KnownVectors {
        let mut known = KnownVectors { files: Vec::new(), by_id: HashMap::new() };
        let Ok(entries) = std::fs::read_dir(dir) else { return known };
        for entry in entries.flatten() {
            if entry.path().extension().is_none_or(|e| e != "vec") {
                continue;
            }
            // Read, not mapped: a copy, checked like any vector file (one that fails is skipped
            // and its memories are embedded again).
            let Ok(bytes) = std::fs::read(entry.path()) else { continue };
            let Ok(v) = Vectors::from_vec(bytes) else { continue };
            if v.model() != model || v.dim() != dim {
                continue;
            }
            let file = known.files.len();
            for ordinal in 0..v.len() {
                if let Some(id) = v.id(ordinal) {
                    known.by_id.insert(id, (file, ordinal));
                }
            }
            known.files.push(v);
        }
        known
    }

    fn copy(&self, id: &[u8; 16], out: &mut [f32]) -> bool {
        self.by_id.get(id).is_some_and(|&(f, o)| self.files[f].vector(o, out))
    }
}
