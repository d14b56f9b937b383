//! Search: prepared queries, options, the caller's top-k buffer, and the search of one segment.

use std::cell::RefCell;
use std::cmp::Ordering;

use rkyv::rend::{u16_le, u32_le};
use semantic_index::format::{self, ArchivedSegmentData};

use crate::rank::{idf_weight, RankCursor, MAX_QUERY_TERMS, RANK_WINDOW};
use crate::segment::{
    find_term, has_term, keyword_count, table_str, Bitmaps, Forward, Segment, Storage,
};

/// A prepared query: its keywords, extracted once, and scratch space sized for them.
///
/// Preparing allocates; searching with a prepared query does not. A `Query` is `Send` but not
/// `Sync`: each thread prepares (or clones) its own.
#[derive(Debug)]
pub struct Query {
    keywords: Vec<String>,
    /// [`format::term_hash`] of each keyword, computed once for every segment searched.
    hashes: Vec<u64>,
    cursors: RefCell<Vec<Cursor>>,
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

/// `Cursor::bitmap` of a term that has postings.
const NO_BITMAP: usize = usize::MAX;

/// A term's documents being walked: its postings page by page (see
/// `SegmentData::posting_offsets`), or the set bits of a frequent term's bitmap.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// The next posting, an index into `postings`; for a bitmap, the current document.
    pos: usize,
    /// The end of the term's postings; for a bitmap, the document count.
    end: usize,
    /// The end of the current page's postings.
    page_end: usize,
    /// The current page's first ordinal.
    base: u32,
    /// The current page's index in `posting_offsets` (term · pages + page).
    run: usize,
    /// The term's last page's index in `posting_offsets`.
    last_run: usize,
    /// The term's ordinal in the segment's term table (what forward lists hold).
    term: u32,
    /// The term's bitmap (an index into the frequent terms), or [`NO_BITMAP`].
    bitmap: usize,
    /// How many documents the term has (its postings or set bits).
    count: usize,
}

/// One segment's postings and bitmaps, as cursors read them.
#[derive(Clone, Copy)]
struct Postings<'a> {
    ordinals: &'a [u16_le],
    offsets: &'a [u32_le],
    bitmaps: Bitmaps<'a>,
    doc_count: usize,
}

impl<'a> Postings<'a> {
    fn of(d: &'a ArchivedSegmentData) -> Postings<'a> {
        Postings {
            ordinals: d.postings.as_slice(),
            offsets: d.posting_offsets.as_slice(),
            bitmaps: Bitmaps::of(d),
            doc_count: d.doc_count.to_native() as usize,
        }
    }

    /// Offset `i` (validated at open to be in range and ascending; hostile bytes give the end).
    #[inline]
    fn offset(self, i: usize) -> usize {
        self.offsets.get(i).map_or(self.ordinals.len(), |o| o.to_native() as usize)
    }
}

impl Cursor {
    /// A cursor at the start of term `term`'s documents, or `None` if the term is out of range.
    fn new(p: Postings<'_>, term: usize, pages: usize) -> Option<Cursor> {
        let ordinal = u32::try_from(term).ok()?;
        if let Some(i) = p.bitmaps.index(ordinal) {
            let end = p.doc_count;
            return Some(Cursor {
                pos: p.bitmaps.next_set(i, 0, end),
                end,
                page_end: end,
                base: 0,
                run: 0,
                last_run: 0,
                term: ordinal,
                bitmap: i,
                count: p.bitmaps.count(i),
            });
        }
        let first = term.checked_mul(pages)?;
        let last_run = first.checked_add(pages.checked_sub(1)?)?;
        let end = p.offset(last_run + 1).min(p.ordinals.len());
        let mut c = Cursor {
            pos: p.offset(first).min(end),
            end,
            page_end: p.offset(first + 1).min(end),
            base: 0,
            run: first,
            last_run,
            term: ordinal,
            bitmap: NO_BITMAP,
            count: 0,
        };
        c.count = c.end - c.pos;
        c.settle(p);
        Some(c)
    }

    /// Whether every posting was read.
    #[inline]
    fn done(&self) -> bool {
        self.pos >= self.end
    }

