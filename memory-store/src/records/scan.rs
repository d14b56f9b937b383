//! A forward scan over a region of a log file, frame by frame, with a bounded buffer: what is
//! intact, what is damaged (and where the next intact frame starts), what is cut off at the end.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::frame::{self, Header, HEADER};

const CHUNK: usize = 1 << 20;

/// What a scan finds, in file order.
#[derive(Debug)]
pub(crate) enum Item<'a> {
    /// An intact frame.
    Frame { offset: u64, header: Header, payload: &'a [u8] },
    /// Bytes that are not an intact frame; `header` when the header held but its payload did
    /// not (then the frame's extent is known).
    Damaged { offset: u64, len: u64, header: Option<Header> },
    /// The region ends inside a frame, or in bytes with no intact frame after them: a torn
    /// append (a crash before the commit returned) or a cut file.
    Incomplete { offset: u64, len: u64 },
}

struct Window {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    /// Where the region ends.
    end: u64,
}

impl Window {
    /// The bytes from `at` (at least `n` of them unless the region ends first). Only moves
    /// forward: `at` is never before an earlier call's.
    fn get(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let skip = (at - self.base) as usize;
        if skip >= self.buf.len() {
            self.buf.clear();
            self.base = at;
            self.file.seek(SeekFrom::Start(at))?;
        } else if skip > CHUNK {
            self.buf.drain(..skip);
            self.base = at;
        }
        let from = (at - self.base) as usize;
        let limit = (self.end - self.base) as usize;
        let want = (from + n).min(limit);
        while self.buf.len() < want {
            let old = self.buf.len();
            let grow = (want - old).max(CHUNK).min(limit - old);
            self.buf.resize(old + grow, 0);
            // Every read says where: clones of this file (`File::try_clone`: another scan, the
            // torn-tail probe) share one offset, and a seek through any of them moves it.
            self.file.seek(SeekFrom::Start(self.base + old as u64))?;
            let read = self.file.read(&mut self.buf[old..])?;
            self.buf.truncate(old + read);
            if read == 0 {
                // The file is shorter than the caller thought: the region ends here.
                self.end = self.base + old as u64;
                break;
            }
        }
        let stop = (from + n).min(self.buf.len());
        Ok(&self.buf[from.min(stop)..stop])
    }
}

/// Calls `visit` for every item of `[from, to)` of `file`; stops early when it returns false.
pub(crate) fn scan(
    mut file: File,
    from: u64,
    to: u64,
    mut visit: impl FnMut(Item<'_>) -> bool,
) -> io::Result<()> {
    file.seek(SeekFrom::Start(from))?;
    let mut w = Window { file, buf: Vec::new(), base: from, end: to };
    let mut at = from;
    while at < w.end {
        let head = w.get(at, HEADER)?;
        let header = if head.len() == HEADER { frame::decode(head) } else { None };
        if let Some(h) = header {
            let whole = w.get(at, h.frame_len() as usize)?;
            if (whole.len() as u64) < h.frame_len() {
                let len = w.end - at;
                visit(Item::Incomplete { offset: at, len });
                return Ok(());
            }
            let payload = &whole[HEADER..];
            let item = if frame::payload_ok(&h, payload) {
                Item::Frame { offset: at, header: h, payload }
            } else {
                Item::Damaged { offset: at, len: h.frame_len(), header: Some(h) }
            };
            if !visit(item) {
                return Ok(());
            }
            at += h.frame_len();
            continue;
        }
        // No intact header here: find the next one.
        let mut probe = at;
        let next = loop {
            let bytes = w.get(probe, CHUNK)?;
            if bytes.len() < HEADER {
                break None;
            }
            match frame::next_magic(bytes) {
                Some(p) => {
                    let candidate = probe + p as u64;
                    let head = w.get(candidate, HEADER)?;
                    if head.len() == HEADER && frame::decode(head).is_some() {
                        break Some(candidate);
                    }
                    probe = candidate;
                }
                None => probe += (bytes.len() - 3) as u64,
            }
        };
        match next {
            Some(next) => {
                if !visit(Item::Damaged { offset: at, len: next - at, header: None }) {
                    return Ok(());
                }
                at = next;
            }
            None => {
                visit(Item::Incomplete { offset: at, len: w.end - at });
                return Ok(());
            }
        }
    }
    Ok(())
}
