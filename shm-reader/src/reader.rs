//! Following a store directory across generations.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use semantic_index::layout::{self, LayoutError, Manifest};

use crate::content::{Content, ContentOpenError};
use crate::search::{DeletedSet, Explanation, Hit, Hits, Query, Ranking, SearchOptions};
use crate::segment::{Check, DocRef, OpenError, Segment};

/// Why a reader could not load a generation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// The store directory does not exist or cannot be read. The message includes the cause
    /// (no separate `source()`, so a printed chain names it once).
    #[error("cannot read store directory {}: {cause}", path.display())]
    Store {
        /// The directory.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// `HEAD` or a manifest could not be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A segment failed a check.
    #[error(transparent)]
    Segment(#[from] OpenError),
    /// A segment file is not the one its manifest names (its checksum differs): a file copied
    /// from elsewhere, or replaced.
    #[error(
        "segment {file}: the file's checksum {found:#018x} is not the manifest's {expected:#018x} \
         (not the segment this store wrote)"
    )]
    Checksum {
        /// The segment file.
        file: String,
        /// The manifest's checksum.
        expected: u64,
        /// The file's.
        found: u64,
    },
    /// The manifest `HEAD` names belongs to another store, or the store has no identity.
    #[error("manifest {manifest} does not belong to store {} (store identities differ)", dir.display())]
    Foreign {
        /// The store directory.
        dir: PathBuf,
        /// The manifest's file name.
        manifest: String,
    },
    /// A segment's content file failed a check (a missing one is not an error).
    #[error(transparent)]
    Content(#[from] ContentOpenError),
    /// A manifest's document count disagrees with its segment file.
    #[error("segment {file}: manifest says {expected} documents, file holds {found}")]
    DocCount {
        /// The segment file.
        file: String,
        /// The manifest's count.
        expected: u32,
        /// The file's count.
        found: u32,
    },
}

/// How many times a reload starts again from `HEAD` because the writer moved it on and removed
/// a file the older manifest named.
const RELOAD_ATTEMPTS: u32 = 64;

/// `HEAD`'s content, or nothing if it cannot be read (compared, never parsed).
fn head_name(dir: &Path) -> Option<Vec<u8>> {
    layout::read_file(&layout::head_path(dir), 4096).ok()
}

/// Whether a load failed because a file it named is gone (what garbage collection does to the
/// files of older generations).
fn vanished(e: &ReaderError) -> bool {
    match e {
        ReaderError::Layout(l) => l.is_not_found(),
        ReaderError::Content(c) => c.is_not_found(),
        ReaderError::Segment(OpenError { check: Check::Io(io), .. }) => {
            io.kind() == std::io::ErrorKind::NotFound
        }
        _ => false,
    }
}

/// A segment mapped and validated, with its content file if it has one.
type Mapped = (Arc<Segment>, Option<Arc<Content>>);
type Loaded = Result<Mapped, ReaderError>;

