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
/// The version this build writes and reads.
pub const VECTORS_VERSION: u32 = 1;
/// The directory of vector files in a store.
pub const VECTORS_DIR: &str = "vectors";
/// Length of the header; the scales start here, then the ids ([`ids_offset`]), then the codes
/// ([`codes_offset`]).
pub const VECTORS_HEADER_LEN: usize = 64;
/// Length of the model tag field in the header.
pub const MODEL_TAG_LEN: usize = 24;

/// A vector file's header, as decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorsHeader {
    /// Dimensions per vector.
    pub dim: u32,
    /// Vectors (the segment's documents, in ordinal order).
    pub count: u32,
    /// Which model made them (ASCII, NUL padded in the file).
    pub model: String,
    /// xxh3-64 of everything after the header.
    pub checksum: u64,
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

/// Where the ids start for `count` vectors: after the header and the scales.
pub fn ids_offset(count: u32) -> usize {
    VECTORS_HEADER_LEN + 4 * count as usize
}

/// Where the codes start for `count` vectors: after the header, the scales and the ids,
/// 64-aligned.
pub fn codes_offset(count: u32) -> usize {
    (ids_offset(count) + 16 * count as usize).next_multiple_of(64)
}

/// Total file length for `count` vectors of `dim` dimensions.
pub fn file_len(count: u32, dim: u32) -> usize {
    codes_offset(count) + count as usize * dim as usize
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

/// The bytes of a vector file holding `vectors` (`count × dim` floats, in ordinal order) of the
/// memories `ids` (`count` of them, same order).
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
    let count = vectors.len() / dim;
    let count32 =
        u32::try_from(count).map_err(|_| VectorsError::Shape { len: vectors.len(), dim })?;
    let dim32 = u32::try_from(dim).map_err(|_| VectorsError::Shape { len: vectors.len(), dim })?;
    let mut out = vec![0u8; file_len(count32, dim32)];
    let codes_at = codes_offset(count32);
    let ids_at = ids_offset(count32);
    for (i, id) in ids.iter().enumerate() {
        out[ids_at + 16 * i..ids_at + 16 * (i + 1)].copy_from_slice(id);
    }
    for (i, v) in vectors.chunks_exact(dim).enumerate() {
        if v.iter().any(|x| !x.is_finite()) {
            return Err(VectorsError::NotFinite { index: i });
        }
        let mut codes = vec![0i8; dim];
        let scale = quantize(v, &mut codes);
        out[VECTORS_HEADER_LEN + 4 * i..VECTORS_HEADER_LEN + 4 * i + 4]
            .copy_from_slice(&scale.to_le_bytes());
        for (b, c) in out[codes_at + i * dim..codes_at + (i + 1) * dim].iter_mut().zip(&codes) {
            *b = *c as u8;
        }
    }
    let checksum = twox_hash::XxHash3_64::oneshot(&out[VECTORS_HEADER_LEN..]);
    out[..8].copy_from_slice(&VECTORS_MAGIC);
    out[8..12].copy_from_slice(&VECTORS_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&dim32.to_le_bytes());
    out[16..20].copy_from_slice(&count32.to_le_bytes());
    // 20..24 reserved, zero.
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
    #[error("vector format version {0}, this build reads {VECTORS_VERSION}")]
    Version(u32),
    /// The bytes after the header do not match the checksum.
    #[error("checksum mismatch")]
    Checksum,
    /// The model tag is not ASCII.
    #[error("model tag is not ASCII")]
    ModelTag,
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
    if version != VECTORS_VERSION {
        return Err(VectorsCheck::Version(version));
    }
    let (dim, count) = (u32_at(12), u32_at(16));
    let expected = (count as u64)
        .checked_mul(dim as u64)
        .and_then(|c| c.checked_add(codes_offset(count) as u64))
        .unwrap_or(u64::MAX);
    if bytes.len() as u64 != expected {
        return Err(VectorsCheck::Length { len: bytes.len(), expected: expected as usize });
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
    Ok(VectorsHeader { dim, count, model, checksum })
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
        assert_eq!(&bytes[ids_offset(3) + 16..ids_offset(3) + 32], &[2u8; 16]);
        let header = decode_header(&bytes).unwrap();
        assert_eq!((header.dim, header.count, header.model.as_str()), (8, 3, "test-model"));
        let codes_at = codes_offset(3);
        for i in 0..3 {
            let at = VECTORS_HEADER_LEN + 4 * i;
            let scale = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            for d in 0..dim {
                let code = bytes[codes_at + i * dim + d] as i8;
                let x = vectors[i * dim + d];
                assert!((f32::from(code) * scale - x).abs() <= scale / 2.0 + 1e-6);
            }
        }
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
