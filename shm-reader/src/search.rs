//! Search: prepared queries, options, the caller's top-k buffer, and the search of one segment.

use std::cell::RefCell;
use std::cmp::Ordering;

use semantic_index::format::{self, ArchivedSegmentData};

use crate::jaccard::{Cursor, WINDOW};
use crate::rank::{idf_weight, RankCursor, MAX_QUERY_TERMS, RANK_WINDOW};
use crate::segment::{find_term, has_term, table_str, Segment, Storage};

/// A prepared query: its keywords, extracted once, and scratch space sized for them.
///
/// Preparing allocates; searching with a prepared query does not. A `Query` is `Send` but not
/// `Sync`: each thread prepares (or clones) its own.
#[derive(Debug)]
pub struct Query {
    pub(crate) keywords: Vec<String>,
    /// [`format::term_hash`] of each keyword, computed once for every segment searched.
    pub(crate) hashes: Vec<u64>,
    pub(crate) cursors: RefCell<Vec<Cursor>>,
    /// The ranked (BM25F) terms: the analyzer's, distinct, at most [`MAX_QUERY_TERMS`].
    pub(crate) terms: Vec<String>,
    /// [`format::term_hash`] of each ranked term.
    pub(crate) term_hashes: Vec<u64>,
    pub(crate) rank: RefCell<RankScratch>,
    /// The query's embedding for [`Ranking::Hybrid`] and [`Ranking::Vector`] (empty: none).
    embedding: Vec<f32>,
}

/// A ranked search's scratch, sized for the query's terms when it is prepared.
#[derive(Debug, Default)]
pub(crate) struct RankScratch {
    pub(crate) cursors: Vec<RankCursor>,
    /// Prefix sums of the cursors' bounds.
    pub(crate) prefix: Vec<u64>,
    /// Per term: its idf weight for the segments being searched.
    pub(crate) weights: Vec<u64>,
    /// Per term: its document frequency summed over those segments.
    pub(crate) dfs: Vec<u64>,
}

impl Clone for Query {
    fn clone(&self) -> Query {
        let mut q = Query::with_terms(self.keywords.clone(), self.terms.clone());
        q.embedding.clone_from(&self.embedding);
        q
    }
}

impl Query {
    /// The query made of the keywords of `text` ([`semantic_index::keywords`]' rule).
    pub fn from_text(text: &str) -> Query {
        Query::with_terms(semantic_index::keywords(text), semantic_index::query_terms([text]))
    }

