//! The segment format: a fixed little-endian header followed by an rkyv archive of
//! [`SegmentData`]. `FORMAT.md` at the crate root draws the layout.

use rkyv::{Archive, Serialize};

/// The first eight bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"MCSEGMT\0";
/// The format version this build writes and the only one it reads.
///
/// Version 6 packs each BM25F posting into one `u32` (`rank_postings`: its ordinal's offset
/// from its block's first ordinal above its impact), so a posting's ordinal and impact share a
/// cache line, and blocks may end early to keep offsets within 24 bits (`rank_block_start`,
/// `rank_block_first`);
/// version 5 adds the BM25F index (`rank_*`): a second vocabulary (stemmed, stop-listed) with
/// quantized impacts per posting and per block of postings;
/// version 4 keeps the documents of the most frequent terms as bitmaps (`frequent_*`) instead
/// of postings and forward-list entries;
/// version 3 stored frequencies sparsely when few differ from 1 (`frequency_exceptions`) and
/// derived keyword counts from the forward offsets;
/// version 2 added the hashed term table (`term_slots`), narrow forward lists, paged `u16`
/// postings and the chunked checksum. Older segments are refused (a store's writer rebuilds
/// them from its records).
pub const VERSION: u32 = 6;
/// The length of the header; a multiple of 16 so that the archive after it stays aligned.
pub const HEADER_LEN: usize = 64;
/// The alignment the payload needs in memory (rkyv's archive alignment for this format).
pub const PAYLOAD_ALIGN: usize = 16;
/// The longest gist kept per document, in bytes (cut on a character boundary).
pub const GIST_MAX_BYTES: usize = 160;

/// The decoded fixed header of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The format version ([`VERSION`] for files this build writes).
    pub version: u32,
    /// The generation the writer gave the segment.
    pub generation: u64,
    /// How many documents the segment holds.
    pub doc_count: u64,
    /// The length in bytes of the archive that follows the header.
    pub payload_len: u64,
    /// The xxh3-64 checksum of the header's fields and the payload (see [`checksum`]).
    pub checksum: u64,
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer bytes than a header.
    #[error("file is {len} bytes, shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// The length seen.
        len: usize,
    },
    /// The magic bytes are not [`MAGIC`].
    #[error("not a segment: bad magic bytes {found:02x?}")]
    Magic {
        /// The first eight bytes seen.
        found: [u8; 8],
    },
    /// A version this build does not know.
    #[error("unsupported segment format version {found} (this build reads version {expected})")]
    Version {
        /// The version this build reads.
        expected: u32,
        /// The version in the file.
        found: u32,
    },
    /// Reserved bytes or flags that are not zero.
    #[error("reserved header bytes are not zero")]
    Reserved,
}

impl Header {
    /// Encodes the header in its fixed little-endian layout.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        // 12..16: flags, zero in versions 1 and 2.
        out[16..24].copy_from_slice(&self.generation.to_le_bytes());
        out[24..32].copy_from_slice(&self.doc_count.to_le_bytes());
        out[32..40].copy_from_slice(&self.payload_len.to_le_bytes());
        out[40..48].copy_from_slice(&self.checksum.to_le_bytes());
        out
    }

    /// Decodes and checks a header: length, magic, version and reserved bytes.
    pub fn decode(bytes: &[u8]) -> Result<Header, HeaderError> {
        let Some(h) = bytes.get(..HEADER_LEN) else {
            return Err(HeaderError::TooShort { len: bytes.len() });
        };
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&h[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&h[0..8]);
        if magic != MAGIC {
            return Err(HeaderError::Magic { found: magic });
        }
        let version = u32_at(8);
        if version != VERSION {
            return Err(HeaderError::Version { expected: VERSION, found: version });
        }
        if u32_at(12) != 0 || h[48..HEADER_LEN].iter().any(|&b| b != 0) {
            return Err(HeaderError::Reserved);
        }
        Ok(Header {
            version,
            generation: u64_at(16),
            doc_count: u64_at(24),
            payload_len: u64_at(32),
            checksum: u64_at(40),
        })
    }
}

