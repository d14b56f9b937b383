//! Turns documents into segment bytes.
//!
//! Adding a document tokenizes its text and interns each keyword once, in a table of term ids
//! (one arena of bytes, a `hashbrown::HashTable` of ids); documents keep their terms in one flat
//! array, not one vector each. [`SegmentBuilder::add_batch`] tokenizes on every core into
//! private tables and merges them. [`SegmentBuilder::data`] sorts documents and terms, then
//! builds postings on one thread while another builds the per-document arrays.

use std::io::{self, Write};
use std::ops::Range;
#[cfg(feature = "write")]
use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::analyzer::Bm25fParams;
use crate::cost;
use crate::document::Document;
use crate::format::{self, Header, SegmentData, GIST_MAX_BYTES, HEADER_LEN, VERSION};
use crate::intern::{hash_term, Terms};
use crate::keywords::{for_each_token, DOCUMENT_INSIGHTS};
use crate::rank::RankPart;

/// Why a document or a segment could not be built or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two documents with the same id.
    #[error("duplicate document id {}", hex(id))]
    DuplicateId {
        /// The id given twice.
        id: [u8; 16],
    },
    /// A score outside `0.0..=1.0` (or NaN).
    #[error("document {}: score {score} is outside 0..=1", hex(id))]
    Score {
        /// The document.
        id: [u8; 16],
        /// The score given.
        score: f32,
    },
    /// More documents or postings than the format's 32-bit offsets can address.
    #[error("segment too large: {what} exceeds the format's 32-bit limit")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
    },
    /// BM25F parameters out of range (see [`Bm25fParams::is_valid`]).
    #[error("BM25F parameters out of range: {params:?}")]
    RankParams {
        /// The parameters given.
        params: Bm25fParams,
    },
    /// rkyv could not serialize the payload.
    #[error("serializing the segment payload: {0}")]
    Serialize(String),
    /// Writing the segment file failed.
    #[cfg(feature = "write")]
    #[error("writing segment {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: atomic_write::Error,
    },
}

pub(crate) fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A document's fixed-size facts; its terms and gist live in the flat arrays of its [`Part`].
#[derive(Clone, Copy)]
struct Prepared {
    id: [u8; 16],
    domain: u32,
    score: f32,
    sacred: bool,
    timestamp: i64,
    tokens: u32,
    /// The document's run in `Part::doc_terms`: start and length.
    terms: (u32, u32),
    /// The document's gist in `Part::gists`: start and length (at most [`GIST_MAX_BYTES`]).
    gist: (u32, u32),
}

#[derive(Clone, Copy, Default)]
struct TermStats {
    df: u32,
    last: u32,
    slot: u32,
}

/// Tokenized documents with their own term table: the builder's state, or one thread's share
/// of a batch before it is merged.
#[derive(Default)]
struct Part {
    terms: Terms,
    /// Per term: how many documents hold it, the last document (number + 1) it was seen in,
    /// and its slot in that document. One array, so one cache line per token.
    stats: Vec<TermStats>,
    docs: Vec<Prepared>,
    /// Per document, its distinct terms in order of first occurrence.
    doc_terms: Vec<u32>,
    /// Parallel to `doc_terms`: the term's occurrences in the document, saturating.
    doc_freqs: Vec<u8>,
    gists: Vec<u8>,
    /// The documents' ranked (BM25F) terms.
    rank: RankPart,
}

impl Part {
    fn terms_of(&self, doc: usize) -> Range<usize> {
        span(self.docs[doc].terms)
    }

    fn gist_of(&self, doc: usize) -> Range<usize> {
        span(self.docs[doc].gist)
    }

