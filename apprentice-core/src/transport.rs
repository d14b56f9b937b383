//! Frames: a little-endian `u32` length, then that many bytes of msgpack ([`Message`] with
//! named fields). The length is checked against [`MAX_FRAME`] before anything is allocated,
//! and decoding nests at most [`MAX_DEPTH`] levels deep.

use std::io::{self, Read, Write};

use crate::protocol::Message;

/// The largest frame accepted, in bytes.
pub const MAX_FRAME: u32 = 8 * 1024 * 1024;
/// The deepest msgpack nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The peer went silent in the middle of a frame, or the read timed out.
    #[error("timed out reading a frame")]
    Timeout,
    /// The length prefix exceeds the cap; nothing was allocated.
    #[error("frame of {len} bytes exceeds the {MAX_FRAME}-byte cap")]
    TooLarge {
        /// The announced length.
        len: u32,
    },
    /// The bytes are not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Reading or writing the socket failed.
    #[error("socket i/o")]
    Io(#[source] io::Error),
}

pub(crate) fn read_error(e: io::Error) -> FrameError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FrameError::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => FrameError::Closed,
        _ => FrameError::Io(e),
    }
}

/// Encodes `message` as one frame.
pub fn encode(message: &Message) -> Result<Vec<u8>, FrameError> {
    let body =
        rmp_serde::to_vec_named(message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l <= MAX_FRAME)
        .ok_or(FrameError::TooLarge { len: u32::MAX })?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Writes one frame.
pub fn write_frame<W: Write>(mut w: W, message: &Message) -> Result<(), FrameError> {
    let bytes = encode(message)?;
    w.write_all(&bytes).map_err(read_error)?;
    w.flush().map_err(read_error)
}

/// Decodes one frame body (without the length prefix).
pub fn decode(body: &[u8]) -> Result<Message, FrameError> {
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(body));
    de.set_max_depth(MAX_DEPTH);
    let message = serde::Deserialize::deserialize(&mut de)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if de.position() as usize != body.len() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes",
            body.len() - de.position() as usize
        )));
    }
    Ok(message)
}

/// Reads one frame: the length (refused above the cap before any allocation), then the body.
pub fn read_frame<R: Read>(mut r: R) -> Result<Message, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => {
                return Err(FrameError::Malformed(
                    "connection closed inside a length prefix".into(),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e)),
        }
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge { len });
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            FrameError::Malformed("connection closed inside a frame".into())
        }
        _ => read_error(e),
    })?;
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Invitation, Response};

    #[test]
    fn refuses_oversized_length_before_allocating() {
        let mut bytes = (MAX_FRAME + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        assert!(
            matches!(read_frame(&bytes[..]), Err(FrameError::TooLarge { len }) if len == MAX_FRAME + 1)
        );
        let huge = u32::MAX.to_le_bytes();
        assert!(matches!(read_frame(&huge[..]), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors() {
        let frame = encode(&Message::Ping { nonce: 7 }).unwrap();
        for cut in 1..frame.len() {
            assert!(read_frame(&frame[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(read_frame(&[][..]), Err(FrameError::Closed)));
        let garbage = [5u8, 0, 0, 0, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1];
        assert!(matches!(read_frame(&garbage[..]), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn deep_nesting_is_refused() {
        // 200 nested one-element arrays: would recurse 200 levels.
        let mut body = vec![0x91u8; 200];
        body.push(0xc0);
        assert!(matches!(decode(&body), Err(FrameError::Malformed(_))));
    }

    proptest::proptest! {
        #[test]
        fn messages_round_trip(task in ".{0,40}", kws in proptest::collection::vec("[a-z]{3,8}", 0..6), id in proptest::num::u64::ANY, conf in 0.0f64..1.0) {
            let inv = Message::Invite { id, invitation: Invitation { task: task.clone(), specialization: "s".into(), keywords: kws, context: crate::protocol::Context { sacred_only: id % 2 == 0, limit: Some(5), domain: Some("d".into()), since_micros: Some(-3), until_micros: None, ranking: Some("r".into()), entries: [("team".to_owned(), "c".to_owned())].into() }, embedding: if id % 3 == 0 { vec![0.25, -1.0] } else { Vec::new() } } };
            let resp = Message::Respond { id, response: Response { accepted: true, reason: task, confidence: conf, insights: vec!["i".into()], memories: vec![] } };
            for m in [inv, resp, Message::Shutdown, Message::Ping { nonce: id }] {
                let frame = encode(&m).unwrap();
                proptest::prop_assert_eq!(read_frame(&frame[..]).unwrap(), m);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = read_frame(&bytes[..]);
            let _ = decode(&bytes);
        }
    }
}
