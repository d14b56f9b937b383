//! Vector search: a segment's vector file mapped read-only (`semantic_index::vectors` writes
//! it), an exact scan of its int8 codes, and reciprocal rank fusion with the lexical ranking.
//!
//! The scan allocates nothing: the caller prepares a [`QueryVector`] and a [`VectorHits`] once.

use std::path::{Path, PathBuf};

use semantic_index::vectors::{decode_header, nibble_row_len, quantize, Layout, VectorsCheck};

use crate::reader::Snapshot;
use crate::search::DeletedSet;

/// A vector file that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VectorsError {
    /// Reading or mapping failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file failed a check.
    #[error("{}: {check}", path.display())]
    Check {
        /// The file.
        path: PathBuf,
        /// Which check.
        check: VectorsCheck,
    },
    /// The file does not fit its segment (count) or the query (dimensions, model).
    #[error("{}: {what}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not match.
        what: String,
    },
}

enum Bytes {
    Mapped(crate::segment::Mapped),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// One vector file, checked once at open (header, length, checksum, list bounds).
pub struct Vectors {
    bytes: Bytes,
    dim: usize,
    count: u32,
    lists: u32,
    layout: Layout,
    /// Whether the file has 4-bit codes (version 3): a probed search then scans them and
    /// re-ranks its best candidates with the int8 codes.
    nibbles: bool,
    model: String,
    /// The centroids quantized like the vectors (`lists × dim` int8 codes) and their scales,
    /// copied once at open: a query ranks them in int8 (a quarter of the f32 bytes, which stay
    /// in L2: 243 KiB at 100k's 632 lists against 970 KiB read from L3 per query).
    centroid_codes: Vec<u8>,
    centroid_scales: Vec<f32>,
}

/// How many lists a search probes by default in a file of `lists` lists: one in 40, at least
/// 24 (24 of 632 at 100k: about 3.8 % of the rows). On real MiniLM vectors (Cranfield, 12,168
/// texts, 221 lists; `cargo xtask bench-vectors --real`) recall@10 against the exact scan is
/// 0.968 at 24 probes, 0.955 at 16 and 0.912 at 8; with the 4-bit pass 24 probes cost about
/// what 16 did in int8 alone (benches/NOTES.md, issue 18, sixth and eighth sessions).
pub fn default_probes(lists: usize) -> usize {
    lists.div_ceil(40).max(24)
}

impl std::fmt::Debug for Vectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vectors")
            .field("dim", &self.dim)
            .field("count", &self.count)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Vectors {
    /// Maps the vector file at `path` and checks it.
    ///
    /// # Safety
    ///
    /// As for [`crate::Segment::map`]: the file must not be modified or truncated while the map
    /// lives (store vector files never are: written once, renamed into place, never rewritten).
    pub unsafe fn map(path: &Path) -> Result<Vectors, VectorsError> {
        // SAFETY: this function's contract is `map_file`'s.
        let mmap = unsafe { crate::segment::map_file(path) }
            .map_err(|source| VectorsError::Io { path: path.into(), source })?;
        Vectors::new(Bytes::Mapped(mmap))
            .map_err(|check| VectorsError::Check { path: path.into(), check })
    }

    /// Checks vector file bytes held in memory.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Vectors, VectorsCheck> {
        Vectors::new(Bytes::Owned(bytes))
    }

