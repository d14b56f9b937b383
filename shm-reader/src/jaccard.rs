//! The Jaccard search of one segment: keyword overlap over the union, plus the boosts.
//!
//! Documents are visited in ordinal order, sacred first and by descending score inside each run,
//! in windows of a few hundred ordinals. Before each window the best score any later document of
//! the run could reach (the largest possible Jaccard part plus the boost of the window's first
//! document) is compared with the current k-th hit; when it cannot enter, the rest of the run is
//! skipped.
//!
//! Once the top-k is full, the same bound says how many query keywords `r` a document must have
//! to enter. Such a document has at least one of the `present - r + 1` rarest keywords
//! (pigeonhole), so only those keywords' postings are walked ("essential" terms); the
//! candidates' other keywords are looked up in their forward lists. Common keywords, whose
//! postings are most of the work, are thus skipped as soon as the bar rises. Results are exact.

use rkyv::rend::{u16_le, u32_le};
use semantic_index::format::{self, ArchivedSegmentData};

use crate::search::{find_domain, prefetch, score, DeletedSet, Hit, Hits, Query, SearchOptions};
use crate::segment::{find_term, keyword_count, Bitmaps, Forward, Segment, Storage};

/// Width of the ordinal window the search accumulates overlaps in.
pub(crate) const WINDOW: usize = 512;

/// Float slack for bounds, which add the same parts in another order than [`score`].
const SLACK: f64 = 1e-9;

/// `Cursor::bitmap` of a term that has postings.
const NO_BITMAP: usize = usize::MAX;

/// A term's documents being walked: its postings page by page (see
/// `SegmentData::posting_offsets`), or the set bits of a frequent term's bitmap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
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

/// The one bound every pruning decision uses: the largest score a document can reach.
#[derive(Clone, Copy)]
struct Bound<'o> {
    /// Query keywords, `|Q|`.
    q: u32,
    /// Query keywords the segment has.
    present: u32,
    /// The fewest keywords any document of the segment has.
    min_keywords: u32,
    options: &'o SearchOptions,
}

impl Bound<'_> {
    /// The largest Jaccard part of a document matching `overlap` query keywords that has at
    /// least `keywords` keywords of its own (the part grows with the overlap and falls with
    /// the document's size).
    fn jaccard(&self, overlap: u32, keywords: u32) -> f64 {
        let dk = f64::from(keywords.max(overlap));
        f64::from(overlap) / (f64::from(self.q) + dk - f64::from(overlap))
    }

    /// The score-weighted boost of the document at `ordinal`, or 0 under a negative weight (no
    /// document's score part is then above 0).
    fn score_boost(&self, scores: &[rkyv::rend::f32_le], ordinal: u32) -> f64 {
        if self.options.w_score >= 0.0 {
            let s = scores.get(ordinal as usize).map_or(1.0, |s| s.to_native());
            self.options.w_score * f64::from(s)
        } else {
            0.0
        }
    }

    /// Whether a document matching at most `overlap` keywords, with at least `keywords` of its
    /// own and at most `boost`, stays below `bar` (never while the top-k is not full).
    fn cannot_enter(&self, overlap: u32, keywords: u32, boost: f64, bar: Option<f64>) -> bool {
        bar.is_some_and(|bar| self.jaccard(overlap, keywords) + boost + SLACK < bar)
    }

    /// How many keywords a document with at most `boost` must match to reach `bar`; `None`
    /// when even all of them do not.
    fn needed(&self, boost: f64, bar: Option<f64>) -> Option<u32> {
        if self.cannot_enter(self.present, self.min_keywords, boost, bar) {
            return None;
        }
        let mut r = 1;
        while r < self.present && self.cannot_enter(r, self.min_keywords, boost, bar) {
            r += 1;
        }
        Some(r)
    }
}

