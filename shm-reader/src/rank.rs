//! BM25F search: exact top-k over quantized impacts, with block-max MaxScore.
//!
//! A document's relevance is an integer, `Σ_t weight(t) · impact(t, d)`, where `impact` is the
//! segment's `u8` (see `semantic_index::Bm25fParams`) and `weight` is the term's global idf
//! scaled by [`IDF_SCALE`] and rounded, computed once per search from the document frequencies
//! summed over every segment searched. Integer sums are exact in any order, so bounds built
//! from per-term and per-block maxima never round the wrong way.
//!
//! The final score multiplies relevance by a tie-breaking boost (see [`ranked_score`]); bounds
//! use the largest boost any document can have, so they do not depend on which documents the
//! boosts favour.

use rkyv::rend::u32_le;
use semantic_index::format::{ArchivedSegmentData, RANK_IMPACT_BITS, RANK_OFFSET_MAX};

use crate::search::{
    prefetch, DeletedSet, Explanation, Hit, Hits, Query, Ranking, SearchOptions, TermContribution,
};
use crate::segment::{probe_table, Segment, Storage};

/// How much the boosts can move a memory: the final score is
/// `relevance · (1 + TIE_BREAK · (w_score · score + w_sacred · [sacred]))`. With the default
/// weights (0.2 and 0.3) a memory gains at most 5 %: boosts reorder memories whose relevance is
/// within 5 % of each other and never lift a memory over a clearly more relevant one.
pub const TIE_BREAK: f64 = 0.1;

/// Idf weights are `round(idf · IDF_SCALE)`: relative precision of 2^-16 per term.
pub const IDF_SCALE: f64 = 65_536.0;

/// Relevance units per integer score point: impacts are in 255ths, idfs in [`IDF_SCALE`]ths.
const UNIT: f64 = 1.0 / (255.0 * IDF_SCALE);

/// Ordinals per accumulation window of the essential terms.
pub(crate) const RANK_WINDOW: usize = 2048;
const _: () = assert!(RANK_WINDOW / 64 <= 64, "one u64 summarizes the window's bit words");
const _: () = assert!(RANK_WINDOW.is_power_of_two(), "windows align by masking");

/// Bits of the accumulator below the score: how many query terms matched.
const COUNT_BITS: u32 = 8;

/// The most ranked terms a query keeps (the matched-term count lives in `COUNT_BITS` bits).
pub const MAX_QUERY_TERMS: usize = (1 << COUNT_BITS) - 1;

/// The final BM25F score of a document whose integer relevance is `relevance` (as searches
/// compute it): relevance in BM25 units (divided by `k1 + 1`), times the tie-breaking boost.
/// One fixed order of operations, so that brute force and search agree to the bit.
#[inline]
pub fn ranked_score(relevance: u64, mem_score: f32, sacred: bool, o: &SearchOptions) -> f64 {
    (relevance as f64 * UNIT) * (1.0 + TIE_BREAK * boost(mem_score, sacred, o))
}

/// A memory's boost under `o`'s weights: `w_score · score + w_sacred · [sacred]`.
#[inline]
fn boost(mem_score: f32, sacred: bool, o: &SearchOptions) -> f64 {
    o.w_score * f64::from(mem_score) + if sacred { o.w_sacred } else { 0.0 }
}

/// The relevance of a term: `weight · impact` in BM25 units.
pub(crate) fn units(points: u64) -> f64 {
    points as f64 * UNIT
}

/// A query term's idf weight given `n` documents, `df` of which hold it.
pub(crate) fn idf_weight(n: u64, df: u64) -> u64 {
    (semantic_index::idf(n, df) * IDF_SCALE).round() as u64
}

