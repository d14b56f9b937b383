//! The files beside each segment that its manifest does not list: the content file
//! (`segments/<stem>.cnt`, each memory's whole text) and the vector file (`vectors/<stem>.vec`,
//! its embeddings). Without them a replica's navigator quotes gists and its search is lexical
//! only, so they travel like segments: to the object store under content names, listed in the
//! head ([`SideFile`]), downloaded and verified whole before they are written where a reader
//! looks, and removed when no live manifest names their segment.
//!
//! They are derived data: a side file that fails its check is refused (never written) and the
//! replica publishes its segments without it, as a store whose writer has not made it yet.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use semantic_index::content::{content_file_name, ContentView};
use semantic_index::layout::{self, segment_path, Manifest, SegmentEntry};
use semantic_index::vectors::{decode_header, vectors_path, VECTORS_DIR, VECTORS_HEADER_LEN};
use serde::{Deserialize, Serialize};

use crate::Error;

/// First bytes of a content file.
const CONTENT_MAGIC: &[u8; 8] = b"MCCONTNT";

/// Which file beside a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SideKind {
    /// `segments/<stem>.cnt`.
    Content,
    /// `vectors/<stem>.vec`.
    Vectors,
}

/// A file beside a segment, as the head lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SideFile {
    /// Which file.
    pub kind: SideKind,
    /// The segment file it belongs to (`<stem>.seg`).
    pub segment: String,
    /// What names its content: for a content file, the segment's checksum (its header carries
    /// it, and the writer makes it once with the segment); for a vector file, the checksum in
    /// its header (of every byte after the header).
    pub checksum: u64,
}

impl SideFile {
    /// Its object name in the object store.
    pub fn object(&self) -> String {
        let stem = self.segment.strip_suffix(".seg").unwrap_or(&self.segment);
        match self.kind {
            SideKind::Content => format!("cnt-{:016x}-{stem}.cnt", self.checksum),
            SideKind::Vectors => format!("vec-{:016x}-{stem}.vec", self.checksum),
        }
    }

    /// Where it lives in the store `dir`.
    pub fn path(&self, dir: &Path) -> PathBuf {
        match self.kind {
            SideKind::Content => segment_path(dir, &content_file_name(&self.segment)),
            SideKind::Vectors => vectors_path(dir, &self.segment),
        }
    }

    /// Whether the file in `dir` is this one, from its header alone (a file written here was
    /// verified whole first).
    pub(crate) fn is_present(&self, dir: &Path) -> bool {
        read_prefix(&self.path(dir), 64).is_some_and(|h| self.header_matches(&h))
    }

    fn header_matches(&self, header: &[u8]) -> bool {
        let magic_ok = match self.kind {
            SideKind::Content => header.get(..8) == Some(CONTENT_MAGIC.as_slice()),
            SideKind::Vectors => {
                header.get(..8) == Some(semantic_index::vectors::VECTORS_MAGIC.as_slice())
            }
        };
        magic_ok && header.get(24..32).is_some_and(|c| c == self.checksum.to_le_bytes())
    }

    /// Checks a whole file against this entry and its segment: every checksum inside it, and
    /// that it belongs to `segment`. Returns what is wrong.
    pub fn verify(&self, bytes: &[u8], segment: &SegmentEntry) -> Result<(), String> {
        if segment.file != self.segment {
            return Err(format!("it belongs to {}, not {}", self.segment, segment.file));
        }
        match self.kind {
            SideKind::Content => {
                let view = ContentView::new(bytes).map_err(|e| e.to_string())?;
                if view.segment_checksum() != segment.checksum {
                    return Err(format!(
                        "it names segment checksum {:016x}, the manifest {:016x}",
                        view.segment_checksum(),
                        segment.checksum
                    ));
                }
                if view.len() != segment.doc_count {
                    return Err(format!(
                        "{} memories, the segment {}",
                        view.len(),
                        segment.doc_count
                    ));
                }
                view.verify().map_err(|e| e.to_string())
            }
            SideKind::Vectors => {
                let header = decode_header(bytes).map_err(|e| e.to_string())?;
                if header.checksum != self.checksum {
                    return Err(format!(
                        "checksum {:016x}, the head names {:016x}",
                        header.checksum, self.checksum
                    ));
                }
                if header.count != segment.doc_count {
                    return Err(format!(
                        "{} vectors, the segment {} memories",
                        header.count, segment.doc_count
                    ));
                }
                Ok(())
            }
        }
    }
}

pub(crate) fn read_prefix(path: &Path, len: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = layout::open_file(path, std::fs::OpenOptions::new().read(true)).ok()?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// The side files the writer's store in `dir` has for the segments of `manifest`, from their
/// headers (a missing or unreadable one is simply not listed: derived data the writer makes
/// again).
pub(crate) fn local_side_files(dir: &Path, manifest: &Manifest) -> Vec<SideFile> {
    let mut out = Vec::new();
    for s in &manifest.segments {
        let content =
            SideFile { kind: SideKind::Content, segment: s.file.clone(), checksum: s.checksum };
        if content.is_present(dir) {
            out.push(content);
        }
        if let Some(h) = read_prefix(&vectors_path(dir, &s.file), VECTORS_HEADER_LEN as u64) {
            if let Some(sum) = h.get(24..32) {
                let checksum = u64::from_le_bytes(sum.try_into().unwrap_or([0; 8]));
                let vectors =
                    SideFile { kind: SideKind::Vectors, segment: s.file.clone(), checksum };
                if vectors.header_matches(&h) {
                    out.push(vectors);
                }
            }
        }
    }
    out
}

/// Reads a side file whole from the writer's store, checked as a replica will check it (a file
/// that fails is not uploaded).
pub(crate) fn read_local(
    dir: &Path,
    file: &SideFile,
    segment: &SegmentEntry,
) -> Result<Option<Vec<u8>>, Error> {
    let path = file.path(dir);
    let bytes = match layout::read_file(&path, u64::MAX) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { what: "reading", path, source }),
    };
    Ok(file.verify(&bytes, segment).is_ok().then_some(bytes))
}

/// Writes a verified side file into the replica's store `dir`, durably, read-only.
pub(crate) fn install(dir: &Path, file: &SideFile, bytes: &[u8]) -> Result<(), Error> {
    let path = file.path(dir);
    if file.kind == SideKind::Vectors {
        let vdir = dir.join(VECTORS_DIR);
        if !vdir.is_dir() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, layout::DIR_MODE);
            builder.create(&vdir).map_err(|source| Error::Io {
                what: "creating directory",
                path: vdir.clone(),
                source,
            })?;
        }
    }
    atomic_write::Options::new().mode(layout::PUBLISHED_MODE).write(&path, bytes).map_err(|e| {
        Error::Io {
            what: "writing",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    })
}

/// Removes the replica's vector files whose segment no manifest in `live` names (content files
/// go with their segments, in the publisher's collection). Best effort: returns how many went.
pub(crate) fn collect_vectors(dir: &Path, live: &[&Manifest]) -> usize {
    let keep: HashSet<&str> = live
        .iter()
        .flat_map(|m| m.segments.iter())
        .map(|s| s.file.strip_suffix(".seg").unwrap_or(&s.file))
        .collect();
    let Ok(entries) = std::fs::read_dir(dir.join(VECTORS_DIR)) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale_temp = name.starts_with('.') && name.ends_with(".tmp");
        let unnamed = name.strip_suffix(".vec").is_some_and(|stem| !keep.contains(stem));
        if (stale_temp || unnamed) && std::fs::remove_file(entry.path()).is_ok() {
            removed += usize::from(unnamed);
        }
    }
    removed
}
