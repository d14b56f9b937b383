//! One segment file: open, validate once, read zero-copy.

use std::fmt;
use std::path::{Path, PathBuf};

use rkyv::rancor;
use rkyv::rend::{u16_le, u32_le, u64_le};
use semantic_index::format::{
    self, ArchivedSegmentData, Header, HeaderError, HEADER_LEN, PAYLOAD_ALIGN,
};

/// Bytes a [`Segment`] can live in.
///
/// # Safety
///
/// `as_ref` must return the same bytes (same address, same length, same content) every time it
/// is called, for as long as the value lives, even after the value is moved: a segment validates
/// the bytes once and then reads them without checking again.
pub unsafe trait Storage: AsRef<[u8]> {}

// SAFETY: a Vec's heap buffer does not move when the Vec moves, and only `&mut` could change it.
unsafe impl Storage for Vec<u8> {}
// SAFETY: as for Vec: the heap buffer is fixed and shared immutably.
unsafe impl Storage for Box<[u8]> {}
// SAFETY: the shared buffer is immutable and outlives every clone.
unsafe impl Storage for std::sync::Arc<[u8]> {}
// SAFETY: a shared borrow's bytes cannot change while it lives.
unsafe impl Storage for &[u8] {}
// SAFETY: the wrapped AlignedVec keeps its buffer on the heap like Vec and is never mutated
// (`Aligned` gives no `&mut` access).
unsafe impl Storage for Aligned {}
// SAFETY: the mapping's address is fixed for its life. Its content is stable only if nobody
// writes the file: `map_file` (and `Segment::map`) is `unsafe` and makes the caller promise
// exactly that.
unsafe impl Storage for Mapped {}

/// A read-only memory mapping of a segment file ([`map_file`], [`Segment::map`]): its bytes.
pub struct Mapped(memmap2::Mmap);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Mapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapped").field("len", &self.0.len()).finish()
    }
}

/// Bytes in a heap buffer aligned for a segment's payload ([`aligned`], [`Segment::read`]).
pub struct Aligned(rkyv::util::AlignedVec);

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Aligned {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Aligned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aligned").field("len", &self.0.len()).finish()
    }
}

/// Which check a segment failed at open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Check {
    /// Reading or mapping the file.
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    /// The fixed header.
    #[error("bad header: {0}")]
    Header(HeaderError),
    /// File length disagrees with the header's payload length.
    #[error("length {found} bytes, header says {expected}")]
    Length {
        /// Header length plus the header's payload length.
        expected: u64,
        /// The file's length.
        found: u64,
    },
    /// The payload's checksum disagrees with the header.
    #[error("checksum mismatch: header {expected:#018x}, payload {found:#018x}")]
    Checksum {
        /// The header's checksum.
        expected: u64,
        /// The payload's checksum.
        found: u64,
    },
    /// The payload does not start on a 16-byte boundary in memory.
    #[error("payload is not {PAYLOAD_ALIGN}-byte aligned in memory")]
    Misaligned,
    /// rkyv validation (bytecheck) refused the archive.
    #[error("archive validation failed: {0}")]
    Archive(String),
    /// The archive is well formed but its tables disagree.
    #[error("inconsistent tables: {0}")]
    Structure(&'static str),
}

/// A segment could not be opened: which file and which check.
///
/// The message names the file, the check and its cause, once: neither this error nor [`Check`]
/// repeats its cause as a `source()` (a printed chain used to say it three times).
#[derive(Debug, thiserror::Error)]
pub struct OpenError {
    /// The file, if the segment came from one.
    pub path: Option<PathBuf>,
    /// The check that failed.
    pub check: Check,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "segment {}: {}", p.display(), self.check),
            None => write!(f, "segment in memory: {}", self.check),
        }
    }
}

/// One immutable segment, validated once at open and read in place.
///
/// `B` is where the bytes live: a read-only mapping ([`Segment::map`]), a buffer
/// ([`Segment::read`], [`Segment::from_bytes`]) or anything else that implements [`Storage`].
pub struct Segment<B = Mapped> {
    bytes: B,
    header: Header,
    payload_len: usize,
}

impl<B> fmt::Debug for Segment<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment").field("header", &self.header).finish_non_exhaustive()
    }
}

