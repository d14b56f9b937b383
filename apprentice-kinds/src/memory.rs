//! What the shipped kinds read: a store's index, mapped read-only through `shm_reader`.

use std::ops::{Deref, DerefMut};
use std::path::Path;

use shm_reader::vectors::SnapshotVectors;
use shm_reader::{Hits, HybridSearch, Query, Reader, ReaderError, SearchOptions, FUSION_DEPTH};

/// A store's published index as the kinds read it: a [`shm_reader::Reader`] (every method of
/// which is reachable through `Deref`) behind `apprentice_core`'s [`Memory`] trait, so the
/// runtime opens and refreshes it without depending on the reader; beside it the vector files
/// of the current generation (mapped once per generation, when a kind first asks) and the
/// hybrid search's scratch (sized once).
///
/// [`Memory`]: apprentice_core::Memory
#[derive(Debug)]
pub struct MappedStore {
    reader: Reader,
    vectors: Option<SnapshotVectors>,
    hybrid: Option<HybridSearch>,
}

impl MappedStore {
    /// Maps the store at `dir` read-only.
    pub fn open(dir: impl AsRef<Path>) -> Result<MappedStore, ReaderError> {
        Reader::open(dir).map(MappedStore::from)
    }

    /// The vector files of the current generation, `None` when no live segment has one. Maps
    /// them the first time it is asked in a generation; no system call afterwards.
    pub fn vectors(&mut self) -> Option<&SnapshotVectors> {
        let generation = self.reader.generation();
        if self.vectors.as_ref().is_none_or(|v| v.generation() != generation) {
            let snapshot = self.reader.snapshot();
            // The mappings of segments still live are kept; only new files are mapped.
            self.vectors = Some(match self.vectors.take() {
                Some(previous) => previous.follow(self.reader.dir(), &snapshot),
                None => SnapshotVectors::open(self.reader.dir(), &snapshot),
            });
        }
        self.vectors.as_ref().filter(|v| v.any())
    }

    /// Whether the current generation has vectors of `dim` dimensions.
    pub fn has_vectors_of(&mut self, dim: usize) -> bool {
        self.vectors().and_then(SnapshotVectors::dim) == Some(dim)
    }

    /// Refreshes, then searches into `hits` (cleared first): hybrid (or vector alone) when
    /// `options.ranking` is semantic, `query` has an [embedding](Query::embedding) and the
    /// store has vectors of its dimensions ([`HybridSearch`], whose scratch is kept for the
    /// next search); lexical otherwise. Returns whether the search used vectors.
    pub fn search_semantic(
        &mut self,
        query: &Query,
        options: &SearchOptions,
        hits: &mut Hits,
    ) -> Result<bool, ReaderError> {
        self.reader.refresh()?;
        let snapshot = self.reader.snapshot();
        let dim = match query.embedding() {
            Some(e) if options.ranking.is_semantic() && self.has_vectors_of(e.len()) => e.len(),
            _ => {
                snapshot.search(query, options, hits);
                return Ok(false);
            }
        };
        let hybrid = match &mut self.hybrid {
            Some(h) if h.dim() == dim => h,
            slot => slot.insert(HybridSearch::new(dim, FUSION_DEPTH)),
        };
        let Some(vectors) = self.vectors.as_ref() else {
            snapshot.search(query, options, hits);
            return Ok(false);
        };
        hybrid.search(&snapshot, vectors, query, options, hits);
        Ok(true)
    }

    /// The reader underneath.
    pub fn into_inner(self) -> Reader {
        self.reader
    }
}

impl From<Reader> for MappedStore {
    fn from(reader: Reader) -> MappedStore {
        MappedStore { reader, vectors: None, hybrid: None }
    }
}

impl Deref for MappedStore {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

impl DerefMut for MappedStore {
    fn deref_mut(&mut self) -> &mut Reader {
        &mut self.reader
    }
}

impl apprentice_core::Memory for MappedStore {
    type Error = ReaderError;

    fn open(store: &Path) -> Result<MappedStore, ReaderError> {
        MappedStore::open(store)
    }

    fn refresh(&mut self) -> Result<(), ReaderError> {
        self.reader.refresh().map(drop)
    }

    fn generation(&self) -> u64 {
        self.reader.generation()
    }
}
