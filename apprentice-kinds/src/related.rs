//! Memories related to a memory, as the navigator follows them: the nearest by the memory's own
//! vector when its segment has vectors (no model needed: the vector is stored), else a BM25F
//! search for its most discriminative terms. Buffers are sized once and reused across
//! invitations.

use apprentice_core::Context;
use shm_reader::vectors::{QueryVector, SnapshotVectors, VectorHits};
use shm_reader::{Hit, Hits, Query, Ranking, SearchOptions, Snapshot};

/// Vector neighbours read per memory before the context's filters: deep enough that a domain
/// or time filter still leaves a few.
const VECTOR_DEPTH: usize = 32;
/// Inverted lists probed for a memory's neighbours (files that have lists): its own list and
/// the nearest others hold its nearest few, and probing fewer than a query search does keeps
/// the three related searches of an invitation cheap (approximate, like any probed search).
const RELATED_PROBES: usize = 8;
/// Terms of a memory searched for its related memories when it has no vector: its best by
/// their part of its own BM25F relevance (idf × impact), the rest add little but cost.
pub(crate) const TERMS: usize = 6;

/// How related memories were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    /// The memory's own vector (cosine similarity).
    Vector,
    /// Its most discriminative terms (BM25F).
    Terms,
}

/// Reused scratch for [`RelatedSearch::find`].
#[derive(Debug)]
pub(crate) struct RelatedSearch {
    own: Vec<f32>,
    query: Option<QueryVector>,
    vector_hits: VectorHits,
    lexical: Hits,
    /// A hit's memory's terms by contribution, reused.
    terms: Vec<(f64, String)>,
    limit: usize,
    found: Vec<Hit>,
}

impl RelatedSearch {
    /// Scratch for up to `limit` related memories per memory.
    pub(crate) fn new(limit: usize) -> RelatedSearch {
        RelatedSearch {
            own: Vec::new(),
            query: None,
            vector_hits: {
                let mut hits = VectorHits::with_capacity(VECTOR_DEPTH);
                hits.set_probes(RELATED_PROBES);
                hits
            },
            // One more than asked: the memory itself is among its own terms' best matches.
            lexical: Hits::with_capacity(limit + 1),
            terms: Vec::with_capacity(64),
            limit,
            found: Vec::with_capacity(limit),
        }
    }

    /// Up to `limit` memories related to `hit`'s (itself excluded), best first, into
    /// [`found`](RelatedSearch::found): within `options`' domain and sacred filters and `context`'s time range.
    /// By its vector when `vectors` has one for it, else by its terms. `None` when the hit's
    /// memory is no longer in `snapshot`.
    pub(crate) fn find(
        &mut self,
        snapshot: &Snapshot,
        vectors: Option<&SnapshotVectors>,
        hit: &Hit,
        options: &SearchOptions,
        context: &Context,
    ) -> Option<By> {
        let (limit, out) = (self.limit, &mut self.found);
        out.clear();
        let doc = snapshot.doc(hit)?;
        let file = vectors.and_then(|v| v.segment(hit.segment as usize));
        if let (Some(vectors), Some(file)) = (vectors, file) {
            self.own.resize(file.dim(), 0.0);
            if file.vector(hit.ordinal, &mut self.own) {
                let query = match &mut self.query {
                    Some(q) => {
                        q.set(&self.own);
                        q
                    }
                    slot => slot.insert(QueryVector::new(&self.own)),
                };
                vectors.search(snapshot, query, &mut self.vector_hits);
                for v in self.vector_hits.as_slice() {
                    if out.len() == limit {
                        break;
                    }
                    let Some(d) = snapshot.segment_doc(v.segment as usize, v.ordinal) else {
                        continue;
                    };
                    if d.id() == hit.id
                        || options.domain.as_deref().is_some_and(|x| d.domain() != x)
                        || (options.sacred_only && !d.sacred())
                        || !context.in_time_range(d.timestamp_micros())
                    {
                        continue;
                    }
                    out.push(Hit {
                        segment: v.segment,
                        ordinal: v.ordinal,
                        id: d.id(),
                        score: f64::from(v.similarity),
                        overlap: 0,
                        timestamp_micros: d.timestamp_micros(),
                    });
                }
                return Some(By::Vector);
            }
        }
        // No vector: the memory's own query, explained against itself, ranks its terms by
        // their part of its relevance; the best few are the search.
        let own = Query::from_keywords(doc.keywords());
        let ranked = SearchOptions { ranking: Ranking::Bm25f, ..SearchOptions::default() };
        let explanation = snapshot.explain(&own, hit, &ranked)?;
        self.terms.clear();
        self.terms.extend(explanation.terms.into_iter().map(|t| (t.contribution, t.term)));
        self.terms.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        self.terms.truncate(TERMS);
        // The best terms are already analyzed (stems): the search is made of them directly.
        let query = Query::from_terms(self.terms.iter().map(|(_, t)| t));
        let lexical = SearchOptions {
            limit: limit + 1,
            ranking: Ranking::Bm25f,
            exclude: Some(hit.id),
            ..options.clone()
        };
        snapshot.search(&query, &lexical, &mut self.lexical);
        self.found.extend(
            self.lexical
                .iter()
                .filter(|h| h.id != hit.id && context.in_time_range(h.timestamp_micros))
                .take(limit)
                .copied(),
        );
        Some(By::Terms)
    }

    /// What the last [`find`](RelatedSearch::find) found, best first.
    pub(crate) fn found(&self) -> &[Hit] {
        &self.found
    }
}