    fn new(bytes: Bytes) -> Result<Vectors, VectorsCheck> {
        let header = decode_header(&bytes)?;
        let layout = Layout::of_version(header.version, header.count, header.dim, header.lists)
            .ok_or(VectorsCheck::Length { len: bytes.len(), expected: usize::MAX })?;
        let mut v = Vectors {
            nibbles: header.version >= 3,
            dim: header.dim as usize,
            count: header.count,
            lists: header.lists,
            layout,
            model: header.model,
            bytes,
            centroid_codes: Vec::new(),
            centroid_scales: Vec::new(),
        };
        // The lists' bounds, once: ascending, within the rows.
        let mut previous = 0;
        for l in 0..=v.lists {
            let start = v.u32_at(v.layout.list_starts, l as usize).unwrap_or(u32::MAX);
            if start < previous
                || start > v.count
                || (l == v.lists && v.lists > 0 && start != v.count)
            {
                return Err(VectorsCheck::Lists);
            }
            previous = start;
        }
        let (lists, dim) = (v.lists as usize, v.dim);
        let centroids = v
            .bytes
            .get(v.layout.centroids..v.layout.centroids + 4 * lists * dim)
            .ok_or(VectorsCheck::Lists)?;
        let mut values = vec![0.0f32; dim];
        let mut codes = vec![0i8; dim];
        v.centroid_codes.reserve_exact(lists * dim);
        v.centroid_scales.reserve_exact(lists);
        for c in centroids.chunks_exact(4 * dim.max(1)) {
            for (x, b) in values.iter_mut().zip(c.chunks_exact(4)) {
                *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            v.centroid_scales.push(quantize(&values, &mut codes));
            v.centroid_codes.extend(codes.iter().map(|&c| c as u8));
        }
        Ok(v)
    }

    fn u32_at(&self, section: usize, index: usize) -> Option<u32> {
        let at = section + 4 * index;
        let b = self.bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn row(&self, ordinal: u32) -> Option<u32> {
        if ordinal >= self.count {
            return None;
        }
        self.u32_at(self.layout.rows, ordinal as usize).filter(|&r| r < self.count)
    }

    /// Inverted lists (0: the file is scanned whole).
    pub fn lists(&self) -> u32 {
        self.lists
    }

    /// Dimensions per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Vectors held (the segment's documents).
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether it holds no vector.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The model tag the writer stored.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Bytes of the file.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    fn scale(&self, row: u32) -> f32 {
        self.u32_at(self.layout.scales, row as usize).map_or(0.0, f32::from_bits)
    }

    fn codes(&self, row: u32) -> &[u8] {
        let at = self.layout.codes + row as usize * self.dim;
        self.bytes.get(at..at + self.dim).unwrap_or(&[])
    }

    /// The memory id stored for `ordinal`.
    pub fn id(&self, ordinal: u32) -> Option<[u8; 16]> {
        if ordinal >= self.count {
            return None;
        }
        let at = self.layout.ids + 16 * ordinal as usize;
        self.bytes.get(at..at + 16)?.try_into().ok()
    }

    /// The (dequantized) vector of `ordinal` into `out` (`dim` long); `false` past the end.
    pub fn vector(&self, ordinal: u32, out: &mut [f32]) -> bool {
        let Some(row) = self.row(ordinal) else { return false };
        if out.len() != self.dim {
            return false;
        }
        let scale = self.scale(row);
        for (o, &c) in out.iter_mut().zip(self.codes(row)) {
            *o = f32::from(c as i8) * scale;
        }
        true
    }

    /// Cosine similarity (vectors are unit length) of `query` with `ordinal`'s vector.
    pub fn similarity(&self, query: &QueryVector, ordinal: u32) -> f32 {
        let Some(row) = self.row(ordinal) else { return 0.0 };
        if query.codes.len() != self.dim {
            return 0.0;
        }
        dot(&query.codes, self.codes(row)) as f32 * query.scale * self.scale(row)
    }

    /// The bytes of rows `rows`: their scales, their codes (`width` bytes a row from `codes`,
    /// the int8 or the 4-bit section) and their ordinals; `None` past the file's end.
    #[inline(always)]
    fn row_bytes(
        &self,
        codes: usize,
        width: usize,
        rows: std::ops::Range<usize>,
    ) -> Option<(&[u8], &[u8], &[u8])> {
        let (scales, ordinals) = (self.layout.scales, self.layout.ordinals);
        Some((
            self.bytes.get(scales + 4 * rows.start..scales + 4 * rows.end)?,
            self.bytes.get(codes + width * rows.start..codes + width * rows.end)?,
            self.bytes.get(ordinals + 4 * rows.start..ordinals + 4 * rows.end)?,
        ))
    }

    /// Offers the vectors of rows `rows` not deleted to `hits`; `AVX2` picks the dot product
    /// kernel (only [`Vectors::search_avx2`] passes `true`).
    #[inline(always)]
    fn scan_rows<const AVX2: bool>(
        &self,
        query: &QueryVector,
        deleted: &DeletedSet,
        segment: u32,
        rows: std::ops::Range<usize>,
        hits: &mut VectorHits,
    ) {
        let dim = self.dim;
        let Some((scales, codes, ordinals)) = self.row_bytes(self.layout.codes, dim, rows) else {
            return;
        };
        for (row, ((scale, code), ordinal)) in scales
            .chunks_exact(4)
            .zip(codes.chunks_exact(dim))
            .zip(ordinals.chunks_exact(4))
            .enumerate()
        {
            // The row `PREFETCH_ROWS` ahead: the scan waits on memory (a list's rows are not in
            // cache), and the hardware prefetcher stops at page boundaries.
            if let Some(ahead) =
                codes.get((row + PREFETCH_ROWS) * dim..(row + PREFETCH_ROWS + 1) * dim)
            {
                prefetch_bytes(ahead);
            }
            #[cfg(target_arch = "x86_64")]
            let d = if AVX2 {
                // SAFETY: `AVX2` is true only in the instance inlined into `search_avx2`, whose
                // caller checked that the CPU has AVX2 and FMA.
                unsafe { dot_avx2(&query.codes, code) }
            } else {
                dot(&query.codes, code)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let d = dot(&query.codes, code);
            let scale = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
            let score = d as f32 * query.scale * scale;
            if score > hits.floor() {
                let ordinal = u32::from_le_bytes([ordinal[0], ordinal[1], ordinal[2], ordinal[3]]);
                if !deleted.contains(ordinal) {
                    hits.offer(VectorHit { segment, ordinal, similarity: score });
                }
            }
        }
    }

    /// Offers the rows `rows` not deleted to `hits`' candidates, ranked by their 4-bit codes
    /// (an approximation of the int8 similarity, without the query's scale).
    #[inline(always)]
    fn scan_nibbles<const AVX2: bool>(
        &self,
        query: &QueryVector,
        deleted: &DeletedSet,
        rows: std::ops::Range<usize>,
        hits: &mut VectorHits,
    ) {
        let width = nibble_row_len(self.dim);
        let Some((scales, nibbles, ordinals)) =
            self.row_bytes(self.layout.nibbles, width, rows.clone())
        else {
            return;
        };
        let offset = 8 * query.sum;
        for (i, ((scale, code), ordinal)) in scales
            .chunks_exact(4)
            .zip(nibbles.chunks_exact(width))
            .zip(ordinals.chunks_exact(4))
            .enumerate()
        {
            if let Some(ahead) = nibbles
                .get((i + PREFETCH_NIBBLE_ROWS) * width..(i + PREFETCH_NIBBLE_ROWS + 1) * width)
            {
                prefetch_bytes(ahead);
            }
            #[cfg(target_arch = "x86_64")]
            let d = if AVX2 {
                // SAFETY: `AVX2` is true only in the instance inlined into `search_avx2`, whose
                // caller checked that the CPU has AVX2 and FMA.
                unsafe { dot_nibbles_avx2(&query.padded, code) }
            } else {
                dot_nibbles(&query.padded, code)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let d = dot_nibbles(&query.padded, code);
            let scale = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
            let approximate = (d - offset) as f32 * scale;
            if approximate > hits.candidates.floor {
                let ordinal = u32::from_le_bytes([ordinal[0], ordinal[1], ordinal[2], ordinal[3]]);
                if !deleted.contains(ordinal) {
                    let row = (rows.start + i) as u32;
                    hits.candidates.offer(Candidate { approximate, row, ordinal });
                }
            }
        }
    }

    /// Scores `hits`' candidates with their int8 codes and offers them to `hits`.
    #[inline(always)]
    fn rerank<const AVX2: bool>(&self, query: &QueryVector, segment: u32, hits: &mut VectorHits) {
        let dim = self.dim;
        let candidates = std::mem::take(&mut hits.candidates.items);
        for (i, c) in candidates.iter().enumerate() {
            // A candidate's int8 row is anywhere in the file: ask for a later one's now.
            if let Some(ahead) = candidates.get(i + PREFETCH_ROWS) {
                let at = self.layout.codes + ahead.row as usize * dim;
                if let Some(row) = self.bytes.get(at..at + dim) {
                    prefetch_bytes(row);
                }
            }
            let code = self.codes(c.row);
            if code.len() != dim {
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            let d = if AVX2 {
                // SAFETY: as in `scan_rows` (AVX2 and FMA checked by `search`'s caller).
                unsafe { dot_avx2(&query.codes, code) }
            } else {
                dot(&query.codes, code)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let d = dot(&query.codes, code);
            let score = d as f32 * query.scale * self.scale(c.row);
            if score > hits.floor() {
                hits.offer(VectorHit { segment, ordinal: c.ordinal, similarity: score });
            }
        }
        hits.candidates.items = candidates;
        hits.candidates.clear();
    }

    /// Searches the nearest `probes` lists (every row when the file has no lists, or when
    /// `probes` reaches their number; `None`: [`default_probes`]). A file with 4-bit codes
    /// (version 3) is searched in two passes: the probed rows' 4-bit codes choose the best
    /// `k + 32`, and their int8 codes rank those (the hits' similarities are the int8 ones, as
    /// in the exact scan). No allocation: the lists and the candidates are kept in `hits`'
    /// scratch. Uses AVX2 and FMA when the CPU has them.
    pub fn search(
        &self,
        query: &QueryVector,
        deleted: &DeletedSet,
        segment: u32,
        probes: Option<usize>,
        hits: &mut VectorHits,
    ) {
        let probes = probes.unwrap_or_else(|| default_probes(self.lists as usize));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above; `search_avx2` needs
            // nothing else.
            unsafe { self.search_avx2(query, deleted, segment, probes, hits) };
            return;
        }
        self.search_impl::<false>(query, deleted, segment, probes, hits);
    }

    /// [`Vectors::search`] with the AVX2 kernel ([`dot_avx2`], for the rows and the
    /// centroids).
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn search_avx2(
        &self,
        query: &QueryVector,
        deleted: &DeletedSet,
        segment: u32,
        probes: usize,
        hits: &mut VectorHits,
    ) {
        self.search_impl::<true>(query, deleted, segment, probes, hits);
    }

    #[inline(always)]
    fn search_impl<const AVX2: bool>(
        &self,
        query: &QueryVector,
        deleted: &DeletedSet,
        segment: u32,
        probes: usize,
        hits: &mut VectorHits,
    ) {
        if query.codes.len() != self.dim || self.dim == 0 {
            return;
        }
        let lists = self.lists as usize;
        if lists == 0 || probes >= lists {
            self.scan_rows::<AVX2>(query, deleted, segment, 0..self.count as usize, hits);
            return;
        }
        // Rank the centroids by similarity with the query (int8, like the rows; the query's
        // scale is common to all, so left out), keep the best `probes`.
        let ranked = &mut hits.lists;
        ranked.clear();
        let dim = self.dim;
        for (l, (c, &scale)) in
            self.centroid_codes.chunks_exact(dim).zip(&self.centroid_scales).enumerate()
        {
            #[cfg(target_arch = "x86_64")]
            let d = if AVX2 {
                // SAFETY: as for `dot_avx2` above (AVX2 and FMA checked by `search`'s caller).
                unsafe { dot_avx2(&query.codes, c) }
            } else {
                dot(&query.codes, c)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let d = dot(&query.codes, c);
            ranked.push((d as f32 * scale, l as u32));
        }
        let probes = probes.max(1);
        if probes < ranked.len() {
            ranked.select_nth_unstable_by(probes - 1, |a, b| b.0.total_cmp(&a.0));
        }
        // Nearest list first: the top-k floor rises early, so later lists offer fewer hits.
        let probed = probes.min(ranked.len());
        ranked[..probed].sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        // Two passes when the file has 4-bit codes: the probed rows' 4-bit codes (half the
        // bytes of the int8 ones) choose the candidates, whose int8 codes then rank them.
        let two_pass = self.nibbles && query.padded.len() == 2 * nibble_row_len(dim);
        if two_pass {
            hits.candidates.clear();
            hits.candidates.k = rerank_depth(hits.k());
        }
        for i in 0..probes.min(hits.lists.len()) {
            let l = hits.lists[i].1 as usize;
            let start = self.u32_at(self.layout.list_starts, l).unwrap_or(0) as usize;
            let end = self.u32_at(self.layout.list_starts, l + 1).unwrap_or(0) as usize;
            // The next list's first rows, which the scan's own prefetch does not reach.
            if let Some(&(_, next)) = hits.lists.get(i + 1).filter(|_| i + 1 < probes) {
                let from =
                    self.u32_at(self.layout.list_starts, next as usize).unwrap_or(0) as usize;
                let (at, len) = if two_pass {
                    let width = nibble_row_len(dim);
                    (self.layout.nibbles + from * width, PREFETCH_NIBBLE_ROWS * width)
                } else {
                    (self.layout.codes + from * dim, PREFETCH_ROWS * dim)
                };
                if let Some(rows) = self.bytes.get(at..at + len) {
                    prefetch_bytes(rows);
                }
            }
            if start < end && two_pass {
                self.scan_nibbles::<AVX2>(query, deleted, start..end, hits);
            } else if start < end {
                self.scan_rows::<AVX2>(query, deleted, segment, start..end, hits);
            }
        }
        if two_pass {
            self.rerank::<AVX2>(query, segment, hits);
        }
    }

    /// Scans every vector not deleted and offers it to `hits` (tagged `segment`). Exact; no
    /// allocation. Does nothing when the dimensions differ from the query's.
    pub fn scan(
        &self,
        query: &QueryVector,
        deleted: &DeletedSet,
        segment: u32,
        hits: &mut VectorHits,
    ) {
        if query.codes.len() != self.dim || self.dim == 0 {
            return;
        }
        self.search(query, deleted, segment, Some(usize::MAX), hits);
    }
}

/// How many rows ahead a scan asks for the codes it will read.
const PREFETCH_ROWS: usize = 4;
/// How many rows ahead a scan of 4-bit codes asks for them (as many bytes ahead as
/// [`PREFETCH_ROWS`] int8 rows).
const PREFETCH_NIBBLE_ROWS: usize = 8;

/// How many candidates the 4-bit pass keeps for the int8 pass when the search keeps `k`: on
/// real MiniLM vectors (benches/NOTES.md, issue 18, eighth session) `k + 16` already gave the
/// int8 scan's recall@10 at every probe count; 32 leave a margin for small `k`.
fn rerank_depth(k: usize) -> usize {
    if k == 0 {
        return 0;
    }
    k + 32
}

/// The dot product of a query's padded codes (`64 · blocks` long) with a row's 4-bit codes
/// (`32 · blocks` bytes, [`semantic_index::vectors::pack_nibbles`]), each nibble read as
/// 0..=15: subtract `8 · sum(query)` for the signed codes' product. 0 when the lengths differ.
#[inline(always)]
fn dot_nibbles(padded: &[i8], row: &[u8]) -> i32 {
    if padded.len() != 2 * row.len() {
        return 0;
    }
    let mut sum = 0i32;
    for (q, r) in padded.chunks_exact(64).zip(row.chunks_exact(32)) {
        for j in 0..32 {
            sum += i32::from(q[j]) * i32::from(r[j] & 0x0F)
                + i32::from(q[32 + j]) * i32::from(r[j] >> 4);
        }
    }
    sum
}

/// [`dot_nibbles`] with AVX2: per 32 bytes, the low and high halves masked out (`vpand`,
/// `vpsrlw`), each multiplied by its 32 query codes and added in pairs (`vpmaddubsw`, unsigned
/// nibbles times signed codes: at most 2 × 15 × 127 = 3,810, the two sums at most 7,620, no
/// saturation), then in pairs to i32 (`vpmaddwd`). Equal to [`dot_nibbles`].
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn dot_nibbles_avx2(padded: &[i8], row: &[u8]) -> i32 {
    use std::arch::x86_64::*;
    if padded.len() != 2 * row.len() || !row.len().is_multiple_of(32) {
        return 0;
    }
    let low = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let mut b = 0;
    while b < row.len() {
        // SAFETY: `b + 32 <= row.len()` (a multiple of 32) and `2b + 64 <= padded.len()`
        // (twice `row.len()`), checked above; unaligned loads are allowed.
        let (r, q_low, q_high) = unsafe {
            (
                _mm256_loadu_si256(row.as_ptr().add(b).cast()),
                _mm256_loadu_si256(padded.as_ptr().add(2 * b).cast()),
                _mm256_loadu_si256(padded.as_ptr().add(2 * b + 32).cast()),
            )
        };
        let (r_low, r_high) =
            (_mm256_and_si256(r, low), _mm256_and_si256(_mm256_srli_epi16(r, 4), low));
        let pairs = _mm256_add_epi16(
            _mm256_maddubs_epi16(r_low, q_low),
            _mm256_maddubs_epi16(r_high, q_high),
        );
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
        b += 32;
    }
    let half = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    let quarter = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0b01_00_11_10));
    let one = _mm_add_epi32(quarter, _mm_shuffle_epi32(quarter, 0b10_11_00_01));
    _mm_cvtsi128_si32(one)
}

/// Asks for every cache line of `bytes` (a hint: results do not depend on it).
#[inline(always)]
fn prefetch_bytes(bytes: &[u8]) {
    for line in bytes.chunks(64) {
        crate::search::prefetch(line.as_ptr());
    }
}

/// Integer dot product of the query's codes with a document's (bytes read as `i8`); written so
/// the compiler vectorizes it (sign extension and multiply-add on 16 lanes).
#[inline(always)]
fn dot(query: &[i8], doc: &[u8]) -> i32 {
    let mut acc = [0i32; 16];
    let (q_chunks, d_chunks) = (query.chunks_exact(16), doc.chunks_exact(16));
    let (q_rest, d_rest) = (q_chunks.remainder(), d_chunks.remainder());
    for (q, d) in q_chunks.zip(d_chunks) {
        for i in 0..16 {
            acc[i] += i32::from(q[i]) * i32::from(d[i] as i8);
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (q, d) in q_rest.iter().zip(d_rest) {
        sum += i32::from(*q) * i32::from(*d as i8);
    }
    sum
}

/// [`dot`] with AVX2: per 32 bytes, the query's magnitudes times the document's codes carrying
/// the query's signs (`vpsignb`), multiplied and added in pairs to i16 (`vpmaddubsw`: at most
/// 2 × 128 × 127 = 32,512, no saturation), then in pairs to i32 (`vpmaddwd`). Equal to [`dot`]
/// except for a document code of -128 against a negative query code (the writer never stores
/// -128: codes are clamped to ±127).
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn dot_avx2(query: &[i8], doc: &[u8]) -> i32 {
    use std::arch::x86_64::*;
    let n = query.len().min(doc.len());
    let whole = n - n % 32;
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i < whole {
        // SAFETY: `i + 32 <= whole <= n`, within both slices; unaligned loads are allowed.
        let (q, d) = unsafe {
            (
                _mm256_loadu_si256(query.as_ptr().add(i).cast()),
                _mm256_loadu_si256(doc.as_ptr().add(i).cast()),
            )
        };
        let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(d, q));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
        i += 32;
    }
    let half = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    let quarter = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0b01_00_11_10));
    let one = _mm_add_epi32(quarter, _mm_shuffle_epi32(quarter, 0b10_11_00_01));
    let mut sum = _mm_cvtsi128_si32(one);
    for (q, d) in query[whole..n].iter().zip(&doc[whole..n]) {
        sum += i32::from(*q) * i32::from(*d as i8);
    }
    sum
}

/// A query's vector, quantized once like the documents' (int8 and a scale).
#[derive(Clone, Debug)]
pub struct QueryVector {
    codes: Vec<i8>,
    scale: f32,
    /// `codes` padded with zeros to a multiple of 64 (what the 4-bit kernel reads).
    padded: Vec<i8>,
    /// The sum of `codes`.
    sum: i32,
}

impl QueryVector {
    /// A zero query of `dim` dimensions, to [`set`](QueryVector::set) before each search.
    pub fn with_dim(dim: usize) -> QueryVector {
        QueryVector {
            codes: vec![0; dim],
            scale: 0.0,
            padded: vec![0; 2 * nibble_row_len(dim)],
            sum: 0,
        }
    }

    /// Quantizes `vector` (unit length, from the same model as the documents).
    pub fn new(vector: &[f32]) -> QueryVector {
        let mut q = QueryVector::with_dim(vector.len());
        q.set(vector);
        q
    }

    /// Replaces the query by `vector`, without allocating when the dimensions stay the same.
    pub fn set(&mut self, vector: &[f32]) {
        self.codes.resize(vector.len(), 0);
        self.scale = quantize(vector, &mut self.codes);
        self.padded.resize(2 * nibble_row_len(vector.len()), 0);
        self.padded.fill(0);
        self.padded[..self.codes.len()].copy_from_slice(&self.codes);
        self.sum = self.codes.iter().map(|&c| i32::from(c)).sum();
    }

    /// Dimensions.
    pub fn dim(&self) -> usize {
        self.codes.len()
    }
}

/// One vector hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VectorHit {
    /// The segment tag the caller gave the scan.
    pub segment: u32,
    /// The document's ordinal in that segment.
    pub ordinal: u32,
    /// Cosine similarity with the query (int8 approximation).
    pub similarity: f32,
}

/// The caller's fixed-capacity top-k buffer for vector scans.
#[derive(Clone, Debug)]
pub struct VectorHits {
    top: Heap<VectorHit>,
    /// The capacity asked at creation: `k` never exceeds it (no allocation).
    max_k: usize,
    /// Inverted lists probed per file (`None`: [`default_probes`]).
    probes: Option<usize>,
    /// Scratch: (similarity, list) of a file's centroids.
    lists: Vec<(f32, u32)>,
    /// Scratch: the 4-bit pass's best rows of one file, for the int8 pass.
    candidates: Heap<Candidate>,
}

impl VectorHits {
    /// A buffer for the best `k`.
    pub fn with_capacity(k: usize) -> VectorHits {
        VectorHits {
            top: Heap::with_capacity(k),
            max_k: k,
            probes: None,
            lists: Vec::with_capacity(semantic_index::vectors::IVF_MAX_LISTS),
            candidates: Heap::with_capacity(rerank_depth(k)),
        }
    }

    /// Inverted lists probed per vector file ([`default_probes`] unless set); `usize::MAX`
    /// scans every vector (exact).
    pub fn set_probes(&mut self, probes: usize) {
        self.probes = Some(probes);
    }

    /// Keeps the best `k` from now on (at most the capacity given at creation) and empties
    /// the buffer.
    pub(crate) fn set_limit(&mut self, k: usize) {
        self.top.k = k.min(self.max_k);
        self.clear();
    }

    /// Empties the buffer (keeps its capacity).
    pub fn clear(&mut self) {
        self.top.clear();
    }

    /// The similarity a hit must beat once the buffer is full.
    fn floor(&self) -> f32 {
        self.top.floor
    }

    /// How many hits the buffer keeps.
    fn k(&self) -> usize {
        self.top.k
    }

    /// Offers a hit: O(log k).
    fn offer(&mut self, hit: VectorHit) {
        self.top.offer(hit);
    }

    /// Sorts the hits best first (ties: segment, then ordinal ascending). No allocation. Ends a
    /// search: [`clear`](VectorHits::clear) before offering hits again.
    pub fn sort(&mut self) {
        self.top.items.sort_unstable_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.segment.cmp(&b.segment))
                .then(a.ordinal.cmp(&b.ordinal))
        });
    }

    /// The hits (best first after [`sort`](VectorHits::sort)).
    pub fn as_slice(&self) -> &[VectorHit] {
        &self.top.items
    }

    /// How many hits.
    pub fn len(&self) -> usize {
        self.top.items.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.top.items.is_empty()
    }
}

