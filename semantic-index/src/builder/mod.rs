//! Turns documents into segment bytes.
//!
//! The builder's jobs, one module each:
//!
//! - [`part`]: tokenizing. Adding a document tokenizes its text and interns each keyword once,
//!   in a table of term ids (one arena of bytes, a `hashbrown::HashTable` of ids); documents
//!   keep their terms in one flat array, not one vector each.
//! - [`threads`]: [`SegmentBuilder::add_batch`] tokenizes on every core into private parts and
//!   merges them; [`SegmentBuilder::data`] builds postings on one thread, the ranked (BM25F)
//!   postings on a second and the per-document arrays on a third.
//! - [`postings`]: the inverted lists, by counting sort over documents in ordinal order.
//! - [`bitmaps`]: which frequent terms are stored as bitmaps instead of postings.
//! - [`documents`]: the per-document arrays, forward lists and bitmaps, in ordinal order.
//! - [`serialize`]: the payload archived behind the header, with its checksum.
//!
//! This module holds the public [`SegmentBuilder`] and [`BuildError`], and sorts documents and
//! terms into the segment's order ([`SegmentBuilder::data`]).

mod bitmaps;
mod documents;
mod part;
mod postings;
mod serialize;
mod threads;

use std::io::{self, Write};
#[cfg(feature = "write")]
use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::analyzer::Bm25fParams;
use crate::cost;
use crate::document::Document;
use crate::format::{self, SegmentData};
use crate::rank;

use self::bitmaps::frequent_terms;
use self::documents::{per_document, DocLayout};
use self::part::{Part, TermStats};
use self::postings::postings;
use self::threads::{join, threads, PARALLEL_MIN_DOCS, PARALLEL_MIN_POSTINGS};

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

/// A complete segment file (header and payload) in the buffer it was serialized into, aligned
/// for the payload: [`SegmentBuilder::to_segment_bytes`] hands it over without the copy that
/// [`SegmentBuilder::to_bytes`] makes into a `Vec<u8>`.
pub struct SegmentBytes(rkyv::util::AlignedVec<{ format::PAYLOAD_ALIGN }>);

impl std::ops::Deref for SegmentBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for SegmentBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
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
            threads::add_parallel(&mut self.part, docs, &domains, threads)
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
        // The ranked postings on a third thread: on two cores, the OS shares them out.
        let (ranked, (postings, data)) = join(
            parallel,
            || {
                let mut ranked = SegmentData::default();
                part.rank.build(&order, &self.rank_params, &mut ranked).map(|()| ranked)
            },
            || {
                join(
                    parallel,
                    || postings(part, &order, &sorted_terms, &bitmap_of),
                    || {
                        let layout =
                            DocLayout { remap: &remap, domain_remap: &domain_remap, narrow };
                        per_document(part, &order, &layout, &bitmap_of, frequent.len())
                    },
                )
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
        rank::move_ranked(&mut ranked?, &mut data);
        Ok(data)
    }

    /// The complete segment file: header and payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BuildError> {
        Ok(self.to_segment_bytes()?.to_vec())
    }

    /// The complete segment file, as [`to_bytes`](Self::to_bytes) without copying it out of the
    /// serializer's buffer (a segment of 2^18 documents is about 110 MB).
    pub fn to_segment_bytes(&self) -> Result<SegmentBytes, BuildError> {
        let data = self.data()?;
        serialize::segment_bytes(&data, self.generation, self.len() as u64)
    }

    /// Writes the segment to `w`, returning the number of bytes written.
    pub fn write_to<W: Write>(&self, mut w: W) -> io::Result<u64> {
        let bytes = self.to_segment_bytes().map_err(io::Error::other)?;
        w.write_all(&bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Writes the segment durably to `path` through atomic-write, with the given mode.
    #[cfg(feature = "write")]
    pub fn write_file(&self, path: impl AsRef<Path>, mode: u32) -> Result<u64, BuildError> {
        let path = path.as_ref();
        let bytes = self.to_segment_bytes()?;
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

pub(crate) fn u32_of(n: usize, what: &'static str) -> Result<u32, BuildError> {
    u32::try_from(n).map_err(|_| BuildError::TooLarge { what })
}

#[cfg(test)]
mod tests;