impl Segment<Mapped> {
    /// Maps the segment file at `path` read-only and validates it.
    ///
    /// # Safety
    ///
    /// The file must not be modified or truncated while the segment (or anything borrowed from
    /// it) lives. Store segments satisfy this: they are written once through atomic-write,
    /// renamed into place, never written again, and only unlinked (which keeps a mapping valid
    /// on Linux). Modifying a mapped file is undefined behaviour; truncating it raises SIGBUS.
    pub unsafe fn map(path: impl AsRef<Path>) -> Result<Segment<Mapped>, OpenError> {
        let path = path.as_ref();
        // SAFETY: this function's contract is `map_file`'s.
        let mmap = unsafe { map_file(path) }
            .map_err(|e| OpenError { path: Some(path.to_owned()), check: Check::Io(e) })?;
        Segment::from_bytes(mmap).map_err(|e| e.with_path(path))
    }
}

/// Maps the file at `path` read-only for sparse random reads (content files): 4 KiB pages, no
/// readahead beyond the page touched, so a process holds only the pages it read.
///
/// # Safety
///
/// As [`map_file`]: the file must not be modified or truncated while mapped.
pub(crate) unsafe fn map_sparse(path: &Path) -> std::io::Result<Mapped> {
    let file = semantic_index::layout::open_file(path, std::fs::OpenOptions::new().read(true))?;
    // SAFETY: this function's contract; the mapping is read-only.
    let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }?;
    #[cfg(unix)]
    let _ = mmap.advise(memmap2::Advice::Random);
    Ok(Mapped(mmap))
}

/// Maps the file at `path` read-only as [`Segment::map`] does, huge-page advice included, and
/// checks nothing: for tools that measure or inspect segment files (the bench's floor of what
/// reading a segment costs). Searching needs a [`Segment`], which validates.
///
/// # Safety
///
/// As for [`Segment::map`]: the file must not be modified or truncated while the map lives.
pub unsafe fn map_file(path: &Path) -> std::io::Result<Mapped> {
    // No link followed, no FIFO waited on, only a regular file (a store file's rule).
    let file = semantic_index::layout::open_file(path, std::fs::OpenOptions::new().read(true))?;
    // No MAP_POPULATE: the checksum reads every page right after, and its faults map the
    // pages around them in batches; populating first cost more than it saved on a busy host
    // (figures in benches/NOTES.md, issue 22).
    // SAFETY: the caller promises the file is neither modified nor truncated while mapped
    // (this function's contract); the mapping is read-only.
    let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }?;
    // Transparent huge pages: a segment is read whole at open, so 2 MiB pages cost no memory
    // a 4 KiB mapping would not, and when the kernel reads the file from disk (after a reboot
    // or eviction) it fills the page cache with 2 MiB folios and maps them with one entry
    // each, so such a file opens about as fast as one whose cache the writer filled (one
    // large write gives large folios on its own; figures in benches/NOTES.md). Advice only: a
    // kernel without THP refuses it, and that is fine.
    #[cfg(target_os = "linux")]
    let _ = mmap.advise(memmap2::Advice::HugePage);
    Ok(Mapped(mmap))
}

impl Segment<Aligned> {
    /// Reads the segment file at `path` into an aligned buffer and validates it. Safe, and
    /// independent of what happens to the file afterwards, at the cost of a copy.
    pub fn read(path: impl AsRef<Path>) -> Result<Segment<Aligned>, OpenError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| OpenError { path: Some(path.to_owned()), check: Check::Io(e) })?;
        Segment::from_bytes(aligned(&bytes)).map_err(|e| e.with_path(path))
    }
}

/// Copies `bytes` into a buffer aligned for a segment.
pub fn aligned(bytes: &[u8]) -> Aligned {
    let mut v = rkyv::util::AlignedVec::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    Aligned(v)
}

impl OpenError {
    fn with_path(mut self, path: &Path) -> OpenError {
        self.path = Some(path.to_owned());
        self
    }
}

pub(crate) fn structure(what: &'static str) -> OpenError {
    OpenError { path: None, check: Check::Structure(what) }
}

