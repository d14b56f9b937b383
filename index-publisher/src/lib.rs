//! Publishes a store's index: writes segment files, manifests, `HEAD` and the beacon, and
//! removes the files no manifest names. The writer's side only; readers never need it.
//!
//! # Overview
//!
//! - [`Publisher`] owns the index files of one store directory for its writer (the store's
//!   lock makes it the only one): [`Publisher::write_segment`] writes a
//!   [`SegmentBuilder`]'s segment, [`Publisher::publish`] makes a list of segments the next
//!   generation, [`Publisher::collect_garbage`] removes what no manifest names, and
//!   [`Publisher::recover`] opens a store whose index is damaged, for a writer that rebuilds it.
//! - [`PublishError`] says which file and which step failed.
//!
//! What the files are (their names, the manifest format, how a store file is opened) is
//! [`semantic_index::layout`], which readers (`shm-reader`) share. This crate is what only a
//! writer does, so that the reader side depends on the format alone, never on `atomic-write`.
//!
//! Publication order: segment files, the manifest, `HEAD`, then the beacon. Every file but the
//! beacon goes through atomic-write and is complete before anything names it, so a reader that
//! follows `HEAD` never meets a half-written file, and a published file is never rewritten or
//! truncated, so a reader's mapping is never pulled from under it. The beacon is only a change
//! hint: a reader that sees it move re-reads `HEAD`, which is the truth.
//!
//! # Example
//!
//! ```
//! use index_publisher::Publisher;
//! use semantic_index::{Document, SegmentBuilder};
//!
//! # let dir = tempfile::tempdir()?;
//! let mut publisher = Publisher::open(dir.path())?;
//! let mut builder = SegmentBuilder::new().generation(publisher.generation() + 1);
//! builder.add(&Document { question: "How is an index published?".into(), ..Default::default() })?;
//! let segment = publisher.write_segment(&builder)?;
//! let generation = publisher.publish(1, vec![segment])?;
//! assert_eq!(semantic_index::layout::read_head(dir.path())?.map(|(_, m)| m.generation), Some(generation));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod removal;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use semantic_index::layout::{
    beacon_path, head_path, manifest_file_name, manifest_path, read_file, read_head, read_store_id,
    segment_path, LayoutError, Manifest, SegmentEntry, BEACON_LEN, MANIFESTS_DIR, PRIVATE_MODE,
    PUBLISHED_MODE, SEGMENTS_DIR, STORE_ID,
};
use semantic_index::{layout, BuildError, SegmentBuilder};

/// What went wrong publishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// `HEAD`, a manifest or the store identity could not be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A file could not be listed, removed or bumped, or a directory created.
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
    #[error("publishing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: atomic_write::Error,
    },
    /// Building a segment failed.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A fresh store identity: 128 bits from the process's random hasher keys, the time and the pid.
fn new_store_id() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(now);
        h.write_u32(std::process::id());
        h.write_usize(i);
        *half = h.finish();
    }
    (u128::from(halves[0]) << 64 | u128::from(halves[1])).to_be_bytes()
}

/// What [`Publisher::collect_garbage`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Segment files removed.
    pub segments: usize,
    /// Manifest files removed.
    pub manifests: usize,
}

/// The writer side of a store directory: writes segments and publishes generations.
///
/// One publisher per store at a time (the store's lock ensures it).
#[derive(Debug)]
pub struct Publisher {
    dir: PathBuf,
    store_id: [u8; 16],
    current: Option<(String, Manifest)>,
    previous: Option<Manifest>,
    next_segment: u32,
    /// The highest generation ever published here (HEAD, beacon, manifest files): never reused,
    /// even when HEAD was lost, so that readers never mistake a new generation for an old one.
    last_generation: u64,
}

