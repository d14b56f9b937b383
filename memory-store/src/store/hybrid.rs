//! Vectors beside the segments and hybrid search: the writer embeds memories after they are
//! published (lexical search has them at once), stores one vector file per segment, and
//! publishes a new generation; searches fuse the lexical ranking with the vector ranking.
//!
//! The model itself is not here (this library does not depend on candle): the caller hands an
//! [`Embed`] (the `embeddings` crate's model in `mcs`) to [`MemoryStore::embed_pending`], and a
//! query's vector to [`MemoryStore::search`] in the [`Query`] ([`Query::with_embedding`]) with
//! [`Ranking::Hybrid`](shm_reader::Ranking::Hybrid) or
//! [`Ranking::Vector`](shm_reader::Ranking::Vector).

use std::collections::HashMap;
use std::path::Path;

use semantic_index::vectors::{encode, vectors_path, VECTORS_DIR};
use shm_reader::vectors::{SnapshotVectors, Vectors};
use shm_reader::{Hits, HybridSearch, Query, SearchOptions, FUSION_DEPTH};

use super::{Error, MemoryStore, Result, SearchResults, Why};
use crate::memory::Memory;
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

/// The store's vector files for its current generation, opened when the generation changes,
/// and the hybrid search's scratch (sized once, for the first query's dimensions).
#[derive(Default)]
pub(crate) struct VectorCache {
    current: Option<SnapshotVectors>,
    search: Option<HybridSearch>,
}

impl MemoryStore {
    fn vectors(&mut self) -> Result<&SnapshotVectors> {
        let snapshot = self.snapshot()?;
        let cache = &mut self.vectors.current;
        if cache.as_ref().is_some_and(|v| v.generation() != snapshot.generation()) {
            *cache = None;
        }
        Ok(cache.get_or_insert_with(|| SnapshotVectors::open(&self.dir, &snapshot)))
    }

    /// Memories still waiting for a vector (their segment has no vector file yet).
    pub fn pending_vectors(&mut self) -> Result<u64> {
        self.vectors()?;
        let snapshot = self.snapshot()?;
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
        let snapshot = self.snapshot()?;
        let dim = model.dim();
        let vdir = self.dir.join(VECTORS_DIR);
        let todo: Vec<(usize, String)> = snapshot
            .segment_files()
            .enumerate()
            .filter(|(_, (file, _))| !current_vector_file(&vectors_path(&self.dir, file)))
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
                    if let Some(m) = records.get(&uuid::Uuid::from_bytes(id))? {
                        texts.push((row, embedding_text(&m)));
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
        self.index()?;
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
                match atomic_write::seam::remove_file(&entry.path()) {
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

    /// Hybrid and vector searches of a query with an embedding, when
    /// the store has vectors of its dimensions (`None` otherwise: the caller searches lexically).
    pub(super) fn search_semantic(
        &mut self,
        query: &Query,
        options: &SearchOptions,
    ) -> Result<Option<SearchResults>> {
        let Some(dim) = query.embedding().map(<[f32]>::len) else { return Ok(None) };
        if self.vectors()?.dim() != Some(dim) {
            return Ok(None);
        }
        let snapshot = self.snapshot()?;
        let cache = &mut self.vectors;
        let Some(vectors) = cache.current.as_ref() else { return Ok(None) };
        let search = match &mut cache.search {
            Some(s) if s.dim() == dim => s,
            slot => slot.insert(HybridSearch::new(dim, FUSION_DEPTH)),
        };
        let mut hits = Hits::with_capacity(options.limit.min(snapshot.len() as usize));
        search.search(&snapshot, vectors, query, options, &mut hits);
        let parts: HashMap<[u8; 16], HybridWhy> = hits
            .iter()
            .filter_map(|h| {
                let f = search.contribution(h.segment, h.ordinal)?;
                let why = HybridWhy {
                    lexical_rank: f.lexical_rank.map(|r| r as usize + 1),
                    vector_rank: f.vector_rank.map(|r| r as usize + 1),
                    lexical_part: f.lexical_part,
                    vector_part: f.vector_part,
                    similarity: f.similarity,
                };
                Some((h.id, why))
            })
            .collect();
        let mut results = self.results(&snapshot, query, options, &hits);
        for found in &mut results.hits {
            // A memory the lexical side does not match has no lexical explanation.
            let why = found.why.get_or_insert_with(|| Why {
                ranking: "",
                matched: Vec::new(),
                relevance: 0.0,
                terms: Vec::new(),
                score_boost: 0.0,
                sacred_boost: 0.0,
                hybrid: None,
            });
            why.ranking = options.ranking.name();
            why.hybrid = parts.get(found.id.as_bytes()).cloned();
        }
        Ok(Some(results))
    }
}

/// Whether `path` is a vector file of this build's version (a file of another version is
/// written again; its checksum is the reader's to check).
fn current_vector_file(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 12];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok()
        && header[..8] == semantic_index::vectors::VECTORS_MAGIC
        && header[8..12] == semantic_index::vectors::VECTORS_VERSION.to_le_bytes()
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