impl<B: Storage> Segment<B> {
    /// Validates `bytes` as a segment: header, length, checksum, alignment (the payload at byte
    /// 64 must be 16-byte aligned in memory, as a mapping or an [`Aligned`] buffer is), rkyv
    /// validation and table consistency. This is the only validation: searches trust it.
    pub fn from_bytes(bytes: B) -> Result<Segment<B>, OpenError> {
        let fail = |check| OpenError { path: None, check };
        let all = bytes.as_ref();
        let header = Header::decode(all).map_err(|e| fail(Check::Header(e)))?;
        let expected = (HEADER_LEN as u64).checked_add(header.payload_len);
        if expected != Some(all.len() as u64) {
            return Err(fail(Check::Length {
                expected: expected.unwrap_or(u64::MAX),
                found: all.len() as u64,
            }));
        }
        let payload = &all[HEADER_LEN..];
        let found = format::checksum(&all[..format::CHECKSUMMED_HEADER_LEN], payload);
        if found != header.checksum {
            return Err(fail(Check::Checksum { expected: header.checksum, found }));
        }
        if !(payload.as_ptr() as usize).is_multiple_of(PAYLOAD_ALIGN) {
            return Err(fail(Check::Misaligned));
        }
        let data = rkyv::access::<ArchivedSegmentData, rancor::Error>(payload)
            .map_err(|e| fail(Check::Archive(e.to_string())))?;
        crate::check::check_tables(data, &header)?;
        let payload_len = payload.len();
        Ok(Segment { bytes, header, payload_len })
    }

    pub(crate) fn data(&self) -> &ArchivedSegmentData {
        let payload = &self.bytes.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len];
        // SAFETY: `from_bytes` validated exactly these bytes with rkyv's checked `access`, and
        // `B: Storage` guarantees they are the same bytes now (same address, same content).
        unsafe { rkyv::access_unchecked::<ArchivedSegmentData>(payload) }
    }

    /// The checksum in the header, which open verified against the header and payload: it
    /// identifies this exact file (a store's manifest records it).
    pub fn checksum(&self) -> u64 {
        self.header.checksum
    }

    /// The generation the writer gave this segment.
    pub fn generation(&self) -> u64 {
        self.header.generation
    }

    /// How many documents the segment holds.
    pub fn len(&self) -> u32 {
        self.data().doc_count.to_native()
    }

    /// Whether the segment holds no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size of the segment in bytes, header included.
    pub fn size_bytes(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// How many sacred documents the segment holds.
    pub fn sacred_count(&self) -> u32 {
        self.data().sacred_count.to_native()
    }

    /// A zero-copy view of document `ordinal`, or `None` past the end.
    pub fn doc(&self, ordinal: u32) -> Option<DocRef<'_>> {
        (ordinal < self.len()).then(|| DocRef { data: self.data(), ordinal })
    }

    /// The ordinal of the document with `id`.
    pub fn find(&self, id: &[u8; 16]) -> Option<u32> {
        let data = self.data();
        let ids = data.ids.as_slice();
        let by_id = data.by_id.as_slice();
        let at = by_id
            .binary_search_by(|o| {
                ids.get(o.to_native() as usize).map_or([0xff; 16], |x| *x).cmp(id)
            })
            .ok()?;
        Some(by_id[at].to_native())
    }

    /// Sacred documents, newest first (timestamp descending, then id ascending).
    pub fn sacred(&self) -> impl Iterator<Item = u32> + '_ {
        self.data().sacred_newest.iter().map(|o| o.to_native())
    }

    /// The number of distinct terms.
    pub fn term_count(&self) -> u32 {
        self.data().term_offsets.len().saturating_sub(1) as u32
    }

    /// Deep semantic checks beyond those of open, each O(size of the segment): postings
    /// ascending and in range, forward lists in range, sacred list and id table consistent,
    /// strings valid UTF-8. Open does not run these (searches never index out of bounds
    /// whatever the bytes); use it on files from untrusted places.
    pub fn verify(&self) -> Result<(), OpenError> {
        crate::check::verify(self.data())
    }
}

/// The bytes of entry `i` of a blob + offsets table; a bad index gives nothing.
pub(crate) fn table_bytes<'a>(blob: &'a [u8], offsets: &[u32_le], i: usize) -> &'a [u8] {
    let (Some(a), Some(b)) = (offsets.get(i), offsets.get(i + 1)) else { return &[] };
    blob.get(a.to_native() as usize..b.to_native() as usize).unwrap_or(&[])
}

