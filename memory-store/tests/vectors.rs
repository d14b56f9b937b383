//! Vectors beside the segments and hybrid search, with a deterministic stand-in model (a
//! hashed bag of words): the store's embedding, publication, resumption and fusion, without the
//! real model (its own tests live in the embeddings crate).

use memory_store::{Embed, EmbedError, Memory, MemoryStore, Query, Ranking, SearchOptions};

const DIM: usize = 64;

/// Hashed bag of words, L2-normalized; fails after `fail_after` texts when set.
struct BagOfWords {
    fail_after: Option<usize>,
    seen: std::cell::Cell<usize>,
}

impl BagOfWords {
    fn new() -> BagOfWords {
        BagOfWords { fail_after: None, seen: std::cell::Cell::new(0) }
    }

    fn vector(text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; DIM];
        for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let h = w.to_lowercase().bytes().fold(14695981039346656037u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(1099511628211)
            });
            v[(h % DIM as u64) as usize] += 1.0;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.iter().map(|x| x / n).collect()
    }
}

impl Embed for BagOfWords {
    fn model_tag(&self) -> &str {
        "bag-of-words-test"
    }
    fn dim(&self) -> usize {
        DIM
    }
    fn embed_documents(
        &self,
        texts: &[&str],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>, EmbedError> {
        if let Some(limit) = self.fail_after {
            if self.seen.get() + texts.len() > limit {
                return Err("stand-in model stopped".into());
            }
        }
        self.seen.set(self.seen.get() + texts.len());
        progress(texts.len());
        Ok(texts.iter().flat_map(|t| BagOfWords::vector(t)).collect())
    }
}

fn memory(domain: &str, question: &str, synthesis: &str) -> Memory {
    let mut m = Memory::new(domain, question);
    m.synthesis = synthesis.into();
    m
}

#[test]
fn vectors_wait_then_publish_and_hybrid_finds_by_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path().join("s")).unwrap();
    let a = store.store(memory("ops", "how do we boot the cluster", "power on nodes")).unwrap();
    let b = store.store(memory("ops", "erase stale records", "forget old data")).unwrap();
    // Lexical search has them at once; both wait for a vector.
    assert_eq!(store.pending_vectors().unwrap(), 2);
    assert!(!store.has_vectors().unwrap());
    let q = Query::from_text("stale records");
    let lexical = store.search(&q, &SearchOptions::default()).unwrap();
    assert_eq!(lexical.hits[0].id, b);

    let generation = store.generation();
    let embedded = store.embed_pending(&BagOfWords::new(), &mut |_, _| {}).unwrap();
    assert_eq!(embedded, 2);
    assert_eq!(store.pending_vectors().unwrap(), 0);
    assert!(store.has_vectors().unwrap());
    assert!(store.generation() > generation, "vectors are published as a new generation");

    // A reader in another handle sees them.
    let mut reader = MemoryStore::open_read_only(dir.path().join("s")).unwrap();
    assert!(reader.has_vectors().unwrap());
    assert_eq!(reader.pending_vectors().unwrap(), 0);

    // The vector side alone finds `a` for words only its text has ("power nodes"), which the
    // lexical side also finds; a hybrid hit says what each side gave.
    let v = BagOfWords::vector("power nodes cluster");
    let q = Query::from_text("power nodes cluster").with_embedding(&v);
    let vector = SearchOptions { ranking: Ranking::Vector, ..SearchOptions::default() };
    let by_vector = reader.search(&q, &vector).unwrap();
    assert_eq!(by_vector.hits[0].id, a);
    assert_eq!(by_vector.hits[0].why.as_ref().unwrap().ranking, "vector");
    let options = SearchOptions { ranking: Ranking::Hybrid, ..SearchOptions::default() };
    let hybrid = reader.search(&q, &options).unwrap();
    assert_eq!(hybrid.hits[0].id, a);
    let why = hybrid.hits[0].why.as_ref().unwrap();
    assert_eq!(why.ranking, "hybrid");
    let parts = why.hybrid.as_ref().unwrap();
    assert_eq!(parts.lexical_rank, Some(1));
    assert_eq!(parts.vector_rank, Some(1));
    assert!((hybrid.hits[0].score - 2.0 / 61.0).abs() < 1e-9);
    assert!(parts.similarity.unwrap() > 0.5);
    // `b` shares no word with the query: only the vector side ranks it.
    let b_hit = hybrid.hits.iter().find(|h| h.id == b).unwrap();
    let b_parts = b_hit.why.as_ref().unwrap().hybrid.as_ref().unwrap();
    assert_eq!((b_parts.lexical_rank, b_parts.vector_rank), (None, Some(2)));
    // Filters hold on the vector side too.
    let other = SearchOptions { domain: Some("none".into()), ..vector.clone() };
    assert!(reader.search(&q, &other).unwrap().hits.is_empty());
    // Without an embedding, a hybrid search is the lexical one.
    let plain = Query::from_text("power nodes cluster");
    let lexical = reader.search(&plain, &options).unwrap();
    assert_eq!(lexical.hits.len(), 1);
    assert!(lexical.hits[0].why.as_ref().unwrap().hybrid.is_none());
}