/// One query term's postings in one segment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RankCursor {
    /// Next posting (index into `rank_postings`).
    pos: usize,
    /// End of the term's postings.
    end: usize,
    /// The block holding `pos` (index into the block arrays).
    block: usize,
    /// End of the term's blocks.
    block_end: usize,
    /// End of the postings of `block`.
    bend: usize,
    /// The first ordinal of `block`: a posting's ordinal is `base + (posting >> 8)`.
    base: u32,
    /// The term's idf weight.
    weight: u64,
    /// `weight · ` the term's largest impact.
    max: u64,
    /// The term's posting count in the segment (its document frequency).
    df: usize,
    /// Set for the current window when this non-essential term's postings in it were added to
    /// the window's accumulators, so `complete` must not probe it again.
    dense: bool,
}

/// The segment's BM25F arrays.
#[derive(Clone, Copy)]
struct Ranked<'a> {
    postings: &'a [u32_le],
    block_start: &'a [u32_le],
    block_first: &'a [u32_le],
    block_last: &'a [u32_le],
    block_max: &'a [u8],
}

impl<'a> Ranked<'a> {
    fn of(d: &'a ArchivedSegmentData) -> Ranked<'a> {
        Ranked {
            postings: d.rank_postings.as_slice(),
            block_start: d.rank_block_start.as_slice(),
            block_first: d.rank_block_first.as_slice(),
            block_last: d.rank_block_last.as_slice(),
            block_max: d.rank_block_max.as_slice(),
        }
    }

    #[inline]
    fn last(&self, b: usize) -> u32 {
        self.block_last.get(b).map_or(u32::MAX, |x| x.to_native())
    }
}

/// A packed posting's impact.
#[inline]
fn impact_bits(p: u32) -> u64 {
    u64::from(p & ((1 << RANK_IMPACT_BITS) - 1))
}

impl RankCursor {
    fn done(&self) -> bool {
        self.pos >= self.end
    }

    /// Moves into block `b` (past the cursor's), never backwards.
    #[inline]
    fn enter(&mut self, r: Ranked<'_>, b: usize) {
        let at = |i: usize| r.block_start.get(i).map_or(self.end, |x| x.to_native() as usize);
        self.block = b;
        self.base = r.block_first.get(b).map_or(0, |x| x.to_native());
        self.bend = at(b + 1).min(self.end);
        self.pos = self.pos.max(at(b)).min(self.end);
    }

    /// Leaves the current block, whose postings are all read.
    #[inline]
    fn next_block(&mut self, r: Ranked<'_>) {
        if self.block + 1 < self.block_end {
            self.enter(r, self.block + 1);
        } else {
            self.pos = self.end;
        }
    }

    #[inline]
    fn doc(&self, r: Ranked<'_>) -> u32 {
        r.postings
            .get(self.pos)
            .map_or(u32::MAX, |p| self.base.wrapping_add(p.to_native() >> RANK_IMPACT_BITS))
    }

    #[inline]
    fn impact(&self, r: Ranked<'_>) -> u64 {
        r.postings.get(self.pos).map_or(0, |p| impact_bits(p.to_native()))
    }

    /// Moves to the first block whose last ordinal is at least `target` (never backwards), and
    /// returns it, or `None` (and the cursor done) when no block is left.
    #[inline]
    fn seek_block(&mut self, r: Ranked<'_>, target: u32) -> Option<usize> {
        if self.done() {
            return None;
        }
        let mut b = self.block;
        while b < self.block_end && r.last(b) < target {
            b += 1;
        }
        if b >= self.block_end {
            self.pos = self.end;
            return None;
        }
        if b != self.block {
            self.enter(r, b);
        }
        if self.done() {
            return None;
        }
        Some(b)
    }