/// Reads string `i` of a blob + offsets table; invalid UTF-8 or a bad index gives "".
///
/// Validated on every read (open does not check the strings: that would read the blobs
/// twice), with a fast path for ASCII, which keywords and domains nearly always are: checking
/// a short slice for ASCII is a few word operations, where `from_utf8` was 12 % of the
/// witness apprentice's time on the 100k bench store.
#[inline]
pub(crate) fn table_str<'a>(blob: &'a [u8], offsets: &[u32_le], i: usize) -> &'a str {
    let bytes = table_bytes(blob, offsets, i);
    if bytes.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    } else {
        std::str::from_utf8(bytes).unwrap_or("")
    }
}

/// The ordinal of the term with these bytes (`hash` is [`format::term_hash`] of them), through
/// the hashed term table: a few slot reads and one byte comparison per candidate. Whatever the
/// table holds, this reads only in bounds and ends after at most one pass over the slots.
#[inline]
pub(crate) fn find_term(d: &ArchivedSegmentData, term: &[u8], hash: u64) -> Option<usize> {
    probe_table(
        d.term_slots.as_slice(),
        d.term_offsets.as_slice(),
        d.term_bytes.as_slice(),
        term,
        hash,
    )
}

/// The hashed-table probe behind [`find_term`] (and the ranked terms' lookup): linear probing
/// from `hash`, slot `t + 1` naming entry `t` of `offsets`/`blob`, 0 an empty slot.
#[inline]
pub(crate) fn probe_table(
    slots: &[u32_le],
    offsets: &[u32_le],
    blob: &[u8],
    term: &[u8],
    hash: u64,
) -> Option<usize> {
    let mask = slots.len().checked_sub(1)?;
    let mut at = hash as usize & mask;
    for _ in 0..slots.len() {
        let t = slots.get(at)?.to_native().checked_sub(1)? as usize;
        if table_bytes(blob, offsets, t) == term {
            return Some(t);
        }
        at = (at + 1) & mask;
    }
    None
}

/// The frequency of posting `i` (an index into `postings`), from the dense array or the
/// sparse exceptions (where a posting not listed has frequency 1).
pub(crate) fn frequency_at(d: &ArchivedSegmentData, i: usize) -> u8 {
    if !d.frequencies.is_empty() {
        return d.frequencies.get(i).copied().unwrap_or(0);
    }
    let exceptions = d.frequency_exceptions.as_slice();
    match u32::try_from(i).map(|i| exceptions.binary_search_by(|x| x.to_native().cmp(&i))) {
        Ok(Ok(j)) => d.frequency_values.get(j).copied().unwrap_or(1),
        _ => 1,
    }
}

/// The frequent terms' bitmaps (`SegmentData::frequent_*`), their lengths checked at open.
///
/// Interleaved by blocks of 64 documents: block `b` holds one word per frequent term, so a
/// document's frequent terms are `m` consecutive words, and a term's bitmap is every `m`-th word.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bitmaps<'a> {
    terms: &'a [u32_le],
    bits: &'a [u64_le],
    offsets: &'a [u32_le],
}

impl<'a> Bitmaps<'a> {
    pub(crate) fn of(d: &'a ArchivedSegmentData) -> Bitmaps<'a> {
        Bitmaps {
            terms: d.frequent_terms.as_slice(),
            bits: d.frequent_bits.as_slice(),
            offsets: d.frequent_offsets.as_slice(),
        }
    }

    /// How many terms have a bitmap.
    pub(crate) fn len(self) -> usize {
        self.terms.len()
    }

    pub(crate) fn is_empty(self) -> bool {
        self.terms.is_empty()
    }

    /// The term ordinal of bitmap `i`.
    pub(crate) fn term(self, i: usize) -> u32 {
        self.terms.get(i).map_or(u32::MAX, |t| t.to_native())
    }

    /// The bitmap of `term`, if it is frequent (binary search over at most 255 terms).
    #[inline]
    pub(crate) fn index(self, term: u32) -> Option<usize> {
        self.terms.binary_search_by(|t| t.to_native().cmp(&term)).ok()
    }

    /// Word `block` of bitmap `i` (documents `64 · block ..`), or `None` past the end.
    #[inline]
    fn word(self, i: usize, block: usize) -> Option<u64> {
        let at = block.checked_mul(self.terms.len())?.checked_add(i)?;
        self.bits.get(at).map(|w| w.to_native())
    }

    /// The words of every bitmap for document block `block` (empty past the end).
    #[inline]
    pub(crate) fn block(self, block: usize) -> &'a [u64_le] {
        let m = self.terms.len();
        let start = block.saturating_mul(m);
        self.bits.get(start..start.saturating_add(m)).unwrap_or(&[])
    }

