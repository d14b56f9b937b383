//! One frame of the records log: a fixed header with its own checksum, then a payload with
//! another. Damage to one frame is detected without trusting any other byte of the file, and a
//! scan finds the next frame after damage by its magic and header checksum.
//!
//! Header (56 bytes, little-endian): `magic "MCR\x01"`, kind u8, flags u8 (bit 0: the last
//! frame of its commit), 2 zero bytes, payload length u32, 4 zero bytes, sequence u64, id
//! `[u8; 16]`, payload XXH3-64 u64, header XXH3-64 (of the 48 bytes before it) u64.

pub(crate) const HEADER: usize = 56;
const MAGIC: [u8; 4] = *b"MCR\x01";
/// The largest payload a frame may claim (a memory's JSON); a damaged length never allocates more.
pub(crate) const MAX_PAYLOAD: u32 = 1 << 28;
/// Flag: the last frame of its commit.
pub(crate) const LAST: u8 = 1;
/// Flag: a frame a compaction or repair copied (its commit's other frames may be gone).
pub(crate) const COMPACTED: u8 = 2;

/// What a frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The first frame of a log file: `seq` is the last commit compacted into the file, the
    /// payload the number of put frames that follow as its compacted part (u64).
    Base = 1,
    /// A memory (payload: its JSON).
    Put = 2,
    /// A tombstone (no payload).
    Forget = 3,
}

/// A decoded header whose own checksum holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    /// The last frame of its commit.
    pub(crate) last: bool,
    /// Copied by a compaction: outside the commit sequence.
    pub(crate) compacted: bool,
    pub(crate) len: u32,
    pub(crate) seq: u64,
    pub(crate) id: [u8; 16],
    pub(crate) payload_sum: u64,
}

impl Header {
    /// Header and payload bytes.
    pub(crate) fn frame_len(&self) -> u64 {
        HEADER as u64 + u64::from(self.len)
    }
}

fn sum(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

/// Appends one frame to `out`.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    kind: Kind,
    flags: u8,
    seq: u64,
    id: [u8; 16],
    payload: &[u8],
) {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC);
    h[4] = kind as u8;
    h[5] = flags;
    // Payloads are memories' JSON, far below 4 GiB; the writer refuses larger ones.
    h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..40].copy_from_slice(&id);
    h[40..48].copy_from_slice(&sum(payload).to_le_bytes());
    let hs = sum(&h[..48]);
    h[48..56].copy_from_slice(&hs.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Decodes a header if its magic and checksum hold.
pub(crate) fn decode(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER || b[0..4] != MAGIC || u64_at(b, 48) != sum(&b[..48]) {
        return None;
    }
    let kind = match b[4] {
        1 => Kind::Base,
        2 => Kind::Put,
        3 => Kind::Forget,
        _ => return None,
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(&b[8..12]);
    let len = u32::from_le_bytes(len);
    if len > MAX_PAYLOAD {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[24..40]);
    Some(Header {
        kind,
        last: b[5] & LAST != 0,
        compacted: b[5] & COMPACTED != 0,
        len,
        seq: u64_at(b, 16),
        id,
        payload_sum: u64_at(b, 40),
    })
}

/// Whether `payload` is the one `header` was written with.
pub(crate) fn payload_ok(header: &Header, payload: &[u8]) -> bool {
    payload.len() == header.len as usize && sum(payload) == header.payload_sum
}

/// Where the next header with the magic may start in `b` after position 0.
pub(crate) fn next_magic(b: &[u8]) -> Option<usize> {
    b.windows(4).skip(1).position(|w| w == MAGIC).map(|p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_flipped_bit_is_caught() {
        let mut out = Vec::new();
        encode(&mut out, Kind::Put, LAST, 7, [3; 16], b"{\"a\":1}");
        let h = decode(&out).unwrap();
        assert_eq!((h.kind, h.last, h.seq, h.id, h.len), (Kind::Put, true, 7, [3; 16], 7));
        assert!(payload_ok(&h, &out[HEADER..]));
        for bit in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let caught = match decode(&bad) {
                None => true,
                Some(h) => !payload_ok(&h, &bad[HEADER..]),
            };
            assert!(caught, "bit {bit} flipped unnoticed");
        }
    }
}