/// How many leading header bytes the checksum covers: everything before the checksum field.
pub const CHECKSUMMED_HEADER_LEN: usize = 40;

/// The payload is checksummed in chunks of this many bytes (the last one may be shorter).
pub const CHECKSUM_CHUNK: usize = 1 << 20;

/// The segment checksum: xxh3-64 over the header's first [`CHECKSUMMED_HEADER_LEN`] bytes
/// (magic, version, flags, generation, document count, payload length) followed by the
/// xxh3-64 of every [`CHECKSUM_CHUNK`]-byte chunk of the payload in order (each as 8
/// little-endian bytes; none for an empty payload). No bit of a segment outside the reserved
/// bytes can change unnoticed.
///
/// Chunks let every chunk take xxh3's one-shot path, measured about 15 % faster here than
/// feeding the whole payload to the streaming hasher, and let a checker split the work. This
/// function hashes on the calling thread: on the 2-core machine the benches run on, a second
/// thread made a fresh process's open slower (waking the other core and its cold TLB cost more
/// than the halved memory traffic saved), see `FORMAT.md`.
pub fn checksum(header_prefix: &[u8], payload: &[u8]) -> u64 {
    let mut tail =
        Vec::with_capacity(header_prefix.len() + 8 * payload.len().div_ceil(CHECKSUM_CHUNK));
    tail.extend_from_slice(header_prefix);
    for chunk in payload.chunks(CHECKSUM_CHUNK) {
        tail.extend_from_slice(&twox_hash::XxHash3_64::oneshot(chunk).to_le_bytes());
    }
    twox_hash::XxHash3_64::oneshot(&tail)
}

/// Document ordinals per posting page: postings hold an ordinal's offset in its page as `u16`.
pub const POSTING_PAGE: u32 = 1 << 16;

/// How many posting pages a segment of `doc_count` documents has (at least one).
pub fn posting_pages(doc_count: u32) -> u32 {
    doc_count.div_ceil(POSTING_PAGE).max(1)
}

/// Segments with at most this many terms store forward lists as `u16` ordinals.
pub const NARROW_TERMS: usize = 1 << 16;

/// At most this many terms of a segment are frequent (have a bitmap): a document's count of
/// them then fits the byte `SegmentData::frequent_counts` gives it.
pub const FREQUENT_MAX: usize = 255;

/// The `u64` words of one frequent term's bitmap in a segment of `doc_count` documents.
pub fn bitmap_words(doc_count: u32) -> usize {
    (doc_count as usize).div_ceil(64)
}

/// The hash of a term's bytes that places it in `term_slots`: xxh3-64, seed 0.
#[inline]
pub fn term_hash(term: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(term)
}

/// The length of the hashed term table for `n_terms` terms: the smallest power of two at least
/// twice `n_terms` (at least 1), so that at most half the slots are used and every probe
/// sequence meets an empty slot.
pub fn term_slot_count(n_terms: usize) -> usize {
    n_terms.saturating_mul(2).max(1).next_power_of_two()
}

/// Fills a hashed term table (see [`SegmentData::term_slots`]) for terms given by their hash,
/// in ordinal order.
pub fn term_slots(hashes: impl ExactSizeIterator<Item = u64>) -> Vec<u32> {
    let mut slots = vec![0u32; term_slot_count(hashes.len())];
    let mask = slots.len() - 1;
    for (ordinal, h) in hashes.enumerate() {
        let mut at = h as usize & mask;
        while slots[at] != 0 {
            at = (at + 1) & mask;
        }
        slots[at] = ordinal as u32 + 1;
    }
    slots
}

/// The most postings a block of the BM25F index holds: each block of a term's postings has its
/// first posting, first and last ordinals and largest impact in `rank_block_start`,
/// `rank_block_first`, `rank_block_last` and `rank_block_max`.
pub const RANK_BLOCK: usize = 64;