    /// Whether document `ordinal` has frequent term `i`.
    #[inline]
    pub(crate) fn has(self, i: usize, ordinal: usize) -> bool {
        self.word(i, ordinal / 64).is_some_and(|w| w >> (ordinal % 64) & 1 != 0)
    }

    /// The first document at or after `from` that has frequent term `i`, or `end` if none
    /// before `end`.
    #[inline]
    pub(crate) fn next_set(self, i: usize, from: usize, end: usize) -> usize {
        let mut block = from / 64;
        let Some(first) = self.word(i, block) else { return end };
        let mut word = first & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return (block * 64 + word.trailing_zeros() as usize).min(end);
            }
            block += 1;
            match self.word(i, block) {
                Some(w) if block * 64 < end => word = w,
                _ => return end,
            }
        }
    }

    /// How many documents before `ordinal` have frequent term `i`.
    pub(crate) fn rank(self, i: usize, ordinal: usize) -> usize {
        let whole: u32 =
            (0..ordinal / 64).map_while(|b| self.word(i, b)).map(u64::count_ones).sum();
        let part = self
            .word(i, ordinal / 64)
            .map_or(0, |w| (w & ((1u64 << (ordinal % 64)) - 1)).count_ones());
        (whole + part) as usize
    }

    /// How many bits bitmap `i` has set, past the last document included.
    pub(crate) fn ones(self, i: usize) -> usize {
        (0..).map_while(|b| self.word(i, b)).map(|w| w.count_ones() as usize).sum()
    }

    /// How many documents have frequent term `i` (from its offsets).
    pub(crate) fn count(self, i: usize) -> usize {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(a), Some(b)) => (b.to_native() as usize).saturating_sub(a.to_native() as usize),
            _ => 0,
        }
    }

    /// Where frequent term `i`'s documents start among its frequencies, counted from the
    /// first frequency after the postings'.
    pub(crate) fn first_posting(self, i: usize) -> usize {
        self.offsets.get(i).map_or(0, |o| o.to_native() as usize)
    }

    /// How many documents the frequent terms have in all.
    pub(crate) fn postings(self) -> usize {
        self.offsets.last().map_or(0, |o| o.to_native() as usize)
    }
}

/// Where document `ordinal`'s forward list lies in the concatenated lists (offsets validated
/// at open to be monotone; hostile bytes give `None` past the end or for a reversed pair).
#[inline]
fn forward_range(forward_offsets: &[u32_le], ordinal: usize) -> Option<std::ops::Range<usize>> {
    let (a, b) = (forward_offsets.get(ordinal)?, forward_offsets.get(ordinal + 1)?);
    let (a, b) = (a.to_native() as usize, b.to_native() as usize);
    (a <= b).then_some(a..b)
}

/// Document `ordinal`'s keyword count: the length of its forward list plus its count of
/// frequent terms.
#[inline]
pub(crate) fn keyword_count(
    forward_offsets: &[u32_le],
    frequent_counts: &[u8],
    ordinal: usize,
) -> Option<u32> {
    let frequent = frequent_counts.get(ordinal).map_or(0, |&c| u32::from(c));
    forward_range(forward_offsets, ordinal).map(|r| r.len() as u32 + frequent)
}

/// Whether document `ordinal` has term `term`: a bit test for a frequent term, a binary
/// search in its forward list otherwise.
pub(crate) fn has_term(d: &ArchivedSegmentData, ordinal: usize, term: u32) -> bool {
    let bitmaps = Bitmaps::of(d);
    match bitmaps.index(term) {
        Some(i) => bitmaps.has(i, ordinal),
        None => Forward::of(d, ordinal).contains(term),
    }
}

/// Two ascending sequences of term ordinals merged into one.
/// One document's frequent terms, ascending: its bit of each word of its block, gathered 64
/// words at a time into a mask without a branch per word (the words' bits are as good as random,
/// so a test per word mispredicts about half the time), then the mask's set bits in order.
/// Stops once `want` terms are given: the block is not read past the document's last one.
struct FrequentOf<'a> {
    bitmaps: Bitmaps<'a>,
    /// The document's block: one word per frequent term.
    block: &'a [u64_le],
    /// The document's bit in each word.
    shift: u32,
    /// The bitmap index of bit 0 of `mask`; the words before `base + 64` are gathered.
    base: usize,
    /// The document's bits of words `base ..` not given yet.
    mask: u64,
    /// How many terms are left to give.
    want: usize,
}