    /// Refuses, before anything is added, growth that could pass the u32 limits: term ids,
    /// arena and posting offsets, per-document slots, document numbers and gist offsets.
    fn check_room(
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
    fn add(&mut self, doc: &Document, domain: u32) -> Result<(), BuildError> {
        // A document adds fewer terms and arena bytes than its text has bytes: this keeps
        // term ids, arena offsets and per-document slots within u32 whatever the text.
        let text_len = doc.question.len()
            + doc.insights.iter().take(DOCUMENT_INSIGHTS).map(String::len).sum::<usize>()
            + doc.synthesis.len();
        self.check_room(text_len, 1, text_len, GIST_MAX_BYTES)?;
        let number = self.docs.len() as u32 + 1;
        let first = self.doc_terms.len();
        let mut tokens = 0u32;
        {
            let Part { terms, stats, doc_terms, doc_freqs, .. } = self;
            let mut add_text = |text: &str| {
                for_each_token(text, |token| {
                    tokens = tokens.saturating_add(1);
                    let bytes = token.as_bytes();
                    let (id, new) = terms.intern(bytes, hash_term(bytes));
                    if new {
                        stats.push(TermStats::default());
                    }
                    let s = &mut stats[id as usize];
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
                        doc_terms.push(id);
                        doc_freqs.push(1);
                    }
                });
            };
            add_text(&doc.question);
            for insight in doc.insights.iter().take(DOCUMENT_INSIGHTS) {
                add_text(insight);
            }
            add_text(&doc.synthesis);
        }
        self.rank.add(doc);
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
    fn absorb(&mut self, other: Part) -> Result<(), BuildError> {
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

fn span((start, len): (u32, u32)) -> Range<usize> {
    start as usize..start as usize + len as usize
}

/// `f32::total_cmp` as an `Ord` key.
#[derive(Clone, Copy, PartialEq)]
struct OrderedScore(f32);

impl Eq for OrderedScore {}

impl PartialOrd for OrderedScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Batches smaller than this are tokenized on the calling thread alone.
const PARALLEL_MIN_DOCS: usize = 4096;
/// Builds with fewer postings than this run on one thread.
const PARALLEL_MIN_POSTINGS: usize = 1 << 18;
/// The most threads a batch is split over.
const MAX_THREADS: usize = 8;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
}

/// Runs `a` and `b`, on two threads when `parallel`.
fn join<A: Send, B: Send>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B,
) -> (A, B) {
    if !parallel {
        let a = a();
        return (a, b());
    }
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        match a.join() {
            Ok(a) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Collects documents and writes them as one segment.
///
/// The output is deterministic: the same documents (in any order, added one by one or in
/// batches) and the same generation give the same bytes.
#[derive(Default)]
pub struct SegmentBuilder {
    generation: u64,
    ids: FxHashSet<[u8; 16]>,
    domains: FxHashMap<String, u32>,
    part: Part,
    rank_params: Bm25fParams,
}

impl SegmentBuilder {
    /// An empty builder (generation 0).
    pub fn new() -> SegmentBuilder {
        SegmentBuilder::default()
    }

    /// Sets the generation written into the header.
    pub fn generation(mut self, generation: u64) -> SegmentBuilder {
        self.generation = generation;
        self
    }

    /// Sets the BM25F parameters the segment's impacts are computed with (default
    /// [`Bm25fParams::DEFAULT`]). Segments searched together should share them: their scores
    /// are comparable only then.
    pub fn rank_params(mut self, params: Bm25fParams) -> Result<SegmentBuilder, BuildError> {
        if !params.is_valid() {
            return Err(BuildError::RankParams { params });
        }
        self.rank_params = params;
        Ok(self)
    }

    /// How many documents were added.
    pub fn len(&self) -> usize {
        self.part.docs.len()
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.part.docs.is_empty()
    }

    /// Adds a document; its keywords are extracted here ([`keywords`](crate::keywords)' rule).
    ///
    /// On error nothing is added.
    pub fn add(&mut self, doc: &Document) -> Result<(), BuildError> {
        check_score(doc)?;
        if self.ids.contains(&doc.id) {
            return Err(BuildError::DuplicateId { id: doc.id });
        }
        let domains = self.domains.len() as u32;
        let domain = self.domain(&doc.domain);
        if let Err(e) = self.part.add(doc, domain) {
            self.forget_domains_from(domains);
            return Err(e);
        }
        self.ids.insert(doc.id);
        Ok(())
    }

    /// Adds many documents, tokenizing them on every available core.
    ///
    /// Gives the same segment as adding them one by one with [`add`](Self::add). Every document
    /// is checked first: on error (a bad score, an id seen before or twice in `docs`), nothing
    /// of the batch is added.
    pub fn add_batch(&mut self, docs: &[Document]) -> Result<(), BuildError> {
        let mut fresh: FxHashSet<[u8; 16]> = FxHashSet::default();
        for doc in docs {
            check_score(doc)?;
            if self.ids.contains(&doc.id) || !fresh.insert(doc.id) {
                return Err(BuildError::DuplicateId { id: doc.id });
            }
        }
        let known_domains = self.domains.len() as u32;
        let domains: Vec<u32> = docs.iter().map(|d| self.domain(&d.domain)).collect();
        let threads = threads();
        let before = (self.part.docs.len(), self.part.doc_terms.len(), self.part.gists.len());
        let rank_mark = self.part.rank.mark();
        let result = if threads < 2 || docs.len() < PARALLEL_MIN_DOCS {
            docs.iter().zip(&domains).try_for_each(|(doc, &domain)| self.part.add(doc, domain))
        } else {
            self.add_parallel(docs, &domains, threads)
        };
        if let Err(e) = result {
            // Only a size limit gets here: drop the documents of this batch already appended.
            let (n, terms, gists) = before;
            self.part.docs.truncate(n);
            self.part.doc_terms.truncate(terms);
            self.part.doc_freqs.truncate(terms);
            self.part.gists.truncate(gists);
            self.part.rank.truncate(rank_mark);
            self.recount_df();
            self.forget_domains_from(known_domains);
            return Err(e);
        }
        self.ids.extend(fresh);
        Ok(())
    }

    /// Tokenizes the first share of `docs` here and the others on scoped threads, each into
    /// its own [`Part`], then merges those in order.
    fn add_parallel(
        &mut self,
        docs: &[Document],
        domains: &[u32],
        threads: usize,
    ) -> Result<(), BuildError> {
        let share = docs.len().div_ceil(threads);
        let part = &mut self.part;
        std::thread::scope(|s| {
            let workers: Vec<_> = docs
                .chunks(share)
                .zip(domains.chunks(share))
                .skip(1)
                .map(|(docs, domains)| {
                    s.spawn(move || {
                        let mut part = Part::default();
                        docs.iter().zip(domains).try_for_each(|(d, &dom)| part.add(d, dom))?;
                        Ok::<Part, BuildError>(part)
                    })
                })
                .collect();
            let mut result = docs
                .iter()
                .zip(domains)
                .take(share)
                .try_for_each(|(doc, &domain)| part.add(doc, domain));
            for worker in workers {
                let other = match worker.join() {
                    Ok(other) => other,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                if result.is_ok() {
                    result = other.and_then(|other| part.absorb(other));
                }
            }
            result
        })
    }

    /// Recomputes document frequencies from the documents (after a failed batch).
    fn recount_df(&mut self) {
        let part = &mut self.part;
        part.stats.iter_mut().for_each(|s| *s = TermStats::default());
        for &t in &part.doc_terms {
            part.stats[t as usize].df += 1;
        }
    }

    /// Drops domains interned for documents that were not added after all.
    fn forget_domains_from(&mut self, first: u32) {
        self.domains.retain(|_, id| *id < first);
    }

    /// The domain's builder id, interned on first sight.
    fn domain(&mut self, domain: &str) -> u32 {
        if let Some(&id) = self.domains.get(domain) {
            return id;
        }
        let id = self.domains.len() as u32;
        self.domains.insert(domain.to_owned(), id);
        id
    }

    /// Builds the archived body of the segment.
    pub fn data(&self) -> Result<SegmentData, BuildError> {
        let part = &self.part;
        let n = part.docs.len();
        // Ordinals: sacred first, then score desc, timestamp desc, id asc.
        let mut order: Vec<u32> = (0..n as u32).collect();
        // One tuple key per document instead of four indirect compares.
        order.sort_unstable_by_key(|&i| {
            let d = &part.docs[i as usize];
            (
                !d.sacred,
                std::cmp::Reverse(OrderedScore(d.score)),
                std::cmp::Reverse(d.timestamp),
                u128::from_be_bytes(d.id),
            )
        });

        // Terms held by some document, sorted bytewise; builder ids map to sorted ordinals.
        // The first eight bytes as a big-endian integer decide most comparisons.
        let prefix = |t: u32| {
            let bytes = part.terms.get(t);
            let mut word = [0u8; 8];
            let n = bytes.len().min(8);
            word[..n].copy_from_slice(&bytes[..n]);
            u64::from_be_bytes(word)
        };
        let mut keyed: Vec<(u64, u32)> = (0..part.terms.len() as u32)
            .filter(|&t| part.stats[t as usize].df > 0)
            .map(|t| (prefix(t), t))
            .collect();
        keyed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| part.terms.get(a.1).cmp(part.terms.get(b.1)))
        });
        let sorted_terms: Vec<u32> = keyed.iter().map(|&(_, t)| t).collect();
        let mut remap = vec![u32::MAX; part.terms.len()];
        let mut term_bytes = Vec::with_capacity(part.terms.bytes.len());
        let mut term_offsets = Vec::with_capacity(sorted_terms.len() + 1);
        term_offsets.push(0u32);
        for (new, &old) in sorted_terms.iter().enumerate() {
            remap[old as usize] = new as u32;
            term_bytes.extend_from_slice(part.terms.get(old));
            term_offsets.push(u32_of(term_bytes.len(), "term bytes")?);
        }

        // Domains sorted bytewise.
        let mut sorted_domains: Vec<(&str, u32)> =
            self.domains.iter().map(|(d, &id)| (d.as_str(), id)).collect();
        sorted_domains.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut domain_remap = vec![0u32; sorted_domains.len()];
        let mut domain_bytes = Vec::new();
        let mut domain_offsets = vec![0u32];
        for (new, (text, old)) in sorted_domains.iter().enumerate() {
            domain_remap[*old as usize] = new as u32;
            domain_bytes.extend_from_slice(text.as_bytes());
            domain_offsets.push(u32_of(domain_bytes.len(), "domain bytes")?);
        }

        // Postings on one thread, per-document arrays on this one. (`postings` checks that
        // their offsets fit u32.)
        let parallel = part.doc_terms.len() >= PARALLEL_MIN_POSTINGS && threads() > 1;
        let narrow = sorted_terms.len() <= format::NARROW_TERMS;
        let frequent = frequent_terms(part, &sorted_terms, n as u32, narrow);
        // Bitmap index per builder term id, u32::MAX for terms with postings.
        let mut bitmap_of = vec![u32::MAX; part.terms.len()];
        for (i, &t) in frequent.iter().enumerate() {
            bitmap_of[sorted_terms[t as usize] as usize] = i as u32;
        }
        let (postings, data) = join(
            parallel,
            || postings(part, &order, &sorted_terms, &bitmap_of),
            || {
                let layout = DocLayout { remap: &remap, domain_remap: &domain_remap, narrow };
                per_document(part, &order, &layout, &bitmap_of, frequent.len())
            },
        );
        let (posting_offsets, postings, mut frequencies) = postings?;
        let (mut data, frequent_frequencies) = data?;
        data.frequent_terms = frequent;
        let frequent_postings = frequent_frequencies.iter().map(Vec::len).sum::<usize>();
        u32_of(frequencies.len() + frequent_postings, "postings")?;
        frequencies.reserve_exact(frequent_postings);
        for f in &frequent_frequencies {
            frequencies.extend_from_slice(f);
        }
        data.term_slots =
            format::term_slots(sorted_terms.iter().map(|&t| format::term_hash(part.terms.get(t))));
        data.term_bytes = term_bytes;
        data.term_offsets = term_offsets;
        data.domain_bytes = domain_bytes;
        data.domain_offsets = domain_offsets;
        data.posting_offsets = posting_offsets;
        data.postings = postings;
        let exceptions = frequencies.iter().filter(|&&f| f != 1).count();
        if cost::sparse_frequencies(frequencies.len(), exceptions) {
            let mut at = Vec::with_capacity(exceptions);
            let mut values = Vec::with_capacity(exceptions);
            for (i, &f) in frequencies.iter().enumerate().filter(|(_, &f)| f != 1) {
                at.push(u32_of(i, "postings")?);
                values.push(f);
            }
            data.frequency_exceptions = at;
            data.frequency_values = values;
        } else {
            data.frequencies = frequencies;
        }
        part.rank.build(&order, &self.rank_params, &mut data)?;
        Ok(data)
    }

    /// The complete segment file: header and payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BuildError> {
        let data = self.data()?;
        // Serialize behind room for the header, in a buffer sized up front: no copy of the
        // payload and no growth. The header is a multiple of the payload alignment, so the
        // archive's padding (computed from positions in this buffer) is the same as alone.
        let mut buf = rkyv::util::AlignedVec::<{ format::PAYLOAD_ALIGN }>::with_capacity(
            HEADER_LEN + payload_estimate(&data),
        );
        buf.extend_from_slice(&[0u8; HEADER_LEN]);
        let mut buf = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(&data, buf)
            .map_err(|e| BuildError::Serialize(e.to_string()))?;
        let payload_len = buf.len() - HEADER_LEN;
        let mut header = Header {
            version: VERSION,
            generation: self.generation,
            doc_count: self.len() as u64,
            payload_len: payload_len as u64,
            checksum: 0,
        };
        header.checksum = format::checksum(
            &header.encode()[..format::CHECKSUMMED_HEADER_LEN],
            &buf[HEADER_LEN..],
        );
        buf[..HEADER_LEN].copy_from_slice(&header.encode());
        Ok(buf.into_vec())
    }