/// Bits of a packed BM25F posting below its ordinal's offset: the impact.
pub const RANK_IMPACT_BITS: u32 = 8;

/// The largest offset of an ordinal from its block's first ordinal (24 bits): a block ends
/// early rather than span more.
pub const RANK_OFFSET_MAX: u32 = u32::MAX >> RANK_IMPACT_BITS;

/// The BM25F parameters a segment's impacts were computed with, and its mean field lengths
/// (question, insights, synthesis; in ranked terms).
#[derive(Archive, Serialize, Debug, Default, Clone, Copy, PartialEq)]
pub struct RankStats {
    /// Term-frequency saturation.
    pub k1: f32,
    /// Per field weight.
    pub weights: [f32; 3],
    /// Per field length normalization.
    pub b: [f32; 3],
    /// Per field mean length over the segment's documents.
    pub avg_len: [f32; 3],
}

/// The archived body of a segment. Ordinals index the per-document arrays.
///
/// Documents are numbered sacred first, then by score descending, timestamp descending and id
/// ascending, so that a document's static boost (`w_score · score + w_sacred · sacred`) never
/// increases with its ordinal inside each of the two runs `[0, sacred_count)` and
/// `[sacred_count, doc_count)`, whatever the (non-negative) weights: readers use this to stop
/// early. Every array is flat and holds plain integers, so validating it costs O(1) per array.
#[derive(Archive, Serialize, Debug, Default, Clone, PartialEq)]
pub struct SegmentData {
    /// Number of documents.
    pub doc_count: u32,
    /// Documents `[0, sacred_count)` are sacred, the rest are not.
    pub sacred_count: u32,
    /// The smallest keyword count of a document that has any keyword (1 if none has).
    pub min_keywords: u32,
    /// Terms, sorted bytewise, concatenated.
    pub term_bytes: Vec<u8>,
    /// The hashed term table: [`term_slot_count`]`(n_terms)` slots (a power of two), each 0
    /// (empty) or a term ordinal plus one. Term `t` sits at the first slot, from
    /// [`term_hash`]`(t) & (len - 1)` on with wrap-around, that is empty or holds it; readers
    /// probe from there, comparing bytes, and stop at an empty slot.
    pub term_slots: Vec<u32>,
    /// Document ordinals per term, ascending, each stored as its offset in its page
    /// (`ordinal - p · POSTING_PAGE`): two bytes a posting instead of four.
    pub postings: Vec<u16>,
    /// The frequent terms (at most [`FREQUENT_MAX`], ascending ordinals): those whose
    /// documents are a bitmap in `frequent_bits` instead of postings and forward-list entries
    /// (their postings are empty and no forward list names them). The builder picks the terms
    /// for which a bitmap is smaller, most frequent first.
    pub frequent_terms: Vec<u32>,
    /// One bitmap per frequent term, [`bitmap_words`]`(doc_count)` words each, interleaved
    /// by blocks of 64 documents: with `m` frequent terms, document `o` has frequent term `i`
    /// iff bit `o % 64` of word `(o / 64) · m + i` is set. A document's frequent terms are thus
    /// `m` adjacent words, a term's documents every `m`-th word. Bits past `doc_count` are zero.
    pub frequent_bits: Vec<u64>,
    /// Per document, how many frequent terms it has (its keyword count is this plus its forward
    /// list's length); empty when there is no frequent term.
    pub frequent_counts: Vec<u8>,
    /// The term's occurrences in the document, saturating at 255, one per posting: first
    /// parallel to `postings`, then for each frequent term its documents in ordinal order (see
    /// `frequent_offsets`). Empty when the segment stores them sparsely (see
    /// the builder picks the smaller form).
    pub frequencies: Vec<u8>,
    /// When `frequencies` is empty: the indexes (into the postings, then the frequent terms'
    /// documents, numbered as for `frequencies`), strictly ascending, of the postings whose
    /// frequency is not 1 (every other posting's is 1). Empty otherwise.
    pub frequency_exceptions: Vec<u32>,
    /// The frequencies of the postings in `frequency_exceptions`, parallel to it.
    pub frequency_values: Vec<u8>,
    /// Document ids (UUID bytes).
    pub ids: Vec<[u8; 16]>,
    /// Domain ordinal per document (index into the domain table).
    pub domain_of: Vec<u32>,
    /// Keyword-sized tokens per document, duplicates included (for frequency-aware rankers).
    pub token_counts: Vec<u32>,
    /// The memory's own score, 0..=1.
    pub scores: Vec<f32>,
    /// Timestamp per document, unix microseconds.
    pub timestamps: Vec<i64>,
    /// Domains, sorted bytewise, concatenated.
    pub domain_bytes: Vec<u8>,
    /// Term ordinals per document (its frequent terms left out), ascending, when the segment
    /// has at most [`NARROW_TERMS`] terms (empty otherwise).
    pub forward_narrow: Vec<u16>,
    /// Term ordinals per document (its frequent terms left out), ascending, when the segment
    /// has more than [`NARROW_TERMS`] terms (empty otherwise).
    pub forward_wide: Vec<u32>,
    /// Gists (questions cut to [`GIST_MAX_BYTES`]), concatenated.
    pub gist_bytes: Vec<u8>,
    /// Sacred ordinals, newest first (timestamp descending, then id ascending).
    pub sacred_newest: Vec<u32>,
    /// All ordinals sorted by id ascending.
    pub by_id: Vec<u32>,
    /// How the BM25F impacts were computed.
    pub rank: RankStats,
    /// BM25F terms (the ranked analyzer's, stemmed), sorted bytewise, concatenated.
    pub rank_term_bytes: Vec<u8>,
    /// The hashed table of the BM25F terms, built like `term_slots`.
    pub rank_term_slots: Vec<u32>,
    /// Per BM25F term, its documents in ordinal order, each packed as
    /// `(ordinal - block_first) << RANK_IMPACT_BITS | impact`, where `block_first` is the first
    /// ordinal of the posting's block and the impact is quantized, 1..=255 (see
    /// `Bm25fParams::impact`).
    pub rank_postings: Vec<u32>,
    /// Per block of at most [`RANK_BLOCK`] postings of a term (a block ends early at the term's
    /// end or when its next ordinal lies more than [`RANK_OFFSET_MAX`] past its first), its
    /// first posting (index into `rank_postings`), then one more entry: the posting count.
    pub rank_block_start: Vec<u32>,
    /// Per block: its first ordinal (offset 0).
    pub rank_block_first: Vec<u32>,
    /// Per block: its last ordinal.
    pub rank_block_last: Vec<u32>,
    /// Per block: its largest impact.
    pub rank_block_max: Vec<u8>,
    /// Per BM25F term: its largest impact.
    pub rank_term_max: Vec<u8>,
    // The offset tables come last, so they are the last bytes the checksum reads at open: the
    // structure checks that follow (every offset table is monotone) find them in cache.
    /// `n_terms + 1` offsets into `term_bytes`.
    pub term_offsets: Vec<u32>,
    /// `n_terms · pages + 1` offsets into `postings` and `frequencies`, where `pages` is
    /// [`posting_pages`]`(doc_count)`: term `t`'s postings of page `p` (ordinals
    /// `[p · POSTING_PAGE, (p + 1) · POSTING_PAGE)`) are at `[offsets[t · pages + p],
    /// offsets[t · pages + p + 1])`, so a term's whole list is `[offsets[t · pages],
    /// offsets[(t + 1) · pages])`.
    pub posting_offsets: Vec<u32>,
    /// `n_domains + 1` offsets into `domain_bytes`.
    pub domain_offsets: Vec<u32>,
    /// `doc_count + 1` offsets into the forward lists (`forward_narrow` or `forward_wide`). A
    /// document's keyword count (distinct keywords) is its list's length plus its
    /// `frequent_counts` byte.
    pub forward_offsets: Vec<u32>,
    /// `doc_count + 1` offsets into `gist_bytes`.
    pub gist_offsets: Vec<u32>,
    /// `frequent_terms.len() + 1` offsets: frequent term `i`'s documents (its set bits, in
    /// ordinal order) are postings `postings.len() + frequent_offsets[i] ..
    /// postings.len() + frequent_offsets[i + 1]` of the frequencies; the difference is the
    /// term's document count.
    pub frequent_offsets: Vec<u32>,
    /// `n_rank_terms + 1` offsets into `rank_term_bytes`.
    pub rank_term_offsets: Vec<u32>,
    /// `n_rank_terms + 1` offsets into `rank_postings`.
    pub rank_posting_offsets: Vec<u32>,
    /// `n_rank_terms + 1` offsets into the block arrays: term `t`'s blocks are
    /// `[rank_block_offsets[t], rank_block_offsets[t + 1])`, and the first starts at the term's
    /// first posting.
    pub rank_block_offsets: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_xxh3_of_header_prefix_then_chunk_hashes() {
        // The XXH3-64 test vector of the empty input (seed 0): the format depends on the
        // algorithm, not on the crate computing it.
        assert_eq!(checksum(&[], &[]), 0x2D06_8005_38D3_94C2);
        let xxh3 = twox_hash::XxHash3_64::oneshot;
        // One short chunk, then several chunks, the last short.
        for len in [100_000, 5 * CHECKSUM_CHUNK + 12_345] {
            let payload: Vec<u8> = (0..len as u32).map(|i| (i * 7 % 251) as u8).collect();
            let mut reference = b"header-prefix".to_vec();
            for chunk in payload.chunks(CHECKSUM_CHUNK) {
                reference.extend_from_slice(&xxh3(chunk).to_le_bytes());
            }
            assert_eq!(checksum(b"header-prefix", &payload), xxh3(&reference), "{len} bytes");
        }
    }

