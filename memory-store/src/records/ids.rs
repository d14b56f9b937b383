//! The id index: every live memory's id and where its frame starts, sorted by id, as of one
//! point of the log (`covered_end`). Commits after that point are replayed at open.
//!
//! File `records/ids`, written whole through atomic-write: 32-byte entries (id `[u8; 16]`,
//! frame offset u64, frame length u32, the low 32 bits of the XXH3-64 of the 28 bytes before),
//! then a 64-byte footer: magic `"MCI\x01"`, 4 zero bytes, log generation u64, entry count u64,
//! last commit u64, covered end u64, put frames in the log u64, 8 zero bytes, XXH3-64 of the 56
//! bytes before. A lookup reads the footer and O(log n) entries, never the whole file.

use std::cell::OnceCell;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{read_at, Loc, RecordsError};

pub(crate) const ENTRY: usize = 32;
const FOOTER: usize = 64;
const MAGIC: [u8; 4] = *b"MCI\x01";

/// One id and where its record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdEntry {
    pub(crate) id: [u8; 16],
    pub(crate) loc: Loc,
}

/// What the footer says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) generation: u64,
    pub(crate) count: u64,
    pub(crate) last_seq: u64,
    pub(crate) covered_end: u64,
    pub(crate) puts: u64,
}

fn sum(b: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(b)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn encode_entry(e: &IdEntry) -> [u8; ENTRY] {
    let mut b = [0u8; ENTRY];
    b[..16].copy_from_slice(&e.id);
    b[16..24].copy_from_slice(&e.loc.offset.to_le_bytes());
    b[24..28].copy_from_slice(&e.loc.len.to_le_bytes());
    let s = sum(&b[..28]) as u32;
    b[28..32].copy_from_slice(&s.to_le_bytes());
    b
}

fn decode_entry(b: &[u8]) -> Option<IdEntry> {
    let mut s = [0u8; 4];
    s.copy_from_slice(&b[28..32]);
    if u32::from_le_bytes(s) != sum(&b[..28]) as u32 {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[..16]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&b[24..28]);
    Some(IdEntry { id, loc: Loc { offset: u64_at(b, 16), len: u32::from_le_bytes(len) } })
}

/// An open id index.
#[derive(Debug)]
pub(crate) struct IdTable {
    path: PathBuf,
    file: File,
    pub(crate) footer: Footer,
    loaded: OnceCell<Vec<IdEntry>>,
}

/// Why an id index cannot be used (the writer rebuilds it from the log).
#[derive(Debug)]
pub(crate) enum Unusable {
    Missing,
    Damaged(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => f.write_str("missing"),
            Unusable::Damaged(why) => f.write_str(why),
        }
    }
}

