//! The vector file: one per segment, the memories' embeddings quantized to int8, beside the
//! segment it belongs to (`vectors/<segment stem>.vec`). Format described in `FORMAT.md`
//! ("Vector files").
//!
//! Vectors are derived data like segments: written once through atomic-write, never changed,
//! rebuilt from the records when missing. A segment without its vector file is searched
//! lexically only; the writer embeds it later and publishes a new generation.

use std::path::{Path, PathBuf};

/// First bytes of a vector file.
pub const VECTORS_MAGIC: [u8; 8] = *b"MCVECT\0\0";
/// The version this build writes.
pub const VECTORS_VERSION: u32 = 3;
/// The oldest version this build reads (version 2 has no 4-bit codes: its files are searched
/// in int8 alone, and the writer reuses their vectors when it writes them again).
pub const VECTORS_OLDEST_VERSION: u32 = 2;
/// The directory of vector files in a store.
pub const VECTORS_DIR: &str = "vectors";
/// Length of the header; the sections follow ([`Layout`]).
pub const VECTORS_HEADER_LEN: usize = 64;
/// Length of the model tag field in the header.
pub const MODEL_TAG_LEN: usize = 24;
/// Files of at least this many vectors get inverted lists (an approximate index); smaller ones
/// are scanned whole.
pub const IVF_MIN_VECTORS: usize = 4096;
/// Most lists a file gets.
pub const IVF_MAX_LISTS: usize = 1024;
/// Rounds of k-means when the lists are built.
const KMEANS_ROUNDS: usize = 8;
/// At most this many vectors per list train the centroids (a sample of the file's).
const KMEANS_SAMPLE_PER_LIST: usize = 48;

/// A vector file's header, as decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorsHeader {
    /// Dimensions per vector.
    pub dim: u32,
    /// Vectors (the segment's documents).
    pub count: u32,
    /// Inverted lists (0: none, the file is scanned whole).
    pub lists: u32,
    /// Which model made them (ASCII, NUL padded in the file).
    pub model: String,
    /// xxh3-64 of everything after the header.
    pub checksum: u64,
    /// The format version (from [`VECTORS_OLDEST_VERSION`] to [`VECTORS_VERSION`]).
    pub version: u32,
}

/// Where each section of a vector file starts (bytes from the file's start), and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `scales`: f32 per row.
    pub scales: usize,
    /// `ids`: 16 bytes per ordinal.
    pub ids: usize,
    /// `rows`: u32 per ordinal, the row holding its vector.
    pub rows: usize,
    /// `ordinals`: u32 per row, the ordinal whose vector it holds.
    pub ordinals: usize,
    /// `list_starts`: u32 per list plus one, each list's first row (ascending, the last is
    /// `count`).
    pub list_starts: usize,
    /// `centroids`: `lists × dim` f32, 64-aligned.
    pub centroids: usize,
    /// `codes`: `count × dim` i8 in row order, 64-aligned.
    pub codes: usize,
    /// `nibbles`: `count × nibble_row_len(dim)` bytes of 4-bit codes in row order, 64-aligned
    /// (version 3; empty, at `len`, in version 2).
    pub nibbles: usize,
    /// The file's length.
    pub len: usize,
}

/// Bytes of one row's 4-bit codes: 32 per 64 dimensions (the last 64 padded).
pub fn nibble_row_len(dim: usize) -> usize {
    dim.div_ceil(64) * 32
}

impl Layout {
    /// The layout of a file of this build's version holding `count` vectors of `dim`
    /// dimensions in `lists` lists (`None` when the length overflows).
    pub fn of(count: u32, dim: u32, lists: u32) -> Option<Layout> {
        Layout::of_version(VECTORS_VERSION, count, dim, lists)
    }

