//! The builder's side of the BM25F index: per document, its ranked terms with their frequency in
//! each field; per segment, the impact-ordered postings with their block maxima.

use crate::analyzer::Bm25fParams;
use crate::builder::{u32_of, BuildError};
use crate::format::{self, RankStats, SegmentData, RANK_BLOCK, RANK_IMPACT_BITS, RANK_OFFSET_MAX};
use crate::intern::{hash_term, Terms};

/// A term's document frequency and where it was last seen (see `builder::part::TermStats`).
#[derive(Clone, Copy, Default)]
struct Seen {
    df: u32,
    /// The number (from 1) of the last document that had the term.
    last: u32,
    /// The term's slot in that document's run.
    slot: u32,
}

/// The ranked terms of tokenized documents, with their own term table.
#[derive(Default)]
pub(crate) struct RankPart {
    terms: Terms,
    seen: Vec<Seen>,
    /// Per document, its distinct ranked terms in order of first occurrence.
    doc_terms: Vec<u32>,
    /// Parallel to `doc_terms`: the term's occurrences in the question, the insights and the
    /// synthesis (saturating).
    doc_tf: Vec<[u16; 3]>,
    /// Per document: its run in `doc_terms` and its three field lengths.
    docs: Vec<RankDoc>,
}

#[derive(Clone, Copy)]
struct RankDoc {
    start: u32,
    len: u32,
    field_len: [u32; 3],
}

/// Lengths to truncate a [`RankPart`] back to (after a failed batch).
#[derive(Clone, Copy)]
pub(crate) struct RankMark {
    docs: usize,
    terms: usize,
}

impl RankPart {
    /// How many ranked term slots the documents hold.
    pub(crate) fn postings(&self) -> usize {
        self.doc_terms.len()
    }

    /// The id of ranked term `term`, interned on first sight.
    pub(crate) fn term_id(&mut self, term: &[u8]) -> u32 {
        let (id, new) = self.terms.intern(term, hash_term(term));
        if new {
            self.seen.push(Seen::default());
        }
        id
    }

    /// Counts one occurrence of term `id` in `field` of the document being added, which starts
    /// at `first` in `doc_terms` (see [`RankPart::begin`]).
    pub(crate) fn count(&mut self, id: u32, field: usize, first: usize) {
        let number = self.docs.len() as u32 + 1;
        let s = &mut self.seen[id as usize];
        if s.last == number {
            let tf = &mut self.doc_tf[first + s.slot as usize][field];
            *tf = tf.saturating_add(1);
        } else {
            // Below u32::MAX: the caller checked that the text has fewer terms than bytes.
            *s = Seen { df: s.df + 1, last: number, slot: (self.doc_terms.len() - first) as u32 };
            self.doc_terms.push(id);
            let mut tf = [0u16; 3];
            tf[field] = 1;
            self.doc_tf.push(tf);
        }
    }

    /// Where the next document's terms start.
    pub(crate) fn begin(&self) -> usize {
        self.doc_terms.len()
    }

    /// Ends the document that began at `first`, with its fields' lengths in ranked terms.
    pub(crate) fn end(&mut self, first: usize, field_len: [u32; 3]) {
        let len = (self.doc_terms.len() - first) as u32;
        self.docs.push(RankDoc { start: first as u32, len, field_len });
    }

    /// Appends another part's documents, translating its term ids into this part's.
    pub(crate) fn absorb(&mut self, other: RankPart) {
        let mut map = Vec::with_capacity(other.terms.len());
        for local in 0..other.terms.len() {
            let (id, new) =
                self.terms.intern(other.terms.get(local as u32), other.terms.hash(local));
            if new {
                self.seen.push(Seen::default());
            }
            self.seen[id as usize].df += other.seen[local].df;
            map.push(id);
        }
        let base = self.doc_terms.len() as u32;
        self.doc_terms.extend(other.doc_terms.iter().map(|&t| map[t as usize]));
        self.doc_tf.extend_from_slice(&other.doc_tf);
        self.docs.extend(other.docs.iter().map(|d| RankDoc { start: d.start + base, ..*d }));
    }

    /// Where the part ends now.
    pub(crate) fn mark(&self) -> RankMark {
        RankMark { docs: self.docs.len(), terms: self.doc_terms.len() }
    }

    /// Drops what was added after `mark` and recounts document frequencies.
    pub(crate) fn truncate(&mut self, mark: RankMark) {
        self.docs.truncate(mark.docs);
        self.doc_terms.truncate(mark.terms);
        self.doc_tf.truncate(mark.terms);
        self.seen.iter_mut().for_each(|s| *s = Seen::default());
        for &t in &self.doc_terms {
            self.seen[t as usize].df += 1;
        }
    }