impl IdTable {
    pub(crate) fn open(path: &Path) -> Result<IdTable, Unusable> {
        let file = match super::open_regular(path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unusable::Missing),
            Err(e) => return Err(Unusable::Damaged(e.to_string())),
        };
        let len = file.metadata().map_err(|e| Unusable::Damaged(e.to_string()))?.len();
        if len < FOOTER as u64 {
            return Err(Unusable::Damaged(format!("{len} bytes, shorter than its footer")));
        }
        let mut f = [0u8; FOOTER];
        read_at(&file, &mut f, len - FOOTER as u64)
            .map_err(|e| Unusable::Damaged(e.to_string()))?;
        if f[..4] != MAGIC || u64_at(&f, 56) != sum(&f[..56]) {
            return Err(Unusable::Damaged("footer checksum does not match".into()));
        }
        let footer = Footer {
            generation: u64_at(&f, 8),
            count: u64_at(&f, 16),
            last_seq: u64_at(&f, 24),
            covered_end: u64_at(&f, 32),
            puts: u64_at(&f, 40),
        };
        if footer.count.checked_mul(ENTRY as u64).and_then(|b| b.checked_add(FOOTER as u64))
            != Some(len)
        {
            return Err(Unusable::Damaged(format!("{len} bytes for {} entries", footer.count)));
        }
        Ok(IdTable { path: path.to_owned(), file, footer, loaded: OnceCell::new() })
    }

    fn damaged(&self, index: u64) -> RecordsError {
        RecordsError::Corrupt {
            path: self.path.clone(),
            offset: index * ENTRY as u64,
            problem: format!(
                "id index entry {index} fails its checksum (`mcs repair` rebuilds it)"
            ),
        }
    }

    fn entry(&self, index: u64) -> Result<IdEntry, RecordsError> {
        if let Some(all) = self.loaded.get() {
            return Ok(all[index as usize]);
        }
        let mut b = [0u8; ENTRY];
        read_at(&self.file, &mut b, index * ENTRY as u64).map_err(|source| RecordsError::Io {
            what: "reading",
            path: self.path.clone(),
            source,
        })?;
        decode_entry(&b).ok_or_else(|| self.damaged(index))
    }

    /// Where `id`'s record is, by binary search (in memory once [`IdTable::all`] was called).
    pub(crate) fn lookup(&self, id: &[u8; 16]) -> Result<Option<Loc>, RecordsError> {
        if let Some(all) = self.loaded.get() {
            return Ok(all.binary_search_by(|e| e.id.cmp(id)).ok().map(|i| all[i].loc));
        }
        let (mut lo, mut hi) = (0u64, self.footer.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.entry(mid)?;
            match e.id.cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(e.loc)),
            }
        }
        Ok(None)
    }

    /// Every entry, read once (32 bytes per memory) and kept for lookups in bulk.
    pub(crate) fn all(&self) -> Result<&[IdEntry], RecordsError> {
        if let Some(all) = self.loaded.get() {
            return Ok(all);
        }
        let io = |source| RecordsError::Io { what: "reading", path: self.path.clone(), source };
        let mut file = self.file.try_clone().map_err(io)?;
        // From the start whatever the shared offset says (Windows' positional reads move it).
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut input = BufReader::with_capacity(1 << 20, file);
        // `count` was checked against the file's length at open: this is bounded by the file.
        let mut all = Vec::with_capacity(self.footer.count as usize);
        let mut b = [0u8; ENTRY];
        for index in 0..self.footer.count {
            input.read_exact(&mut b).map_err(io)?;
            let e = decode_entry(&b).ok_or_else(|| self.damaged(index))?;
            if all.last().is_some_and(|p: &IdEntry| p.id >= e.id) {
                return Err(self.damaged(index));
            }
            all.push(e);
        }
        Ok(self.loaded.get_or_init(|| all))
    }
}

/// Writes an id index of `entries` (sorted by id, no repeats) durably, owner-only.
pub(crate) fn write(
    path: &Path,
    mut footer: Footer,
    entries: impl Iterator<Item = IdEntry>,
) -> Result<(), RecordsError> {
    let file = atomic_write::Options::new().mode(0o600).open(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let io = |source| RecordsError::Io { what: "writing", path: path.to_owned(), source };
    let mut count = 0u64;
    for e in entries {
        out.write_all(&encode_entry(&e)).map_err(io)?;
        count += 1;
    }
    footer.count = count;
    let mut f = [0u8; FOOTER];
    f[..4].copy_from_slice(&MAGIC);
    f[8..16].copy_from_slice(&footer.generation.to_le_bytes());
    f[16..24].copy_from_slice(&footer.count.to_le_bytes());
    f[24..32].copy_from_slice(&footer.last_seq.to_le_bytes());
    f[32..40].copy_from_slice(&footer.covered_end.to_le_bytes());
    f[40..48].copy_from_slice(&footer.puts.to_le_bytes());
    let s = sum(&f[..56]);
    f[56..64].copy_from_slice(&s.to_le_bytes());
    out.write_all(&f).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.commit()?;
    Ok(())
}