    /// [`Layout::of`] for a file of `version` (2 has no `nibbles`).
    pub fn of_version(version: u32, count: u32, dim: u32, lists: u32) -> Option<Layout> {
        let (n, d, l) = (count as usize, dim as usize, lists as usize);
        let scales = VECTORS_HEADER_LEN;
        let ids = scales.checked_add(n.checked_mul(4)?)?;
        let rows = ids.checked_add(n.checked_mul(16)?)?;
        let ordinals = rows.checked_add(n.checked_mul(4)?)?;
        let list_starts = ordinals.checked_add(n.checked_mul(4)?)?;
        let centroids = list_starts
            .checked_add(l.checked_add(1)?.checked_mul(4)?)?
            .checked_next_multiple_of(64)?;
        let codes = centroids
            .checked_add(l.checked_mul(d)?.checked_mul(4)?)?
            .checked_next_multiple_of(64)?;
        let codes_end = codes.checked_add(n.checked_mul(d)?)?;
        if version < 3 {
            let len = codes_end;
            return Some(Layout {
                scales,
                ids,
                rows,
                ordinals,
                list_starts,
                centroids,
                codes,
                nibbles: len,
                len,
            });
        }
        let nibbles = codes_end.checked_next_multiple_of(64)?;
        let len = nibbles.checked_add(n.checked_mul(nibble_row_len(d))?)?;
        Some(Layout { scales, ids, rows, ordinals, list_starts, centroids, codes, nibbles, len })
    }
}

/// What is wrong with vectors handed to [`encode`].
#[derive(Debug, thiserror::Error)]
pub enum VectorsError {
    /// The floats are not `count × dim` long.
    #[error("{len} floats are not a whole number of {dim}-dimension vectors")]
    Shape {
        /// Floats given.
        len: usize,
        /// Dimensions asked.
        dim: usize,
    },
    /// A value is NaN or infinite.
    #[error("vector {index} holds a value that is not finite")]
    NotFinite {
        /// Which vector.
        index: usize,
    },
    /// The model tag does not fit its field or is not ASCII.
    #[error("model tag {0:?} is not ASCII of at most 24 bytes")]
    ModelTag(String),
}

/// The vector file of the segment file `segment_file` (`<stem>.seg`) in `store`.
pub fn vectors_path(store: &Path, segment_file: &str) -> PathBuf {
    let stem = segment_file.strip_suffix(".seg").unwrap_or(segment_file);
    store.join(VECTORS_DIR).join(format!("{stem}.vec"))
}