    /// Writes the segment to `w`, returning the number of bytes written.
    pub fn write_to<W: Write>(&self, mut w: W) -> io::Result<u64> {
        let bytes = self.to_bytes().map_err(io::Error::other)?;
        w.write_all(&bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Writes the segment durably to `path` through atomic-write, with the given mode.
    #[cfg(feature = "write")]
    pub fn write_file(&self, path: impl AsRef<Path>, mode: u32) -> Result<u64, BuildError> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        atomic_write::Options::new()
            .mode(mode)
            .write(path, &bytes)
            .map_err(|source| BuildError::Write { path: path.to_owned(), source })?;
        Ok(bytes.len() as u64)
    }
}

fn check_score(doc: &Document) -> Result<(), BuildError> {
    if (0.0..=1.0).contains(&doc.score) {
        Ok(())
    } else {
        Err(BuildError::Score { id: doc.id, score: doc.score })
    }
}

/// The frequent terms (sorted ordinals, ascending): those for which [`cost::bitmap_saving`] is positive,
/// at most [`format::FREQUENT_MAX`] of them, most frequent first (ties: lower ordinal). None
/// at all when the bytes they save would not pay for the per-document counts.
fn frequent_terms(part: &Part, sorted_terms: &[u32], n: u32, narrow: bool) -> Vec<u32> {
    // (df, ordinal, bytes saved) of every term a bitmap pays for.
    let mut chosen: Vec<(u32, u32, u64)> = sorted_terms
        .iter()
        .enumerate()
        .map(|(new, &old)| {
            let df = part.stats[old as usize].df;
            (df, new as u32, cost::bitmap_saving(df, n, narrow))
        })
        .filter(|&(_, _, saved)| saved > 0)
        .collect();
    chosen.sort_unstable_by_key(|&(df, t, _)| (std::cmp::Reverse(df), t));
    chosen.truncate(format::FREQUENT_MAX);
    let saved: u64 = chosen.iter().map(|&(_, _, saved)| saved).sum();
    if saved <= u64::from(n) {
        return Vec::new();
    }
    let mut terms: Vec<u32> = chosen.into_iter().map(|(_, t, _)| t).collect();
    terms.sort_unstable();
    terms
}

/// Postings by counting sort on the term: documents visited in ordinal order keep each list
/// ascending, and a term's postings of one page follow those of the page before. Frequent
/// terms (`bitmap_of[t] != u32::MAX`) get no postings. Returns the per-(term, page) offsets,
/// the in-page ordinals and the frequencies.
#[allow(clippy::type_complexity)]
fn postings(
    part: &Part,
    order: &[u32],
    sorted_terms: &[u32],
    bitmap_of: &[u32],
) -> Result<(Vec<u32>, Vec<u16>, Vec<u8>), BuildError> {
    let pages = format::posting_pages(order.len() as u32) as usize;
    // Next free slot per builder term id: one lookup per posting instead of two. Frequent
    // terms have none (u32::MAX) and keep an empty range where their postings would start.
    let mut fill = vec![0u32; part.terms.len()];
    let mut anchors = Vec::new();
    let mut acc = 0usize;
    for &old in sorted_terms {
        let at = u32_of(acc, "postings")?;
        if bitmap_of[old as usize] == u32::MAX {
            fill[old as usize] = at;
            acc += part.stats[old as usize].df as usize;
        } else {
            fill[old as usize] = u32::MAX;
            anchors.push(at);
        }
    }
    u32_of(acc, "postings")?;
    let mut offsets = vec![0u32; sorted_terms.len() * pages + 1];
    // Where each term's postings of page `page` start: where its fill pointer is when the
    // page's first ordinal comes (pages without documents start where the postings end).
    let mark = |offsets: &mut [u32], fill: &[u32], page: usize| {
        for (i, &old) in sorted_terms.iter().enumerate() {
            let at = fill[old as usize];
            offsets[i * pages + page] =
                if at == u32::MAX { anchors[bitmap_of[old as usize] as usize] } else { at };
        }
    };
    let mut postings = vec![0u16; acc];
    let mut frequencies = vec![0u8; acc];
    for (ordinal, &d) in order.iter().enumerate() {
        let ordinal = ordinal as u32;
        if ordinal.is_multiple_of(format::POSTING_PAGE) {
            mark(&mut offsets, &fill, (ordinal / format::POSTING_PAGE) as usize);
        }
        let low = (ordinal % format::POSTING_PAGE) as u16;
        let range = part.terms_of(d as usize);
        for (&t, &f) in part.doc_terms[range.clone()].iter().zip(&part.doc_freqs[range]) {
            let slot = &mut fill[t as usize];
            if *slot == u32::MAX {
                continue;
            }
            let at = *slot as usize;
            postings[at] = low;
            frequencies[at] = f;
            *slot += 1;
        }
    }
    if order.is_empty() {
        mark(&mut offsets, &fill, 0);
    }
    offsets[sorted_terms.len() * pages] = acc as u32;
    Ok((offsets, postings, frequencies))
}

/// How documents' builder ids map to the segment's.
struct DocLayout<'a> {
    /// Sorted term ordinal per builder term id.
    remap: &'a [u32],
    /// Sorted domain ordinal per builder domain id.
    domain_remap: &'a [u32],
    /// Forward lists are `u16` (the caller checked that every term ordinal fits).
    narrow: bool,
}

