//! Turns documents into segment bytes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::document::Document;
use crate::format::{self, Header, SegmentData, GIST_MAX_BYTES, VERSION};
use crate::keywords::{for_each_token, DOCUMENT_INSIGHTS};

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
    /// rkyv could not serialize the payload.
    #[error("serializing the segment payload: {0}")]
    Serialize(String),
    /// Writing the segment file failed.
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

struct Prepared {
    id: [u8; 16],
    domain: u32,
    gist: String,
    score: f32,
    sacred: bool,
    timestamp: i64,
    /// (builder term id, frequency) per distinct keyword.
    terms: Vec<(u32, u8)>,
    tokens: u32,
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

/// Collects documents and writes them as one segment.
///
/// The output is deterministic: the same documents (in any order) and the same generation give
/// the same bytes.
#[derive(Default)]
pub struct SegmentBuilder {
    generation: u64,
    docs: Vec<Prepared>,
    ids: FxHashSet<[u8; 16]>,
    terms: FxHashMap<Box<str>, u32>,
    domains: FxHashMap<String, u32>,
    // Per term: the last document (index + 1) it was seen in, and its slot there.
    last_doc: Vec<u32>,
    last_slot: Vec<u32>,
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

    /// How many documents were added.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Adds a document; its keywords are extracted here (DESIGN.md's rule).
    pub fn add(&mut self, doc: &Document) -> Result<(), BuildError> {
        if !(0.0..=1.0).contains(&doc.score) {
            return Err(BuildError::Score { id: doc.id, score: doc.score });
        }
        if self.docs.len() >= u32::MAX as usize - 1 {
            return Err(BuildError::TooLarge { what: "document count" });
        }
        if !self.ids.insert(doc.id) {
            return Err(BuildError::DuplicateId { id: doc.id });
        }
        let doc_index = self.docs.len() as u32 + 1;
        let mut terms: Vec<(u32, u8)> = Vec::new();
        let mut tokens = 0u32;
        {
            let SegmentBuilder { terms: table, last_doc, last_slot, .. } = self;
            let mut add_text = |text: &str| {
                for_each_token(text, |token| {
                    tokens = tokens.saturating_add(1);
                    let next = table.len() as u32;
                    let term = match table.get(token) {
                        Some(&t) => t,
                        None => {
                            table.insert(token.into(), next);
                            last_doc.push(0);
                            last_slot.push(0);
                            next
                        }
                    };
                    let t = term as usize;
                    if last_doc[t] == doc_index {
                        let slot = &mut terms[last_slot[t] as usize].1;
                        *slot = slot.saturating_add(1);
                    } else {
                        last_doc[t] = doc_index;
                        last_slot[t] = terms.len() as u32;
                        terms.push((term, 1));
                    }
                });
            };
            add_text(&doc.question);
            for insight in doc.insights.iter().take(DOCUMENT_INSIGHTS) {
                add_text(insight);
            }
            add_text(&doc.synthesis);
        }
        let next_domain = self.domains.len() as u32;
        let domain = *self.domains.entry(doc.domain.clone()).or_insert(next_domain);
        self.docs.push(Prepared {
            id: doc.id,
            domain,
            gist: gist(&doc.question).to_owned(),
            score: doc.score,
            sacred: doc.sacred,
            timestamp: doc.timestamp_micros,
            terms,
            tokens,
        });
        Ok(())
    }