    /// The query made of caller-given keywords; each passes through the same keyword rule, so
    /// `"Memory-Mapped"` becomes `memory` and `mapped`.
    pub fn from_keywords<I>(keywords: I) -> Query
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let texts: Vec<String> = keywords.into_iter().map(|k| k.as_ref().to_owned()).collect();
        Query::with_terms(semantic_index::keywords_of(&texts), semantic_index::query_terms(&texts))
    }

    /// A query of ranked terms that already passed the analyzer (as [`Query::terms`] or an
    /// explanation's terms give them: stemmed, stop words dropped), for [`Ranking::Bm25f`]
    /// and the rankings built on it; it has no keywords, so [`Ranking::Jaccard`] finds
    /// nothing with it. Duplicates are dropped; the first [`MAX_QUERY_TERMS`] are kept.
    pub fn from_terms<I>(terms: I) -> Query
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut distinct: Vec<String> = Vec::new();
        for t in terms {
            let t = t.as_ref();
            if !t.is_empty() && !distinct.iter().any(|d| d == t) {
                distinct.push(t.to_owned());
            }
        }
        Query::with_terms(Vec::new(), distinct)
    }

    /// A query from keywords that already passed the keyword rule and are distinct.
    pub(crate) fn from_prepared(keywords: Vec<String>) -> Query {
        let terms = semantic_index::query_terms(&keywords);
        Query::with_terms(keywords, terms)
    }

    fn with_terms(keywords: Vec<String>, mut terms: Vec<String>) -> Query {
        terms.truncate(MAX_QUERY_TERMS);
        let cursors = RefCell::new(Vec::with_capacity(keywords.len()));
        let hashes = keywords.iter().map(|k| format::term_hash(k.as_bytes())).collect();
        let term_hashes = terms.iter().map(|k| format::term_hash(k.as_bytes())).collect();
        let n = terms.len();
        let rank = RefCell::new(RankScratch {
            cursors: Vec::with_capacity(n),
            prefix: Vec::with_capacity(n + 1),
            weights: Vec::with_capacity(n),
            dfs: Vec::with_capacity(n),
        });
        Query { keywords, hashes, cursors, terms, term_hashes, rank, embedding: Vec::new() }
    }

    /// Sets the query's embedding (the model's unit vector of the query's text), which
    /// [`Ranking::Hybrid`] and [`Ranking::Vector`] rank by; reuses the buffer. An empty slice
    /// removes it.
    pub fn set_embedding(&mut self, embedding: &[f32]) {
        self.embedding.clear();
        self.embedding.extend_from_slice(embedding);
    }

    /// The query with `embedding` (see [`Query::set_embedding`]).
    pub fn with_embedding(mut self, embedding: &[f32]) -> Query {
        self.set_embedding(embedding);
        self
    }

    /// The query's embedding, if it has one.
    pub fn embedding(&self) -> Option<&[f32]> {
        (!self.embedding.is_empty()).then_some(&self.embedding[..])
    }

    /// The query's ranked terms (BM25F): stemmed, stop words dropped, distinct.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// Whether the query has nothing to search for under `ranking`.
    pub fn is_empty_for(&self, ranking: Ranking) -> bool {
        match ranking {
            Ranking::Jaccard => self.keywords.is_empty(),
            Ranking::Bm25f => self.terms.is_empty(),
            Ranking::Hybrid => self.terms.is_empty() && self.embedding.is_empty(),
            Ranking::Vector => self.embedding.is_empty(),
        }
    }

    /// Sets the idf weights from `n` documents and the per-term document frequencies summed
    /// into the scratch by [`Segment::add_rank_stats`]. No allocation.
    pub(crate) fn rank_stats<'s, B: Storage + 's>(
        &self,
        segments: impl Iterator<Item = &'s Segment<B>> + Clone,
    ) {
        let Ok(mut scratch) = self.rank.try_borrow_mut() else { return };
        let RankScratch { dfs, weights, .. } = &mut *scratch;
        dfs.clear();
        dfs.resize(self.terms.len(), 0);
        let mut n = 0u64;
        for segment in segments {
            segment.add_rank_stats(self, dfs, &mut n);
        }
        weights.clear();
        weights.extend(dfs.iter().map(|&df| idf_weight(n, df).max(1)));
    }

    /// The query's keywords (its set Q).
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// Whether the query has no keyword (it then matches nothing).
    pub fn is_empty(&self) -> bool {
        self.keywords.is_empty()
    }
}

/// How to search: result count, filters and the two weights of the [`score`].
#[derive(Clone, Debug, PartialEq)]
pub struct SearchOptions {
    /// At most this many hits (also bounded by the capacity of the [`Hits`] buffer).
    pub limit: usize,
    /// Only memories of this domain.
    pub domain: Option<String>,
    /// Only sacred memories.
    pub sacred_only: bool,
    /// Weight of the memory's own score.
    pub w_score: f64,
    /// Weight of the sacred flag.
    pub w_sacred: f64,
    /// Never return the memory with this id (used by `related`).
    pub exclude: Option<[u8; 16]>,
    /// How relevance is computed.
    pub ranking: Ranking,
}

/// How a search computes relevance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ranking {
    /// BM25F over the question, insights and synthesis, stemmed, with the boosts breaking ties
    /// among memories of comparable relevance ([`TIE_BREAK`](crate::TIE_BREAK)). The
    /// default.
    #[default]
    Bm25f,
    /// The original design's Jaccard similarity of keyword sets plus the additive boosts ([`score`]).
    Jaccard,
    /// BM25F fused with the vector ranking of the query's embedding ([`Query::set_embedding`])
    /// by reciprocal rank fusion (k = 60, the top [`FUSION_DEPTH`](crate::FUSION_DEPTH) of
    /// each): [`HybridSearch`](crate::HybridSearch) runs it. A lexical search (such as
    /// [`Snapshot::search`](crate::Snapshot::search)) ranks it as [`Ranking::Bm25f`].
    Hybrid,
    /// The vector ranking alone: cosine similarity of the memories' vectors with the query's
    /// embedding ([`HybridSearch`](crate::HybridSearch)); lexical searches rank it as BM25F.
    Vector,
}