    /// Moves on to the page that holds `pos`, past pages without postings.
    #[inline]
    fn settle(&mut self, p: Postings<'_>) {
        while self.pos >= self.page_end && self.run < self.last_run {
            self.run += 1;
            self.base = self.base.wrapping_add(format::POSTING_PAGE);
            self.page_end = p.offset(self.run + 1).min(self.end);
        }
    }

    /// The ordinal at `pos`; meaningful only while not [`Cursor::done`].
    #[inline]
    fn ordinal(&self, p: Postings<'_>) -> u32 {
        if self.bitmap != NO_BITMAP {
            return self.pos as u32;
        }
        self.base.wrapping_add(p.ordinals.get(self.pos).map_or(0, |o| u32::from(o.to_native())))
    }

    /// Steps to the next posting.
    #[inline]
    fn advance(&mut self, p: Postings<'_>) {
        if self.bitmap != NO_BITMAP {
            self.pos = p.bitmaps.next_set(self.bitmap, self.pos + 1, self.end);
            return;
        }
        self.pos += 1;
        if self.pos >= self.page_end {
            self.settle(p);
        }
    }

    /// Moves to the first posting whose ordinal is at least `target` (never backwards).
    fn seek(&mut self, p: Postings<'_>, target: u32) {
        if self.bitmap != NO_BITMAP {
            if target as usize > self.pos {
                self.pos = p.bitmaps.next_set(self.bitmap, target as usize, self.end);
            }
            return;
        }
        let page = self.base / format::POSTING_PAGE;
        let want = target / format::POSTING_PAGE;
        if want > page {
            let skip = (want - page) as usize;
            if skip > self.last_run - self.run {
                self.pos = self.end;
                return;
            }
            self.run += skip;
            self.base = want.wrapping_mul(format::POSTING_PAGE);
            self.pos = self.pos.max(p.offset(self.run).min(self.end));
            self.page_end = p.offset(self.run + 1).min(self.end);
        }
        let low = target.saturating_sub(self.base);
        let run = p.ordinals.get(self.pos..self.page_end).unwrap_or(&[]);
        self.pos += run.partition_point(|o| u32::from(o.to_native()) < low);
        self.settle(p);
    }

