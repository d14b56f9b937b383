//! Hybrid ranking ([`Ranking::Hybrid`]): the lexical (BM25F) ranking fused with the vector
//! ranking of the query's embedding by reciprocal rank fusion, and the vector ranking alone
//! ([`Ranking::Vector`]).
//!
//! [`Snapshot::search`] ranks lexically whatever the ranking (it knows no vectors);
//! [`HybridSearch::search`] is the fused search. Its scratch is sized once, in
//! [`HybridSearch::new`]: a search allocates nothing (a longer `domain` filter than any before
//! grows one string once).

use crate::reader::Snapshot;
use crate::search::{Hit, Hits, Query, Ranking, SearchOptions};
use crate::vectors::{rrf, QueryVector, SnapshotVectors, VectorHits};

/// How deep each side ranks before fusion (the reference measured top 100 each).
pub const FUSION_DEPTH: usize = 100;

/// One memory's place in both rankings after a [`HybridSearch::search`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fused {
    /// Its segment's index among the snapshot's live segments.
    pub segment: u32,
    /// Its ordinal in that segment.
    pub ordinal: u32,
    /// Its rank (0-based) in the lexical ranking's top [`FUSION_DEPTH`], if there.
    pub lexical_rank: Option<u32>,
    /// Its rank (0-based) in the vector ranking's top [`FUSION_DEPTH`], if there.
    pub vector_rank: Option<u32>,
    /// Cosine similarity of its vector with the query's (int8 approximation), if it has one;
    /// computed only for memories the vector side ranked or that reached the results.
    pub similarity: Option<f32>,
    /// The lexical side's share of the fused score, `1/(60 + rank + 1)` (0 when unranked).
    pub lexical_part: f64,
    /// The vector side's share.
    pub vector_part: f64,
    /// Query keywords or terms it has (from the lexical side; 0 when unranked there).
    overlap: u32,
    /// Its fused score (its similarity for [`Ranking::Vector`]).
    score: f64,
}

/// A reusable hybrid search: the quantized query, both sides' top lists and the fusion's
/// table, sized once.
#[derive(Debug)]
pub struct HybridSearch {
    depth: usize,
    query: QueryVector,
    vector_hits: VectorHits,
    lexical: Hits,
    lexical_options: SearchOptions,
    spare: String,
    fused: Vec<Fused>,
    /// Open addressing from a memory (segment, ordinal) to its entry in `fused` (`EMPTY`:
    /// free): both sides' entries of one memory merge without sorting.
    slots: Vec<u32>,
}

/// A free slot of [`HybridSearch`]'s table.
const EMPTY: u32 = u32::MAX;

/// The slot where the search for `(segment, ordinal)` starts in a table of `mask + 1` slots.
fn slot_of(segment: u32, ordinal: u32, mask: usize) -> usize {
    let key = (u64::from(segment) << 32) | u64::from(ordinal);
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & mask
}

impl HybridSearch {
    /// Scratch for queries of `dim` dimensions, fusing the top `depth` of each side.
    pub fn new(dim: usize, depth: usize) -> HybridSearch {
        HybridSearch {
            depth,
            query: QueryVector::with_dim(dim),
            // Twice as deep: the vector side's filters (domain, sacred, exclude) run after
            // the scan.
            vector_hits: VectorHits::with_capacity(2 * depth),
            lexical: Hits::with_capacity(depth),
            lexical_options: SearchOptions::default(),
            spare: String::new(),
            fused: Vec::with_capacity(2 * depth),
            // At most 2 × depth entries: a table at most a quarter full.
            slots: vec![EMPTY; (8 * depth).next_power_of_two()],
        }
    }