/// One Jaccard search of one segment: what every window and candidate reads.
struct JaccardSearch<'a> {
    d: &'a ArchivedSegmentData,
    p: Postings<'a>,
    bound: Bound<'a>,
    options: &'a SearchOptions,
    deleted: &'a DeletedSet,
    domain: Option<u32>,
    segment_tag: u32,
    k: usize,
}

impl<B: Storage> Segment<B> {
    /// The Jaccard search (see [`Segment::search`] and the module's documentation).
    pub(crate) fn search_jaccard(
        &self,
        query: &Query,
        options: &SearchOptions,
        deleted: &DeletedSet,
        segment_tag: u32,
        hits: &mut Hits,
    ) {
        let k = options.limit;
        if query.is_empty() || k == 0 || hits.capacity() == 0 {
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
        let Ok(mut cursors) = query.cursors.try_borrow_mut() else { return };
        cursors.clear();
        let pages = format::posting_pages(n) as usize;
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
        // Rarest first: the essential terms are always a prefix.
        cursors.sort_unstable_by_key(|c| c.count);
        let search = JaccardSearch {
            d,
            p,
            bound: Bound {
                q: query.keywords.len() as u32,
                present: cursors.len() as u32,
                min_keywords: d.min_keywords.to_native().max(1),
                options,
            },
            options,
            deleted,
            domain,
            segment_tag,
            k,
        };
        let runs: [(u32, u32, bool); 2] = [(0, sacred_count, true), (sacred_count, n, false)];
        let runs = if options.sacred_only { &runs[..1] } else { &runs[..] };
        let (mut acc, mut touched) = hits.jaccard_scratch();
        for &(start, end, sacred) in runs {
            search.run(&mut cursors, (start, end), sacred, hits, &mut acc, &mut touched);
        }
        hits.put_jaccard_scratch(acc, touched);
    }
}

impl JaccardSearch<'_> {
    /// Searches the ordinals `[start, end)`, all sacred or all not, window by window.
    fn run(
        &self,
        cursors: &mut [Cursor],
        (start, end): (u32, u32),
        sacred: bool,
        hits: &mut Hits,
        acc: &mut [u16],
        touched: &mut Vec<u16>,
    ) {
        let p = self.p;
        let scores = self.d.scores.as_slice();
        for c in cursors.iter_mut() {
            c.seek(p, start);
        }
        let sacred_boost = if sacred { self.options.w_sacred } else { 0.0 };
        let mut essential = cursors.len();
        // No document before this ordinal is left to visit in the run.
        let mut next_min = start;
        loop {
            let boost = self.bound.score_boost(scores, next_min) + sacred_boost;
            // How many terms must match to enter (1 while the top-k is not full).
            let Some(r_need) = self.bound.needed(boost, hits.bar(self.k)) else { break };
            let wanted = (self.bound.present - r_need + 1) as usize;
            // The next window starts at the smallest ordinal an essential cursor points to.
            let w = cursors.iter().take(wanted).filter(|c| !c.done()).map(|c| c.ordinal(p)).min();
            let Some(w) = w.filter(|&w| w < end) else { break };
            // A tighter bound from the window's own first document.
            let boost = self.bound.score_boost(scores, w) + sacred_boost;
            let (present, min_keywords) = (self.bound.present, self.bound.min_keywords);
            if self.bound.cannot_enter(present, min_keywords, boost, hits.bar(self.k)) {
                break;
            }
            if wanted > essential {
                // Never happens on a valid segment (the bar only rises and the boost only falls
                // inside a run); keep cursors that rejoin in step anyway.
                for c in cursors.iter_mut().take(wanted).skip(essential) {
                    c.seek(p, w);
                }
            }
            essential = wanted;
            let wend = end.min(w.saturating_add(WINDOW as u32));
            next_min = wend;
            let (walked, others) = cursors.split_at_mut(essential.min(cursors.len()));
            self.walk(walked, w, wend, acc, touched);
            for &slot in touched.iter() {
                let overlap = std::mem::take(&mut acc[usize::from(slot)]);
                self.consider(w + u32::from(slot), u32::from(overlap), others, sacred, hits);
            }
            touched.clear();
        }
    }