    #[test]
    fn every_term_is_found_from_its_hash_and_tables_are_half_empty() {
        for n in [0usize, 1, 2, 3, 100, 5000] {
            let terms: Vec<String> = (0..n).map(|i| format!("term{i}")).collect();
            let slots = term_slots(terms.iter().map(|t| term_hash(t.as_bytes())));
            assert!(slots.len().is_power_of_two() && slots.len() >= 2 * n, "{n}: {}", slots.len());
            let mask = slots.len() - 1;
            for (ordinal, t) in terms.iter().enumerate() {
                let mut at = term_hash(t.as_bytes()) as usize & mask;
                while slots[at] != ordinal as u32 + 1 {
                    assert_ne!(slots[at], 0, "{t} not found before an empty slot");
                    at = (at + 1) & mask;
                }
            }
            assert_eq!(slots.iter().filter(|&&s| s != 0).count(), n);
        }
    }

    #[test]
    fn header_round_trips_and_is_aligned() {
        assert_eq!(HEADER_LEN % PAYLOAD_ALIGN, 0);
        let h =
            Header { version: VERSION, generation: 7, doc_count: 3, payload_len: 99, checksum: 5 };
        assert_eq!(Header::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn header_refuses_unknown_version_naming_both() {
        let mut bytes =
            Header { version: VERSION, generation: 0, doc_count: 0, payload_len: 0, checksum: 0 }
                .encode();
        bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
        let err = Header::decode(&bytes).unwrap_err();
        assert_eq!(err, HeaderError::Version { expected: VERSION, found: 9 });
        assert!(err.to_string().contains("version 9"), "{err}");
    }

    #[test]
    fn header_refuses_short_and_foreign_files() {
        assert_eq!(Header::decode(&[0; 10]), Err(HeaderError::TooShort { len: 10 }));
        assert!(matches!(Header::decode(&[b'x'; HEADER_LEN]), Err(HeaderError::Magic { .. })));
    }
}