/// A row the 4-bit pass keeps for the int8 pass.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    approximate: f32,
    row: u32,
    ordinal: u32,
}

/// What a [`Heap`] orders by.
trait Scored: Copy {
    fn score(&self) -> f32;
}

impl Scored for Candidate {
    fn score(&self) -> f32 {
        self.approximate
    }
}

impl Scored for VectorHit {
    fn score(&self) -> f32 {
        self.similarity
    }
}

/// The best `k` items offered, in a min-heap on score (the worst kept at the root) sized once.
#[derive(Clone, Debug)]
struct Heap<T> {
    items: Vec<T>,
    k: usize,
    /// The score an item must beat once the heap is full.
    floor: f32,
}

impl<T: Scored> Heap<T> {
    fn with_capacity(k: usize) -> Heap<T> {
        Heap { items: Vec::with_capacity(k), k, floor: f32::NEG_INFINITY }
    }

    fn clear(&mut self) {
        self.items.clear();
        self.floor = f32::NEG_INFINITY;
    }

    /// Offers an item: O(log k).
    fn offer(&mut self, item: T) {
        if self.k == 0 {
            return;
        }
        let items = &mut self.items;
        if items.len() < self.k {
            items.push(item);
            // Sift up.
            let mut i = items.len() - 1;
            while i > 0 {
                let parent = (i - 1) / 2;
                if items[parent].score() <= items[i].score() {
                    break;
                }
                items.swap(parent, i);
                i = parent;
            }
        } else if item.score() > items[0].score() {
            items[0] = item;
            // Sift down.
            let n = items.len();
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut least = i;
                if l < n && items[l].score() < items[least].score() {
                    least = l;
                }
                if r < n && items[r].score() < items[least].score() {
                    least = r;
                }
                if least == i {
                    break;
                }
                items.swap(i, least);
                i = least;
            }
        }
        if items.len() == self.k {
            self.floor = items[0].score();
        }
    }
}