    /// Moves to the first posting at or past `target` inside the current block (after
    /// [`RankCursor::seek_block`]). Candidates come in ordinal order, so the target is often
    /// a few postings ahead: a galloping search from the cursor reads the cache line it is in
    /// before a binary search over the rest of the block would read lines far away. Packed
    /// postings compare as their offsets do, so the search reads no block metadata.
    #[inline]
    fn seek_in_block(&mut self, r: Ranked<'_>, target: u32) {
        let run = r.postings.get(self.pos..self.bend).unwrap_or(&[]);
        let Some(key) = target
            .checked_sub(self.base)
            .map_or(Some(0), |off| (off <= RANK_OFFSET_MAX).then_some(off << RANK_IMPACT_BITS))
        else {
            // Past every offset the block can hold (only a hostile file gets here).
            self.pos += run.len();
            return;
        };
        // `run[..lo]` lies below `target` and `run[hi..]` (if any) at or past it.
        let (mut lo, mut hi, mut probe, mut step) = (0, run.len(), 0, 1);
        while let Some(p) = run.get(probe) {
            if p.to_native() >= key {
                hi = probe;
                break;
            }
            lo = probe + 1;
            probe += step;
            step *= 2;
        }
        let rest = run.get(lo..hi).unwrap_or(&[]);
        self.pos += lo + rest.partition_point(|p| p.to_native() < key);
    }

    /// Adds the postings in `[w, wend)` to the window's accumulators (`acc[o - w]` gains the
    /// weighted impact above `COUNT_BITS` and one matched term below; `bits` marks the slot)
    /// and moves past them. Returns the `bits` words it touched, one bit per word.
    ///
    /// Not inlined: inside the search's one large function this loop kept its pointers and
    /// sums on the stack (register pressure); as a function of its own they stay in registers.
    #[inline(never)]
    fn accumulate(
        &mut self,
        r: Ranked<'_>,
        w: u32,
        wend: u32,
        acc: &mut [u64],
        bits: &mut [u64],
    ) -> u64 {
        let (Ok(acc), Ok(bits)) = (
            <&mut [u64; RANK_WINDOW]>::try_from(acc),
            <&mut [u64; RANK_WINDOW / 64]>::try_from(bits),
        ) else {
            // The scratch always has these sizes (`Hits::with_capacity`).
            self.pos = self.end;
            return 0;
        };
        let mut touched = 0u64;
        let weight = self.weight;
        // At most RANK_WINDOW: slots below it index the arrays directly (masked, never out of
        // bounds).
        let span = wend.saturating_sub(w).min(RANK_WINDOW as u32);
        while !self.done() {
            let Some(run) = r.postings.get(self.pos..self.bend) else {
                self.pos = self.end;
                break;
            };
            let base = self.base;
            let mut count = 0;
            for p in run {
                let p = p.to_native();
                let o = base.wrapping_add(p >> RANK_IMPACT_BITS);
                if o >= wend {
                    break;
                }
                count += 1;
                // Only a hostile file's postings out of order can lie before the window.
                let slot = o.wrapping_sub(w);
                if slot >= span {
                    continue;
                }
                let slot = slot as usize & (RANK_WINDOW - 1);
                acc[slot] += ((weight * impact_bits(p)) << COUNT_BITS) | 1;
                bits[slot / 64] |= 1u64 << (slot % 64);
                touched |= 1u64 << (slot / 64);
            }
            self.pos += count;
            if self.pos < self.bend {
                break;
            }
            self.next_block(r);
        }
        touched
    }

    /// Moves to the first posting at or past `target`.
    fn seek(&mut self, r: Ranked<'_>, target: u32) {
        if self.seek_block(r, target).is_some() {
            self.seek_in_block(r, target);
            if self.pos >= self.bend && !self.done() {
                self.next_block(r);
            }
        }
    }

