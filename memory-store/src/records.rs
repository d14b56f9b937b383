//! Records, the store's truth: immutable commit files under `records/`.
//!
//! Each commit is one file `records/<seq>.rec`, written once through atomic-write: JSON Lines,
//! one entry per line (`{"put":{…memory…}}` or `{"forget":"<uuid>"}`), then a footer line
//! `{"commit":{"seq":N,"entries":M,"xxh3":"…"}}` whose checksum covers every byte before it.
//! A commit is in the store exactly when its file is (the rename is atomic), so a crash never
//! leaves half a batch. From time to time all live memories are written to
//! `records/<seq>.snap` (same format) and the commits it covers are deleted.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::memory::Memory;

pub(crate) const RECORDS_DIR: &str = "records";
const COMMIT_EXT: &str = "rec";
const SNAPSHOT_EXT: &str = "snap";
/// Commits after the last snapshot before the writer compacts.
const COMPACT_AFTER: usize = 256;

/// One change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Entry {
    Put(Box<Memory>),
    Forget(Uuid),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Footer {
    commit: FooterBody,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FooterBody {
    seq: u64,
    entries: u64,
    xxh3: String,
}

/// A records file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// Listing, reading or writing failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A durable write failed.
    #[error("writing records")]
    Write(#[from] atomic_write::Error),
    /// A file's content is damaged.
    #[error("records file {} is damaged at line {line}: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// All memories, as the records say, and where the next commit goes.
#[derive(Debug)]
pub(crate) struct Records {
    dir: PathBuf,
    memories: HashMap<Uuid, Memory>,
    seq: u64,
    since_snapshot: usize,
}

fn file_seq(name: &str) -> Option<(u64, bool)> {
    let (stem, ext) = name.split_once('.')?;
    let seq = stem.parse().ok()?;
    match ext {
        COMMIT_EXT => Some((seq, false)),
        SNAPSHOT_EXT => Some((seq, true)),
        _ => None,
    }
}

fn file_name(seq: u64, snapshot: bool) -> String {
    format!("{seq:016}.{}", if snapshot { SNAPSHOT_EXT } else { COMMIT_EXT })
}

/// The sequence of the store's last commit, from the records' file names alone (reads no
/// record): what a reader compares with the index's commit sequence. 0 if there is none.
pub(crate) fn last_seq(store: &Path) -> Result<u64, RecordsError> {
    let dir = store.join(RECORDS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(RecordsError::Io { what: "listing", path: dir, source }),
    };
    let mut last = 0;
    for entry in entries {
        let entry = entry.map_err(|source| RecordsError::Io {
            what: "listing",
            path: dir.clone(),
            source,
        })?;
        if let Some((seq, _)) = entry.file_name().to_str().and_then(file_seq) {
            last = last.max(seq);
        }
    }
    Ok(last)
}

impl Records {
    /// Loads every record. With `clean`, also deletes files a snapshot made redundant (writer only).
    pub(crate) fn load(store: &Path, clean: bool) -> Result<Records, RecordsError> {
        let dir = store.join(RECORDS_DIR);
        if clean && !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|source| RecordsError::Io {
                what: "creating",
                path: dir.clone(),
                source,
            })?;
        }
        let mut files: Vec<(u64, bool, PathBuf)> = Vec::new();
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|source| RecordsError::Io {
                        what: "listing",
                        path: dir.clone(),
                        source,
                    })?;
                    if let Some((seq, snap)) = entry.file_name().to_str().and_then(file_seq) {
                        files.push((seq, snap, entry.path()));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RecordsError::Io { what: "listing", path: dir.clone(), source })
            }
        }
        files.sort_by_key(|(seq, snap, _)| (*seq, !*snap));
        let base = files.iter().filter(|f| f.1).map(|f| f.0).max();
        let mut records = Records { dir, memories: HashMap::new(), seq: 0, since_snapshot: 0 };
        for (seq, snap, path) in &files {
            let redundant = match base {
                Some(b) => *seq < b || (*seq == b && !*snap),
                None => false,
            };
            if redundant {
                if clean {
                    let _ = fs::remove_file(path);
                }
                continue;
            }
            for entry in read_file(path, *seq)? {
                records.apply(entry);
            }
            records.seq = *seq;
            if !*snap {
                records.since_snapshot += 1;
            }
        }
        Ok(records)
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Put(m) => {
                self.memories.insert(m.id, *m);
            }
            Entry::Forget(id) => {
                self.memories.remove(&id);
            }
        }
    }

    /// The sequence number of the last commit.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn get(&self, id: &Uuid) -> Option<&Memory> {
        self.memories.get(id)
    }

    pub(crate) fn contains(&self, id: &Uuid) -> bool {
        self.memories.contains_key(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.memories.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Memory> {
        self.memories.values()
    }

    /// Writes `entries` as the next commit, durably, then applies them. Returns its sequence.
    pub(crate) fn commit(&mut self, entries: Vec<Entry>) -> Result<u64, RecordsError> {
        let seq = self.seq + 1;
        let bytes = encode(seq, &entries);
        atomic_write::Options::new()
            .mode(0o400)
            .write(self.dir.join(file_name(seq, false)), &bytes)?;
        for entry in entries {
            self.apply(entry);
        }
        self.seq = seq;
        self.since_snapshot += 1;
        if self.since_snapshot >= COMPACT_AFTER {
            self.compact()?;
        }
        Ok(seq)
    }

    /// Writes all live memories as a snapshot at the current sequence and deletes the commits it
    /// covers. A crash in between leaves both; the next load ignores (and removes) the commits.
    pub(crate) fn compact(&mut self) -> Result<(), RecordsError> {
        let mut all: Vec<&Memory> = self.memories.values().collect();
        all.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
        let entries: Vec<Entry> =
            all.into_iter().map(|m| Entry::Put(Box::new(m.clone()))).collect();
        let bytes = encode(self.seq, &entries);
        atomic_write::Options::new()
            .mode(0o400)
            .write(self.dir.join(file_name(self.seq, true)), &bytes)?;
        let listing = fs::read_dir(&self.dir).map_err(|source| RecordsError::Io {
            what: "listing",
            path: self.dir.clone(),
            source,
        })?;
        for entry in listing.flatten() {
            if let Some((seq, snap)) = entry.file_name().to_str().and_then(file_seq) {
                if seq < self.seq || (seq == self.seq && !snap) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        self.since_snapshot = 0;
        Ok(())
    }
}

fn encode(seq: u64, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 512);
    for e in entries {
        // Serializing our own plain data to a Vec cannot fail (no maps with non-string keys).
        if serde_json::to_writer(&mut out, e).is_ok() {
            out.push(b'\n');
        }
    }
    let footer = Footer {
        commit: FooterBody {
            seq,
            entries: entries.len() as u64,
            xxh3: format!("{:016x}", twox_hash::XxHash3_64::oneshot(&out)),
        },
    };
    if serde_json::to_writer(&mut out, &footer).is_ok() {
        out.push(b'\n');
    }
    out
}

fn read_file(path: &Path, seq: u64) -> Result<Vec<Entry>, RecordsError> {
    // No link followed, no FIFO waited on: only a regular file is read.
    let bytes = semantic_index::layout::read_file(path, u64::MAX)
        .map_err(|source| RecordsError::Io { what: "reading", path: path.to_owned(), source })?;
    let corrupt = |line: usize, problem: String| RecordsError::Corrupt {
        path: path.to_owned(),
        line,
        problem,
    };
    let body_end = bytes[..bytes.len().saturating_sub(1)]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let (body, footer) = bytes.split_at(body_end);
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    let footer: Footer = serde_json::from_slice(footer)
        .map_err(|e| corrupt(lines + 1, format!("bad footer: {e}")))?;
    let sum = format!("{:016x}", twox_hash::XxHash3_64::oneshot(body));
    if footer.commit.xxh3 != sum {
        return Err(corrupt(
            lines + 1,
            format!("checksum {} does not match content {sum}", footer.commit.xxh3),
        ));
    }
    if footer.commit.seq != seq || footer.commit.entries != lines as u64 {
        return Err(corrupt(lines + 1, "footer disagrees with file name or line count".into()));
    }
    let mut entries = Vec::with_capacity(lines);
    for (i, line) in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let entry: Entry =
            serde_json::from_slice(line).map_err(|e| corrupt(i + 1, e.to_string()))?;
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reload_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Records::load(dir.path(), true).unwrap();
        let a = Memory::new("d", "first");
        let b = Memory::new("d", "second");
        r.commit(vec![Entry::Put(Box::new(a.clone())), Entry::Put(Box::new(b.clone()))]).unwrap();
        r.commit(vec![Entry::Forget(a.id)]).unwrap();
        let again = Records::load(dir.path(), true).unwrap();
        assert_eq!(again.seq(), 2);
        assert_eq!(again.len(), 1);
        assert_eq!(again.get(&b.id), Some(&b));
        let mut r = again;
        r.compact().unwrap();
        let names: Vec<String> = fs::read_dir(dir.path().join(RECORDS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![file_name(2, true)]);
        let again = Records::load(dir.path(), true).unwrap();
        assert_eq!((again.seq(), again.len()), (2, 1));
    }

    #[test]
    fn damage_is_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Records::load(dir.path(), true).unwrap();
        r.commit(vec![Entry::Put(Box::new(Memory::new("d", "q")))]).unwrap();
        let path = dir.path().join(RECORDS_DIR).join(file_name(1, false));
        let mut bytes = fs::read(&path).unwrap();
        bytes[5] ^= 0x20;
        fs::remove_file(&path).unwrap();
        fs::write(&path, &bytes).unwrap();
        let err = Records::load(dir.path(), true).unwrap_err();
        assert!(
            err.to_string().contains("0000000000000001.rec")
                && err.to_string().contains("checksum"),
            "{err}"
        );
    }
}