impl Ranking {
    /// The ranking's name, as `mcs search --ranking` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Ranking::Bm25f => "bm25f",
            Ranking::Jaccard => "jaccard",
            Ranking::Hybrid => "hybrid",
            Ranking::Vector => "vector",
        }
    }

    /// The ranking a lexical search uses for it: itself, or [`Ranking::Bm25f`] for the rankings
    /// that need vectors.
    pub fn lexical(self) -> Ranking {
        match self {
            Ranking::Jaccard => Ranking::Jaccard,
            _ => Ranking::Bm25f,
        }
    }

    /// Whether it ranks by the query's embedding ([`Ranking::Hybrid`], [`Ranking::Vector`]).
    pub fn is_semantic(self) -> bool {
        matches!(self, Ranking::Hybrid | Ranking::Vector)
    }

    /// The ranking named `name` (see [`Ranking::name`]).
    pub fn from_name(name: &str) -> Option<Ranking> {
        [Ranking::Bm25f, Ranking::Jaccard, Ranking::Hybrid, Ranking::Vector]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// Default weight of the memory's own score.
pub const DEFAULT_W_SCORE: f64 = 0.2;
/// Default weight of the sacred flag.
pub const DEFAULT_W_SACRED: f64 = 0.3;
/// Default number of hits.
pub const DEFAULT_LIMIT: usize = 10;

impl Default for SearchOptions {
    fn default() -> SearchOptions {
        SearchOptions {
            limit: DEFAULT_LIMIT,
            domain: None,
            sacred_only: false,
            w_score: DEFAULT_W_SCORE,
            w_sacred: DEFAULT_W_SACRED,
            exclude: None,
            ranking: Ranking::default(),
        }
    }
}

/// One result: which document, its score, and what the ordering needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// The segment tag the caller gave the search (its index among live segments).
    pub segment: u32,
    /// The document's ordinal in that segment.
    pub ordinal: u32,
    /// The memory's id.
    pub id: [u8; 16],
    /// The [`score`].
    pub score: f64,
    /// How many query keywords the memory has.
    pub overlap: u32,
    /// The memory's timestamp, unix microseconds.
    pub timestamp_micros: i64,
}

impl Hit {
    /// The result order: score descending, then timestamp descending, then id ascending, so
    /// that two implementations can be compared hit by hit.
    pub fn cmp_rank(&self, other: &Hit) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(other.timestamp_micros.cmp(&self.timestamp_micros))
            .then(self.id.cmp(&other.id))
    }
}

/// Asks the CPU to start loading the cache line holding `p` (a hint: results do not depend on it).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and has no effect a program can observe but timing, whatever
    // the address (it is not even dereferenced), and SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The caller's result buffer: a fixed-capacity top-k in [`Hit::cmp_rank`]'s order, plus the scratch
/// space a search needs. Allocated once, reused for every search.
#[derive(Clone, Debug)]
pub struct Hits {
    /// Best first, or (while a search with a large `k` runs, see [`HEAP_FROM`]) a binary heap
    /// with the worst hit at the root.
    hits: Vec<Hit>,
    /// Whether `hits` is a heap; [`Hits::finish`] sorts it back before a search returns.
    heap: bool,
    cap: usize,
    acc: Vec<u16>,
    touched: Vec<u16>,
    /// The ranked search's window accumulators and their bitset.
    rank_acc: Vec<u64>,
    rank_bits: Vec<u64>,
}

impl Hits {
    /// A buffer for at most `k` hits.
    pub fn with_capacity(k: usize) -> Hits {
        Hits {
            hits: Vec::with_capacity(k),
            heap: false,
            cap: k,
            acc: vec![0; WINDOW],
            touched: Vec::with_capacity(WINDOW),
            rank_acc: vec![0; RANK_WINDOW],
            rank_bits: vec![0; RANK_WINDOW / 64],
        }
    }