    /// The largest impact of the blocks that may hold ordinals in `[from, to)`, from the cursor
    /// on, times the weight; 0 when the cursor's next posting lies at or past `to` (the term
    /// has no posting in the window at all).
    fn window_max(&self, r: Ranked<'_>, to: u32) -> u64 {
        if self.done() || self.doc(r) >= to {
            return 0;
        }
        let mut b = self.block;
        let mut top = 0u8;
        while b < self.block_end {
            top = top.max(r.block_max.get(b).copied().unwrap_or(u8::MAX));
            if r.last(b) >= to {
                break;
            }
            b += 1;
        }
        self.weight * u64::from(top)
    }
}

/// The ordinal of the ranked term `term` (hashed with `format::term_hash`).
pub(crate) fn find_rank_term(d: &ArchivedSegmentData, term: &[u8], hash: u64) -> Option<usize> {
    let (slots, offsets) = (d.rank_term_slots.as_slice(), d.rank_term_offsets.as_slice());
    probe_table(slots, offsets, d.rank_term_bytes.as_slice(), term, hash)
}

/// Term `t`'s range in `rank_postings`.
fn posting_range(d: &ArchivedSegmentData, t: usize) -> (usize, usize) {
    let o = d.rank_posting_offsets.as_slice();
    let a = o.get(t).map_or(0, |x| x.to_native() as usize);
    let b = o.get(t + 1).map_or(0, |x| x.to_native() as usize);
    (a, b.max(a))
}

/// The impact (1..=255) of ranked term `t` in document `ordinal`, 0 if absent.
pub(crate) fn impact_of(d: &ArchivedSegmentData, t: usize, ordinal: u32) -> u8 {
    let mut c = cursor(d, t, 1);
    let r = Ranked::of(d);
    c.seek(r, ordinal);
    if !c.done() && c.doc(r) == ordinal {
        c.impact(r) as u8
    } else {
        0
    }
}

/// A cursor over ranked term `t` with idf weight `weight`.
fn cursor(d: &ArchivedSegmentData, t: usize, weight: u64) -> RankCursor {
    let (start, end) = posting_range(d, t);
    let bo = d.rank_block_offsets.as_slice();
    let block_start = bo.get(t).map_or(0, |x| x.to_native() as usize);
    let block_end = bo.get(t + 1).map_or(0, |x| x.to_native() as usize).max(block_start);
    let top = d.rank_term_max.get(t).copied().unwrap_or(u8::MAX);
    let mut c = RankCursor {
        pos: start,
        end,
        block: block_start,
        block_end,
        bend: start,
        base: 0,
        weight,
        max: weight * u64::from(top),
        df: end - start,
        dense: false,
    };
    if block_start < block_end {
        c.enter(Ranked::of(d), block_start);
    } else {
        c.pos = end;
    }
    c
}

/// A non-essential term is added to a window's accumulators (rather than probed once per
/// candidate) when its expected postings in the window are at most this many times the slots
/// the essential terms touched there.
const DENSE_FACTOR: u64 = 2;

/// A term with at most this many postings seeds the bar from its impacts, read one by one.
const SEED_POSTINGS: usize = 512;

/// A term with at most this many blocks seeds the bar from its block maxima.
const SEED_BLOCKS: usize = 4096;

/// A lower bound on the `k`-th best relevance among the segment's live documents below
/// `end_ordinal`, from single terms: 0 when no term gives one cheaply.
///
/// A document's relevance is at least any one of its terms' weighted impact, so the `k`-th
/// largest impact of one term (over distinct live documents) bounds the `k`-th best relevance
/// from below. A short term's impacts are read one by one (skipping deleted documents); a
/// longer term's block maxima serve when nothing is deleted and every ordinal counts: each
/// block maximum is the impact of a posting of that block (checked by `Segment::verify`, as
/// the search's bounds already assume), and blocks hold distinct documents. Terms are taken
/// largest bound first, skipping any whose bound cannot raise the seed.
///
/// Searching with the seed as a bar from the start prunes terms and windows before `k` hits are
/// found: a query's rare term usually lifts the bar above its common terms' maxima at once, so
/// these are probed rather than accumulated.
fn seed(
    cursors: &[RankCursor],
    r: Ranked<'_>,
    k: usize,
    deleted: &DeletedSet,
    end_ordinal: u32,
    n: u32,
) -> u64 {
    let every = deleted.is_empty() && end_ordinal >= n;
    let mut best = 0u64;
    let mut counts = [0u32; 256];
    for c in cursors.iter().rev() {
        if c.max <= best || c.df < k || c.done() {
            continue;
        }
        counts.fill(0);
        if c.df <= SEED_POSTINGS {
            if every {
                for p in r.postings.get(c.pos..c.end).unwrap_or(&[]) {
                    counts[impact_bits(p.to_native()) as usize] += 1;
                }
            } else {
                let mut cur = *c;
                while !cur.done() {
                    let o = cur.doc(r);
                    if o >= end_ordinal {
                        break;
                    }
                    if !deleted.contains(o) {
                        counts[cur.impact(r) as usize] += 1;
                    }
                    cur.pos += 1;
                    if cur.pos >= cur.bend {
                        cur.next_block(r);
                    }
                }
            }
        } else if every && c.block_end - c.block <= SEED_BLOCKS {
            for &m in r.block_max.get(c.block..c.block_end).unwrap_or(&[]) {
                counts[usize::from(m)] += 1;
            }
        } else {
            continue;
        }
        let mut seen = 0usize;
        for impact in (1..counts.len()).rev() {
            seen += counts[impact] as usize;
            if seen >= k {
                best = best.max(c.weight * impact as u64);
                break;
            }
        }
    }
    best
}

/// A relevance below which no document with the boost of `best_boost` can reach `bar`: the
/// search skips what cannot reach it. Any smaller value would also be exact (each candidate's
/// final score is compared with the bar itself), only slower; this one is the exact threshold
/// less a margin for rounding, in constant time.
#[inline]
fn needed(bar: Option<f64>, best_boost: (f32, bool), o: &SearchOptions) -> u64 {
    let Some(bar) = bar else { return 1 };
    // The same multiplier `ranked_score` applies; its products round by a few ulps at most,
    // far inside the margin of one part in 10^9 and one unit.
    let exact = bar / UNIT / (1.0 + TIE_BREAK * boost(best_boost.0, best_boost.1, o));
    let lower = exact * (1.0 - 1e-9) - 1.0;
    if lower.is_finite() && lower > 1.0 {
        // `as` saturates at u64::MAX: a bar no relevance reaches prunes everything, as it should.
        lower as u64
    } else {
        1
    }
}

/// Adds the non-essential terms' impacts to candidate `o`'s relevance, which is `s` from
/// `matched` essential terms, largest bound first: a block maximum first, the posting only if
/// the block could still lift the candidate to `need`. `others_max` is the sum of the
/// non-essential terms' bounds. Returns the relevance and the matched count, or `None` as soon
/// as the candidate cannot reach `need`.
#[inline]
fn complete(
    others: &mut [RankCursor],
    r: Ranked<'_>,
    o: u32,
    (mut s, mut matched): (u64, u32),
    others_max: u64,
    need: u64,
) -> Option<(u64, u32)> {
    let mut ub = s + others_max;
    if ub < need {
        return None;
    }
    for c in others.iter_mut().rev() {
        if c.dense {
            // Already in `s`: the window's accumulators hold this term's impact.
            continue;
        }
        // `ub` counts this term at `c.max` until the lines below say better.
        ub -= c.max;
        if let Some(b) = c.seek_block(r, o) {
            let bmax =
                (c.weight * u64::from(r.block_max.get(b).copied().unwrap_or(u8::MAX))).min(c.max);
            if ub + bmax >= need {
                c.seek_in_block(r, o);
                if !c.done() && c.doc(r) == o {
                    let got = c.weight * c.impact(r);
                    s += got;
                    matched += 1;
                    ub += got.min(bmax);
                }
            }
        }
        if ub < need {
            return None;
        }
    }
    Some((s, matched))
}

impl<B: Storage> Segment<B> {
    /// Adds this segment's document count and each query term's document frequency to the
    /// query's statistics (see [`Query::rank_stats`]).
    pub(crate) fn add_rank_stats(&self, query: &Query, stats: &mut [u64], n: &mut u64) {
        let d = self.data();
        *n += u64::from(d.doc_count.to_native());
        for ((term, &hash), df) in query.terms.iter().zip(&query.term_hashes).zip(stats.iter_mut())
        {
            if let Some(t) = find_rank_term(d, term.as_bytes(), hash) {
                let (a, b) = posting_range(d, t);
                *df += (b - a) as u64;
            }
        }
    }