#[test]
fn embedding_resumes_after_a_failure_and_merges_reuse_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = MemoryStore::open(&path).unwrap();
    for i in 0..3 {
        store.store(memory("d", &format!("question number {i}"), "text")).unwrap();
    }
    // The model dies after the first segment: that segment's vectors are durable.
    let failing = BagOfWords { fail_after: Some(1), seen: std::cell::Cell::new(0) };
    assert!(store.embed_pending(&failing, &mut |_, _| {}).is_err());
    drop(store);
    let mut store = MemoryStore::open(&path).unwrap();
    assert_eq!(store.pending_vectors().unwrap(), 2, "one segment's vectors survived");
    assert_eq!(store.embed_pending(&BagOfWords::new(), &mut |_, _| {}).unwrap(), 2);
    assert_eq!(store.pending_vectors().unwrap(), 0);

    // More stores trigger a merge (4 segments in a tier); the merged segment's vectors are
    // copied from the old files, only the new memory is embedded.
    store.store(memory("d", "question number 3", "text")).unwrap();
    assert_eq!(store.pending_vectors().unwrap(), 4, "the merged segment waits");
    let model = BagOfWords::new();
    assert_eq!(store.embed_pending(&model, &mut |_, _| {}).unwrap(), 1);
    assert_eq!(store.pending_vectors().unwrap(), 0);
    let vec_files = std::fs::read_dir(path.join("vectors")).unwrap().count();
    assert_eq!(vec_files, store.stats().unwrap().segments, "old vector files were removed");
}

#[test]
fn version_2_vector_files_are_rewritten_without_embedding() {
    use semantic_index::vectors::{Layout, VECTORS_HEADER_LEN, VECTORS_VERSION};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = MemoryStore::open(&path).unwrap();
    store.store(memory("d", "question number 0", "text")).unwrap();
    let second = store.store(memory("d", "question number 1", "text")).unwrap();
    assert_eq!(store.embed_pending(&BagOfWords::new(), &mut |_, _| {}).unwrap(), 2);
    // Turn every vector file into the version 2 file of the same vectors (no 4-bit codes).
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(path.join("vectors"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vec"))
        .collect();
    assert!(!files.is_empty());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(u32_at(8), VECTORS_VERSION);
        let old = Layout::of_version(2, u32_at(16), u32_at(12), u32_at(20)).unwrap();
        let mut old_bytes = bytes[..old.len].to_vec();
        old_bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let sum = twox_hash::XxHash3_64::oneshot(&old_bytes[VECTORS_HEADER_LEN..]);
        old_bytes[24..32].copy_from_slice(&sum.to_le_bytes());
        // The file is read-only: replace it.
        std::fs::remove_file(file).unwrap();
        std::fs::write(file, old_bytes).unwrap();
    }
    drop(store);
    let mut store = MemoryStore::open(&path).unwrap();
    // Version 2 files are still read: nothing waits, and the vector side finds by meaning.
    assert_eq!(store.pending_vectors().unwrap(), 0);
    let model = BagOfWords::new();
    assert_eq!(store.embed_pending(&model, &mut |_, _| {}).unwrap(), 0, "vectors reused");
    assert_eq!(model.seen.get(), 0, "the model embedded nothing");
    for entry in std::fs::read_dir(path.join("vectors")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert_eq!(bytes[8..12], VECTORS_VERSION.to_le_bytes(), "rewritten in this version");
    }
    let v = BagOfWords::vector("question number 1 text");
    let q = Query::from_text("question number 1").with_embedding(&v);
    let options = SearchOptions { ranking: Ranking::Vector, ..SearchOptions::default() };
    let hits = store.search(&q, &options).unwrap().hits;
    assert_eq!(hits[0].id, second);
    assert_eq!(hits[0].why.as_ref().unwrap().ranking, "vector");
}