    pub(crate) fn rank_scratch(&mut self) -> (&mut Vec<u64>, &mut Vec<u64>) {
        (&mut self.rank_acc, &mut self.rank_bits)
    }

    /// The Jaccard search's window counters and touched slots, taken out for one search (hits
    /// are offered meanwhile); [`Hits::put_jaccard_scratch`] gives them back.
    pub(crate) fn jaccard_scratch(&mut self) -> (Vec<u16>, Vec<u16>) {
        (std::mem::take(&mut self.acc), std::mem::take(&mut self.touched))
    }

    pub(crate) fn put_jaccard_scratch(&mut self, acc: Vec<u16>, touched: Vec<u16>) {
        (self.acc, self.touched) = (acc, touched);
    }

    /// Removes all hits (keeps the allocation).
    pub fn clear(&mut self) {
        self.hits.clear();
        self.heap = false;
    }

    /// Puts the hits back in rank order after a search offered them into a heap. Every search
    /// entry point calls it before it returns; no allocation (an unstable sort).
    pub(crate) fn finish(&mut self) {
        if self.heap {
            self.hits.sort_unstable_by(Hit::cmp_rank);
            self.heap = false;
        }
    }

    /// The hits, best first.
    pub fn as_slice(&self) -> &[Hit] {
        debug_assert!(!self.heap, "a search returned without Hits::finish");
        &self.hits
    }