/// The vector files of one [`Snapshot`]'s live segments (`None` where a segment has none yet).
pub struct SnapshotVectors {
    generation: u64,
    files: Vec<Option<Vectors>>,
    /// Beside `files`: the segment file each entry belongs to (what [`SnapshotVectors::follow`]
    /// matches to keep a mapping).
    names: Vec<String>,
    problems: Vec<String>,
}

impl std::fmt::Debug for SnapshotVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotVectors")
            .field("generation", &self.generation)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl SnapshotVectors {
    /// Maps the vector file of each live segment of `snapshot` in `store` that has one. A file
    /// that fails its checks, or whose count differs from its segment's, is left out (its
    /// segment is searched lexically only) and named in [`problems`](SnapshotVectors::problems).
    pub fn open(store: &Path, snapshot: &Snapshot) -> SnapshotVectors {
        SnapshotVectors::open_keeping(store, snapshot, None)
    }

    /// The vector files of `snapshot`, a later generation than `self`'s: the mappings of
    /// segments that stay live (their vector files never change) are kept, so only a new
    /// segment's file is mapped (and faulted in) again; a segment that had no vector file is
    /// looked for anew (`mcs embed` may have written it since).
    pub fn follow(self, store: &Path, snapshot: &Snapshot) -> SnapshotVectors {
        SnapshotVectors::open_keeping(store, snapshot, Some(self))
    }

    fn open_keeping(
        store: &Path,
        snapshot: &Snapshot,
        previous: Option<SnapshotVectors>,
    ) -> SnapshotVectors {
        let mut kept: Vec<(String, Vectors)> = previous
            .map(|p| p.names.into_iter().zip(p.files).filter_map(|(n, f)| Some((n, f?))).collect())
            .unwrap_or_default();
        let mut files = Vec::with_capacity(snapshot.segment_count());
        let mut names = Vec::with_capacity(snapshot.segment_count());
        let mut problems = Vec::new();
        for (index, (file, _)) in snapshot.segment_files().enumerate() {
            names.push(file.to_owned());
            let count = snapshot.segment_doc_count(index);
            if let Some(at) = kept.iter().position(|(n, v)| n == file && Some(v.len()) == count) {
                files.push(Some(kept.swap_remove(at).1));
                continue;
            }
            let path = semantic_index::vectors::vectors_path(store, file);
            if !path.exists() {
                files.push(None);
                continue;
            }
            // SAFETY: store vector files are written once through atomic-write and renamed
            // into place, never modified or truncated afterwards (see semantic-index's
            // vectors module); the writer only unlinks them, which leaves a mapping valid.
            match unsafe { Vectors::map(&path) } {
                Ok(v) if Some(v.len()) == snapshot.segment_doc_count(index) => files.push(Some(v)),
                Ok(v) => {
                    problems.push(format!(
                        "{}: {} vectors for a segment of {:?} documents",
                        path.display(),
                        v.len(),
                        snapshot.segment_doc_count(index)
                    ));
                    files.push(None);
                }
                Err(e) => {
                    problems.push(e.to_string());
                    files.push(None);
                }
            }
        }
        SnapshotVectors { generation: snapshot.generation(), files, names, problems }
    }

    /// The generation these files belong to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Files that were left out, and why.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The vector file of live segment `index`, if it has one.
    pub fn segment(&self, index: usize) -> Option<&Vectors> {
        self.files.get(index).and_then(Option::as_ref)
    }

    /// Whether any live segment has vectors.
    pub fn any(&self) -> bool {
        self.files.iter().any(Option::is_some)
    }

    /// Live documents of `snapshot` whose segment has no vector file yet.
    pub fn pending(&self, snapshot: &Snapshot) -> u64 {
        (0..snapshot.segment_count())
            .filter(|&i| self.segment(i).is_none())
            .map(|i| snapshot.segment_live_count(i))
            .sum()
    }

    /// Dimensions of the vectors (of the first file), if any.
    pub fn dim(&self) -> Option<usize> {
        self.files.iter().flatten().map(Vectors::dim).next()
    }

    /// Searches every live segment's vectors (the nearest lists of files that have them, see
    /// [`VectorHits::set_probes`]); `hits` is cleared first, then sorted. No allocation.
    pub fn search(&self, snapshot: &Snapshot, query: &QueryVector, hits: &mut VectorHits) {
        hits.clear();
        for (index, file) in self.files.iter().enumerate() {
            if let (Some(v), Some(deleted)) = (file, snapshot.deleted(index)) {
                let probes = hits.probes;
                v.search(query, deleted, index as u32, probes, hits);
            }
        }
        hits.sort();
    }

    /// The similarity of `query` with a document of this snapshot, if its segment has vectors.
    pub fn similarity(&self, query: &QueryVector, segment: u32, ordinal: u32) -> Option<f32> {
        Some(self.segment(segment as usize)?.similarity(query, ordinal))
    }
}