    /// Counts, per document of the window `[w, wend)`, how many essential terms it has.
    fn walk(
        &self,
        essential: &mut [Cursor],
        w: u32,
        wend: u32,
        acc: &mut [u16],
        touched: &mut Vec<u16>,
    ) {
        let p = self.p;
        let scores = self.d.scores.as_slice();
        let forward_offsets = self.d.forward_offsets.as_slice();
        let frequent_counts = self.d.frequent_counts.as_slice();
        for c in essential.iter_mut() {
            while !c.done() {
                let o = c.ordinal(p);
                if o >= wend {
                    break;
                }
                c.advance(p);
                // Hostile files may hold unsorted postings: skip what is out of the window.
                let Some(slot) = o.checked_sub(w).map(|x| x as usize).filter(|&x| x < WINDOW)
                else {
                    continue;
                };
                let Some(a) = acc.get_mut(slot) else { continue };
                if *a == 0 {
                    touched.push(slot as u16);
                    // What the candidate loop reads first, requested now so that the loads
                    // overlap the rest of the walk: it helps searches whose caches were evicted
                    // and costs warm ones nothing (figures in benches/NOTES.md).
                    let oi = o as usize;
                    prefetch(scores.as_ptr().wrapping_add(oi));
                    prefetch(forward_offsets.as_ptr().wrapping_add(oi));
                    prefetch(frequent_counts.as_ptr().wrapping_add(oi));
                }
                *a = a.saturating_add(1);
            }
        }
    }

    /// Scores document `o`, which has `overlap` of the essential terms, looking up the `others`
    /// in its forward list only while it can still enter, and offers it to `hits`.
    fn consider(&self, o: u32, mut overlap: u32, others: &[Cursor], sacred: bool, hits: &mut Hits) {
        let d = self.d;
        let oi = o as usize;
        if self.deleted.contains(o) {
            return;
        }
        if let Some(dom) = self.domain {
            if d.domain_of.as_slice().get(oi).map(|x| x.to_native()) != Some(dom) {
                return;
            }
        }
        let s = d.scores.as_slice().get(oi).map_or(0.0, |x| x.to_native());
        // Read once: the bound below and the score both use it.
        let own_count =
            keyword_count(d.forward_offsets.as_slice(), d.frequent_counts.as_slice(), oi);
        if !others.is_empty() {
            let bar = hits.bar(self.k);
            let boost = self.options.w_score * f64::from(s)
                + if sacred { self.options.w_sacred } else { 0.0 };
            let own = own_count.unwrap_or(0);
            // The overlap it can still reach. With every other keyword: this skips the lookups
            // (cache misses) for most candidates of long queries. Then one lookup at a time,
            // rarest keyword first (the likeliest to miss), and the bound again after each miss.
            let mut best = overlap + others.len() as u32;
            if self.bound.cannot_enter(best, own, boost, bar) {
                return;
            }
            let terms = Forward::of(d, oi);
            for c in others {
                if c.in_doc(self.p, terms, oi) {
                    overlap += 1;
                } else {
                    best -= 1;
                    if self.bound.cannot_enter(best, own, boost, bar) {
                        return;
                    }
                }
            }
        }
        let dk = own_count.map_or(overlap, |x| x.max(overlap));
        let total = score(overlap, self.bound.q, dk, s, sacred, self.options);
        if hits.bar(self.k).is_some_and(|bar| total < bar) {
            return;
        }
        let id = d.ids.as_slice().get(oi).copied().unwrap_or_default();
        if self.options.exclude == Some(id) {
            return;
        }
        let timestamp_micros = d.timestamps.as_slice().get(oi).map_or(0, |x| x.to_native());
        let hit = Hit {
            segment: self.segment_tag,
            ordinal: o,
            id,
            score: total,
            overlap,
            timestamp_micros,
        };
        hits.offer(self.k, hit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::find_term;
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