impl Iterator for FrequentOf<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.want == 0 {
            return None;
        }
        while self.mask == 0 {
            let words = self.block.get(self.base..)?;
            let chunk = words.get(..words.len().min(64))?;
            if chunk.is_empty() {
                return None;
            }
            let mut mask = 0u64;
            for (j, w) in chunk.iter().enumerate() {
                mask |= (w.to_native() >> self.shift & 1) << j;
            }
            if mask == 0 {
                self.base += 64;
                continue;
            }
            self.mask = mask;
            break;
        }
        let j = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        self.want -= 1;
        let term = self.bitmaps.term(self.base + j);
        if self.mask == 0 {
            self.base += 64;
        }
        Some(term)
    }
}

struct Merge<A: Iterator<Item = u32>, B: Iterator<Item = u32>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = u32>, B: Iterator<Item = u32>> Iterator for Merge<A, B> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y < x => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

/// Forward lists (term ordinals per document, ascending) of either width.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Forward<'a> {
    /// `u16` ordinals: segments of at most [`format::NARROW_TERMS`] terms.
    Narrow(&'a [u16_le]),
    /// `u32` ordinals.
    Wide(&'a [u32_le]),
}

impl<'a> Forward<'a> {
    /// Every document's list, concatenated.
    pub(crate) fn all(d: &'a ArchivedSegmentData) -> Forward<'a> {
        if d.forward_wide.is_empty() {
            Forward::Narrow(d.forward_narrow.as_slice())
        } else {
            Forward::Wide(d.forward_wide.as_slice())
        }
    }

    /// Document `ordinal`'s list (empty if the offsets say nothing sensible).
    #[inline]
    pub(crate) fn of(d: &'a ArchivedSegmentData, ordinal: usize) -> Forward<'a> {
        let range = forward_range(d.forward_offsets.as_slice(), ordinal).unwrap_or(0..0);
        match Forward::all(d) {
            Forward::Narrow(all) => Forward::Narrow(all.get(range).unwrap_or(&[])),
            Forward::Wide(all) => Forward::Wide(all.get(range).unwrap_or(&[])),
        }
    }

    /// Whether the list holds `term` (binary search).
    #[inline]
    pub(crate) fn contains(self, term: u32) -> bool {
        match self {
            Forward::Narrow(list) => u16::try_from(term)
                .is_ok_and(|t| list.binary_search_by(|x| x.to_native().cmp(&t)).is_ok()),
            Forward::Wide(list) => list.binary_search_by(|x| x.to_native().cmp(&term)).is_ok(),
        }
    }

    /// The ordinals, in order.
    pub(crate) fn iter(self) -> impl Iterator<Item = u32> + 'a {
        let (narrow, wide) = match self {
            Forward::Narrow(list) => (list, &[][..]),
            Forward::Wide(list) => (&[][..], list),
        };
        narrow.iter().map(|t| u32::from(t.to_native())).chain(wide.iter().map(|t| t.to_native()))
    }
}

/// A zero-copy view of one document of a segment.
#[derive(Clone, Copy)]
pub struct DocRef<'a> {
    pub(crate) data: &'a ArchivedSegmentData,
    pub(crate) ordinal: u32,
}

impl fmt::Debug for DocRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocRef")
            .field("ordinal", &self.ordinal)
            .field("domain", &self.domain())
            .field("gist", &self.gist())
            .finish_non_exhaustive()
    }
}

impl<'a> DocRef<'a> {
    fn at(&self) -> usize {
        self.ordinal as usize
    }

    /// The document's ordinal in its segment.
    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    /// The memory's id (UUID bytes).
    pub fn id(&self) -> [u8; 16] {
        self.data.ids.get(self.at()).copied().unwrap_or_default()
    }