/// Reciprocal rank fusion's constant (Cormack et al.; the measurement used 60).
pub const RRF_K: f64 = 60.0;

/// Reciprocal rank fusion of two rankings (0-based ranks): `1/(k + rank + 1)` per side that
/// ranked the document; a side that did not rank it adds nothing.
pub fn rrf(lexical_rank: Option<usize>, vector_rank: Option<usize>) -> (f64, f64) {
    let part = |r: Option<usize>| r.map_or(0.0, |r| 1.0 / (RRF_K + r as f64 + 1.0));
    (part(lexical_rank), part(vector_rank))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn scan_finds_the_nearest_and_skips_deleted() {
        let dim = 32;
        let docs: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                unit(&(0..dim).map(|d| ((i * 7 + d * 3) as f32 * 0.11).sin()).collect::<Vec<_>>())
            })
            .collect();
        let flat: Vec<f32> = docs.concat();
        let ids: Vec<[u8; 16]> = (0..50u8).map(|i| [i; 16]).collect();
        let bytes = semantic_index::vectors::encode(&ids, &flat, dim, "t").unwrap();
        let v = Vectors::from_vec(bytes).unwrap();
        assert_eq!(v.id(17), Some([17; 16]));
        let query = QueryVector::new(&docs[17]);
        let mut hits = VectorHits::with_capacity(5);
        v.scan(&query, &DeletedSet::empty(), 0, &mut hits);
        hits.sort();
        assert_eq!(hits.as_slice()[0].ordinal, 17);
        assert!((hits.as_slice()[0].similarity - 1.0).abs() < 0.02);
        // Brute force in f32 agrees on the top 5 set.
        let mut exact: Vec<(f32, u32)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.iter().zip(&docs[17]).map(|(a, b)| a * b).sum(), i as u32))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top: Vec<u32> = hits.as_slice().iter().map(|h| h.ordinal).collect();
        assert!(exact[..3].iter().all(|(_, o)| top.contains(o)), "{top:?} vs {exact:?}");
        let deleted = DeletedSet::from_sorted(&[17], 50);
        hits.clear();
        v.scan(&query, &deleted, 0, &mut hits);
        assert_eq!(hits.len(), 5);
        assert!(hits.as_slice().iter().all(|h| h.ordinal != 17));
    }

    #[test]
    fn dot_kernels_equal_the_plain_sum() {
        let mut state = 7u32;
        let mut byte = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 24) as u8 as i8).clamp(-127, 127)
        };
        for len in [0, 1, 31, 32, 33, 64, 100, 384, 385] {
            let q: Vec<i8> = (0..len).map(|_| byte()).collect();
            let d: Vec<u8> = (0..len).map(|_| byte() as u8).collect();
            let plain: i32 =
                q.iter().zip(&d).map(|(a, b)| i32::from(*a) * i32::from(*b as i8)).sum();
            assert_eq!(dot(&q, &d), plain, "length {len}");
            let (low, high) = (vec![-127i8; len], vec![127u8; len]);
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                let (fast, extreme) = unsafe { (dot_avx2(&q, &d), dot_avx2(&low, &high)) };
                assert_eq!(fast, plain, "length {len}");
                assert_eq!(extreme, -127 * 127 * len as i32, "length {len}");
            }
            assert_eq!(dot(&low, &high), -127 * 127 * len as i32);
        }
    }

    #[test]
    fn nibble_kernels_equal_the_unpacked_sum() {
        let mut state = 11u32;
        let mut byte = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        };
        for blocks in [1usize, 2, 6] {
            let q: Vec<i8> = (0..64 * blocks).map(|_| (byte() as i8).clamp(-127, 127)).collect();
            let r: Vec<u8> = (0..32 * blocks).map(|_| byte()).collect();
            let mut plain = 0i32;
            for d in 0..64 * blocks {
                let b = r[32 * (d / 64) + d % 32];
                let nibble = if d % 64 < 32 { b & 0x0F } else { b >> 4 };
                plain += i32::from(q[d]) * i32::from(nibble);
            }
            assert_eq!(dot_nibbles(&q, &r), plain, "{blocks} blocks");
            let (low, high) = (vec![-127i8; 64 * blocks], vec![0xFFu8; 32 * blocks]);
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                let (fast, extreme) =
                    unsafe { (dot_nibbles_avx2(&q, &r), dot_nibbles_avx2(&low, &high)) };
                assert_eq!(fast, plain, "{blocks} blocks");
                assert_eq!(extreme, -127 * 15 * 64 * blocks as i32);
            }
            assert_eq!(dot_nibbles(&low, &high), -127 * 15 * 64 * blocks as i32);
            assert_eq!(dot_nibbles(&q[1..], &r), 0, "lengths that differ give 0");
        }
    }

    /// A file of `count` vectors of `dim` dimensions around 64 directions, with lists.
    fn clustered(count: usize, dim: usize) -> (Vec<Vec<f32>>, Vec<u8>) {
        let docs: Vec<Vec<f32>> = (0..count)
            .map(|i| {
                let mut v: Vec<f32> =
                    (0..dim).map(|d| ((i * 131 + d * 17) as f32 * 0.0137).sin() * 0.4).collect();
                v[(i * 7) % dim] += 1.0;
                v[(i * 13 + 5) % dim] += 0.7;
                unit(&v)
            })
            .collect();
        let ids: Vec<[u8; 16]> = (0..count).map(|i| [(i % 251) as u8; 16]).collect();
        let bytes = semantic_index::vectors::encode(&ids, &docs.concat(), dim, "t").unwrap();
        (docs, bytes)
    }

    #[test]
    fn two_passes_keep_int8_similarities_and_find_the_int8_top() {
        let (dim, count) = (96, semantic_index::vectors::IVF_MIN_VECTORS + 500);
        let (docs, bytes) = clustered(count, dim);
        // The same vectors in version 2 (no 4-bit codes): searched in int8 alone.
        let header = decode_header(&bytes).unwrap();
        let v2_len = Layout::of_version(2, header.count, header.dim, header.lists).unwrap().len;
        let mut old = bytes[..v2_len].to_vec();
        old[8..12].copy_from_slice(&2u32.to_le_bytes());
        let sum = twox_hash::XxHash3_64::oneshot(&old[64..]);
        old[24..32].copy_from_slice(&sum.to_le_bytes());
        let (new, old) = (Vectors::from_vec(bytes).unwrap(), Vectors::from_vec(old).unwrap());
        assert!(new.nibbles && !old.nibbles && new.lists() > 16);
        let deleted = DeletedSet::from_sorted(&[3], count as u32);
        let (mut two, mut one) = (VectorHits::with_capacity(10), VectorHits::with_capacity(10));
        let (mut found, mut total) = (0, 0);
        for q in (0..count).step_by(97) {
            let query = QueryVector::new(&docs[q]);
            for (v, hits) in [(&new, &mut two), (&old, &mut one)] {
                hits.clear();
                v.search(&query, &deleted, 0, Some(16), hits);
                hits.sort();
            }
            assert_eq!(two.len(), 10);
            for h in two.as_slice() {
                assert_ne!(h.ordinal, 3, "deleted");
                assert_eq!(h.similarity, new.similarity(&query, h.ordinal));
            }
            if q != 3 {
                // Itself, or a vector as near (the data repeats its directions).
                let own = new.similarity(&query, q as u32);
                assert!(two.as_slice()[0].similarity >= own, "query {q} finds itself");
            }
            total += one.len();
            found += one.as_slice().iter().filter(|h| two.as_slice().contains(h)).count();
        }
        assert!(found as f64 >= 0.97 * total as f64, "{found} of {total}");
    }

    #[test]
    fn rrf_adds_each_side() {
        let (l, v) = rrf(Some(0), None);
        assert!((l - 1.0 / 61.0).abs() < 1e-12);
        assert_eq!(v, 0.0);
    }
}
