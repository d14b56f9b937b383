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

use semantic_index::content::{content_file_name, ContentBuilder, CONTENT_EXTENSION};
use semantic_index::layout::{
    beacon_path, head_path, manifest_file_name, manifest_path, read_file, read_head, read_store_id,
    segment_path, LayoutError, Manifest, SegmentEntry, BEACON_LEN, MANIFESTS_DIR, PRIVATE_MODE,
    PUBLISHED_MODE, SEGMENTS_DIR, STORE_ID,
};
use semantic_index::{layout, BuildError, SegmentBuilder, SegmentBytes};

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
    /// A replica's directory belongs to another store.
    #[error(
        "{} holds store {found:032x}, not the replicated store {expected:032x}",
        dir.display()
    )]
    ForeignStore {
        /// The directory.
        dir: PathBuf,
        /// Its identity.
        found: u128,
        /// The identity replicated.
        expected: u128,
    },
    /// A segment received from elsewhere is not the one its manifest names.
    #[error("segment {file} refused: {problem}")]
    BadSegment {
        /// Its file name.
        file: String,
        /// What is wrong.
        problem: String,
    },
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

/// A generation written durably by [`Publisher::prepare_with_segment`] that nothing names yet;
/// [`Publisher::point_head_at`] publishes it.
#[derive(Debug)]
#[must_use = "a prepared generation is published only by `Publisher::point_head_at`"]
pub struct Prepared {
    name: String,
    manifest: Manifest,
}

impl Prepared {
    /// The generation it will publish.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }
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

/// A segment file and its content file, serialized by [`Publisher::segment_files`] and not yet
/// written: [`SegmentFiles::write`] needs no publisher, so a whole-store build writes one
/// segment on a thread of its own while it tokenizes the next.
pub struct SegmentFiles {
    entry: SegmentEntry,
    segment_path: PathBuf,
    segment: SegmentBytes,
    content_path: PathBuf,
    content: Vec<u8>,
}

impl SegmentFiles {
    /// Writes both files durably, mode 0400, and returns the segment's manifest entry. Nothing
    /// names them until a manifest that lists the entry is published.
    pub fn write(self) -> Result<SegmentEntry, PublishError> {
        write_published(&self.segment_path, &self.segment)?;
        drop(self.segment);
        write_published(&self.content_path, &self.content)?;
        Ok(self.entry)
    }
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