/// The manifest's segments in order: those in `reused` as they are, the others mapped and
/// validated on up to [`LOAD_THREADS`] threads (a segment is read and hashed whole: the work
/// splits by segment).
fn open_missing(dir: &Path, manifest: &Manifest, reused: Vec<Option<Mapped>>) -> Vec<Loaded> {
    let entries = &manifest.segments;
    let missing: Vec<usize> = (0..entries.len()).filter(|&i| reused[i].is_none()).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(LOAD_THREADS)
        .min(missing.len());
    let open = |i: usize| -> Loaded {
        let entry = &entries[i];
        let path = layout::segment_path(dir, &entry.file);
        // SAFETY: segment files named by a published manifest are immutable: written once
        // through atomic-write, renamed into place, never modified or truncated, only unlinked
        // once no manifest names them (ARCHITECTURE.md).
        let segment = Arc::new(unsafe { Segment::map(&path) }?);
        let content = crate::content::open_for(dir, &entry.file, entry.checksum)?;
        Ok((segment, content))
    };
    let mut opened: Vec<(usize, Loaded)> = Vec::with_capacity(missing.len());
    if threads < 2 {
        opened.extend(missing.iter().map(|&i| (i, open(i))));
    } else {
        // Thread `t` takes every `threads`-th missing segment.
        std::thread::scope(|s| {
            let open = &open;
            let missing = &missing;
            let workers: Vec<_> = (1..threads)
                .map(|t| {
                    s.spawn(move || {
                        missing
                            .iter()
                            .skip(t)
                            .step_by(threads)
                            .map(|&i| (i, open(i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            opened.extend(missing.iter().step_by(threads).map(|&i| (i, open(i))));
            for w in workers {
                match w.join() {
                    Ok(r) => opened.extend(r),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
    }
    opened.sort_unstable_by_key(|&(i, _)| i);
    let mut opened = opened.into_iter().map(|(_, r)| r);
    // `opened` holds one result per empty slot of `reused`, in order.
    reused
        .into_iter()
        .filter_map(|r| match r {
            Some(mapped) => Some(Ok(mapped)),
            None => opened.next(),
        })
        .collect()
}

/// The most threads a load maps and validates segments on.
const LOAD_THREADS: usize = 4;

struct Live {
    file: String,
    segment: Arc<Segment>,
    deleted: DeletedSet,
    /// The segment's content file, if it has one (`content.rs`).
    content: Option<Arc<Content>>,
}

/// One generation of a store's index: its live segments and their deletions, immutable.
///
/// A snapshot keeps its mappings alive: searches on it stay valid after the reader moved on and
/// the writer deleted the files.
pub struct Snapshot {
    generation: u64,
    commit_seq: u64,
    manifest: Option<String>,
    segments: Vec<Live>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    fn empty() -> Snapshot {
        Snapshot { generation: 0, commit_seq: 0, manifest: None, segments: Vec::new() }
    }

    /// The content file of live segment `index`, if it has one.
    pub(crate) fn content_file(&self, index: usize) -> Option<&Content> {
        self.segments.get(index)?.content.as_deref()
    }

    /// The generation (0 before the first publication).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The writer's commit sequence this generation covers.
    pub fn commit_seq(&self) -> u64 {
        self.commit_seq
    }

    /// How many live segments there are.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Live documents.
    pub fn len(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| u64::from(s.segment.len() - s.deleted.len().min(s.segment.len())))
            .sum()
    }

    /// Whether there is no live document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Searches every live segment; `hits` is cleared first. No allocation.
    pub fn search(&self, query: &Query, options: &SearchOptions, hits: &mut Hits) {
        hits.clear();
        match options.ranking.lexical() {
            Ranking::Bm25f => {
                // Global statistics: idf from the document frequencies of every live segment,
                // so that scores compare across segments.
                query.rank_stats(self.segments.iter().map(|live| &*live.segment));
                for (tag, live) in self.segments.iter().enumerate() {
                    live.segment.search_ranked(query, options, &live.deleted, tag as u32, hits);
                }
            }
            _ => {
                for (tag, live) in self.segments.iter().enumerate() {
                    live.segment.search_jaccard(query, options, &live.deleted, tag as u32, hits);
                }
            }
        }
        hits.finish();
    }

    /// The document a hit of this snapshot names (`None` if the hit came from another one).
    pub fn doc(&self, hit: &Hit) -> Option<DocRef<'_>> {
        let doc = self.segments.get(hit.segment as usize)?.segment.doc(hit.ordinal)?;
        (doc.id() == hit.id).then_some(doc)
    }

    /// The live document with `id`.
    pub fn get(&self, id: &[u8; 16]) -> Option<DocRef<'_>> {
        self.segments.iter().rev().find_map(|live| {
            let ordinal = live.segment.find(id)?;
            if live.deleted.contains(ordinal) {
                return None;
            }
            live.segment.doc(ordinal)
        })
    }

    /// Memories related to `id`: its own keywords as the query, itself excluded. `false` if
    /// there is no live memory with that id. Prepares a query, so it allocates.
    pub fn related(&self, id: &[u8; 16], options: &SearchOptions, hits: &mut Hits) -> bool {
        hits.clear();
        let Some(query) = self
            .get(id)
            .map(|doc| Query::from_prepared(doc.keywords().map(str::to_owned).collect()))
        else {
            return false;
        };
        let options = SearchOptions { exclude: Some(*id), ..options.clone() };
        self.search(&query, &options, hits);
        true
    }

    /// Sacred memories, newest first (then id ascending), optionally of one domain.
    pub fn sacred(&self, domain: Option<&str>, limit: usize) -> Vec<DocRef<'_>> {
        let mut out: Vec<DocRef<'_>> = Vec::new();
        for live in &self.segments {
            let mut taken = 0;
            for ordinal in live.segment.sacred() {
                if taken == limit {
                    break;
                }
                if live.deleted.contains(ordinal) {
                    continue;
                }
                let Some(doc) = live.segment.doc(ordinal) else { continue };
                if domain.is_some_and(|d| doc.domain() != d) {
                    continue;
                }
                out.push(doc);
                taken += 1;
            }
        }
        out.sort_by(|a, b| {
            b.timestamp_micros().cmp(&a.timestamp_micros()).then(a.id().cmp(&b.id()))
        });
        out.truncate(limit);
        out
    }

    /// Explains a hit of this snapshot.
    pub fn explain(
        &self,
        query: &Query,
        hit: &Hit,
        options: &SearchOptions,
    ) -> Option<Explanation> {
        self.doc(hit)?;
        let segment = &self.segments.get(hit.segment as usize)?.segment;
        if options.ranking.lexical() == Ranking::Bm25f {
            query.rank_stats(self.segments.iter().map(|live| &*live.segment));
            return segment.explain_ranked(query, hit.ordinal, options);
        }
        segment.explain(query, hit.ordinal, options)
    }

    /// Every live document, segment by segment.
    pub fn docs(&self) -> impl Iterator<Item = DocRef<'_>> + '_ {
        self.segments.iter().flat_map(|live| {
            (0..live.segment.len())
                .filter(|&o| !live.deleted.contains(o))
                .filter_map(|o| live.segment.doc(o))
        })
    }

    /// Where the live document with `id` is: its segment's index in this snapshot and its ordinal.
    pub fn locate(&self, id: &[u8; 16]) -> Option<(usize, u32)> {
        self.segments.iter().enumerate().rev().find_map(|(i, live)| {
            let ordinal = live.segment.find(id)?;
            (!live.deleted.contains(ordinal)).then_some((i, ordinal))
        })
    }

    /// The ids of the live documents of segment `index`.
    pub fn segment_ids(&self, index: usize) -> impl Iterator<Item = [u8; 16]> + '_ {
        self.segments.get(index).into_iter().flat_map(|live| {
            (0..live.segment.len())
                .filter(|&o| !live.deleted.contains(o))
                .filter_map(|o| live.segment.doc(o))
                .map(|d| d.id())
        })
    }

    /// Runs [`Segment::verify`]'s deep checks on every live segment.
    pub fn verify(&self) -> Result<(), OpenError> {
        for live in &self.segments {
            live.segment.verify().map_err(|mut e| {
                e.path = Some(PathBuf::from(&live.file));
                e
            })?;
        }
        Ok(())
    }

    /// The deleted ordinals of live segment `index` (for scans beside the segment, such as
    /// vector search).
    pub fn deleted(&self, index: usize) -> Option<&DeletedSet> {
        self.segments.get(index).map(|l| &l.deleted)
    }

    /// Documents (deleted included) of live segment `index`.
    pub fn segment_doc_count(&self, index: usize) -> Option<u32> {
        self.segments.get(index).map(|l| l.segment.len())
    }

    /// The id of document `ordinal` of live segment `index`, deleted or not.
    pub fn segment_doc_id(&self, index: usize, ordinal: u32) -> Option<[u8; 16]> {
        Some(self.segments.get(index)?.segment.doc(ordinal)?.id())
    }

    /// Document `ordinal` of live segment `index`, unless deleted.
    pub fn segment_doc(&self, index: usize, ordinal: u32) -> Option<DocRef<'_>> {
        let live = self.segments.get(index)?;
        if live.deleted.contains(ordinal) {
            return None;
        }
        live.segment.doc(ordinal)
    }

    /// Live documents of segment `index` (0 past the end).
    pub fn segment_live_count(&self, index: usize) -> u64 {
        self.segments
            .get(index)
            .map_or(0, |l| u64::from(l.segment.len() - l.deleted.len().min(l.segment.len())))
    }

    /// The segments' files and sizes, for statistics.
    pub fn segment_files(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.segments.iter().map(|l| (l.file.as_str(), l.segment.size_bytes()))
    }
}

/// Follows a store directory: maps the segments `HEAD`'s manifest names and moves to each new
/// generation as it is published.
///
/// The check for a new generation is one atomic load from the mapped beacon file, done at every
/// [`Reader::search`]: no system call. Loading a new generation reads `HEAD` and the manifest,
/// keeps the mappings of segments that stay live, maps and validates the new ones, and builds
/// deletion bitsets: that is the only work (and allocation) per generation.
pub struct Reader {
    dir: PathBuf,
    store_id: Option<[u8; 16]>,
    beacon: Option<memmap2::Mmap>,
    seen: u64,
    snapshot: Arc<Snapshot>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("dir", &self.dir)
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens the store directory `dir` read-only. A store with nothing published yet gives an
    /// empty reader that picks up the first publication.
    pub fn open(dir: impl AsRef<Path>) -> Result<Reader, ReaderError> {
        let dir = dir.as_ref().to_owned();
        std::fs::read_dir(&dir).map_err(|cause| ReaderError::Store { path: dir.clone(), cause })?;
        let mut reader = Reader {
            dir,
            store_id: None,
            beacon: None,
            seen: u64::MAX,
            snapshot: Arc::new(Snapshot::empty()),
        };
        reader.reload()?;
        Ok(reader)
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn beacon_value(&mut self) -> Option<u64> {
        if self.beacon.is_none() {
            let path = layout::beacon_path(&self.dir);
            let file = layout::open_file(&path, std::fs::OpenOptions::new().read(true)).ok()?;
            if file.metadata().ok()?.len() < layout::BEACON_LEN as u64 {
                return None;
            }
            // SAFETY: the beacon is created once at its full length and never truncated (the
            // publisher only writes 8 bytes in place), so the mapping stays backed; it is
            // mapped read-only and only read through an atomic load.
            self.beacon =
                unsafe { memmap2::MmapOptions::new().len(layout::BEACON_LEN).map(&file) }.ok();
        }
        let map = self.beacon.as_ref()?;
        if map.len() < 8
            || !(map.as_ptr() as usize).is_multiple_of(std::mem::align_of::<AtomicU64>())
        {
            return None;
        }
        // SAFETY: the mapping is at least 8 bytes long and 8-aligned (checked above; mappings are
        // page-aligned), lives as long as `self`, and is only ever read through this atomic. The
        // writer updates it with a plain 8-byte write from another process; a torn value can
        // only cause a spurious reload, because HEAD, not the beacon, is the truth.
        let atomic = unsafe { &*(map.as_ptr() as *const AtomicU64) };
        Some(u64::from_le(atomic.load(Ordering::Acquire)))
    }

    /// Moves to the newest published generation if the beacon says there is one. One atomic
    /// load when nothing changed. Returns whether the generation changed.
    pub fn refresh(&mut self) -> Result<bool, ReaderError> {
        match self.beacon_value() {
            Some(v) if v == self.seen => Ok(false),
            _ => self.reload(),
        }
    }

    fn reload(&mut self) -> Result<bool, ReaderError> {
        let seen = self.beacon_value().unwrap_or(u64::MAX);
        // The writer's garbage collection may remove the manifest HEAD names, or a segment it
        // names, while we read: a reader slow to map a big segment can be overtaken by several
        // publications. HEAD has then moved on, so read it again. A file missing while HEAD
        // still names the same manifest is real damage and an error.
        let mut attempt = 0;
        loop {
            let before = head_name(&self.dir);
            match self.reload_once() {
                Ok(changed) => {
                    self.seen = seen;
                    return Ok(changed);
                }
                Err(e) if vanished(&e) && attempt < RELOAD_ATTEMPTS => {
                    if head_name(&self.dir) == before {
                        return Err(e);
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn reload_once(&mut self) -> Result<bool, ReaderError> {
        let Some((name, manifest)) = layout::read_head(&self.dir)? else { return Ok(false) };
        if self.snapshot.manifest.as_deref() == Some(name.as_str()) {
            return Ok(false);
        }
        if self.store_id != Some(manifest.store_id) {
            // First manifest, or a writer that gave a damaged store a new identity: read again.
            self.store_id = layout::read_store_id(&self.dir)?;
        }
        if self.store_id != Some(manifest.store_id) {
            return Err(ReaderError::Foreign { dir: self.dir.clone(), manifest: name });
        }
        let next = self.load(name, &manifest)?;
        self.snapshot = Arc::new(next);
        Ok(true)
    }

    fn load(&self, name: String, manifest: &Manifest) -> Result<Snapshot, ReaderError> {
        let mut segments = Vec::with_capacity(manifest.segments.len());
        // Segments that stay live keep their mapping; the new ones are mapped and validated
        // (checksum, structure, content file) on every core: at a million memories that is a
        // few hundred MiB to read and hash, nearly all of a writer's open (benches/NOTES.md,
        // issue 17).
        let reused: Vec<Option<Mapped>> = manifest
            .segments
            .iter()
            .map(|entry| {
                self.snapshot
                    .segments
                    .iter()
                    .find(|l| l.file == entry.file)
                    .map(|l| (l.segment.clone(), l.content.clone()))
            })
            .collect();
        for (entry, loaded) in
            manifest.segments.iter().zip(open_missing(&self.dir, manifest, reused))
        {
            let (segment, content) = loaded?;
            if segment.checksum() != entry.checksum {
                return Err(ReaderError::Checksum {
                    file: entry.file.clone(),
                    expected: entry.checksum,
                    found: segment.checksum(),
                });
            }
            if segment.len() != entry.doc_count {
                return Err(ReaderError::DocCount {
                    file: entry.file.clone(),
                    expected: entry.doc_count,
                    found: segment.len(),
                });
            }
            let deleted = if entry.deleted.is_empty() {
                DeletedSet::empty()
            } else {
                DeletedSet::from_sorted(&entry.deleted, entry.doc_count)
            };
            segments.push(Live { file: entry.file.clone(), segment, deleted, content });
        }
        Ok(Snapshot {
            generation: manifest.generation,
            commit_seq: manifest.commit_seq,
            manifest: Some(name),
            segments,
        })
    }

    /// The current snapshot; it stays valid (and mapped) however far the reader moves on.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.clone()
    }

    /// The generation of the current snapshot.
    pub fn generation(&self) -> u64 {
        self.snapshot.generation
    }

    /// Live documents in the current snapshot.
    pub fn len(&self) -> u64 {
        self.snapshot.len()
    }

    /// Whether the current snapshot has no live document.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_empty()
    }

    /// Refreshes, then searches every live segment into `hits` (cleared first). When the
    /// generation did not change this allocates nothing.
    pub fn search(
        &mut self,
        query: &Query,
        options: &SearchOptions,
        hits: &mut Hits,
    ) -> Result<(), ReaderError> {
        self.refresh()?;
        self.snapshot.search(query, options, hits);
        Ok(())
    }

    /// The document a hit names, if the hit came from the current snapshot.
    pub fn doc(&self, hit: &Hit) -> Option<DocRef<'_>> {
        self.snapshot.doc(hit)
    }

    /// The live document with `id` in the current snapshot.
    pub fn get(&self, id: &[u8; 16]) -> Option<DocRef<'_>> {
        self.snapshot.get(id)
    }

    /// Refreshes, then finds memories related to `id` (see [`Snapshot::related`]).
    pub fn related(
        &mut self,
        id: &[u8; 16],
        options: &SearchOptions,
        hits: &mut Hits,
    ) -> Result<bool, ReaderError> {
        self.refresh()?;
        Ok(self.snapshot.related(id, options, hits))
    }

    /// Sacred memories of the current snapshot, newest first.
    pub fn sacred(&self, domain: Option<&str>, limit: usize) -> Vec<DocRef<'_>> {
        self.snapshot.sacred(domain, limit)
    }

    /// Explains a hit of the current snapshot.
    pub fn explain(
        &self,
        query: &Query,
        hit: &Hit,
        options: &SearchOptions,
    ) -> Option<Explanation> {
        self.snapshot.explain(query, hit, options)
    }
}