    /// Builds the archived body of the segment.
    pub fn data(&self) -> Result<SegmentData, BuildError> {
        let n = self.docs.len();
        // Ordinals: sacred first, then score desc, timestamp desc, id asc.
        let mut order: Vec<u32> = (0..n as u32).collect();
        // One u128-and-friends key per document instead of four indirect compares.
        order.sort_unstable_by_key(|&i| {
            let d = &self.docs[i as usize];
            (
                !d.sacred,
                std::cmp::Reverse(OrderedScore(d.score)),
                std::cmp::Reverse(d.timestamp),
                u128::from_be_bytes(d.id),
            )
        });

        // Terms sorted bytewise; remap builder ids to sorted ordinals.
        let mut sorted_terms: Vec<(&str, u32)> =
            self.terms.iter().map(|(t, &id)| (&**t, id)).collect();
        sorted_terms.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut remap = vec![0u32; sorted_terms.len()];
        let mut term_bytes = Vec::new();
        let mut term_offsets = Vec::with_capacity(sorted_terms.len() + 1);
        term_offsets.push(0u32);
        for (new, (text, old)) in sorted_terms.iter().enumerate() {
            remap[*old as usize] = new as u32;
            term_bytes.extend_from_slice(text.as_bytes());
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

        // Per-document arrays and forward lists, in ordinal order.
        let mut data = SegmentData {
            doc_count: n as u32,
            term_bytes,
            term_offsets,
            domain_bytes,
            domain_offsets,
            ..SegmentData::default()
        };
        let total_terms: usize = self.docs.iter().map(|d| d.terms.len()).sum();
        let total_gist: usize = self.docs.iter().map(|d| d.gist.len()).sum();
        data.forward_terms.reserve(total_terms);
        data.forward_offsets.reserve(n + 1);
        data.gist_bytes.reserve(total_gist);
        data.gist_offsets.reserve(n + 1);
        data.ids.reserve(n);
        data.domain_of.reserve(n);
        data.keyword_counts.reserve(n);
        data.token_counts.reserve(n);
        data.scores.reserve(n);
        data.timestamps.reserve(n);
        data.forward_offsets.push(0);
        data.gist_offsets.push(0);
        let mut df = vec![0u32; remap.len()];
        let mut min_keywords = u32::MAX;
        let mut sorted_doc_terms: Vec<(u32, u8)> = Vec::new();
        for &d in &order {
            let doc = &self.docs[d as usize];
            data.ids.push(doc.id);
            data.domain_of.push(domain_remap[doc.domain as usize]);
            data.keyword_counts.push(doc.terms.len() as u32);
            data.token_counts.push(doc.tokens);
            data.scores.push(doc.score);
            data.timestamps.push(doc.timestamp);
            if doc.sacred {
                data.sacred_count += 1;
            }
            if !doc.terms.is_empty() {
                min_keywords = min_keywords.min(doc.terms.len() as u32);
            }
            sorted_doc_terms.clear();
            sorted_doc_terms.extend(doc.terms.iter().map(|&(t, f)| (remap[t as usize], f)));
            sorted_doc_terms.sort_unstable();
            for &(t, _) in &sorted_doc_terms {
                data.forward_terms.push(t);
                df[t as usize] += 1;
            }
            data.forward_offsets.push(u32_of(data.forward_terms.len(), "forward lists")?);
            data.gist_bytes.extend_from_slice(doc.gist.as_bytes());
            data.gist_offsets.push(u32_of(data.gist_bytes.len(), "gist bytes")?);
        }
        data.min_keywords = if min_keywords == u32::MAX { 1 } else { min_keywords };

        // Postings: counting sort by term; documents visited in ordinal order keep them ascending.
        let mut posting_offsets = Vec::with_capacity(df.len() + 1);
        let mut acc = 0usize;
        posting_offsets.push(0u32);
        for &count in &df {
            acc += count as usize;
            posting_offsets.push(u32_of(acc, "postings")?);
        }
        let mut fill: Vec<u32> = posting_offsets[..df.len()].to_vec();
        data.postings = vec![0u32; acc];
        data.frequencies = vec![0u8; acc];
        for (ordinal, &d) in order.iter().enumerate() {
            for &(t, f) in &self.docs[d as usize].terms {
                let t = remap[t as usize] as usize;
                let at = fill[t] as usize;
                data.postings[at] = ordinal as u32;
                data.frequencies[at] = f;
                fill[t] += 1;
            }
        }
        data.posting_offsets = posting_offsets;

        // Sacred newest first; ids sorted.
        data.sacred_newest = (0..data.sacred_count).collect();
        data.sacred_newest.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            data.timestamps[b].cmp(&data.timestamps[a]).then(data.ids[a].cmp(&data.ids[b]))
        });
        data.by_id = (0..n as u32).collect();
        // Big-endian u128 order is the bytewise order of the ids, without a memcmp per compare.
        data.by_id.sort_unstable_by_key(|&a| u128::from_be_bytes(data.ids[a as usize]));
        Ok(data)
    }

    /// The complete segment file: header and payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BuildError> {
        let data = self.data()?;
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(&data)
            .map_err(|e| BuildError::Serialize(e.to_string()))?;
        let mut header = Header {
            version: VERSION,
            generation: self.generation,
            doc_count: self.docs.len() as u64,
            payload_len: payload.len() as u64,
            checksum: 0,
        };
        header.checksum =
            format::checksum(&header.encode()[..format::CHECKSUMMED_HEADER_LEN], &payload);
        let mut out = Vec::with_capacity(format::HEADER_LEN + payload.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Writes the segment to `w`, returning the number of bytes written.
    pub fn write_to<W: Write>(&self, mut w: W) -> io::Result<u64> {
        let bytes = self.to_bytes().map_err(io::Error::other)?;
        w.write_all(&bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Writes the segment durably to `path` through atomic-write, with the given mode.
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

fn u32_of(n: usize, what: &'static str) -> Result<u32, BuildError> {
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

    #[test]
    fn counts_frequencies_and_tokens() {
        let mut b = SegmentBuilder::new();
        let mut d = doc(1, "echo echo echo delta", false, 0.0);
        d.insights = vec!["echo".into()];
        b.add(&d).unwrap();
        let data = b.data().unwrap();
        assert_eq!(data.keyword_counts, vec![2]);
        assert_eq!(data.token_counts, vec![5]);
        // Sorted terms: delta, echo.
        assert_eq!(data.frequencies, vec![1, 4]);
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
