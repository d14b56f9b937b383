//! Tokenizing: documents into a [`Part`], one table of terms and flat per-document arrays.

use std::ops::Range;

use crate::analyzer::ranked;
use crate::document::Document;
use crate::format::GIST_MAX_BYTES;
use crate::intern::{hash_term, Terms, Words};
use crate::keywords::{for_each_word, is_stop_word, DOCUMENT_INSIGHTS, MIN_KEYWORD_CHARS};
use crate::rank::RankPart;

use super::BuildError;

/// A document's fixed-size facts; its terms and gist live in the flat arrays of its [`Part`].
#[derive(Clone, Copy)]
pub(super) struct Prepared {
    pub(super) id: [u8; 16],
    pub(super) domain: u32,
    pub(super) score: f32,
    pub(super) sacred: bool,
    pub(super) timestamp: i64,
    pub(super) tokens: u32,
    /// The document's run in `Part::doc_terms`: start and length.
    pub(super) terms: (u32, u32),
    /// The document's gist in `Part::gists`: start and length (at most [`GIST_MAX_BYTES`]).
    pub(super) gist: (u32, u32),
}

#[derive(Clone, Copy, Default)]
pub(super) struct TermStats {
    pub(super) df: u32,
    pub(super) last: u32,
    pub(super) slot: u32,
}

/// Tokenized documents with their own term table: the builder's state, or one thread's share
/// of a batch before it is merged.
#[derive(Default)]
pub(super) struct Part {
    pub(super) terms: Terms,
    /// Per term: how many documents hold it, the last document (number + 1) it was seen in,
    /// and its slot in that document. One array, so one cache line per token.
    pub(super) stats: Vec<TermStats>,
    pub(super) docs: Vec<Prepared>,
    /// Per document, its distinct terms in order of first occurrence.
    pub(super) doc_terms: Vec<u32>,
    /// Parallel to `doc_terms`: the term's occurrences in the document, saturating.
    pub(super) doc_freqs: Vec<u8>,
    pub(super) gists: Vec<u8>,
    /// The documents' ranked (BM25F) terms.
    pub(super) rank: RankPart,
    /// Every distinct word (lowercased token) this part has seen, with its keyword id and ranked
    /// term id ([`NONE`] where the analyzer drops it): a token costs one lookup here, and each
    /// word is stop-listed and stemmed once, not at every occurrence. Ids stay valid when other
    /// parts are absorbed (ids are never renumbered), so the table needs no merging.
    pub(super) words: Words,
}

/// No term: the word is not a keyword, or not a ranked term.
pub(super) const NONE: u32 = u32::MAX;

impl Part {
    pub(super) fn terms_of(&self, doc: usize) -> Range<usize> {
        span(self.docs[doc].terms)
    }

    pub(super) fn gist_of(&self, doc: usize) -> Range<usize> {
        span(self.docs[doc].gist)
    }

    /// Refuses, before anything is added, growth that could pass the u32 limits: term ids,
    /// arena and posting offsets, per-document slots, document numbers and gist offsets.
    pub(super) fn check_room(
        &self,
        term_bytes: usize,
        docs: usize,
        postings: usize,
        gist_bytes: usize,
    ) -> Result<(), BuildError> {
        let limit = u32::MAX as usize;
        // The arena holds at least as many bytes as there are terms.
        if self.terms.bytes.len().saturating_add(term_bytes) >= limit {
            return Err(BuildError::TooLarge { what: "term bytes" });
        }
        // Documents are numbered from 1 (in `stats.last`); the last number must fit u32.
        if self.docs.len().saturating_add(docs) >= limit {
            return Err(BuildError::TooLarge { what: "document count" });
        }
        if self.doc_terms.len().saturating_add(postings) >= limit
            || self.rank.postings().saturating_add(postings) >= limit
        {
            return Err(BuildError::TooLarge { what: "postings" });
        }
        if self.gists.len().saturating_add(gist_bytes) >= limit {
            return Err(BuildError::TooLarge { what: "gist bytes" });
        }
        Ok(())
    }

