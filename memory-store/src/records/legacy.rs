//! The records format before the log (commit files `records/<seq>.rec` and snapshots
//! `records/<seq>.snap`, JSON Lines with a checksummed footer), read once to migrate a store.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RecordsError;
use crate::memory::Memory;

const COMMIT_EXT: &str = "rec";
const SNAPSHOT_EXT: &str = "snap";

/// One change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Entry {
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

fn file_seq(name: &str) -> Option<(u64, bool)> {
    let (stem, ext) = name.split_once('.')?;
    let seq = stem.parse().ok()?;
    match ext {
        COMMIT_EXT => Some((seq, false)),
        SNAPSHOT_EXT => Some((seq, true)),
        _ => None,
    }
}

#[cfg(test)]
pub(super) fn file_name(seq: u64, snapshot: bool) -> String {
    format!("{seq:016}.{}", if snapshot { SNAPSHOT_EXT } else { COMMIT_EXT })
}

/// Every live memory of a store in the old format and its last commit; `None` if there are no
/// files of that format.
pub(super) fn load(dir: &Path) -> Result<Option<(u64, Vec<Memory>)>, RecordsError> {
    let files = list(dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    let base = files.iter().filter(|f| f.1).map(|f| f.0).max();
    let mut memories: HashMap<Uuid, Memory> = HashMap::new();
    let mut last = 0;
    for (seq, snap, path) in &files {
        let redundant = match base {
            Some(b) => *seq < b || (*seq == b && !*snap),
            None => false,
        };
        if redundant {
            continue;
        }
        for entry in read_file(path, *seq)? {
            match entry {
                Entry::Put(m) => {
                    memories.insert(m.id, *m);
                }
                Entry::Forget(id) => {
                    memories.remove(&id);
                }
            }
        }
        last = *seq;
    }
    let mut all: Vec<Memory> = memories.into_values().collect();
    all.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
    Ok(Some((last, all)))
}

/// Whether `dir` holds files of the old format.
pub(super) fn load_exists(dir: &Path) -> bool {
    list(dir).is_ok_and(|files| !files.is_empty())
}

/// Removes the old format's files (after the migrated log is durable).
pub(super) fn remove(dir: &Path) -> Result<(), RecordsError> {
    for (_, _, path) in list(dir)? {
        atomic_write::seam::remove_file(&path).map_err(|source| RecordsError::Io {
            what: "removing",
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

fn list(dir: &Path) -> Result<Vec<(u64, bool, PathBuf)>, RecordsError> {
    let mut files: Vec<(u64, bool, PathBuf)> = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|source| RecordsError::Io {
                    what: "listing",
                    path: dir.to_owned(),
                    source,
                })?;
                if let Some((seq, snap)) = entry.file_name().to_str().and_then(file_seq) {
                    files.push((seq, snap, entry.path()));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(RecordsError::Io { what: "listing", path: dir.to_owned(), source })
        }
    }
    files.sort_by_key(|(seq, snap, _)| (*seq, !*snap));
    Ok(files)
}

#[cfg(test)]
pub(super) fn encode(seq: u64, entries: &[Entry]) -> Vec<u8> {
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
        offset: 0,
        problem: format!("line {line}: {problem}"),
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