    /// Whether document `ordinal`, whose forward list is `terms`, has this cursor's term: a
    /// bit test for a bitmap, a binary search in the forward list otherwise.
    #[inline]
    fn in_doc(&self, p: Postings<'_>, terms: Forward<'_>, ordinal: usize) -> bool {
        if self.bitmap != NO_BITMAP {
            p.bitmaps.has(self.bitmap, ordinal)
        } else {
            terms.contains(self.term)
        }
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

/// Width of the ordinal window the search accumulates overlaps in.
const WINDOW: usize = 512;

/// Asks the CPU to start loading the cache line holding `p` (a hint: results do not depend on it).
#[inline(always)]
fn prefetch<T>(p: *const T) {
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
    hits: Vec<Hit>,
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

    /// Removes all hits (keeps the allocation).
    pub fn clear(&mut self) {
        self.hits.clear();
    }

    /// The hits, best first.
    pub fn as_slice(&self) -> &[Hit] {
        &self.hits
    }

    /// The hits, best first.
    pub fn iter(&self) -> std::slice::Iter<'_, Hit> {
        self.hits.iter()
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

    /// Offers a hit to a top-`k` list; never grows past `k` or the capacity, never allocates.
    fn offer(&mut self, k: usize, hit: Hit) {
        self.offer_ranked(k, hit);
    }

    /// [`Hits::offer`], saying whether the hit entered.
    pub(crate) fn offer_ranked(&mut self, k: usize, hit: Hit) -> bool {
        let k = k.min(self.cap);
        if k == 0 {
            return false;
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

    /// The score a new hit must reach to enter a full top-`k`, or `None` while it is not full.
    pub(crate) fn bar(&self, k: usize) -> Option<f64> {
        let k = k.min(self.cap);
        if self.hits.len() >= k {
            Some(self.hits.last().map_or(f64::INFINITY, |h| h.score))
        } else {
            None
        }
    }
}

impl<'a> IntoIterator for &'a Hits {
    type Item = &'a Hit;
    type IntoIter = std::slice::Iter<'a, Hit>;
    fn into_iter(self) -> Self::IntoIter {
        self.hits.iter()
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
    }

    /// The Jaccard search (see [`Segment::search`]).
    ///
    /// Documents are visited in ordinal order, sacred first and by descending score inside each
    /// run, in windows of a few hundred ordinals. Before each window the best score any later
    /// document of the run could reach (the largest possible Jaccard part plus the boost of the
    /// window's first document) is compared with the current k-th hit; when it cannot enter,
    /// the rest of the run is skipped.
    ///
    /// Once the top-k is full, the same bound says how many query keywords `r` a document must
    /// have to enter. Such a document has at least one of the `present - r + 1` rarest keywords
    /// (pigeonhole), so only those keywords' postings are walked ("essential" terms); the
    /// candidates' other keywords are looked up in their forward lists. Common keywords, whose
    /// postings are most of the work, are thus skipped as soon as the bar rises. Results are
    /// exact.
    pub(crate) fn search_jaccard(
        &self,
        query: &Query,
        options: &SearchOptions,
        deleted: &DeletedSet,
        segment_tag: u32,
        hits: &mut Hits,
    ) {
        let k = options.limit;
        if query.is_empty() || k == 0 || hits.cap == 0 {
            return;
        }
        let d = self.data();
        let n = d.doc_count.to_native();
        let sacred_count = d.sacred_count.to_native().min(n);
        let domain = match &options.domain {
            Some(name) => match find_domain(d, name) {
                Some(ord) => Some(ord),
                None => return,
            },
            None => None,
        };
        let p = Postings::of(d);
        let pages = format::posting_pages(n) as usize;
        let Ok(mut cursors) = query.cursors.try_borrow_mut() else { return };
        cursors.clear();
        for (kw, &hash) in query.keywords.iter().zip(&query.hashes) {
            if cursors.len() == cursors.capacity() {
                break; // never reallocate: the capacity was sized to the keywords
            }
            if let Some(c) =
                find_term(d, kw.as_bytes(), hash).and_then(|t| Cursor::new(p, t, pages))
            {
                cursors.push(c);
            }
        }
        if cursors.is_empty() {
            return;
        }
        let q = query.keywords.len() as u32;
        let present = cursors.len() as u32;
        let min_kw = d.min_keywords.to_native().max(1);
        // The largest Jaccard part a document matching r keywords can have (|D| >= min_kw, r).
        let j_of = |r: u32| f64::from(r) / (f64::from(q) + f64::from(min_kw.max(r)) - f64::from(r));
        let j_max = j_of(present);
        // Rarest first: the essential terms are always a prefix.
        cursors.sort_unstable_by_key(|c| c.count);

        let forward_offsets = d.forward_offsets.as_slice();
        let frequent_counts = d.frequent_counts.as_slice();
        let scores = d.scores.as_slice();
        let ids = d.ids.as_slice();
        let timestamps = d.timestamps.as_slice();
        let domain_of = d.domain_of.as_slice();
        let runs: [(u32, u32, bool); 2] = [(0, sacred_count, true), (sacred_count, n, false)];
        let runs = if options.sacred_only { &runs[..1] } else { &runs[..] };
        let Hits { acc, touched, .. } = hits;
        let (mut acc, mut touched) = (std::mem::take(acc), std::mem::take(touched));
        // Float slack for bounds, which add the same parts in another order than `score`.
        const SLACK: f64 = 1e-9;

        for &(start, end, sacred) in runs {
            for c in cursors.iter_mut() {
                c.seek(p, start);
            }
            let mut essential = cursors.len();
            // No document before this ordinal is left to visit in the run.
            let mut next_min = start;
            let sacred_boost = if sacred { options.w_sacred } else { 0.0 };
            loop {
                let score_ub = if options.w_score >= 0.0 {
                    options.w_score
                        * f64::from(scores.get(next_min as usize).map_or(1.0, |s| s.to_native()))
                } else {
                    0.0
                };
                // How many terms must match to enter (1 while the top-k is not full).
                let mut r_need = 1;
                if let Some(bar) = hits.bar(k) {
                    if j_max + score_ub + sacred_boost + SLACK < bar {
                        break;
                    }
                    while r_need < present && j_of(r_need) + score_ub + sacred_boost + SLACK < bar {
                        r_need += 1;
                    }
                }
                let wanted = (present - r_need + 1) as usize;
                // The next window starts at the smallest ordinal an essential cursor points to.
                let mut w = u32::MAX;
                for c in cursors.iter().take(wanted) {
                    if !c.done() {
                        w = w.min(c.ordinal(p));
                    }
                }
                if w >= end {
                    break;
                }
                // A tighter bound from the window's own first document.
                let score_ub = if options.w_score >= 0.0 {
                    options.w_score
                        * f64::from(scores.get(w as usize).map_or(1.0, |s| s.to_native()))
                } else {
                    0.0
                };
                if let Some(bar) = hits.bar(k) {
                    if j_max + score_ub + sacred_boost + SLACK < bar {
                        break;
                    }
                }
                if wanted > essential {
                    // Never happens on a valid segment (the bar only rises and the boost only
                    // falls inside a run); keep cursors that rejoin in step anyway.
                    for c in cursors.iter_mut().take(wanted).skip(essential) {
                        c.seek(p, w);
                    }
                }
                essential = wanted;
                let wend = end.min(w.saturating_add(WINDOW as u32));
                next_min = wend;
                for c in cursors.iter_mut().take(essential) {
                    while !c.done() {
                        let o = c.ordinal(p);
                        if o >= wend {
                            break;
                        }
                        c.advance(p);
                        // Hostile files may hold unsorted postings: skip what is out of the window.
                        let Some(slot) =
                            o.checked_sub(w).map(|x| x as usize).filter(|&x| x < WINDOW)
                        else {
                            continue;
                        };
                        if acc[slot] == 0 {
                            touched.push(slot as u16);
                            // What the candidate loop below reads first, requested now so
                            // that the loads overlap the rest of the walk: it helps searches
                            // whose caches were evicted and costs warm ones nothing (figures
                            // in benches/NOTES.md).
                            let oi = o as usize;
                            prefetch(scores.as_ptr().wrapping_add(oi));
                            prefetch(forward_offsets.as_ptr().wrapping_add(oi));
                            prefetch(frequent_counts.as_ptr().wrapping_add(oi));
                        }
                        acc[slot] = acc[slot].saturating_add(1);
                    }
                }
                let others = &cursors[essential.min(cursors.len())..];
                for &slot in touched.iter() {
                    let mut overlap = u32::from(std::mem::take(&mut acc[slot as usize]));
                    let o = w + u32::from(slot);
                    let oi = o as usize;
                    if deleted.contains(o) {
                        continue;
                    }
                    if let Some(dom) = domain {
                        if domain_of.get(oi).map(|x| x.to_native()) != Some(dom) {
                            continue;
                        }
                    }
                    let s = scores.get(oi).map_or(0.0, |x| x.to_native());
                    // Read once: the bound below and the score both use it.
                    let own_count = keyword_count(forward_offsets, frequent_counts, oi);
                    if !others.is_empty() {
                        // The best this document can do if it has `most` query keywords, with
                        // its own keyword count (an upper bound: the Jaccard part grows with
                        // the overlap), or `None` while the top-k is not full.
                        let bar = hits.bar(k);
                        let boost = options.w_score * f64::from(s)
                            + if sacred { options.w_sacred } else { 0.0 };
                        let own = own_count.unwrap_or(0);
                        let cannot_enter = |most: u32| {
                            bar.is_some_and(|bar| {
                                let dk = f64::from(own.max(most));
                                let j = f64::from(most) / (f64::from(q) + dk - f64::from(most));
                                j + boost + SLACK < bar
                            })
                        };
                        // The overlap it can still reach. With every other keyword: this skips
                        // the lookups (cache misses) for most candidates of long queries. Then
                        // one lookup at a time, rarest keyword first (the likeliest to miss),
                        // and the bound again after each miss.
                        let mut best = overlap + others.len() as u32;
                        if cannot_enter(best) {
                            continue;
                        }
                        let terms = Forward::of(d, oi);
                        let mut out = false;
                        for c in others {
                            if c.in_doc(p, terms, oi) {
                                overlap += 1;
                            } else {
                                best -= 1;
                                if cannot_enter(best) {
                                    out = true;
                                    break;
                                }
                            }
                        }
                        if out {
                            continue;
                        }
                    }
                    let dk = own_count.map_or(overlap, |x| x.max(overlap));
                    let total = score(overlap, q, dk, s, sacred, options);
                    if let Some(bar) = hits.bar(k) {
                        if total < bar {
                            continue;
                        }
                    }
                    let id = ids.get(oi).copied().unwrap_or_default();
                    if options.exclude == Some(id) {
                        continue;
                    }
                    let timestamp_micros = timestamps.get(oi).map_or(0, |x| x.to_native());
                    hits.offer(
                        k,
                        Hit {
                            segment: segment_tag,
                            ordinal: o,
                            id,
                            score: total,
                            overlap,
                            timestamp_micros,
                        },
                    );
                }
                touched.clear();
            }
        }
        hits.acc = std::mem::take(&mut acc);
        hits.touched = std::mem::take(&mut touched);
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
    use super::*;
    use semantic_index::{Document, SegmentBuilder};

    #[test]
    fn cursors_walk_and_seek_across_posting_pages() {
        // Three pages; "every" is in every third memory, "gap" skips the middle page, "last"
        // is only in the last page, "first" only in the first.
        let page = format::POSTING_PAGE as usize;
        let n = 2 * page + 3_000;
        let docs: Vec<Document> = (0..n)
            .map(|i| {
                let mut words = vec!["filler"];
                if i % 3 == 0 {
                    words.push("every");
                }
                if i % 5 == 0 && !(page..2 * page).contains(&i) {
                    words.push("gap");
                }
                if i >= 2 * page && i % 7 == 0 {
                    words.push("last");
                }
                if i < 100 {
                    words.push("first");
                }
                Document {
                    id: (i as u128).to_be_bytes(),
                    question: words.join(" "),
                    // Same boost for all: ordinals follow ids, so ordinal == i.
                    ..Default::default()
                }
            })
            .collect();
        let mut b = SegmentBuilder::new();
        b.add_batch(&docs).unwrap();
        let segment = Segment::from_bytes(crate::aligned(&b.to_bytes().unwrap())).unwrap();
        segment.verify().unwrap();
        let d = segment.data();
        let p = Postings::of(d);
        let pages = format::posting_pages(d.doc_count.to_native()) as usize;
        assert_eq!(pages, 3);
        for term in ["every", "gap", "last", "first", "filler"] {
            let want: Vec<u32> = (0..n as u32)
                .filter(|&o| segment.doc(o).unwrap().keywords().any(|k| k == term))
                .collect();
            let t = find_term(d, term.as_bytes(), format::term_hash(term.as_bytes())).unwrap();
            let mut c = Cursor::new(p, t, pages).unwrap();
            let mut walked = Vec::new();
            while !c.done() {
                walked.push(c.ordinal(p));
                c.advance(p);
            }
            let first_difference = walked.iter().zip(&want).position(|(a, b)| a != b);
            assert!(
                walked == want,
                "{term}: walked {} postings, want {}; first difference at {first_difference:?}",
                walked.len(),
                want.len()
            );
            // Seeks from a fresh cursor, and a chain of seeks from one cursor.
            let mut chained = Cursor::new(p, t, pages).unwrap();
            for target in (0..n as u32 + 10).step_by(997).chain([65_535, 65_536, 131_072]) {
                let expect = want.iter().copied().find(|&o| o >= target);
                let mut fresh = Cursor::new(p, t, pages).unwrap();
                fresh.seek(p, target);
                assert_eq!((!fresh.done()).then(|| fresh.ordinal(p)), expect, "{term} @ {target}");
                if target >= chained.ordinal(p) || chained.done() {
                    chained.seek(p, target);
                    let got = (!chained.done()).then(|| chained.ordinal(p));
                    assert_eq!(got, expect, "{term} chained @ {target}");
                }
            }
        }
    }
}