/// Everything but the term table and postings, in ordinal order: per-document arrays, forward
/// lists (without the frequent terms) and the frequent terms' bitmaps, counts and offsets.
/// Also returns the frequent terms' frequencies, one list per term, each in ordinal order.
fn per_document(
    part: &Part,
    order: &[u32],
    layout: &DocLayout<'_>,
    bitmap_of: &[u32],
    frequent: usize,
) -> Result<(SegmentData, Vec<Vec<u8>>), BuildError> {
    let DocLayout { remap, domain_remap, narrow } = *layout;
    let n = order.len();
    let mut data = SegmentData { doc_count: n as u32, ..SegmentData::default() };
    let words = format::bitmap_words(n as u32);
    data.frequent_bits = vec![0u64; frequent * words];
    if frequent > 0 {
        data.frequent_counts.reserve(n);
    }
    let mut frequent_frequencies: Vec<Vec<u8>> = vec![Vec::new(); frequent];
    if narrow {
        data.forward_narrow.reserve(part.doc_terms.len());
    } else {
        data.forward_wide.reserve(part.doc_terms.len());
    }
    data.forward_offsets.reserve(n + 1);
    data.gist_bytes.reserve(part.gists.len());
    data.gist_offsets.reserve(n + 1);
    data.ids.reserve(n);
    data.domain_of.reserve(n);
    data.token_counts.reserve(n);
    data.scores.reserve(n);
    data.timestamps.reserve(n);
    data.forward_offsets.push(0);
    data.gist_offsets.push(0);
    let mut min_keywords = u32::MAX;
    for &d in order {
        let d = d as usize;
        let doc = &part.docs[d];
        let terms = part.terms_of(d);
        let count = terms.len() as u32;
        data.ids.push(doc.id);
        data.domain_of.push(domain_remap[doc.domain as usize]);
        data.token_counts.push(doc.tokens);
        data.scores.push(doc.score);
        data.timestamps.push(doc.timestamp);
        if doc.sacred {
            data.sacred_count += 1;
        }
        if count > 0 {
            min_keywords = min_keywords.min(count);
        }
        // One pass over the document's terms: frequent ones set their bit, the others go to
        // the forward list (sorted after).
        let ordinal = data.ids.len() - 1;
        let block = ordinal / 64 * frequent;
        let mut frequent_here = 0u8;
        let forward_start = data.forward_narrow.len() + data.forward_wide.len();
        for (&t, &f) in part.doc_terms[terms.clone()].iter().zip(&part.doc_freqs[terms]) {
            let i = bitmap_of[t as usize];
            if i != u32::MAX {
                let i = i as usize;
                data.frequent_bits[block + i] |= 1u64 << (ordinal % 64);
                frequent_frequencies[i].push(f);
                frequent_here += 1;
            } else if narrow {
                data.forward_narrow.push(remap[t as usize] as u16);
            } else {
                data.forward_wide.push(remap[t as usize]);
            }
        }
        if frequent > 0 {
            data.frequent_counts.push(frequent_here);
        }
        let end = if narrow {
            data.forward_narrow[forward_start..].sort_unstable();
            data.forward_narrow.len()
        } else {
            data.forward_wide[forward_start..].sort_unstable();
            data.forward_wide.len()
        };
        data.forward_offsets.push(u32_of(end, "forward lists")?);
        data.gist_bytes.extend_from_slice(&part.gists[part.gist_of(d)]);
        data.gist_offsets.push(u32_of(data.gist_bytes.len(), "gist bytes")?);
    }
    data.min_keywords = if min_keywords == u32::MAX { 1 } else { min_keywords };

    // Sacred newest first; ids sorted.
    data.sacred_newest = (0..data.sacred_count).collect();
    data.sacred_newest.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        data.timestamps[b].cmp(&data.timestamps[a]).then(data.ids[a].cmp(&data.ids[b]))
    });
    data.by_id = (0..n as u32).collect();
    // Big-endian u128 order is the bytewise order of the ids, without a memcmp per compare.
    data.by_id.sort_unstable_by_key(|&a| u128::from_be_bytes(data.ids[a as usize]));
    data.frequent_offsets.reserve(frequent + 1);
    data.frequent_offsets.push(0);
    let mut end = 0;
    for f in &frequent_frequencies {
        end += f.len();
        data.frequent_offsets.push(u32_of(end, "postings")?);
    }
    Ok((data, frequent_frequencies))
}