    /// Fills the `rank_*` fields of `data` for documents numbered by `order` (ordinal → builder
    /// document number from 0).
    pub(crate) fn build(
        &self,
        order: &[u32],
        params: &Bm25fParams,
        data: &mut SegmentData,
    ) -> Result<(), BuildError> {
        // Terms held by some document, sorted bytewise.
        let mut sorted: Vec<u32> =
            (0..self.terms.len() as u32).filter(|&t| self.seen[t as usize].df > 0).collect();
        sorted.sort_unstable_by(|&a, &b| self.terms.get(a).cmp(self.terms.get(b)));
        let mut remap = vec![u32::MAX; self.terms.len()];
        let mut term_bytes = Vec::new();
        let mut term_offsets = Vec::with_capacity(sorted.len() + 1);
        term_offsets.push(0u32);
        let mut posting_offsets = Vec::with_capacity(sorted.len() + 1);
        posting_offsets.push(0u32);
        let mut postings = 0usize;
        for (new, &old) in sorted.iter().enumerate() {
            remap[old as usize] = new as u32;
            term_bytes.extend_from_slice(self.terms.get(old));
            term_offsets.push(u32_of(term_bytes.len(), "ranked term bytes")?);
            postings += self.seen[old as usize].df as usize;
            posting_offsets.push(u32_of(postings, "ranked postings")?);
        }

        let n = self.docs.len();
        let mut avg_len = [0f32; 3];
        for (f, avg) in avg_len.iter_mut().enumerate() {
            let total: u64 = self.docs.iter().map(|d| u64::from(d.field_len[f])).sum();
            *avg = if n == 0 { 0.0 } else { (total as f64 / n as f64) as f32 };
        }

        // Documents in ordinal order, so every term's postings come out ascending.
        let mut fill: Vec<u32> = posting_offsets[..posting_offsets.len() - 1].to_vec();
        let mut docs = vec![0u32; postings];
        let mut impacts = vec![0u8; postings];
        for (ordinal, &number) in order.iter().enumerate() {
            let d = &self.docs[number as usize];
            let run = d.start as usize..(d.start + d.len) as usize;
            for (&t, tf) in self.doc_terms[run.clone()].iter().zip(&self.doc_tf[run]) {
                let t = remap[t as usize] as usize;
                let at = fill[t] as usize;
                fill[t] += 1;
                docs[at] = ordinal as u32;
                impacts[at] = params.impact(tf.map(u32::from), d.field_len, avg_len);
            }
        }

        // Cut each term's postings into blocks of at most RANK_BLOCK postings spanning fewer
        // than 2^24 ordinals, and pack each posting as its offset from its block's first
        // ordinal above its impact.
        let blocks_guess = postings / RANK_BLOCK + sorted.len();
        let mut block_offsets = Vec::with_capacity(sorted.len() + 1);
        block_offsets.push(0u32);
        let mut block_start = Vec::with_capacity(blocks_guess + 1);
        let mut block_first = Vec::with_capacity(blocks_guess);
        let mut block_last = Vec::with_capacity(blocks_guess);
        let mut block_max = Vec::with_capacity(blocks_guess);
        let mut term_max = Vec::with_capacity(sorted.len());
        for w in posting_offsets.windows(2) {
            let (mut at, end) = (w[0] as usize, w[1] as usize);
            let mut top = 0u8;
            while at < end {
                let first = docs[at];
                let mut stop = at;
                let mut m = 0u8;
                while stop < end && stop - at < RANK_BLOCK && docs[stop] - first <= RANK_OFFSET_MAX
                {
                    m = m.max(impacts[stop]);
                    stop += 1;
                }
                block_start.push(u32_of(at, "ranked postings")?);
                block_first.push(first);
                block_last.push(docs[stop - 1]);
                block_max.push(m);
                top = top.max(m);
                for (d, &i) in docs[at..stop].iter_mut().zip(&impacts[at..stop]) {
                    *d = ((*d - first) << RANK_IMPACT_BITS) | u32::from(i);
                }
                at = stop;
            }
            block_offsets.push(u32_of(block_last.len(), "ranked posting blocks")?);
            term_max.push(top);
        }
        block_start.push(u32_of(postings, "ranked postings")?);

        data.rank = RankStats { k1: params.k1, weights: params.weights, b: params.b, avg_len };
        data.rank_term_slots =
            format::term_slots(sorted.iter().map(|&t| format::term_hash(self.terms.get(t))));
        data.rank_term_bytes = term_bytes;
        data.rank_term_offsets = term_offsets;
        data.rank_posting_offsets = posting_offsets;
        data.rank_block_offsets = block_offsets;
        data.rank_postings = docs;
        data.rank_block_start = block_start;
        data.rank_block_first = block_first;
        data.rank_block_last = block_last;
        data.rank_block_max = block_max;
        data.rank_term_max = term_max;
        Ok(())
    }
}

/// Moves the `rank_*` fields [`RankPart::build`] fills from `from` into `to` (the ranked
/// postings are built on their own thread, into their own [`SegmentData`]).
pub(crate) fn move_ranked(from: &mut SegmentData, to: &mut SegmentData) {
    use std::mem::take;
    to.rank = from.rank;
    to.rank_term_slots = take(&mut from.rank_term_slots);
    to.rank_term_bytes = take(&mut from.rank_term_bytes);
    to.rank_term_offsets = take(&mut from.rank_term_offsets);
    to.rank_posting_offsets = take(&mut from.rank_posting_offsets);
    to.rank_block_offsets = take(&mut from.rank_block_offsets);
    to.rank_postings = take(&mut from.rank_postings);
    to.rank_block_start = take(&mut from.rank_block_start);
    to.rank_block_first = take(&mut from.rank_block_first);
    to.rank_block_last = take(&mut from.rank_block_last);
    to.rank_block_max = take(&mut from.rank_block_max);
    to.rank_term_max = take(&mut from.rank_term_max);
}