impl Publisher {
    /// Opens (creating if needed) the store directory `dir` for publishing. Fails if `HEAD` or
    /// the manifest it names cannot be read (see [`Publisher::recover`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Publisher, PublishError> {
        Publisher::open_with(dir.as_ref(), false).map(|(publisher, _)| publisher)
    }

    /// Opens `dir` like [`Publisher::open`], but when `HEAD` or the manifest it names is
    /// malformed or missing, starts from no current manifest instead of failing, and returns
    /// what it could not read beside the publisher, so that the caller can publish an index
    /// rebuilt from elsewhere (the store's records) over the damaged one. Generation numbers are
    /// still never reused: the beacon and every manifest file name count. Other input/output
    /// errors still fail.
    pub fn recover(
        dir: impl AsRef<Path>,
    ) -> Result<(Publisher, Option<LayoutError>), PublishError> {
        Publisher::open_with(dir.as_ref(), true)
    }

    fn open_with(
        dir: &Path,
        recover: bool,
    ) -> Result<(Publisher, Option<LayoutError>), PublishError> {
        let dir = dir.to_owned();
        for d in [dir.clone(), dir.join(SEGMENTS_DIR), dir.join(MANIFESTS_DIR)] {
            create_private_dir(&d)?;
        }
        let beacon = beacon_path(&dir);
        match fs::symlink_metadata(&beacon) {
            Ok(m) if m.is_file() && m.len() >= BEACON_LEN as u64 => {}
            Ok(_) | Err(_) => {
                // Created once (or repaired if a crash left a short file nobody can have mapped
                // usefully, or if something not a regular file took its place: the rename
                // replaces a link itself, never its target); from then on only bumped in place,
                // never truncated.
                atomic_write::Options::new()
                    .mode(PRIVATE_MODE)
                    .write(&beacon, &[0u8; BEACON_LEN])
                    .map_err(|source| PublishError::Write { path: beacon.clone(), source })?;
            }
        }
        let store_id = match read_store_id(&dir) {
            Ok(Some(id)) => id,
            Ok(None) | Err(LayoutError::StoreId { .. }) => write_store_id(&dir)?,
            Err(e @ LayoutError::Io { .. }) if recover && e.is_damage() => write_store_id(&dir)?,
            Err(e) => return Err(e.into()),
        };
        let (current, damage) = match read_head(&dir) {
            Ok(Some((_, m))) if m.store_id != store_id => {
                let e = LayoutError::Foreign { path: head_path(&dir) };
                if !recover {
                    return Err(e.into());
                }
                (None, Some(e))
            }
            Ok(current) => (current, None),
            Err(e) if recover && e.is_damage() => (None, Some(e)),
            Err(e) => return Err(e.into()),
        };
        let mut last_generation = current.as_ref().map_or(0, |(_, m)| m.generation);
        if let Ok(bytes) = read_file(&beacon, BEACON_LEN as u64) {
            if let Some(b) = bytes.get(..8) {
                let mut g = [0u8; 8];
                g.copy_from_slice(b);
                last_generation = last_generation.max(u64::from_le_bytes(g));
            }
        }
        let manifests = dir.join(MANIFESTS_DIR);
        let listing = fs::read_dir(&manifests).map_err(|source| PublishError::Io {
            what: "listing",
            path: manifests.clone(),
            source,
        })?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            if let Some(g) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".man"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                last_generation = last_generation.max(g);
            }
        }
        let publisher =
            Publisher { dir, store_id, current, previous: None, next_segment: 0, last_generation };
        if let Some((_, m)) = &publisher.current {
            publisher.bump_beacon(m.generation)?;
        }
        Ok((publisher, damage))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store's identity, which every manifest this publisher writes carries.
    pub fn store_id(&self) -> [u8; 16] {
        self.store_id
    }

    /// The manifest last published (or found at open), if any.
    pub fn current(&self) -> Option<&Manifest> {
        self.current.as_ref().map(|(_, m)| m)
    }

    /// The highest generation published in this store so far, 0 if none.
    pub fn generation(&self) -> u64 {
        self.last_generation
    }

    fn fresh_segment_name(&mut self) -> String {
        self.next_segment += 1;
        format!("{:016}-{:06}.seg", self.generation() + 1, self.next_segment)
    }

    /// Writes the builder's documents as a new segment file (durably, mode 0444) under a name
    /// no live manifest uses, and returns its manifest entry. Nothing names it until a
    /// manifest that lists it is published.
    pub fn write_segment(
        &mut self,
        builder: &SegmentBuilder,
    ) -> Result<SegmentEntry, PublishError> {
        let file = self.fresh_segment_name();
        let path = segment_path(&self.dir, &file);
        let bytes = builder.to_bytes()?;
        let checksum = match semantic_index::format::Header::decode(&bytes) {
            Ok(header) => header.checksum,
            // The builder always writes a whole header; this is a bug, not bad input.
            Err(e) => return Err(PublishError::Build(BuildError::Serialize(e.to_string()))),
        };
        atomic_write::Options::new()
            .mode(PUBLISHED_MODE)
            .write(&path, &bytes)
            .map_err(|source| PublishError::Write { path, source })?;
        Ok(SegmentEntry { file, doc_count: builder.len() as u32, checksum, deleted: Vec::new() })
    }

    /// Publishes `segments` as the next generation: manifest, then `HEAD`, then the beacon.
    /// Returns the new generation.
    pub fn publish(
        &mut self,
        commit_seq: u64,
        segments: Vec<SegmentEntry>,
    ) -> Result<u64, PublishError> {
        let generation = self.generation() + 1;
        let manifest = Manifest { generation, commit_seq, store_id: self.store_id, segments };
        let name = manifest_file_name(generation);
        let path = manifest_path(&self.dir, &name);
        atomic_write::Options::new()
            .mode(PUBLISHED_MODE)
            .write(&path, &manifest.to_bytes())
            .map_err(|source| PublishError::Write { path, source })?;
        let head = head_path(&self.dir);
        atomic_write::Options::new()
            .mode(PRIVATE_MODE)
            .write(&head, format!("{name}\n").as_bytes())
            .map_err(|source| PublishError::Write { path: head, source })?;
        self.previous = self.current.take().map(|(_, m)| m);
        self.current = Some((name, manifest));
        self.last_generation = generation;
        self.bump_beacon(generation)?;
        Ok(generation)
    }

    fn bump_beacon(&self, generation: u64) -> Result<(), PublishError> {
        let path = beacon_path(&self.dir);
        let io = |source| PublishError::Io { what: "bumping beacon", path: path.clone(), source };
        let file = layout::open_file(&path, fs::OpenOptions::new().write(true)).map_err(io)?;
        write_at(&file, &generation.to_le_bytes(), 0).map_err(io)
    }

    /// Removes segment and manifest files that neither the current nor the previous manifest
    /// names (the previous one stays for readers that are just switching), and temp files that
    /// interrupted writes left. Never truncates; a file already gone is fine. A file that
    /// cannot be removed does not stop the others; the first such failure is returned.
    pub fn collect_garbage(&mut self) -> Result<GcStats, PublishError> {
        let mut keep_segments: Vec<&str> = Vec::new();
        let mut keep_manifests: Vec<String> = Vec::new();
        for m in self.current.iter().map(|(_, m)| m).chain(self.previous.iter()) {
            keep_segments.extend(m.segments.iter().map(|s| s.file.as_str()));
            keep_manifests.push(manifest_file_name(m.generation));
        }
        let mut stats = GcStats::default();
        let mut first_error = None;
        for (sub, ext, count) in [
            (SEGMENTS_DIR, ".seg", &mut stats.segments),
            (MANIFESTS_DIR, ".man", &mut stats.manifests),
        ] {
            let dir = self.dir.join(sub);
            let entries = fs::read_dir(&dir).map_err(|source| PublishError::Io {
                what: "listing",
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| PublishError::Io {
                    what: "listing",
                    path: dir.clone(),
                    source,
                })?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let stale_temp = name.starts_with('.') && name.ends_with(".tmp");
                let unnamed = name.ends_with(ext)
                    && !keep_segments.contains(&name)
                    && !keep_manifests.iter().any(|m| m == name);
                if stale_temp || unnamed {
                    // A file a reader still maps on Windows stays until a later collection.
                    match removal::remove_unless_mapped(&entry.path()) {
                        Ok(removal::Removal::Removed) => *count += usize::from(!stale_temp),
                        Ok(removal::Removal::Gone | removal::Removal::Deferred) => {}
                        Err(source) => {
                            // Go on with the other files; report the first failure at the end.
                            first_error.get_or_insert(PublishError::Io {
                                what: "removing",
                                path: entry.path(),
                                source,
                            });
                        }
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }
}

fn write_store_id(dir: &Path) -> Result<[u8; 16], PublishError> {
    let id = new_store_id();
    let path = dir.join(STORE_ID);
    atomic_write::Options::new()
        .mode(PUBLISHED_MODE)
        .write(&path, format!("{:032x}\n", u128::from_be_bytes(id)).as_bytes())
        .map_err(|source| PublishError::Write { path, source })?;
    Ok(id)
}

#[cfg(unix)]
fn write_at(file: &fs::File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_at(file: &fs::File, bytes: &[u8], offset: u64) -> io::Result<()> {
    let n = std::os::windows::fs::FileExt::seek_write(file, bytes, offset)?;
    if n == bytes.len() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::WriteZero, "short beacon write"))
    }
}

fn create_private_dir(dir: &Path) -> Result<(), PublishError> {
    let io = |source| PublishError::Io { what: "creating directory", path: dir.to_owned(), source };
    if !dir.is_dir() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, layout::DIR_MODE);
        builder.create(dir).map_err(io)?;
        if let Some(parent) = dir.parent() {
            if let Ok(f) = fs::File::open(parent) {
                f.sync_all().map_err(io)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_starts_over_a_damaged_head_without_reusing_generations() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Publisher::open(dir.path()).unwrap();
        p.publish(1, Vec::new()).unwrap();
        let g = p.publish(2, Vec::new()).unwrap();
        drop(p);
        let name = fs::read_to_string(head_path(dir.path())).unwrap();
        let manifest = manifest_path(dir.path(), name.trim());
        let mut perms = fs::metadata(&manifest).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&manifest, perms).unwrap();
        fs::write(&manifest, b"not a manifest").unwrap();
        let err = Publisher::open(dir.path()).unwrap_err();
        assert!(matches!(err, PublishError::Layout(LayoutError::Manifest { .. })), "{err}");
        let (mut p, damage) = Publisher::recover(dir.path()).unwrap();
        assert!(matches!(damage, Some(LayoutError::Manifest { .. })), "{damage:?}");
        assert_eq!(p.current(), None);
        assert_eq!(p.generation(), g);
        assert_eq!(p.publish(3, Vec::new()).unwrap(), g + 1);
        assert_eq!(Publisher::open(dir.path()).unwrap().generation(), g + 1);
        fs::write(head_path(dir.path()), b"0000000000000099.man\n").unwrap();
        assert!(matches!(
            Publisher::open(dir.path()),
            Err(PublishError::Layout(LayoutError::Io { .. }))
        ));
        let (p, damage) = Publisher::recover(dir.path()).unwrap();
        assert!(damage.is_some_and(|e| e.is_not_found()));
        assert_eq!(p.current(), None);
        let (_, damage) = Publisher::recover(dir.path()).unwrap();
        assert!(damage.is_some(), "recover does not write HEAD: still damaged");
    }
}