/// Quantizes one vector: `scale = max |x| / 127`, `code = round(x / scale)`, so that
/// `x ≈ scale · code` within `scale / 2` per dimension.
pub fn quantize(vector: &[f32], codes: &mut [i8]) -> f32 {
    let max = vector.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        codes.fill(0);
        return 0.0;
    }
    let scale = max / 127.0;
    for (c, x) in codes.iter_mut().zip(vector) {
        *c = (x / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// The largest 4-bit code magnitude: codes run from -7 to 7, stored plus 8 (1 to 15; 8 is 0).
pub const NIBBLE_MAX: i32 = 7;

/// The 4-bit codes of one vector whose int8 scale is `scale` ([`quantize`]) into `out`
/// ([`nibble_row_len`] bytes): step `scale · 127 / 7`, `code = round(x / step)` within ±7,
/// stored as `code + 8`. Byte `32b + j` holds dimension `64b + j` in its low half and
/// `64b + 32 + j` in its high half (so 32 bytes unpack into two runs of 32 dimensions); the
/// padding past `dim` holds 8 (zero).
pub fn pack_nibbles(vector: &[f32], scale: f32, out: &mut [u8]) {
    out.fill(0x88);
    if scale == 0.0 {
        return;
    }
    let step = scale * 127.0 / NIBBLE_MAX as f32;
    for (d, x) in vector.iter().enumerate() {
        let code = (x / step).round().clamp(-NIBBLE_MAX as f32, NIBBLE_MAX as f32) as i32 + 8;
        let (block, within) = (d / 64, d % 64);
        let Some(byte) = out.get_mut(32 * block + within % 32) else { return };
        *byte = if within < 32 {
            (*byte & 0xF0) | code as u8
        } else {
            (*byte & 0x0F) | ((code as u8) << 4)
        };
    }
}

/// How many lists a file of `count` vectors gets: none under [`IVF_MIN_VECTORS`], else about
/// `2√count` (632 at 100k), at most [`IVF_MAX_LISTS`]. Smaller lists follow the data's clusters
/// more closely: at 100k (benches/NOTES.md, issue 18) 632 lists gave recall@10 0.982 scanning
/// 1.9 % of the rows, where 316 lists gave 0.886 scanning 2.5 %.
pub fn lists_for(count: usize) -> usize {
    if count < IVF_MIN_VECTORS {
        return 0;
    }
    ((2.0 * (count as f64).sqrt()).round() as usize).clamp(1, IVF_MAX_LISTS)
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn nearest(centroids: &[f32], dim: usize, v: &[f32]) -> usize {
    let mut best = (f32::NEG_INFINITY, 0);
    for (i, c) in centroids.chunks_exact(dim).enumerate() {
        let s = dot_f32(c, v);
        if s > best.0 {
            best = (s, i);
        }
    }
    best.1
}

fn normalize(v: &mut [f32]) {
    let n = dot_f32(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// The nearest centroid of each of `vectors` into `out`, on every core for large inputs.
fn assign(centroids: &[f32], dim: usize, vectors: &[&[f32]], out: &mut [u32]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = vectors.len().div_ceil(threads).max(1024);
    std::thread::scope(|scope| {
        for (vs, os) in vectors.chunks(per_thread).zip(out.chunks_mut(per_thread)) {
            scope.spawn(move || {
                for (v, o) in vs.iter().zip(os) {
                    *o = nearest(centroids, dim, v) as u32;
                }
            });
        }
    });
}

/// Spherical k-means (cosine) of `vectors` into `lists` centroids, deterministic: the first
/// centroids are evenly spaced vectors of the sample, the sample is every `step`-th vector.
pub fn kmeans(vectors: &[f32], dim: usize, lists: usize) -> Vec<f32> {
    let count = vectors.len() / dim;
    let sample_len = (lists * KMEANS_SAMPLE_PER_LIST).min(count).max(1);
    let step = (count / sample_len).max(1);
    let sample: Vec<&[f32]> = vectors.chunks_exact(dim).step_by(step).take(sample_len).collect();
    let mut centroids = Vec::with_capacity(lists * dim);
    for i in 0..lists {
        centroids.extend_from_slice(sample[i * sample.len() / lists]);
    }
    let mut sums = vec![0.0f32; lists * dim];
    let mut sizes = vec![0usize; lists];
    let mut nearest_of = vec![0u32; sample.len()];
    for _ in 0..KMEANS_ROUNDS {
        sums.fill(0.0);
        sizes.fill(0);
        assign(&centroids, dim, &sample, &mut nearest_of);
        for (v, &c) in sample.iter().zip(&nearest_of) {
            let c = c as usize;
            sizes[c] += 1;
            sums[c * dim..(c + 1) * dim].iter_mut().zip(*v).for_each(|(s, x)| *s += x);
        }
        for (c, size) in sizes.iter().enumerate() {
            // An empty list keeps its centroid.
            if *size > 0 {
                let new = &mut centroids[c * dim..(c + 1) * dim];
                new.copy_from_slice(&sums[c * dim..(c + 1) * dim]);
                normalize(new);
            }
        }
    }
    centroids
}

/// The bytes of a vector file holding `vectors` (`count × dim` floats, in ordinal order) of the
/// memories `ids` (`count` of them, same order). Files of [`IVF_MIN_VECTORS`] or more get
/// inverted lists ([`lists_for`], [`kmeans`]): rows grouped by nearest centroid.
pub fn encode(
    ids: &[[u8; 16]],
    vectors: &[f32],
    dim: usize,
    model: &str,
) -> Result<Vec<u8>, VectorsError> {
    if dim == 0 || !vectors.len().is_multiple_of(dim) || vectors.len() / dim != ids.len() {
        return Err(VectorsError::Shape { len: vectors.len(), dim });
    }
    if model.len() > MODEL_TAG_LEN || !model.is_ascii() {
        return Err(VectorsError::ModelTag(model.to_owned()));
    }
    if let Some(index) = vectors.chunks_exact(dim).position(|v| v.iter().any(|x| !x.is_finite())) {
        return Err(VectorsError::NotFinite { index });
    }
    let count = vectors.len() / dim;
    let shape = || VectorsError::Shape { len: vectors.len(), dim };
    let count32 = u32::try_from(count).map_err(|_| shape())?;
    let dim32 = u32::try_from(dim).map_err(|_| shape())?;
    let lists = lists_for(count);
    let layout = Layout::of(count32, dim32, lists as u32).ok_or_else(shape)?;
    let mut out = vec![0u8; layout.len];
    // Rows: ordinals grouped by list (stable within a list), or the ordinals themselves.
    let centroids = if lists > 0 { kmeans(vectors, dim, lists) } else { Vec::new() };
    let mut list_of = vec![0u32; count];
    if lists > 0 {
        let all: Vec<&[f32]> = vectors.chunks_exact(dim).collect();
        assign(&centroids, dim, &all, &mut list_of);
    }
    let mut order: Vec<(u32, u32)> =
        list_of.iter().enumerate().map(|(o, &list)| (list, o as u32)).collect();
    order.sort_unstable();
    let put_u32 =
        |out: &mut [u8], at: usize, v: u32| out[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let mut starts = vec![0u32; lists + 1];
    for &(list, _) in &order {
        if lists > 0 {
            starts[list as usize + 1] += 1;
        }
    }
    for l in 0..lists {
        starts[l + 1] += starts[l];
    }
    for (l, s) in starts.iter().enumerate() {
        put_u32(&mut out, layout.list_starts + 4 * l, *s);
    }
    for (i, c) in centroids.iter().enumerate() {
        out[layout.centroids + 4 * i..layout.centroids + 4 * i + 4]
            .copy_from_slice(&c.to_le_bytes());
    }
    let mut codes = vec![0i8; dim];
    let nibble_len = nibble_row_len(dim);
    for (row, &(_, ordinal)) in order.iter().enumerate() {
        let o = ordinal as usize;
        put_u32(&mut out, layout.rows + 4 * o, row as u32);
        put_u32(&mut out, layout.ordinals + 4 * row, ordinal);
        let scale = quantize(&vectors[o * dim..(o + 1) * dim], &mut codes);
        out[layout.scales + 4 * row..layout.scales + 4 * row + 4]
            .copy_from_slice(&scale.to_le_bytes());
        for (b, c) in
            out[layout.codes + row * dim..layout.codes + (row + 1) * dim].iter_mut().zip(&codes)
        {
            *b = *c as u8;
        }
        let at = layout.nibbles + row * nibble_len;
        pack_nibbles(&vectors[o * dim..(o + 1) * dim], scale, &mut out[at..at + nibble_len]);
    }
    for (i, id) in ids.iter().enumerate() {
        out[layout.ids + 16 * i..layout.ids + 16 * (i + 1)].copy_from_slice(id);
    }
    let checksum = twox_hash::XxHash3_64::oneshot(&out[VECTORS_HEADER_LEN..]);
    out[..8].copy_from_slice(&VECTORS_MAGIC);
    out[8..12].copy_from_slice(&VECTORS_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&dim32.to_le_bytes());
    out[16..20].copy_from_slice(&count32.to_le_bytes());
    out[20..24].copy_from_slice(&(lists as u32).to_le_bytes());
    out[24..32].copy_from_slice(&checksum.to_le_bytes());
    out[32..32 + model.len()].copy_from_slice(model.as_bytes());
    Ok(out)
}

/// Why a vector file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VectorsCheck {
    /// Shorter than a header, or not the length its header implies.
    #[error("length {len}, expected {expected}")]
    Length {
        /// Bytes found.
        len: usize,
        /// Bytes the header implies.
        expected: usize,
    },
    /// Not a vector file.
    #[error("not a vector file (bad magic)")]
    Magic,
    /// A version this build does not read.
    #[error(
        "vector format version {0}, this build reads {VECTORS_OLDEST_VERSION} to {VECTORS_VERSION}"
    )]
    Version(u32),
    /// The bytes after the header do not match the checksum.
    #[error("checksum mismatch")]
    Checksum,
    /// The model tag is not ASCII.
    #[error("model tag is not ASCII")]
    ModelTag,
    /// The inverted lists' bounds are not ascending within the rows.
    #[error("inverted list bounds out of order")]
    Lists,
}

/// Decodes and checks a vector file's header, length and checksum.
pub fn decode_header(bytes: &[u8]) -> Result<VectorsHeader, VectorsCheck> {
    if bytes.len() < VECTORS_HEADER_LEN {
        return Err(VectorsCheck::Length { len: bytes.len(), expected: VECTORS_HEADER_LEN });
    }
    if bytes[..8] != VECTORS_MAGIC {
        return Err(VectorsCheck::Magic);
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = u32_at(8);
    if !(VECTORS_OLDEST_VERSION..=VECTORS_VERSION).contains(&version) {
        return Err(VectorsCheck::Version(version));
    }
    let (dim, count, lists) = (u32_at(12), u32_at(16), u32_at(20));
    let expected = Layout::of_version(version, count, dim, lists).map_or(usize::MAX, |l| l.len);
    if bytes.len() != expected {
        return Err(VectorsCheck::Length { len: bytes.len(), expected });
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[24..32]);
    let checksum = u64::from_le_bytes(sum);
    if twox_hash::XxHash3_64::oneshot(&bytes[VECTORS_HEADER_LEN..]) != checksum {
        return Err(VectorsCheck::Checksum);
    }
    let tag = &bytes[32..32 + MODEL_TAG_LEN];
    let end = tag.iter().position(|&b| b == 0).unwrap_or(MODEL_TAG_LEN);
    let model = std::str::from_utf8(&tag[..end])
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or(VectorsCheck::ModelTag)?
        .to_owned();
    Ok(VectorsHeader { dim, count, lists, model, checksum, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips_within_half_a_step() {
        let dim = 8;
        let vectors: Vec<f32> = (0..3 * dim).map(|i| ((i as f32) * 0.37).sin()).collect();
        let ids = [[1u8; 16], [2; 16], [3; 16]];
        let bytes = encode(&ids, &vectors, dim, "test-model").unwrap();
        let layout = Layout::of(3, 8, 0).unwrap();
        assert_eq!(&bytes[layout.ids + 16..layout.ids + 32], &[2u8; 16]);
        let header = decode_header(&bytes).unwrap();
        assert_eq!((header.dim, header.count, header.lists), (8, 3, 0));
        assert_eq!(header.model, "test-model");
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        for i in 0..3 {
            let row = u32_at(layout.rows + 4 * i) as usize;
            assert_eq!(u32_at(layout.ordinals + 4 * row) as usize, i);
            let at = layout.scales + 4 * row;
            let scale = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            for d in 0..dim {
                let code = bytes[layout.codes + row * dim + d] as i8;
                let x = vectors[i * dim + d];
                assert!((f32::from(code) * scale - x).abs() <= scale / 2.0 + 1e-6);
            }
        }
    }

    #[test]
    fn large_files_group_rows_by_nearest_centroid() {
        let (dim, count) = (16, IVF_MIN_VECTORS + 100);
        // Four well separated directions with noise: each list holds vectors of one of them.
        let mut vectors = Vec::with_capacity(count * dim);
        for i in 0..count {
            let mut v: Vec<f32> =
                (0..dim).map(|d| ((i * 31 + d * 7) as f32 * 0.013).sin() * 0.05).collect();
            v[i % 4] += 1.0;
            normalize(&mut v);
            vectors.extend_from_slice(&v);
        }
        let ids: Vec<[u8; 16]> = (0..count).map(|i| [(i % 251) as u8; 16]).collect();
        let bytes = encode(&ids, &vectors, dim, "m").unwrap();
        let header = decode_header(&bytes).unwrap();
        assert_eq!(header.lists as usize, lists_for(count));
        let layout = Layout::of(count as u32, dim as u32, header.lists).unwrap();
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let starts: Vec<u32> =
            (0..=header.lists as usize).map(|l| u32_at(layout.list_starts + 4 * l)).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*starts.last().unwrap() as usize, count);
        // Every row's vector is nearest to its own list's centroid among all centroids.
        let centroid = |l: usize| -> Vec<f32> {
            (0..dim)
                .map(|d| {
                    let at = layout.centroids + 4 * (l * dim + d);
                    f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
                })
                .collect()
        };
        let all: Vec<f32> = (0..header.lists as usize).flat_map(centroid).collect();
        for l in 0..header.lists as usize {
            for row in starts[l]..starts[l + 1] {
                let o = u32_at(layout.ordinals + 4 * row as usize) as usize;
                assert_eq!(u32_at(layout.rows + 4 * o), row);
                assert_eq!(nearest(&all, dim, &vectors[o * dim..(o + 1) * dim]), l);
            }
        }
    }

    #[test]
    fn nibbles_hold_each_dimension_within_half_a_step() {
        for dim in [8usize, 64, 100, 384] {
            let vectors: Vec<f32> = (0..2 * dim).map(|i| ((i as f32) * 0.61).cos()).collect();
            let bytes = encode(&[[1; 16], [2; 16]], &vectors, dim, "m").unwrap();
            let layout = Layout::of(2, dim as u32, 0).unwrap();
            let width = nibble_row_len(dim);
            assert_eq!(layout.len, layout.nibbles + 2 * width);
            for row in 0..2 {
                let at = layout.scales + 4 * row;
                let scale = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                let step = scale * 127.0 / NIBBLE_MAX as f32;
                let nibbles = &bytes[layout.nibbles + row * width..][..width];
                for d in 0..64 * dim.div_ceil(64) {
                    let byte = nibbles[32 * (d / 64) + d % 32];
                    let code = i32::from(if d % 64 < 32 { byte & 0x0F } else { byte >> 4 }) - 8;
                    if d >= dim {
                        assert_eq!(code, 0, "padding, dimension {d}");
                        continue;
                    }
                    let x = vectors[row * dim + d];
                    assert!(code.abs() <= NIBBLE_MAX);
                    assert!((code as f32 * step - x).abs() <= step / 2.0 + 1e-6, "dimension {d}");
                }
            }
        }
    }

    #[test]
    fn version_2_files_are_read_and_other_versions_refused() {
        let vectors: Vec<f32> = (0..3 * 8).map(|i| ((i as f32) * 0.37).sin()).collect();
        let mut bytes = encode(&[[1; 16], [2; 16], [3; 16]], &vectors, 8, "m").unwrap();
        // The same file in version 2: no nibbles.
        let v2 = Layout::of_version(2, 3, 8, 0).unwrap();
        assert_eq!(v2.len.next_multiple_of(64), Layout::of(3, 8, 0).unwrap().nibbles);
        let mut old = bytes[..v2.len].to_vec();
        old[8..12].copy_from_slice(&2u32.to_le_bytes());
        let sum = twox_hash::XxHash3_64::oneshot(&old[VECTORS_HEADER_LEN..]);
        old[24..32].copy_from_slice(&sum.to_le_bytes());
        let header = decode_header(&old).unwrap();
        assert_eq!((header.version, header.count, header.dim), (2, 3, 8));
        assert_eq!(decode_header(&bytes).unwrap().version, VECTORS_VERSION);
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(decode_header(&old), Err(VectorsCheck::Version(1)));
        bytes[8..12].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(decode_header(&bytes), Err(VectorsCheck::Version(4)));
    }

    #[test]
    fn damage_is_refused() {
        let vectors = vec![0.5f32; 16];
        let mut bytes = encode(&[[0; 16]; 4], &vectors, 4, "m").unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(decode_header(&bytes), Err(VectorsCheck::Checksum));
        assert!(matches!(decode_header(&bytes[..40]), Err(VectorsCheck::Length { .. })));
        bytes[0] = b'X';
        assert_eq!(decode_header(&bytes), Err(VectorsCheck::Magic));
        let nan = encode(&[[0; 16]], &[f32::NAN; 4], 4, "m");
        assert!(matches!(nan, Err(VectorsError::NotFinite { index: 0 })));
        assert!(matches!(encode(&[[0; 16]], &[0.0; 5], 4, "m"), Err(VectorsError::Shape { .. })));
        assert!(matches!(encode(&[], &[0.0; 4], 4, "m"), Err(VectorsError::Shape { .. })));
    }
}