/// An upper bound on the archived size of `data`: its arrays plus alignment padding.
fn payload_estimate(data: &SegmentData) -> usize {
    fn bytes<T>(v: &[T]) -> usize {
        std::mem::size_of_val(v) + 16
    }
    let arrays = bytes(&data.term_bytes)
        + bytes(&data.term_offsets)
        + bytes(&data.posting_offsets)
        + bytes(&data.postings)
        + bytes(&data.frequencies)
        + bytes(&data.frequency_exceptions)
        + bytes(&data.frequency_values)
        + bytes(&data.ids)
        + bytes(&data.domain_of)
        + bytes(&data.token_counts)
        + bytes(&data.scores)
        + bytes(&data.timestamps)
        + bytes(&data.domain_bytes)
        + bytes(&data.domain_offsets)
        + bytes(&data.forward_offsets)
        + bytes(&data.forward_narrow)
        + bytes(&data.forward_wide)
        + bytes(&data.term_slots)
        + bytes(&data.gist_bytes)
        + bytes(&data.gist_offsets)
        + bytes(&data.sacred_newest)
        + bytes(&data.by_id)
        + bytes(&data.frequent_terms)
        + bytes(&data.frequent_bits)
        + bytes(&data.frequent_counts)
        + bytes(&data.frequent_offsets);
    // The root struct: a few counts and one (offset, length) pair per array.
    arrays + 512
}