    /// The hits, best first.
    pub fn iter(&self) -> std::slice::Iter<'_, Hit> {
        self.as_slice().iter()
    }

    /// How many hits the buffer holds.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// Whether the buffer holds no hit.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// The most hits the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Offers a hit to a top-`k` list, saying whether it entered; never grows past `k` or the
    /// capacity, never allocates.
    pub(crate) fn offer(&mut self, k: usize, hit: Hit) -> bool {
        let k = k.min(self.cap);
        if k == 0 {
            return false;
        }
        if self.heap || k >= HEAP_FROM {
            return self.offer_heap(k, hit);
        }
        if self.hits.len() >= k {
            match self.hits.last() {
                Some(worst) if hit.cmp_rank(worst) == Ordering::Less => {
                    self.hits.pop();
                }
                _ => return false,
            }
        }
        let at = self.hits.partition_point(|h| h.cmp_rank(&hit) == Ordering::Less);
        self.hits.insert(at, hit);
        true
    }

    /// [`Hits::offer`] for a hit of the segment being searched whose id and timestamp are not
    /// read yet: `resolve(ordinal)` reads them, only when the order needs them (a score equal
    /// to another hit's) or when [`Hits::resolve`] ends the segment's search. Most hits that
    /// enter a top-k leave it again before the search ends; their ids and timestamps, each a
    /// cache miss of its own, are never read. The order is [`Hit::cmp_rank`]'s, exactly.
    #[inline]
    pub(crate) fn offer_lazy<F>(&mut self, k: usize, hit: Hit, resolve: &F) -> bool
    where
        F: Fn(u32) -> ([u8; 16], i64),
    {
        let k = k.min(self.cap);
        if k == 0 {
            return false;
        }
        if self.heap || k >= HEAP_FROM {
            let mut hit = hit;
            (hit.id, hit.timestamp_micros) = resolve(hit.ordinal);
            return self.offer_heap(k, hit);
        }
        let mut hit = Hit { overlap: hit.overlap | UNRESOLVED, ..hit };
        // Hits of equal score: `hits[lo..hi]` (best first, so scores descend).
        let lo = self.hits.partition_point(|h| h.score.total_cmp(&hit.score) == Ordering::Greater);
        let hi = lo
            + self.hits.get(lo..).map_or(0, |rest| {
                rest.iter().take_while(|h| h.score.total_cmp(&hit.score) == Ordering::Equal).count()
            });
        let mut at = lo;
        if hi > lo {
            // A tie on the score: timestamps and ids decide, so read them, the new hit's and
            // those of its equals still unread.
            (hit.id, hit.timestamp_micros) = resolve(hit.ordinal);
            hit.overlap &= !UNRESOLVED;
            for h in self.hits.get_mut(lo..hi).unwrap_or(&mut []) {
                if h.segment == hit.segment && h.overlap & UNRESOLVED != 0 {
                    (h.id, h.timestamp_micros) = resolve(h.ordinal);
                    h.overlap &= !UNRESOLVED;
                }
            }
            at = lo
                + self
                    .hits
                    .get(lo..hi)
                    .map_or(0, |eq| eq.partition_point(|h| h.cmp_rank(&hit) == Ordering::Less));
        }
        if self.hits.len() >= k {
            // The worst hit's score differs from the new one's, or it was read above.
            match self.hits.last() {
                Some(worst) if hit.cmp_rank(worst) == Ordering::Less => {
                    self.hits.pop();
                }
                _ => return false,
            }
        }
        self.hits.insert(at.min(self.hits.len()), hit);
        true
    }

    /// Reads the ids and timestamps [`Hits::offer_lazy`] left unread for the hits of segment
    /// `segment`; a search calls it before it returns. `start(ordinal)` is called for each of
    /// them first (to prefetch), so that their misses overlap.
    pub(crate) fn resolve<P, F>(&mut self, segment: u32, start: P, resolve: &F)
    where
        P: Fn(u32),
        F: Fn(u32) -> ([u8; 16], i64),
    {
        for h in &self.hits {
            if h.segment == segment && h.overlap & UNRESOLVED != 0 {
                start(h.ordinal);
            }
        }
        for h in self.hits.iter_mut() {
            if h.segment == segment && h.overlap & UNRESOLVED != 0 {
                (h.id, h.timestamp_micros) = resolve(h.ordinal);
                h.overlap &= !UNRESOLVED;
            }
        }
    }

    /// [`Hits::offer`] for a large `k`: a sorted insert moves half the list (48 bytes a hit)
    /// each time a hit enters, a heap moves `log2 k` hits.
    fn offer_heap(&mut self, k: usize, hit: Hit) -> bool {
        if !self.heap {
            // Best first, reversed, is worst first: a valid heap with the worst at the root.
            self.hits.reverse();
            self.heap = true;
        }
        // Sifting moves a hole rather than swapping: each level copies one hit, and `hit` is
        // written once where it belongs.
        let hits = &mut self.hits;
        if hits.len() < k {
            hits.push(hit);
            let mut i = hits.len() - 1;
            while i > 0 {
                let parent = (i - 1) / 2;
                if hit.cmp_rank(&hits[parent]) != Ordering::Greater {
                    break;
                }
                hits[i] = hits[parent];
                i = parent;
            }
            hits[i] = hit;
            return true;
        }
        match hits.first() {
            Some(worst) if hit.cmp_rank(worst) == Ordering::Less => {}
            _ => return false,
        }
        let n = hits.len();
        let mut i = 0;
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let worse =
                if r < n && hits[r].cmp_rank(&hits[l]) == Ordering::Greater { r } else { l };
            if hits[worse].cmp_rank(&hit) != Ordering::Greater {
                break;
            }
            hits[i] = hits[worse];
            i = worse;
        }
        hits[i] = hit;
        true
    }

    /// The score a new hit must reach to enter a full top-`k`, or `None` while it is not full.
    pub(crate) fn bar(&self, k: usize) -> Option<f64> {
        let k = k.min(self.cap);
        if self.hits.len() >= k {
            let worst = if self.heap { self.hits.first() } else { self.hits.last() };
            Some(worst.map_or(f64::INFINITY, |h| h.score))
        } else {
            None
        }
    }
}

/// The bit of [`Hit::overlap`] that marks, during one segment's ranked search, a hit whose id
/// and timestamp are not read yet (overlaps count query terms, at most 255).
const UNRESOLVED: u32 = 1 << 31;

/// From this `k` on, [`Hits`] collects into a heap during a search (measured on the witness's
/// top 200: the sorted insert's moves were a tenth of an invitation).
const HEAP_FROM: usize = 64;

impl<'a> IntoIterator for &'a Hits {
    type Item = &'a Hit;
    type IntoIter = std::slice::Iter<'a, Hit>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Deleted document ordinals of one segment, as a bitset built once per generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletedSet {
    bits: Vec<u64>,
    count: u32,
}