    /// The BM25F search of this segment with the query's weights already set.
    pub(crate) fn search_ranked(
        &self,
        query: &Query,
        options: &SearchOptions,
        deleted: &DeletedSet,
        segment_tag: u32,
        hits: &mut Hits,
    ) {
        let k = options.limit.min(hits.capacity());
        if k == 0 {
            return;
        }
        let d = self.data();
        let n = d.doc_count.to_native();
        let domain = match &options.domain {
            Some(name) => match crate::search::find_domain(d, name) {
                Some(ord) => Some(ord),
                None => return,
            },
            None => None,
        };
        let end_ordinal = if options.sacred_only { d.sacred_count.to_native().min(n) } else { n };
        let Ok(mut scratch) = query.rank.try_borrow_mut() else { return };
        let scratch = &mut *scratch;
        scratch.cursors.clear();
        for ((term, &hash), &weight) in
            query.terms.iter().zip(&query.term_hashes).zip(&scratch.weights)
        {
            if scratch.cursors.len() == scratch.cursors.capacity() {
                break;
            }
            if let Some(t) = find_rank_term(d, term.as_bytes(), hash) {
                let c = cursor(d, t, weight);
                if !c.done() {
                    scratch.cursors.push(c);
                }
            }
        }
        let cursors = &mut scratch.cursors[..];
        if cursors.is_empty() {
            return;
        }
        // Smallest bound first: the non-essential terms are a prefix.
        cursors.sort_unstable_by_key(|c| c.max);
        let prefix = &mut scratch.prefix;
        prefix.clear();
        let mut sum = 0u64;
        for c in cursors.iter() {
            prefix.push(sum);
            sum += c.max;
        }
        prefix.push(sum);

        let r = Ranked::of(d);
        let scores = d.scores.as_slice();
        let ids = d.ids.as_slice();
        let timestamps = d.timestamps.as_slice();
        let domain_of = d.domain_of.as_slice();
        let sacred_count = d.sacred_count.to_native();
        let id_and_time = |o: u32| {
            let id = ids.get(o as usize).copied().unwrap_or_default();
            (id, timestamps.get(o as usize).map_or(0, |x| x.to_native()))
        };
        // The largest boost of any document at or past an ordinal: ordinals run sacred first,
        // then by score descending inside each run (FORMAT.md; checked at open), so with
        // non-negative weights it is the boost at that ordinal, or inside the sacred run the
        // larger of that and the first other document's. It never grows as the search moves
        // on, so the relevance a document needs to enter the top k only rises.
        let positive = options.w_score >= 0.0 && options.w_sacred >= 0.0;
        let score_at = |o: u32| scores.get(o as usize).map_or(0.0, |s| s.to_native());
        let boost_at = |o: u32| -> (f32, bool) {
            if !positive {
                return (if options.w_score >= 0.0 { 1.0 } else { 0.0 }, options.w_sacred >= 0.0);
            }
            if o >= sacred_count {
                return (score_at(o), false);
            }
            let sacred = (score_at(o), true);
            if sacred_count >= n {
                return sacred;
            }
            let other = (score_at(sacred_count), false);
            if boost(other.0, other.1, options) > boost(sacred.0, sacred.1, options) {
                other
            } else {
                sacred
            }
        };
        let mut best_boost = boost_at(0);
        // A bar known before any hit (see `seed`): valid only if no boost lowers a score, that
        // is if every boost is at least 0 (weights at least 0 and the segment's smallest
        // scores, the last of each run, at least 0). A related search excludes one document,
        // which may be among the seed's.
        let floor = |o: u32| boost(score_at(o), o < sacred_count, options);
        let seeded = positive
            && domain.is_none()
            && n > 0
            && floor(n - 1) >= 0.0
            && (sacred_count == 0 || floor(sacred_count.min(n) - 1) >= 0.0);
        let seed_bar = if seeded {
            let kk = k + usize::from(options.exclude.is_some());
            units(seed(cursors, r, kk, deleted, end_ordinal, n))
        } else {
            0.0
        };
        let bar = |hits: &Hits| match hits.bar(k) {
            Some(b) => Some(b.max(seed_bar)),
            None => (seed_bar > 0.0).then_some(seed_bar),
        };
        let mut need = needed(bar(hits), best_boost, options);
        let (acc, bits) = hits.rank_scratch();
        let (mut acc, mut bits) = (std::mem::take(acc), std::mem::take(bits));

        loop {
            // Non-essential terms: together they cannot reach `need`.
            let ne = prefix.partition_point(|&p| p < need).saturating_sub(1).min(cursors.len());
            let (others, essential) = cursors.split_at_mut(ne);
            if essential.is_empty() {
                break;
            }
            let mut w = u32::MAX;
            for c in essential.iter() {
                if !c.done() {
                    w = w.min(c.doc(r));
                }
            }
            if w >= end_ordinal {
                break;
            }
            // The bound at the window's aligned start: it never lies below the one at `w` (the
            // bound only falls as ordinals grow), and the few aligned `scores` it reads stay
            // in cache from one search to the next, where `scores[w]` costs a miss a window.
            let boost = boost_at(w & !(RANK_WINDOW as u32 - 1));
            if boost != best_boost {
                best_boost = boost;
                let now = needed(bar(hits), best_boost, options);
                if now != need {
                    need = now;
                    // A higher bar may leave fewer terms essential.
                    continue;
                }
            }
            let wend = w.saturating_add(RANK_WINDOW as u32).min(end_ordinal);
            // Skip the window when even its blocks' maxima cannot reach the bar.
            let window_ub: u64 =
                essential.iter().map(|c| c.window_max(r, wend)).sum::<u64>() + prefix[ne];
            if window_ub < need {
                for c in essential.iter_mut() {
                    c.seek(r, wend);
                }
                continue;
            }
            // Which words of `bits` are non-zero, so that a sparse window reads only those.
            let mut touched = 0u64;
            for c in essential.iter_mut() {
                touched |= c.accumulate(r, w, wend, &mut acc, &mut bits);
            }
            // The slots the essential terms touched bound the window's candidates. A
            // non-essential term whose postings in the window are few beside them is added to
            // the accumulators in one sequential pass, as an essential term is, instead of one
            // galloping probe per candidate: `rest` is then the bound of the terms still probed.
            // Exact either way: a slot only such terms touched has `s <= prefix[ne] - rest`, so
            // `s + rest < need` drops it as the essential test would.
            let mut rest = prefix[ne];
            if !others.is_empty() {
                let mut slots = 0u64;
                let mut t = touched;
                while t != 0 {
                    let wi = t.trailing_zeros() as usize;
                    t &= t - 1;
                    slots += u64::from(bits.get(wi).map_or(0, |x| x.count_ones()));
                }
                let span = u64::from(wend.saturating_sub(w));
                let budget = slots * DENSE_FACTOR * u64::from(n);
                for c in others.iter_mut() {
                    c.dense = !c.done() && (c.df as u64) * span <= budget;
                    if c.dense {
                        c.seek(r, w);
                        touched |= c.accumulate(r, w, wend, &mut acc, &mut bits);
                        rest = rest.saturating_sub(c.max);
                    }
                }
            }
            while touched != 0 {
                let wi = touched.trailing_zeros() as usize;
                touched &= touched - 1;
                let mut word = bits.get_mut(wi).map_or(0, std::mem::take);
                while word != 0 {
                    let slot = wi * 64 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    let packed = acc.get_mut(slot).map_or(0, std::mem::take);
                    let s = packed >> COUNT_BITS;
                    let matched = (packed & ((1 << COUNT_BITS) - 1)) as u32;
                    let o = w + slot as u32;
                    let oi = o as usize;
                    if s + rest < need {
                        continue;
                    }
                    if deleted.contains(o) {
                        continue;
                    }
                    if let Some(dom) = domain {
                        if domain_of.get(oi).map(|x| x.to_native()) != Some(dom) {
                            continue;
                        }
                    }
                    // A candidate that may enter reads its score below, a cache miss of its
                    // own: start it now, beside `complete`'s reads. Its id and timestamp are
                    // read only if the order needs them (`Hits::offer_lazy`).
                    prefetch(scores.as_ptr().wrapping_add(oi));
                    let Some((s, matched)) = complete(others, r, o, (s, matched), rest, need)
                    else {
                        continue;
                    };
                    let mem_score = scores.get(oi).map_or(0.0, |x| x.to_native());
                    let total = ranked_score(s, mem_score, o < sacred_count, options);
                    if hits.bar(k).is_some_and(|bar| total < bar) {
                        continue;
                    }
                    let hit = Hit {
                        segment: segment_tag,
                        ordinal: o,
                        id: [0; 16],
                        score: total,
                        overlap: matched,
                        timestamp_micros: 0,
                    };
                    let entered = match options.exclude {
                        Some(exclude) => {
                            let (id, timestamp_micros) = id_and_time(o);
                            id != exclude && hits.offer(k, Hit { id, timestamp_micros, ..hit })
                        }
                        None => hits.offer_lazy(k, hit, &id_and_time),
                    };
                    if entered {
                        need = needed(bar(hits), best_boost, options);
                    }
                }
            }
        }
        let start = |o: u32| {
            prefetch(ids.as_ptr().wrapping_add(o as usize));
            prefetch(timestamps.as_ptr().wrapping_add(o as usize));
        };
        hits.resolve(segment_tag, start, &id_and_time);
        let (a, b) = hits.rank_scratch();
        *a = std::mem::take(&mut acc);
        *b = std::mem::take(&mut bits);
    }
}

impl<B: Storage> Segment<B> {
    /// Explains document `ordinal`'s BM25F score with the query's weights already set.
    pub(crate) fn explain_ranked(
        &self,
        query: &Query,
        ordinal: u32,
        options: &SearchOptions,
    ) -> Option<Explanation> {
        let doc = self.doc(ordinal)?;
        let d = self.data();
        let scratch = query.rank.try_borrow().ok()?;
        let mut terms = Vec::new();
        let mut relevance = 0u64;
        for ((term, &hash), &weight) in
            query.terms.iter().zip(&query.term_hashes).zip(&scratch.weights)
        {
            let Some(t) = find_rank_term(d, term.as_bytes(), hash) else { continue };
            let impact = impact_of(d, t, ordinal);
            if impact == 0 {
                continue;
            }
            let points = weight * u64::from(impact);
            relevance += points;
            terms.push(TermContribution {
                term: term.clone(),
                idf: weight as f64 / IDF_SCALE,
                impact: f64::from(impact) / 255.0,
                contribution: units(points),
            });
        }
        let score_boost = options.w_score * f64::from(doc.score());
        let sacred_boost = if doc.sacred() { options.w_sacred } else { 0.0 };
        Some(Explanation {
            ranking: Ranking::Bm25f,
            overlap: terms.len() as u32,
            jaccard: units(relevance),
            score_boost,
            sacred_boost,
            score: ranked_score(relevance, doc.score(), doc.sacred(), options),
            matched: terms.iter().map(|t| t.term.clone()).collect(),
            terms,
        })
    }
}