    /// Searches `snapshot` with `options.ranking`: [`Ranking::Hybrid`] fuses the lexical
    /// ranking with the vector ranking of the query's [embedding](Query::embedding),
    /// [`Ranking::Vector`] ranks by the embedding alone. Any other ranking, a query without an
    /// embedding, or vectors of other dimensions give the lexical search. `hits` is cleared
    /// first; its hits' scores are the fused scores (or similarities). No allocation.
    pub fn search(
        &mut self,
        snapshot: &Snapshot,
        vectors: &SnapshotVectors,
        query: &Query,
        options: &SearchOptions,
        hits: &mut Hits,
    ) {
        self.fused.clear();
        let embedding = query.embedding().filter(|e| {
            options.ranking.is_semantic()
                && e.len() == self.query.dim()
                && vectors.dim() == Some(e.len())
        });
        let Some(embedding) = embedding else {
            snapshot.search(query, options, hits);
            return;
        };
        self.query.set(embedding);
        let depth = self.depth;
        // The vector side, filtered like the lexical side. Without a filter the top `depth` is
        // all it needs (and no document is read to filter it).
        let filtered = options.domain.is_some() || options.sacred_only || options.exclude.is_some();
        self.vector_hits.set_limit(if filtered { 2 * depth } else { depth });
        vectors.search(snapshot, &self.query, &mut self.vector_hits);
        let mut rank = 0u32;
        for h in self.vector_hits.as_slice() {
            if rank as usize == depth {
                break;
            }
            if filtered {
                let Some(doc) = snapshot.segment_doc(h.segment as usize, h.ordinal) else {
                    continue;
                };
                if options.domain.as_deref().is_some_and(|d| doc.domain() != d)
                    || (options.sacred_only && !doc.sacred())
                    || options.exclude == Some(doc.id())
                {
                    continue;
                }
            }
            self.fused.push(Fused {
                segment: h.segment,
                ordinal: h.ordinal,
                lexical_rank: None,
                vector_rank: Some(rank),
                similarity: Some(h.similarity),
                lexical_part: 0.0,
                vector_part: 0.0,
                overlap: 0,
                score: 0.0,
            });
            rank += 1;
        }
        // The lexical side.
        if options.ranking == Ranking::Hybrid {
            let o = &mut self.lexical_options;
            // The domain's string is kept between searches (a search without a domain parks
            // it), so copying the filter does not allocate.
            match &options.domain {
                Some(domain) => {
                    let mut d = o.domain.take().unwrap_or_else(|| std::mem::take(&mut self.spare));
                    d.clear();
                    d.push_str(domain);
                    o.domain = Some(d);
                }
                None => {
                    if let Some(d) = o.domain.take() {
                        self.spare = d;
                    }
                }
            }
            o.sacred_only = options.sacred_only;
            o.w_score = options.w_score;
            o.w_sacred = options.w_sacred;
            o.exclude = options.exclude;
            o.ranking = Ranking::Bm25f;
            o.limit = depth;
            snapshot.search(query, o, &mut self.lexical);
            // One entry per memory: a lexical hit the vector side ranked merges into its
            // entry (found through the table), any other gets its own.
            // The table has 8 × depth slots for at most 2 × depth entries (each side's top
            // `depth`): never more than a quarter full, so every probe ends at a free slot.
            let mask = self.slots.len() - 1;
            debug_assert!(self.fused.len() + self.lexical.len() <= mask / 2);
            self.slots.fill(EMPTY);
            for (i, f) in self.fused.iter().enumerate() {
                let mut at = slot_of(f.segment, f.ordinal, mask);
                while self.slots[at] != EMPTY {
                    at = (at + 1) & mask;
                }
                self.slots[at] = i as u32;
            }
            for (rank, h) in self.lexical.iter().enumerate() {
                let mut at = slot_of(h.segment, h.ordinal, mask);
                let mut found = None;
                while self.slots[at] != EMPTY {
                    let i = self.slots[at] as usize;
                    if (self.fused[i].segment, self.fused[i].ordinal) == (h.segment, h.ordinal) {
                        found = Some(i);
                        break;
                    }
                    at = (at + 1) & mask;
                }
                if let Some(i) = found {
                    let f = &mut self.fused[i];
                    f.lexical_rank = Some(rank as u32);
                    f.overlap = h.overlap;
                    continue;
                }
                self.slots[at] = self.fused.len() as u32;
                self.fused.push(Fused {
                    segment: h.segment,
                    ordinal: h.ordinal,
                    lexical_rank: Some(rank as u32),
                    vector_rank: None,
                    similarity: None,
                    lexical_part: 0.0,
                    vector_part: 0.0,
                    overlap: h.overlap,
                    score: 0.0,
                });
            }
        }
        hits.clear();
        // Score every memory (ranks only: no document, no vector read), then find the score the
        // `limit`-th best reaches: only memories at or above it can enter `hits`, so only those
        // have their document read (id, timestamp for the order) and, for lexical-only hits,
        // their similarity computed. Same hits as offering every memory.
        for f in &mut self.fused {
            let (l, v) = rrf(f.lexical_rank.map(|r| r as usize), f.vector_rank.map(|r| r as usize));
            f.lexical_part = l;
            f.vector_part = v;
            f.score = match options.ranking {
                Ranking::Vector => f64::from(f.similarity.unwrap_or(0.0)),
                _ => l + v,
            };
        }
        let keep = options.limit.min(hits.capacity());
        let bar = if keep == 0 || keep >= self.fused.len() {
            f64::NEG_INFINITY
        } else {
            // Best first up to the `keep`-th (the order of `fused` does not matter: `hits`
            // orders what it is offered, `contribution` looks memories up by key).
            let at = keep - 1;
            self.fused.select_nth_unstable_by(at, |a, b| b.score.total_cmp(&a.score)).1.score
        };
        self.offer(snapshot, vectors, options, hits, |s| s >= bar);
        // A memory at or above the bar without a document (a torn segment) leaves room: the
        // rest compete for it, as when every memory is offered.
        if hits.len() < keep {
            self.offer(snapshot, vectors, options, hits, |s| s < bar);
        }
        hits.finish();
    }

    /// Offers to `hits` the fused memories whose score passes `take`, reading their documents
    /// and (lexical-only ones) their similarity.
    fn offer(
        &mut self,
        snapshot: &Snapshot,
        vectors: &SnapshotVectors,
        options: &SearchOptions,
        hits: &mut Hits,
        take: impl Fn(f64) -> bool,
    ) {
        for f in &mut self.fused {
            let score = f.score;
            if !take(score) {
                continue;
            }
            if f.similarity.is_none() {
                f.similarity = vectors.similarity(&self.query, f.segment, f.ordinal);
            }
            let Some(doc) = snapshot.segment_doc(f.segment as usize, f.ordinal) else { continue };
            hits.offer(
                options.limit,
                Hit {
                    segment: f.segment,
                    ordinal: f.ordinal,
                    id: doc.id(),
                    score,
                    overlap: f.overlap,
                    timestamp_micros: doc.timestamp_micros(),
                },
            );
        }
    }

    /// What each side contributed to a hit of the last [`search`](HybridSearch::search)
    /// (`None` for a memory it did not rank, or after a lexical search).
    pub fn contribution(&self, segment: u32, ordinal: u32) -> Option<&Fused> {
        self.fused.iter().find(|f| (f.segment, f.ordinal) == (segment, ordinal))
    }

    /// Inverted lists its vector side probes per vector file (default:
    /// [`default_probes`](crate::vectors::default_probes)); `usize::MAX` scans every vector.
    pub fn set_probes(&mut self, probes: usize) {
        self.vector_hits.set_probes(probes);
    }

    /// How deep each side ranks.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Dimensions of the queries it takes.
    pub fn dim(&self) -> usize {
        self.query.dim()
    }
}
