//! Serialization: the archived payload behind its header, with the checksum.

use crate::format::{self, Header, SegmentData, HEADER_LEN, VERSION};

use super::{BuildError, SegmentBytes};

/// The complete segment file for `data`: header and payload.
pub(super) fn segment_bytes(
    data: &SegmentData,
    generation: u64,
    doc_count: u64,
) -> Result<SegmentBytes, BuildError> {
    // Serialize behind room for the header, in a buffer sized up front: no copy of the
    // payload and no growth. The header is a multiple of the payload alignment, so the
    // archive's padding (computed from positions in this buffer) is the same as alone.
    let mut buf = rkyv::util::AlignedVec::<{ format::PAYLOAD_ALIGN }>::with_capacity(
        HEADER_LEN + payload_estimate(data),
    );
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    let mut buf = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(data, buf)
        .map_err(|e| BuildError::Serialize(e.to_string()))?;
    let payload_len = buf.len() - HEADER_LEN;
    let mut header = Header {
        version: VERSION,
        generation,
        doc_count,
        payload_len: payload_len as u64,
        checksum: 0,
    };
    header.checksum =
        format::checksum(&header.encode()[..format::CHECKSUMMED_HEADER_LEN], &buf[HEADER_LEN..]);
    buf[..HEADER_LEN].copy_from_slice(&header.encode());
    Ok(SegmentBytes(buf))
}

/// An upper bound on the archived size of `data`: its arrays plus alignment padding.
pub(super) fn payload_estimate(data: &SegmentData) -> usize {
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
