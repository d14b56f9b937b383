//! The access log's format: which memories apprentices used, one checksummed frame per
//! response, appended by the store's writer to `<store>/access/events.log` (0600). Shared so
//! that readers (the witness) can read what the writer (`memory-store`) appends. Little-endian:
//!
//! ```text
//! magic "MCAE" u32 · payload length u32 · xxh3-64 of the payload u64 · payload:
//!   time (µs since the epoch) i64 · kind length u8 · kind (UTF-8) · count u32 · ids 16 × count
//! ```
//!
//! [`decode_frames`] skips a damaged or torn frame (it resynchronises on the next magic whose
//! checksum holds) and counts the bytes it skipped; it never panics, whatever the bytes.

use std::path::{Path, PathBuf};

/// The directory of the access log, inside the store.
pub const ACCESS_DIR: &str = "access";
/// The access log's file name.
pub const ACCESS_LOG: &str = "events.log";
/// The first four bytes of a frame.
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"MCAE");
/// A frame's header: magic, length, checksum.
pub const FRAME_HEADER: usize = 16;
/// The most ids one frame holds (a response lists far fewer).
pub const MAX_IDS: usize = 4096;

/// One response's use of memories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessFrame {
    /// When it was recorded, in microseconds since the Unix epoch.
    pub time_micros: i64,
    /// The kind of apprentice that used them (at most 255 bytes).
    pub kind: String,
    /// The memories used (UUID bytes), in the response's order.
    pub ids: Vec<[u8; 16]>,
}

/// `<store>/access/events.log`.
pub fn access_log_path(store: &Path) -> PathBuf {
    store.join(ACCESS_DIR).join(ACCESS_LOG)
}

/// Encodes one frame (the kind cut to 255 bytes on a character boundary, at most
/// [`MAX_IDS`] ids).
pub fn encode_frame(frame: &AccessFrame) -> Vec<u8> {
    let mut end = frame.kind.len().min(255);
    while !frame.kind.is_char_boundary(end) {
        end -= 1;
    }
    let kind = &frame.kind.as_bytes()[..end];
    let ids = &frame.ids[..frame.ids.len().min(MAX_IDS)];
    let mut payload = Vec::with_capacity(8 + 1 + kind.len() + 4 + 16 * ids.len());
    payload.extend_from_slice(&frame.time_micros.to_le_bytes());
    payload.push(kind.len() as u8);
    payload.extend_from_slice(kind);
    payload.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        payload.extend_from_slice(id);
    }
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&twox_hash::XxHash3_64::oneshot(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

fn decode_payload(p: &[u8]) -> Option<AccessFrame> {
    let time_micros = i64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let kind_len = usize::from(*p.get(8)?);
    let kind = std::str::from_utf8(p.get(9..9 + kind_len)?).ok()?.to_owned();
    let at = 9 + kind_len;
    let n = u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?) as usize;
    let ids_bytes = p.get(at + 4..)?;
    if n > MAX_IDS || ids_bytes.len() != 16 * n {
        return None;
    }
    let ids = ids_bytes.chunks_exact(16).filter_map(|c| c.try_into().ok()).collect();
    Some(AccessFrame { time_micros, kind, ids })
}

/// The frame at the start of `bytes` and its length, if it is whole and intact.
fn frame_at(bytes: &[u8]) -> Option<(AccessFrame, usize)> {
    let h = bytes.get(..FRAME_HEADER)?;
    if u32::from_le_bytes(h[..4].try_into().ok()?) != FRAME_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(h[4..8].try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let payload = bytes.get(FRAME_HEADER..FRAME_HEADER.checked_add(len)?)?;
    if twox_hash::XxHash3_64::oneshot(payload) != sum {
        return None;
    }
    Some((decode_payload(payload)?, FRAME_HEADER + len))
}

/// Decodes every intact frame of `bytes`, calling `visit` on each in order; returns how many
/// bytes were skipped as damaged or torn (a tail read from the middle of a log starts with
/// such bytes too).
pub fn decode_frames(bytes: &[u8], mut visit: impl FnMut(AccessFrame)) -> u64 {
    decode_frames_ending(bytes, |frame, _| visit(frame))
}

/// [`decode_frames`], also telling `visit` where each frame ends (the offset in `bytes` just
/// past it): a reader that follows the log resumes after the last intact frame, so a frame
/// being appended is read whole the next time.
pub fn decode_frames_ending(bytes: &[u8], mut visit: impl FnMut(AccessFrame, usize)) -> u64 {
    let mut skipped = 0u64;
    let mut at = 0usize;
    while at < bytes.len() {
        match frame_at(&bytes[at..]) {
            Some((frame, len)) => {
                at += len;
                visit(frame, at);
            }
            None => {
                skipped += 1;
                at += 1;
            }
        }
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t: i64, ids: &[u8]) -> AccessFrame {
        AccessFrame {
            time_micros: t,
            kind: "navigator".into(),
            ids: ids.iter().map(|&n| [n; 16]).collect(),
        }
    }

    fn decode(bytes: &[u8]) -> (Vec<AccessFrame>, u64) {
        let mut v = Vec::new();
        let skipped = decode_frames(bytes, |f| v.push(f));
        (v, skipped)
    }

    #[test]
    fn frames_round_trip_and_damage_costs_only_its_frame() {
        let frames = [frame(1, &[1, 2]), frame(2, &[3]), frame(3, &[])];
        let mut bytes: Vec<u8> = frames.iter().flat_map(encode_frame).collect();
        assert_eq!(decode(&bytes), (frames.to_vec(), 0));
        let first = encode_frame(&frames[0]).len();
        bytes[first + FRAME_HEADER + 2] ^= 1;
        let (got, skipped) = decode(&bytes);
        assert_eq!(got, [frames[0].clone(), frames[2].clone()]);
        assert_eq!(skipped, encode_frame(&frames[1]).len() as u64);
        let torn = encode_frame(&frames[1]).len() + encode_frame(&frames[2]).len() - 3;
        let (got, skipped) = decode(&bytes[..bytes.len() - 3]);
        assert_eq!((got.len(), skipped), (1, torn as u64));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut n = 0;
            let skipped = decode_frames(&bytes, |_| n += 1);
            proptest::prop_assert!(skipped as usize <= bytes.len());
        }
    }
}