impl DeletedSet {
    /// No deletion.
    pub const fn empty() -> DeletedSet {
        DeletedSet { bits: Vec::new(), count: 0 }
    }

    /// The set of `ordinals` (ordinals at or past `doc_count` are ignored).
    pub fn from_sorted(ordinals: &[u32], doc_count: u32) -> DeletedSet {
        let mut bits = vec![0u64; (doc_count as usize).div_ceil(64)];
        let mut count = 0;
        for &o in ordinals {
            if o < doc_count {
                let word = &mut bits[o as usize / 64];
                let bit = 1u64 << (o % 64);
                if *word & bit == 0 {
                    count += 1;
                }
                *word |= bit;
            }
        }
        DeletedSet { bits, count }
    }

    /// Whether `ordinal` is deleted.
    #[inline]
    pub fn contains(&self, ordinal: u32) -> bool {
        self.bits.get(ordinal as usize / 64).is_some_and(|w| w & (1u64 << (ordinal % 64)) != 0)
    }

    /// How many ordinals are deleted.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Why a hit scored what it scored.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// The ranking explained.
    pub ranking: Ranking,
    /// |Q ∩ D|: query keywords (Jaccard) or ranked terms (BM25F) the memory has.
    pub overlap: u32,
    /// Jaccard: overlap / |Q ∪ D|; BM25F: the relevance, the sum of the terms' contributions.
    pub jaccard: f64,
    /// `w_score · score`.
    pub score_boost: f64,
    /// `w_sacred · [sacred]`.
    pub sacred_boost: f64,
    /// The total. Jaccard: `jaccard + score_boost + sacred_boost`; BM25F:
    /// `relevance · (1 + TIE_BREAK · (score_boost + sacred_boost))`.
    pub score: f64,
    /// The query keywords (Jaccard) or ranked terms (BM25F) the memory has, in query order.
    pub matched: Vec<String>,
    /// BM25F: each matched term's part of the relevance (empty for Jaccard).
    pub terms: Vec<TermContribution>,
}

/// One ranked term's part of a BM25F relevance.
#[derive(Clone, Debug, PartialEq)]
pub struct TermContribution {
    /// The term (stemmed).
    pub term: String,
    /// Its idf over the segments searched, as the search used it (rounded to 1/[`IDF_SCALE`]).
    ///
    /// [`IDF_SCALE`]: crate::IDF_SCALE
    pub idf: f64,
    /// Its saturated, length-normalized frequency in the memory, in [0, 1) (the stored impact,
    /// quantized to 255ths).
    pub impact: f64,
    /// `idf · impact`.
    pub contribution: f64,
}

/// The score of a memory with keyword set D for a query with keyword set Q, `overlap = |Q ∩ D|`
/// (a memory with no overlap never matches):
/// `overlap / |Q ∪ D| + w_score · memory score + w_sacred · [sacred]`; weights `(0, 0)` give plain
/// Jaccard. Computed in one fixed order so that every implementation agrees.
#[inline]
pub fn score(
    overlap: u32,
    query_len: u32,
    doc_keywords: u32,
    mem_score: f32,
    sacred: bool,
    o: &SearchOptions,
) -> f64 {
    let jaccard = f64::from(overlap) / f64::from(query_len + doc_keywords - overlap);
    jaccard + o.w_score * f64::from(mem_score) + if sacred { o.w_sacred } else { 0.0 }
}

pub(crate) fn find_domain(d: &ArchivedSegmentData, domain: &str) -> Option<u32> {
    let offsets = d.domain_offsets.as_slice();
    let n = offsets.len().saturating_sub(1);
    (0..n).find(|&i| table_str(d.domain_bytes.as_slice(), offsets, i) == domain).map(|i| i as u32)
}