    /// Tokenizes and appends a document already checked by the builder.
    pub(super) fn add(&mut self, doc: &Document, domain: u32) -> Result<(), BuildError> {
        // A document adds fewer terms and arena bytes than its text has bytes: this keeps
        // term ids, arena offsets and per-document slots within u32 whatever the text.
        let text_len = doc.question.len()
            + doc.insights.iter().take(DOCUMENT_INSIGHTS).map(String::len).sum::<usize>()
            + doc.synthesis.len();
        self.check_room(text_len, 1, text_len, GIST_MAX_BYTES)?;
        let number = self.docs.len() as u32 + 1;
        let first = self.doc_terms.len();
        let rank_first = self.rank.begin();
        let mut tokens = 0u32;
        let mut field_len = [0u32; 3];
        {
            let Part { terms, stats, doc_terms, doc_freqs, rank, words, .. } = self;
            let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
            let mut add_text = |text: &str, field: usize| {
                for_each_word(text, |word, chars| {
                    let bytes = word.as_bytes();
                    let [keyword, ranked] = words.ids_or_insert(bytes, || {
                        let keyword = if chars >= MIN_KEYWORD_CHARS && !is_stop_word(word) {
                            let (id, new) = terms.intern(bytes, hash_term(bytes));
                            if new {
                                stats.push(TermStats::default());
                            }
                            id
                        } else {
                            NONE
                        };
                        let ranked = ranked(&stemmer, word, chars)
                            .map_or(NONE, |t| rank.term_id(t.as_bytes()));
                        [keyword, ranked]
                    });
                    if ranked != NONE {
                        field_len[field] = field_len[field].saturating_add(1);
                        rank.count(ranked, field, rank_first);
                    }
                    if keyword == NONE {
                        return;
                    }
                    tokens = tokens.saturating_add(1);
                    let s = &mut stats[keyword as usize];
                    if s.last == number {
                        let f = &mut doc_freqs[first + s.slot as usize];
                        *f = f.saturating_add(1);
                    } else {
                        // Below u32::MAX: the document has fewer terms than its text has bytes.
                        *s = TermStats {
                            df: s.df + 1,
                            last: number,
                            slot: (doc_terms.len() - first) as u32,
                        };
                        doc_terms.push(keyword);
                        doc_freqs.push(1);
                    }
                });
            };
            add_text(&doc.question, 0);
            for insight in doc.insights.iter().take(DOCUMENT_INSIGHTS) {
                add_text(insight, 1);
            }
            add_text(&doc.synthesis, 2);
        }
        self.rank.end(rank_first, field_len);
        let gist_start = self.gists.len() as u32;
        self.gists.extend_from_slice(gist(&doc.question).as_bytes());
        self.docs.push(Prepared {
            id: doc.id,
            domain,
            score: doc.score,
            sacred: doc.sacred,
            timestamp: doc.timestamp_micros,
            tokens,
            terms: (first as u32, (self.doc_terms.len() - first) as u32),
            gist: (gist_start, self.gists.len() as u32 - gist_start),
        });
        Ok(())
    }

    /// Appends another part's documents, translating its term ids into this part's.
    pub(super) fn absorb(&mut self, other: Part) -> Result<(), BuildError> {
        self.check_room(
            other.terms.bytes.len(),
            other.docs.len(),
            other.doc_terms.len().max(other.rank.postings()),
            other.gists.len(),
        )?;
        let mut map = Vec::with_capacity(other.terms.len());
        for local in 0..other.terms.len() {
            let (id, new) =
                self.terms.intern(other.terms.get(local as u32), other.terms.hashes[local]);
            if new {
                self.stats.push(TermStats::default());
            }
            self.stats[id as usize].df += other.stats[local].df;
            map.push(id);
        }
        let terms_base = self.doc_terms.len() as u32;
        let gists_base = self.gists.len() as u32;
        self.doc_terms.extend(other.doc_terms.iter().map(|&t| map[t as usize]));
        self.doc_freqs.extend_from_slice(&other.doc_freqs);
        self.gists.extend_from_slice(&other.gists);
        self.rank.absorb(other.rank);
        self.docs.extend(other.docs.iter().map(|d| Prepared {
            terms: (d.terms.0 + terms_base, d.terms.1),
            gist: (d.gist.0 + gists_base, d.gist.1),
            ..*d
        }));
        // `stats.last` needs no reset: it only holds numbers of documents this part tokenized,
        // all below the next number, `docs.len() + 1`, which only grows here.
        Ok(())
    }
}

pub(super) fn span((start, len): (u32, u32)) -> Range<usize> {
    start as usize..start as usize + len as usize
}

/// The question cut to [`GIST_MAX_BYTES`] on a character boundary.
pub(super) fn gist(question: &str) -> &str {
    if question.len() <= GIST_MAX_BYTES {
        return question;
    }
    let mut end = GIST_MAX_BYTES;
    while !question.is_char_boundary(end) {
        end -= 1;
    }
    &question[..end]
}