    /// The memory's domain.
    pub fn domain(&self) -> &'a str {
        let d = self.data;
        let i = d.domain_of.get(self.at()).map_or(usize::MAX, |x| x.to_native() as usize);
        table_str(d.domain_bytes.as_slice(), d.domain_offsets.as_slice(), i)
    }

    /// The memory's question, cut to a bound.
    pub fn gist(&self) -> &'a str {
        table_str(self.data.gist_bytes.as_slice(), self.data.gist_offsets.as_slice(), self.at())
    }

    /// When the memory was made, unix microseconds.
    pub fn timestamp_micros(&self) -> i64 {
        self.data.timestamps.get(self.at()).map_or(0, |x| x.to_native())
    }

    /// The memory's own score.
    pub fn score(&self) -> f32 {
        self.data.scores.get(self.at()).map_or(0.0, |x| x.to_native())
    }

    /// Whether the memory is sacred.
    pub fn sacred(&self) -> bool {
        self.ordinal < self.data.sacred_count.to_native()
    }

    /// How many distinct keywords the memory has.
    pub fn keyword_count(&self) -> u32 {
        let d = self.data;
        keyword_count(d.forward_offsets.as_slice(), d.frequent_counts.as_slice(), self.at())
            .unwrap_or(0)
    }

    /// How many keyword-sized tokens the memory has, duplicates included.
    pub fn token_count(&self) -> u32 {
        self.data.token_counts.get(self.at()).map_or(0, |x| x.to_native())
    }

    /// The memory's keywords, in term order (bytewise), zero-copy.
    pub fn keywords(&self) -> impl Iterator<Item = &'a str> + 'a {
        let d = self.data;
        self.term_ids()
            .map(move |t| table_str(d.term_bytes.as_slice(), d.term_offsets.as_slice(), t as usize))
    }

    /// How many times `keyword` occurs in the memory (its text fields, as [`keywords`] splits
    /// them), saturating at 255; 0 when it is not one of the memory's keywords. `keyword` is
    /// compared as it is: pass a keyword (lowercase), as [`keywords`] gives them.
    ///
    /// [`keywords`]: semantic_index::keywords
    pub fn term_frequency(&self, keyword: &str) -> u8 {
        let d = self.data;
        let bytes = keyword.as_bytes();
        let Some(term) = find_term(d, bytes, format::term_hash(bytes)) else { return 0 };
        let bitmaps = Bitmaps::of(d);
        if let Some(i) = u32::try_from(term).ok().and_then(|t| bitmaps.index(t)) {
            if !bitmaps.has(i, self.at()) {
                return 0;
            }
            let at = d.postings.len() + bitmaps.first_posting(i) + bitmaps.rank(i, self.at());
            return frequency_at(d, at);
        }
        let pages = format::posting_pages(d.doc_count.to_native()) as usize;
        let page = (self.ordinal / format::POSTING_PAGE) as usize;
        let offsets = d.posting_offsets.as_slice();
        let run = term * pages + page;
        let (Some(a), Some(b)) = (offsets.get(run), offsets.get(run + 1)) else { return 0 };
        let (a, b) = (a.to_native() as usize, b.to_native() as usize);
        let Some(list) = d.postings.get(a..b) else { return 0 };
        let low = (self.ordinal % format::POSTING_PAGE) as u16;
        match list.binary_search_by(|p| p.to_native().cmp(&low)) {
            Ok(i) => frequency_at(d, a + i),
            Err(_) => 0,
        }
    }

    /// The keyword with term ordinal `term` in this memory's segment (as [`keywords`] gives
    /// them); "" for an ordinal the segment does not have.
    ///
    /// [`keywords`]: DocRef::keywords
    pub fn term_text(&self, term: u32) -> &'a str {
        let d = self.data;
        table_str(d.term_bytes.as_slice(), d.term_offsets.as_slice(), term as usize)
    }

    /// The memory's term ordinals, ascending: its forward list merged with the frequent terms
    /// it has (found by bit tests, stopping once its count of them is reached). Ordinals are
    /// the segment's own (two memories of one segment share them; [`term_text`] reads one):
    /// counting by ordinal reads no keyword bytes.
    ///
    /// [`term_text`]: DocRef::term_text
    pub fn term_ids(&self) -> impl Iterator<Item = u32> + 'a {
        let (d, o) = (self.data, self.at());
        let bitmaps = Bitmaps::of(d);
        let want = d.frequent_counts.get(o).map_or(0, |&c| usize::from(c));
        let frequent = FrequentOf {
            bitmaps,
            block: bitmaps.block(o / 64),
            shift: (o % 64) as u32,
            base: 0,
            mask: 0,
            want,
        };
        Merge { a: Forward::of(d, o).iter().peekable(), b: frequent.peekable() }
    }
}