impl<B: Storage> Segment<B> {
    /// Searches this segment and merges its best hits into `hits` (which may already hold hits
    /// of other segments), tagging them with `segment_tag`. Documents in `deleted` are skipped.
    ///
    /// No heap allocation happens here: the query's scratch and the buffer's were sized when
    /// they were made.
    ///
    /// [`Ranking::Bm25f`] computes its idf from this segment alone ([`Snapshot::search`] sums
    /// document frequencies over every live segment); [`Ranking::Jaccard`] needs no statistics.
    ///
    /// [`Snapshot::search`]: crate::Snapshot::search
    pub fn search(
        &self,
        query: &Query,
        options: &SearchOptions,
        deleted: &DeletedSet,
        segment_tag: u32,
        hits: &mut Hits,
    ) {
        match options.ranking.lexical() {
            Ranking::Jaccard => self.search_jaccard(query, options, deleted, segment_tag, hits),
            _ => {
                query.rank_stats(std::iter::once(self));
                self.search_ranked(query, options, deleted, segment_tag, hits);
            }
        }
        hits.finish();
    }

    /// Explains the score document `ordinal` gets for `query`: overlap, the three parts, and the
    /// query keywords it matched. Allocates (the matched list); not for the hot path.
    pub fn explain(
        &self,
        query: &Query,
        ordinal: u32,
        options: &SearchOptions,
    ) -> Option<Explanation> {
        if options.ranking.lexical() == Ranking::Bm25f {
            query.rank_stats(std::iter::once(self));
            return self.explain_ranked(query, ordinal, options);
        }
        let doc = self.doc(ordinal)?;
        let d = self.data();
        let matched: Vec<String> = query
            .keywords
            .iter()
            .zip(&query.hashes)
            .filter(|(kw, &h)| {
                find_term(d, kw.as_bytes(), h)
                    .is_some_and(|t| has_term(d, ordinal as usize, t as u32))
            })
            .map(|(kw, _)| kw.clone())
            .collect();
        let overlap = matched.len() as u32;
        let q = query.keywords.len() as u32;
        let dk = doc.keyword_count().max(overlap);
        let jaccard =
            if overlap == 0 { 0.0 } else { f64::from(overlap) / f64::from(q + dk - overlap) };
        let score_boost = options.w_score * f64::from(doc.score());
        let sacred_boost = if doc.sacred() { options.w_sacred } else { 0.0 };
        Some(Explanation {
            ranking: Ranking::Jaccard,
            overlap,
            jaccard,
            score_boost,
            sacred_boost,
            score: jaccard + score_boost + sacred_boost,
            matched,
            terms: Vec::new(),
        })
    }

    /// A query made of document `ordinal`'s own keywords (for `related`).
    pub fn query_for(&self, ordinal: u32) -> Option<Query> {
        let doc = self.doc(ordinal)?;
        Some(Query::from_prepared(doc.keywords().map(str::to_owned).collect()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Hit, Hits};

    /// A hit of segment `segment` with few distinct scores, timestamps and ids, so that ties
    /// on the score and on the timestamp are common.
    fn hit(segment: u32, ordinal: u32, score: u8, time: u8, id: u8) -> Hit {
        Hit {
            segment,
            ordinal,
            id: [id; 16],
            score: f64::from(score),
            overlap: u32::from(score % 3),
            timestamp_micros: i64::from(time),
        }
    }

    proptest! {
        /// Lazy offers (ids and timestamps read only on a tie of scores, then for the survivors)
        /// keep the same top-k, in the same order, as eager offers, across two segments.
        #[test]
        fn lazy_offers_equal_eager_offers(
            first in proptest::collection::vec((0u8..6, 0u8..3, 0u8..4), 0..40),
            second in proptest::collection::vec((0u8..6, 0u8..3, 0u8..4), 0..40),
            k in 1usize..12,
        ) {
            let (mut eager, mut lazy) = (Hits::with_capacity(16), Hits::with_capacity(16));
            for (segment, offers) in [(0u32, &first), (1, &second)] {
                let at = |o: u32| {
                    let (_, time, id) = offers[o as usize];
                    ([id; 16], i64::from(time))
                };
                for (o, &(score, time, id)) in offers.iter().enumerate() {
                    let h = hit(segment, o as u32, score, time, id);
                    let entered = eager.offer(k, h);
                    let blind = Hit { id: [0; 16], timestamp_micros: 0, ..h };
                    prop_assert_eq!(lazy.offer_lazy(k, blind, &at), entered);
                }
                lazy.resolve(segment, |_| {}, &at);
                prop_assert_eq!(lazy.as_slice(), eager.as_slice());
            }
        }
    }
}