    /// Opens `dir` as a replica of the store `store_id` (another host's): writes that identity
    /// if the directory has none yet, refuses a directory of another store
    /// ([`PublishError::ForeignStore`]), and otherwise opens like [`Publisher::recover`]
    /// (a damaged `HEAD` is simply replaced by the next publication).
    pub fn open_replica(
        dir: impl AsRef<Path>,
        store_id: [u8; 16],
    ) -> Result<Publisher, PublishError> {
        let dir = dir.as_ref();
        create_private_dir(dir)?;
        match read_store_id(dir) {
            Ok(Some(found)) if found != store_id => {
                return Err(PublishError::ForeignStore {
                    dir: dir.to_owned(),
                    found: u128::from_be_bytes(found),
                    expected: u128::from_be_bytes(store_id),
                })
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(LayoutError::StoreId { .. }) => {
                write_store_id_as(dir, store_id)?;
            }
            Err(e) => return Err(e.into()),
        }
        Publisher::open_with(dir, true).map(|(publisher, _)| publisher)
    }

    /// Installs a segment received from elsewhere under `file` after checking it whole: its
    /// header, its length and its checksum, which must be `checksum` (the manifest's). Nothing
    /// unverified is ever written where a reader looks. A file already there with that checksum
    /// in its header is kept (an earlier, interrupted catch-up's). Returns whether it wrote.
    pub fn install_segment(
        &mut self,
        file: &str,
        bytes: &[u8],
        checksum: u64,
    ) -> Result<bool, PublishError> {
        install_segment_in(&self.dir, file, bytes, checksum)
    }

    /// Whether `segments/<file>` exists with `checksum` in its header (only the header is read:
    /// the file was verified whole before it was written).
    pub fn has_segment(&self, file: &str, checksum: u64) -> bool {
        has_segment_in(&self.dir, file, checksum)
    }

    /// Publishes like [`Publisher::publish`], at generation `at_least` or the next one here if
    /// that is higher (a replica follows its writer's generation numbers, so that a promoted
    /// replica never names a file after a generation it already holds). Returns the generation.
    pub fn publish_at_least(
        &mut self,
        at_least: u64,
        commit_seq: u64,
        segments: Vec<SegmentEntry>,
    ) -> Result<u64, PublishError> {
        let prepared = self.prepare_at_least(at_least, commit_seq, segments)?;
        self.point_head_at(prepared)
    }

    /// Writes the manifest of `segments` durably as generation `at_least` or the next one here
    /// if that is higher, and names it nowhere yet: the first half of
    /// [`Publisher::publish_at_least`], so that a replica can write it while its segments are
    /// being written (their fsyncs overlap). [`Publisher::point_head_at`] publishes it, after
    /// the segments it names are durable; dropped instead, the manifest is unnamed and a
    /// collection removes it. The generation is taken either way (never reused).
    pub fn prepare_at_least(
        &mut self,
        at_least: u64,
        commit_seq: u64,
        segments: Vec<SegmentEntry>,
    ) -> Result<Prepared, PublishError> {
        let generation = self.last_generation.max(at_least.saturating_sub(1)) + 1;
        let written = self.write_manifest(generation, commit_seq, segments);
        // Its name is taken even if the write failed half-way: never reuse a generation.
        self.last_generation = generation;
        written
    }

    /// Writes the manifest of `segments` as `generation`, durably, named by nothing yet.
    fn write_manifest(
        &self,
        generation: u64,
        commit_seq: u64,
        segments: Vec<SegmentEntry>,
    ) -> Result<Prepared, PublishError> {
        let manifest = Manifest { generation, commit_seq, store_id: self.store_id, segments };
        let name = manifest_file_name(generation);
        let path = manifest_path(&self.dir, &name);
        write_published(&path, &manifest.to_bytes())?;
        Ok(Prepared { name, manifest })
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
        let bytes = builder.to_segment_bytes()?;
        let checksum = built_checksum(&bytes)?;
        write_published(&path, &bytes)?;
        Ok(SegmentEntry { file, doc_count: builder.len() as u32, checksum, deleted: Vec::new() })
    }

    /// Writes the content file of the segment `segment` (returned by
    /// [`Publisher::write_segment`]) from `content`, durably, mode 0400: each memory's full text
    /// for readers that quote it (`semantic_index::content`). Named after the segment and bound
    /// to it by its checksum; like the segment, nothing names it until it is published, and it is
    /// collected with its segment.
    pub fn write_content(
        &mut self,
        segment: &SegmentEntry,
        content: &ContentBuilder,
    ) -> Result<(), PublishError> {
        let path = segment_path(&self.dir, &content_file_name(&segment.file));
        write_published(&path, &content.to_bytes(segment.checksum))
    }

    /// Serializes a new segment and its content file under a name no live manifest uses, for
    /// [`SegmentFiles::write`] to write on any thread, as [`Publisher::write_segment`] then
    /// [`Publisher::write_content`] would. Takes the builders, and drops the segment's before
    /// encoding the content: a whole-store build holds no more than one of them beside the
    /// bytes.
    pub fn segment_files(
        &mut self,
        builder: SegmentBuilder,
        content: ContentBuilder,
    ) -> Result<SegmentFiles, PublishError> {
        let file = self.fresh_segment_name();
        let path = segment_path(&self.dir, &file);
        let segment = builder.to_segment_bytes()?;
        let doc_count = builder.len() as u32;
        drop(builder);
        let checksum = built_checksum(&segment)?;
        let content_path = segment_path(&self.dir, &content_file_name(&file));
        let content = content.to_bytes(checksum);
        Ok(SegmentFiles {
            entry: SegmentEntry { file, doc_count, checksum, deleted: Vec::new() },
            segment_path: path,
            segment,
            content_path,
            content,
        })
    }

    /// Publishes `segments` as the next generation: manifest, then `HEAD`, then the beacon.
    /// Returns the new generation.
    pub fn publish(
        &mut self,
        commit_seq: u64,
        segments: Vec<SegmentEntry>,
    ) -> Result<u64, PublishError> {
        let prepared = self.write_manifest(self.generation() + 1, commit_seq, segments)?;
        self.point_head_at(prepared)
    }

    /// Writes the builder's segment and publishes `segments` with it appended as the next
    /// generation: what [`Publisher::write_segment`] then [`Publisher::publish`] do, with the
    /// segment and the manifest written at the same time on two threads, so that their fsyncs
    /// (file, then directory, in `segments/` and in `manifests/`) overlap instead of following
    /// each other. Safe because neither file is named by anything until `HEAD` is replaced,
    /// after both are durable; a crash between leaves files that no `HEAD` names, which a
    /// collection removes. Returns the new generation.
    pub fn publish_with_segment(
        &mut self,
        commit_seq: u64,
        segments: Vec<SegmentEntry>,
        builder: &SegmentBuilder,
        content: Option<&ContentBuilder>,
    ) -> Result<u64, PublishError> {
        let prepared = self.prepare_with_segment(commit_seq, segments, builder, content)?;
        self.point_head_at(prepared)
    }

    /// The first half of [`Publisher::publish_with_segment`]: writes the segment, its content
    /// file and the manifest durably, and names none of them. [`Publisher::point_head_at`]
    /// publishes the result; dropped instead, the files are unnamed and a collection removes
    /// them. The generation is taken either way (never reused).
    pub fn prepare_with_segment(
        &mut self,
        commit_seq: u64,
        mut segments: Vec<SegmentEntry>,
        builder: &SegmentBuilder,
        content: Option<&ContentBuilder>,
    ) -> Result<Prepared, PublishError> {
        let file = self.fresh_segment_name();
        let segment = segment_path(&self.dir, &file);
        let bytes = builder.to_segment_bytes()?;
        let checksum = built_checksum(&bytes)?;
        let content = content
            .map(|c| (segment_path(&self.dir, &content_file_name(&file)), c.to_bytes(checksum)));
        segments.push(SegmentEntry {
            file,
            doc_count: builder.len() as u32,
            checksum,
            deleted: Vec::new(),
        });
        let generation = self.generation() + 1;
        let manifest = Manifest { generation, commit_seq, store_id: self.store_id, segments };
        let name = manifest_file_name(generation);
        let path = manifest_path(&self.dir, &name);
        let manifest_bytes = manifest.to_bytes();
        let (segment_written, manifest_written, content_written) = std::thread::scope(|s| {
            let segment_written = s.spawn(|| write_published(&segment, &bytes));
            let content_written = s.spawn(|| match &content {
                Some((path, bytes)) => write_published(path, bytes),
                None => Ok(()),
            });
            let manifest_written = write_published(&path, &manifest_bytes);
            match (segment_written.join(), content_written.join()) {
                (Ok(done), Ok(content)) => (done, manifest_written, content),
                (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
            }
        });
        if manifest_written.is_ok() {
            // Its name is taken even if the segment failed: never reuse a generation.
            self.last_generation = generation;
        }
        segment_written?;
        content_written?;
        manifest_written?;
        Ok(Prepared { name, manifest })
    }

    /// Publishes a generation [`Publisher::prepare_with_segment`] wrote: replaces `HEAD`, then
    /// bumps the beacon. Returns the new generation.
    pub fn point_head_at(&mut self, prepared: Prepared) -> Result<u64, PublishError> {
        self.point_head(prepared.name, prepared.manifest)
    }

    /// Replaces `HEAD` with the name of `manifest`, durable already, then bumps the beacon.
    fn point_head(&mut self, name: String, manifest: Manifest) -> Result<u64, PublishError> {
        let generation = manifest.generation;
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
        atomic_write::seam::write_at(&file, &path, &generation.to_le_bytes(), 0).map_err(io)
    }

    /// Removes segment and manifest files that neither the current nor the previous manifest
    /// names (the previous one stays for readers that are just switching), and temp files that
    /// interrupted writes left. Never truncates; a file already gone is fine. A file that
    /// cannot be removed does not stop the others; the first such failure is returned.
    pub fn collect_garbage(&mut self) -> Result<GcStats, PublishError> {
        let mut keep_segments: Vec<String> = Vec::new();
        let mut keep_manifests: Vec<String> = Vec::new();
        for m in self.current.iter().map(|(_, m)| m).chain(self.previous.iter()) {
            keep_segments.extend(m.segments.iter().map(|s| s.file.clone()));
            // A segment's content file lives and dies with it.
            keep_segments.extend(m.segments.iter().map(|s| content_file_name(&s.file)));
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
                let content = sub == SEGMENTS_DIR
                    && name.strip_suffix(CONTENT_EXTENSION).is_some_and(|s| s.ends_with('.'));
                let unnamed = (name.ends_with(ext) || content)
                    && !keep_segments.iter().any(|k| k == name)
                    && !keep_manifests.iter().any(|m| m == name);
                if stale_temp || unnamed {
                    // A file a reader still maps on Windows stays until a later collection.
                    match removal::remove_unless_mapped(&entry.path()) {
                        Ok(removal::Removal::Removed) => {
                            *count += usize::from(!stale_temp && !content);
                        }
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
    write_store_id_as(dir, new_store_id())
}

/// Checks a whole segment's bytes: header, length, and checksum equal to `checksum`.
pub fn verify_segment(bytes: &[u8], checksum: u64) -> Result<(), String> {
    use semantic_index::format::{self, Header, CHECKSUMMED_HEADER_LEN, HEADER_LEN};
    let header = Header::decode(bytes).map_err(|e| e.to_string())?;
    let len = HEADER_LEN as u64 + header.payload_len;
    if bytes.len() as u64 != len {
        return Err(format!("{} bytes, its header says {len}", bytes.len()));
    }
    if header.checksum != checksum {
        return Err(format!(
            "header checksum {:016x}, the manifest names {checksum:016x}",
            header.checksum
        ));
    }
    let computed = format::checksum(&bytes[..CHECKSUMMED_HEADER_LEN], &bytes[HEADER_LEN..]);
    if computed != checksum {
        return Err(format!("content checksum {computed:016x}, expected {checksum:016x}"));
    }
    Ok(())
}

/// Installs a segment received from elsewhere as `segments/<file>` of the store in `dir`, after
/// checking it whole (see [`Publisher::install_segment`], which this is without a publisher:
/// a replica writes segments while its publisher writes the manifest). Returns whether it
/// wrote.
pub fn install_segment_in(
    dir: &Path,
    file: &str,
    bytes: &[u8],
    checksum: u64,
) -> Result<bool, PublishError> {
    let bad = |problem: String| PublishError::BadSegment { file: file.to_owned(), problem };
    if !layout::valid_file_name(file) || !file.ends_with(".seg") {
        return Err(bad("not a segment file name".into()));
    }
    verify_segment(bytes, checksum).map_err(bad)?;
    if has_segment_in(dir, file, checksum) {
        return Ok(false);
    }
    let path = segment_path(dir, file);
    write_published(&path, bytes)?;
    Ok(true)
}

/// Whether `segments/<file>` of the store in `dir` exists with `checksum` in its header (see
/// [`Publisher::has_segment`]).
pub fn has_segment_in(dir: &Path, file: &str, checksum: u64) -> bool {
    if !layout::valid_file_name(file) {
        return false;
    }
    let path = segment_path(dir, file);
    read_file_prefix(&path, semantic_index::format::HEADER_LEN)
        .ok()
        .and_then(|b| semantic_index::format::Header::decode(&b).ok())
        .is_some_and(|h| h.checksum == checksum)
}

fn read_file_prefix(path: &Path, len: usize) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = layout::open_file(path, fs::OpenOptions::new().read(true))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The checksum in the header of bytes a builder serialized. The builder always writes a whole
/// header, so a failure is a bug, not bad input.
fn built_checksum(bytes: &[u8]) -> Result<u64, PublishError> {
    semantic_index::format::Header::decode(bytes)
        .map(|header| header.checksum)
        .map_err(|e| PublishError::Build(BuildError::Serialize(e.to_string())))
}

/// Writes `bytes` to `path` durably, mode [`PUBLISHED_MODE`].
fn write_published(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    atomic_write::Options::new()
        .mode(PUBLISHED_MODE)
        .write(path, bytes)
        .map_err(|source| PublishError::Write { path: path.to_owned(), source })
}

fn write_store_id_as(dir: &Path, id: [u8; 16]) -> Result<[u8; 16], PublishError> {
    let path = dir.join(STORE_ID);
    write_published(&path, format!("{:032x}\n", u128::from_be_bytes(id)).as_bytes())?;
    Ok(id)
}

fn create_private_dir(dir: &Path) -> Result<(), PublishError> {
    let io = |source| PublishError::Io { what: "creating directory", path: dir.to_owned(), source };
    if !dir.is_dir() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, layout::DIR_MODE);
        atomic_write::seam::create_dir(&builder, dir).map_err(io)?;
        if let Some(parent) = dir.parent().filter(|p| p.is_dir()) {
            atomic_write::seam::sync_dir(parent).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_manifest_is_named_only_when_head_points_at_it() {
        use semantic_index::Document;
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Publisher::open(dir.path()).unwrap();
        let mut b = SegmentBuilder::new().generation(1);
        b.add(&Document { question: "prepared, then named".into(), ..Default::default() }).unwrap();
        let entry = writer.write_segment(&b).unwrap();
        let replica_dir = tempfile::tempdir().unwrap();
        let mut replica = Publisher::open_replica(replica_dir.path(), writer.store_id()).unwrap();
        let bytes = fs::read(segment_path(dir.path(), &entry.file)).unwrap();
        replica.install_segment(&entry.file, &bytes, entry.checksum).unwrap();
        // The writer's generation 5: the manifest is written, and nothing names it.
        let prepared = replica.prepare_at_least(5, 3, vec![entry.clone()]).unwrap();
        assert_eq!(prepared.generation(), 5);
        assert!(manifest_path(replica_dir.path(), &manifest_file_name(5)).exists());
        assert!(read_head(replica_dir.path()).unwrap().is_none(), "nothing named yet");
        assert_eq!(replica.point_head_at(prepared).unwrap(), 5);
        let (_, head) = read_head(replica_dir.path()).unwrap().unwrap();
        assert_eq!((head.generation, head.commit_seq, head.segments), (5, 3, vec![entry.clone()]));
        // One dropped keeps its generation taken: the next is above it, HEAD is unchanged.
        drop(replica.prepare_at_least(5, 4, vec![entry.clone()]).unwrap());
        assert_eq!(read_head(replica_dir.path()).unwrap().unwrap().1.generation, 5);
        let next = replica.prepare_at_least(2, 4, vec![entry]).unwrap();
        assert_eq!(next.generation(), 7);
    }

    #[test]
    fn publish_with_segment_equals_write_then_publish() {
        use semantic_index::Document;
        let build = |generation| {
            let mut b = SegmentBuilder::new().generation(generation);
            b.add(&Document { question: "overlapping fsyncs".into(), ..Default::default() })
                .unwrap();
            b
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut one = Publisher::open(a.path()).unwrap();
        let entry = one.write_segment(&build(1)).unwrap();
        let g1 = one.publish(7, vec![entry]).unwrap();
        let mut two = Publisher::open(b.path()).unwrap();
        let g2 = two.publish_with_segment(7, Vec::new(), &build(1), None).unwrap();
        assert_eq!(g1, g2);
        let (m1, m2) = (one.current().unwrap(), two.current().unwrap());
        assert_eq!(m1.segments, m2.segments);
        assert_eq!((m2.generation, m2.commit_seq), (g2, 7));
        let (_, head) = read_head(b.path()).unwrap().unwrap();
        assert_eq!(&head, m2);
        let seg = |dir: &Path| fs::read(segment_path(dir, &m1.segments[0].file)).unwrap();
        assert_eq!(seg(a.path()), seg(b.path()));
        // A later publication keeps the segment and adds the next.
        let segments = two.current().unwrap().segments.clone();
        two.publish_with_segment(8, segments, &build(2), None).unwrap();
        assert_eq!(read_head(b.path()).unwrap().unwrap().1.segments.len(), 2);
    }

    #[test]
    fn content_files_are_written_beside_their_segment_and_collected_with_it() {
        use semantic_index::content::{ContentFields, ContentView};
        use semantic_index::Document;
        let dir = tempfile::tempdir().unwrap();
        let mut p = Publisher::open(dir.path()).unwrap();
        let mut entries = Vec::new();
        for n in 0..2u8 {
            let mut builder = SegmentBuilder::new().generation(p.generation() + 1);
            let doc = Document { id: [n; 16], question: format!("q{n}"), ..Default::default() };
            builder.add(&doc).unwrap();
            let entry = p.write_segment(&builder).unwrap();
            let mut content = ContentBuilder::new();
            let insights = vec![format!("insight {n}")];
            content.add(
                [n; 16],
                &ContentFields {
                    question: &doc.question,
                    insights: &insights,
                    ..Default::default()
                },
            );
            p.write_content(&entry, &content).unwrap();
            entries.push(entry);
        }
        let first = entries[0].clone();
        p.publish(1, vec![first.clone()]).unwrap();
        let path = segment_path(dir.path(), &content_file_name(&first.file));
        let bytes = fs::read(&path).unwrap();
        let view = ContentView::new(&bytes).unwrap();
        assert_eq!(view.segment_checksum(), first.checksum);
        let got = view.get(&[0; 16]).unwrap().unwrap();
        assert_eq!(got.insights().collect::<Vec<_>>(), ["insight 0"]);
        // The second segment and its content were never published: collected together.
        let stats = p.collect_garbage().unwrap();
        assert_eq!(stats, GcStats { segments: 1, manifests: 0 });
        let mut left: Vec<String> = fs::read_dir(dir.path().join(SEGMENTS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [content_file_name(&first.file), first.file.clone()]);
        // Two publications later neither manifest names the first segment: both files go.
        p.publish(2, Vec::new()).unwrap();
        p.publish(3, Vec::new()).unwrap();
        p.collect_garbage().unwrap();
        assert_eq!(fs::read_dir(dir.path().join(SEGMENTS_DIR)).unwrap().count(), 0);
    }

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