pub(crate) fn u32_of(n: usize, what: &'static str) -> Result<u32, BuildError> {
    u32::try_from(n).map_err(|_| BuildError::TooLarge { what })
}

/// The question cut to [`GIST_MAX_BYTES`] on a character boundary.
fn gist(question: &str) -> &str {
    if question.len() <= GIST_MAX_BYTES {
        return question;
    }
    let mut end = GIST_MAX_BYTES;
    while !question.is_char_boundary(end) {
        end -= 1;
    }
    &question[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: u8, question: &str, sacred: bool, score: f32) -> Document {
        Document {
            id: [n; 16],
            domain: format!("d{}", n % 2),
            question: question.into(),
            insights: vec![],
            synthesis: String::new(),
            score,
            sacred,
            timestamp_micros: i64::from(n),
        }
    }

    #[test]
    fn orders_documents_sacred_first_then_by_score() {
        let mut b = SegmentBuilder::new();
        b.add(&doc(1, "alpha beta", false, 0.9)).unwrap();
        b.add(&doc(2, "alpha gamma", true, 0.1)).unwrap();
        b.add(&doc(3, "beta gamma", false, 0.5)).unwrap();
        let data = b.data().unwrap();
        assert_eq!(data.ids, vec![[2; 16], [1; 16], [3; 16]]);
        assert_eq!(data.sacred_count, 1);
        // "alpha" is in docs 2 and 1, now ordinals 0 and 1.
        let alpha = data.term_bytes.windows(5).position(|w| w == b"alpha").unwrap();
        assert_eq!(alpha, 0);
        assert_eq!(&data.postings[0..2], &[0, 1]);
    }

    /// 64 documents that all hold `common`, the first five "fivers", the first four "fourers",
    /// and each a word of its own; same score, so the newest (document 63) is ordinal 0.
    fn sixty_four(common: &[String]) -> SegmentData {
        let mut b = SegmentBuilder::new();
        for n in 0..64u8 {
            let mut words = common.to_vec();
            words.push(format!("own{n:02}"));
            if n < 5 {
                words.push("fivers".into());
            }
            if n < 4 {
                words.push("fourers".into());
            }
            b.add(&doc(n, &words.join(" "), false, 0.5)).unwrap();
        }
        b.data().unwrap()
    }

    fn frequent_names(data: &SegmentData) -> Vec<String> {
        data.frequent_terms.iter().map(|&t| term_of(data, t)).collect()
    }

    #[test]
    fn frequent_terms_become_bitmaps_up_to_the_cap() {
        // 64 documents: a bitmap is one word, so it pays from 5 documents on (5 * 4 > 8 + 8).
        // "word000".."word299" are in every document: more than the 255 allowed.
        let common: Vec<String> = (0..300).map(|i| format!("word{i:03}")).collect();
        let data = sixty_four(&common);
        // The 255 most frequent, ties to the lower ordinal: word000..word254.
        assert_eq!(frequent_names(&data), common[..255].to_vec());
        assert_eq!(data.frequent_bits, vec![u64::MAX; 255]);
        assert_eq!(data.frequent_counts, vec![255; 64]);
        assert_eq!(data.frequent_offsets, (0..=255).map(|i| i * 64).collect::<Vec<u32>>());
        // Everything else keeps postings and forward entries: 45 common words and the own
        // word per document, "fivers" and "fourers".
        assert_eq!(data.postings.len(), 64 * 46 + 5 + 4);
        assert_eq!(data.forward_offsets[64] as usize, data.postings.len());
        assert!(data
            .forward_narrow
            .iter()
            .all(|t| data.frequent_terms.binary_search(&u32::from(*t)).is_err()));
        // Frequencies: the postings', then the bitmaps' (all 1 here, so sparse and empty).
        assert!(data.frequencies.is_empty() && data.frequency_exceptions.is_empty());

        // Below the cap, the threshold decides: "fivers" pays, "fourers" does not.
        let data = sixty_four(&["everywhere".to_string()]);
        assert_eq!(frequent_names(&data), ["everywhere", "fivers"]);
        // Documents 0..5 are the last five ordinals.
        assert_eq!(data.frequent_bits, vec![u64::MAX, 0b11111 << 59]);
        assert_eq!(data.frequent_counts[..59], [1; 59]);
        assert_eq!(data.frequent_counts[59..], [2; 5]);
        // "fourers" and the own words: postings and forward entries.
        assert_eq!(data.postings.len(), 64 + 4);
    }

    fn term_of(data: &SegmentData, i: u32) -> String {
        let (a, b) = (data.term_offsets[i as usize], data.term_offsets[i as usize + 1]);
        String::from_utf8(data.term_bytes[a as usize..b as usize].to_vec()).unwrap()
    }

    #[test]
    fn counts_frequencies_and_tokens() {
        let mut b = SegmentBuilder::new();
        let mut d = doc(1, "echo echo echo delta", false, 0.0);
        d.insights = vec!["echo".into()];
        b.add(&d).unwrap();
        let data = b.data().unwrap();
        assert_eq!(data.forward_offsets, vec![0, 2], "two distinct keywords");
        assert_eq!(data.token_counts, vec![5]);
        // Sorted terms: delta, echo. One posting in two is not 1: stored densely.
        assert_eq!(data.frequencies, vec![1, 4]);
        assert!(data.frequency_exceptions.is_empty() && data.frequency_values.is_empty());
    }

    #[test]
    fn stores_frequencies_sparsely_when_few_differ_from_one() {
        // Ten postings, one of frequency 3: an exception (5 bytes) beats ten dense bytes.
        let mut b = SegmentBuilder::new();
        b.add(&doc(1, "alpha bravo charlie delta echo", false, 0.0)).unwrap();
        b.add(&doc(2, "foxtrot golf hotel india juliet juliet juliet", false, 0.0)).unwrap();
        let data = b.data().unwrap();
        assert!(data.frequencies.is_empty());
        // Sorted terms: alpha .. juliet; juliet is the last term, with one posting.
        assert_eq!(data.frequency_exceptions, vec![9]);
        assert_eq!(data.frequency_values, vec![3]);
        // Two postings in ten differ from 1: 10 bytes dense against 10 sparse, dense wins.
        let mut b = SegmentBuilder::new();
        b.add(&doc(1, "alpha bravo charlie delta echo echo", false, 0.0)).unwrap();
        b.add(&doc(2, "foxtrot golf hotel india juliet juliet", false, 0.0)).unwrap();
        let data = b.data().unwrap();
        assert_eq!(data.frequencies, vec![1, 1, 1, 1, 2, 1, 1, 1, 1, 2]);
        assert!(data.frequency_exceptions.is_empty());
    }

    #[test]
    fn refuses_duplicates_and_bad_scores() {
        let mut b = SegmentBuilder::new();
        b.add(&doc(1, "a", false, 0.5)).unwrap();
        assert!(matches!(b.add(&doc(1, "b", false, 0.5)), Err(BuildError::DuplicateId { .. })));
        assert!(matches!(b.add(&doc(2, "b", false, 1.5)), Err(BuildError::Score { .. })));
        assert!(matches!(b.add(&doc(3, "b", false, f32::NAN)), Err(BuildError::Score { .. })));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn gist_cuts_on_a_char_boundary() {
        let long = "é".repeat(GIST_MAX_BYTES);
        let g = gist(&long);
        assert!(g.len() <= GIST_MAX_BYTES && g.len() >= GIST_MAX_BYTES - 1);
        assert!(g.chars().all(|c| c == 'é'));
    }

    /// Documents with a shared vocabulary (mixed case, some non-ASCII), repeated words and
    /// several domains.
    fn many(n: usize, seed: u32) -> Vec<Document> {
        let words = ["Rust", "mmap", "ÉCOLE", "segment", "index", "writer", "reader", "naïve"];
        (0..n)
            .map(|i| {
                let pick = |k: usize| words[(i * 7 + k * 3 + seed as usize) % words.len()];
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                id[8..12].copy_from_slice(&seed.to_be_bytes());
                Document {
                    id,
                    domain: format!("domain{}", i % 5),
                    question: format!("{} {} w{} {}?", pick(0), pick(1), i % 97, pick(0)),
                    insights: vec![format!("{} term{}", pick(2), i % 1013)],
                    synthesis: format!("{} x{}", pick(3), i % 7),
                    score: (i % 11) as f32 / 10.0,
                    sacred: i % 13 == 0,
                    timestamp_micros: (i % 1000) as i64,
                }
            })
            .collect()
    }

    #[test]
    fn batches_on_threads_give_the_bytes_of_single_adds() {
        let docs = many(3 * PARALLEL_MIN_DOCS, 1);
        let mut single = SegmentBuilder::new().generation(2);
        for d in &docs {
            single.add(d).unwrap();
        }
        let mut batched = SegmentBuilder::new().generation(2);
        let (a, b) = docs.split_at(100);
        let (b, c) = b.split_at(b.len() - 3);
        batched.add(&a[0]).unwrap();
        batched.add_batch(&a[1..]).unwrap();
        batched.add_batch(b).unwrap();
        // Single adds after a merged batch reuse the merged term table.
        for d in c {
            batched.add(d).unwrap();
        }
        assert_eq!(batched.len(), docs.len());
        assert_eq!(batched.data().unwrap(), single.data().unwrap());
        assert_eq!(batched.to_bytes().unwrap(), single.to_bytes().unwrap());
    }

    #[test]
    fn a_refused_batch_adds_nothing() {
        let first = many(50, 2);
        let mut b = SegmentBuilder::new();
        b.add_batch(&first).unwrap();
        let before = b.to_bytes().unwrap();

        let mut batch = many(PARALLEL_MIN_DOCS + 10, 3);
        batch.push(first[7].clone());
        let err = b.add_batch(&batch).unwrap_err();
        assert!(matches!(err, BuildError::DuplicateId { id } if id == first[7].id), "{err}");

        let mut batch = many(20, 4);
        batch.push(batch[3].clone());
        assert!(matches!(b.add_batch(&batch), Err(BuildError::DuplicateId { .. })));

        let mut batch = many(20, 5);
        batch[19].score = -0.5;
        assert!(matches!(b.add_batch(&batch), Err(BuildError::Score { .. })));

        assert_eq!(b.len(), 50);
        assert_eq!(b.to_bytes().unwrap(), before, "a refused batch changed the segment");
        // The ids of refused batches stay free.
        b.add_batch(&many(20, 4)).unwrap();
        assert_eq!(b.len(), 70);
    }

    #[test]
    fn interns_each_keyword_once_across_batches() {
        let mut b = SegmentBuilder::new();
        b.add_batch(&many(2 * PARALLEL_MIN_DOCS, 6)).unwrap();
        let data = b.data().unwrap();
        let terms: Vec<&[u8]> = data
            .term_offsets
            .windows(2)
            .map(|w| &data.term_bytes[w[0] as usize..w[1] as usize])
            .collect();
        assert!(terms.windows(2).all(|w| w[0] < w[1]), "terms not sorted and distinct");
        assert!(terms.contains(&"école".as_bytes()) && terms.contains(&"rust".as_bytes()));
        let rust = terms.iter().position(|t| *t == b"rust").unwrap();
        let postings = &data.postings
            [data.posting_offsets[rust] as usize..data.posting_offsets[rust + 1] as usize];
        assert!(postings.windows(2).all(|w| w[0] < w[1]), "postings not ascending");
    }

    #[test]
    fn same_documents_in_any_order_give_the_same_bytes() {
        let docs = [
            doc(1, "alpha beta", false, 0.9),
            doc(2, "gamma", true, 0.2),
            doc(3, "beta", false, 0.9),
        ];
        let mut a = SegmentBuilder::new().generation(4);
        let mut b = SegmentBuilder::new().generation(4);
        for d in &docs {
            a.add(d).unwrap();
        }
        for d in docs.iter().rev() {
            b.add(d).unwrap();
        }
        assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    }
}
