//! The store: records, index publication, merge policy, search.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use index_publisher::{PublishError, Publisher};
use semantic_index::content::ContentBuilder;
use semantic_index::layout::{LayoutError, SegmentEntry};
use semantic_index::{BuildError, SegmentBuilder};
use serde::Serialize;
use shm_reader::{DocRef, Hits, Query, Reader, ReaderError, SearchOptions};
use uuid::Uuid;

use crate::files;
use crate::memory::{InvalidMemory, Memory};
use crate::records::{self, Change, Entry, Records, RecordsCheck, RecordsError, RepairReport};

pub(crate) mod hybrid;

/// The writer's lock file.
pub const LOCK_FILE: &str = "LOCK";
/// How long [`MemoryStore::open`] waits for a writer lock another process holds.
const LOCK_WAIT: Duration = Duration::from_millis(100);
/// How many times a read-only load of the records starts again because the writer's
/// compaction removed a file between the listing and the read.
const RECORDS_LOAD_ATTEMPTS: u32 = 16;
/// Segments of one size tier that trigger a merge.
const MERGE_FACTOR: usize = 4;
/// The most documents a segment built by the writer holds: rebuilds and bulk ingests cut their
/// segments here, and tiered merges never make a larger one, so that a build's memory is bounded
/// by a constant, whatever the store's size (issue 17).
/// 2^18: a build of that many documents peaks at about 0.7 GB (2^19 measured 1.3 GB at 1M),
/// within issue 17's 1 GB for ingest and rebuild; a million memories are four segments.
#[cfg(not(test))]
pub(crate) const SEGMENT_DOCS_MAX: usize = 1 << 18;
/// Small in unit tests, so that they cut segments.
#[cfg(test)]
pub(crate) const SEGMENT_DOCS_MAX: usize = 1 << 11;
/// The most documents a merge takes its members' ids from their own files (read whole, a few
/// MB) instead of from the whole index: tiered merges of single stores stay below it for the
/// first several thousand stores after a bulk ingest.
const SMALL_MERGE_DOCS: usize = SEGMENT_DOCS_MAX / 16;

mod bulk;
mod lazy;
mod pipeline;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the writer lock.
    #[error("store {} is locked by {}", dir.display(), pid.map_or_else(|| "another process".to_string(), |p| format!("pid {p}")))]
    Locked {
        /// The store.
        dir: PathBuf,
        /// The holder's pid, if it wrote one.
        pid: Option<u32>,
    },
    /// A memory was refused; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] InvalidMemory),
    /// A memory with this id is already stored.
    #[error("a memory with id {0} is already stored")]
    Duplicate(Uuid),
    /// Memories were stored (or forgotten) durably, but the index could not be updated after
    /// the commit (a full disk, say). Nothing is lost and nothing must be stored again: the
    /// index catches up at the next write to the store, or with [`MemoryStore::rebuild`].
    #[error(
        "{} durably, but the index was not updated ({source}); it catches up at the next write \
         to the store (or `mcs rebuild`)",
        committed(.ids, *.forgotten)
    )]
    Unpublished {
        /// The ids stored (or the one forgotten).
        ids: Vec<Uuid>,
        /// Whether the commit forgot `ids[0]` rather than storing `ids`.
        forgotten: bool,
        /// Why the index was not updated.
        #[source]
        source: Box<Error>,
    },
    /// The index is missing or older than the records, and no writer is catching it up.
    #[error(
        "the index of {} covers commit {index_seq} but the records reach commit {records_seq}: \
         it is missing or stale, so reads would miss memories; `mcs rebuild` (or any write) \
         rebuilds it",
        dir.display()
    )]
    IndexBehind {
        /// The store.
        dir: PathBuf,
        /// The commit the index covers (0: no index).
        index_seq: u64,
        /// The records' last commit.
        records_seq: u64,
    },
    /// A store directory others may write: another user may have planted files in it.
    #[error(
        "{} is writable by other users (mode {mode:o}): check that nobody planted files in it, \
         then `chmod 700` it",
        path.display()
    )]
    WritableByOthers {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A path of the store that must be a directory is something else (a link, a file).
    #[error("{} is not a directory (store directories are never followed through links)", .0.display())]
    NotADirectory(PathBuf),
    /// A search option out of its domain.
    #[error("search option {name} must be a finite number, got {value}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A replicated commit that is not the next one.
    #[error("store {} expected commit {expected} next, was given commit {got}", dir.display())]
    OutOfOrder {
        /// The store.
        dir: PathBuf,
        /// The commit it expected.
        expected: u64,
        /// The commit it was given.
        got: u64,
    },
    /// A write on a store opened read-only.
    #[error("store {} is open read-only", .0.display())]
    ReadOnly(PathBuf),
    /// A file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The records could not be read or written.
    #[error(transparent)]
    Records(#[from] RecordsError),
    /// Reading the index's `HEAD`, a manifest or the store identity failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Writing the index failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Building a segment failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Reading the index failed.
    #[error(transparent)]
    Reader(#[from] ReaderError),
    /// Embedding memories failed (the model, or what it returned).
    #[error("embedding: {0}")]
    Embed(String),
}

fn committed(ids: &[Uuid], forgotten: bool) -> String {
    match (ids, forgotten) {
        ([id], true) => format!("forgot memory {id}"),
        ([id], false) => format!("stored memory {id}"),
        (ids, _) => {
            let shown: Vec<String> = ids.iter().take(3).map(Uuid::to_string).collect();
            let more = if ids.len() > 3 { ", ..." } else { "" };
            format!("stored {} memories ({}{more})", ids.len(), shown.join(", "))
        }
    }
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a hit scored what it did, part by part.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Why {
    /// The ranking: `bm25f` or `jaccard`.
    pub ranking: &'static str,
    /// The query keywords (Jaccard) or ranked terms (BM25F) the memory has.
    pub matched: Vec<String>,
    /// Jaccard: overlap / |Q ∪ D|. BM25F: the relevance (the sum of the terms' contributions).
    pub relevance: f64,
    /// BM25F: each matched term's contribution, with its frequency in each field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<WhyTerm>,
    /// `w_score · score`.
    pub score_boost: f64,
    /// `w_sacred · [sacred]`.
    pub sacred_boost: f64,
    /// What the lexical and vector rankings contributed (hybrid and vector searches only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<hybrid::HybridWhy>,
}

/// One ranked term's part of a BM25F relevance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WhyTerm {
    /// The term (stemmed).
    pub term: String,
    /// Its idf over the live segments.
    pub idf: f64,
    /// Its saturated, length-normalized frequency in the memory, in [0, 1).
    pub impact: f64,
    /// `idf · impact`.
    pub contribution: f64,
    /// Its occurrences in the question, the insights and the synthesis (from the records).
    pub tf: FieldTf,
}

/// A term's occurrences per field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FieldTf {
    /// In the question.
    pub question: u32,
    /// In the first five insights.
    pub insights: u32,
    /// In the synthesis.
    pub synthesis: u32,
}

/// One memory found, with what a listing shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Found {
    /// The memory's id.
    pub id: Uuid,
    /// Its search score (for sacred listings: its own score).
    pub score: f64,
    /// Its domain.
    pub domain: String,
    /// Whether it is sacred.
    pub sacred: bool,
    /// When it was made.
    pub timestamp: DateTime<Utc>,
    /// Its question, cut to a bound.
    pub gist: String,
    /// Why it scored that (search and related only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
}

/// The answer to a search or a related query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchResults {
    /// The query's keywords.
    pub keywords: Vec<String>,
    /// The index generation searched.
    pub generation: u64,
    /// The hits, best first ([`shm_reader::Hit::cmp_rank`]'s order).
    pub hits: Vec<Found>,
}

/// What a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// Ids stored.
    pub stored: Vec<Uuid>,
    /// Ids skipped because a memory with that id was already stored.
    pub skipped: Vec<Uuid>,
}

/// Counts for `mcs stats`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Live memories in the index.
    pub memories: u64,
    /// Sacred memories among them.
    pub sacred: u64,
    /// Memories per domain.
    pub domains: BTreeMap<String, u64>,
    /// Index generation.
    pub generation: u64,
    /// Commit sequence the index covers.
    pub commit_seq: u64,
    /// Live segments.
    pub segments: usize,
    /// Bytes of live segments.
    pub index_bytes: u64,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Memories in the records.
    pub records: usize,
    /// Memories in the index.
    pub indexed: u64,
    /// Last commit in the records.
    pub records_seq: u64,
    /// Commit the index covers.
    pub index_seq: u64,
    /// In the records but not in the index.
    pub missing_from_index: Vec<Uuid>,
    /// In the index but not in the records.
    pub unknown_in_index: Vec<Uuid>,
    /// A segment that failed its deep checks.
    pub damaged_segment: Option<String>,
    /// What reading every record found: damaged records (with ids where known), lost
    /// memories, missing commits.
    pub records_check: RecordsCheck,
}

impl VerifyReport {
    /// Whether the index covers exactly the records.
    pub fn is_ok(&self) -> bool {
        self.missing_from_index.is_empty()
            && self.unknown_in_index.is_empty()
            && self.damaged_segment.is_none()
            && self.records_seq == self.index_seq
            && self.records_check.is_clean()
    }
}

struct Writer {
    _lock: File,
    publisher: Publisher,
    records: Records,
    /// A commit the index missed (its publication failed): the next publication rebuilds.
    index_behind: bool,
    /// Documents of durable commits not yet published ([`MemoryStore::ingest_batch`]).
    pending: Option<bulk::Pending>,
}

/// A store of memories in one directory: durable records and a published, shared index.
///
/// Open it for writing with [`MemoryStore::open`] (one writer at a time, enforced by an OS file
/// lock) or for reading with [`MemoryStore::open_read_only`] (any number, also while a writer
/// works). Readers see each write at their next search.
pub struct MemoryStore {
    dir: PathBuf,
    /// The index; a writer's is opened on its own thread (see `lazy`): reach it through
    /// [`MemoryStore::index`], which waits for it.
    reader: lazy::Index,
    writer: Option<Writer>,
    read_records: OnceCell<Records>,
    repaired: Option<String>,
    vectors: hybrid::VectorCache,
    /// The generation a read-only store last found in step with the records.
    checked_generation: Option<u64>,
    progress: Option<Box<dyn FnMut(u64, u64) + Send>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("dir", &self.dir)
            .field("writable", &self.writer.is_some())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Splits `memories` into those to store and a report that skips ids already stored or
    /// repeated.
    fn fresh(&self, memories: Vec<Memory>) -> Result<(BatchReport, Vec<Memory>)> {
        let mut report = BatchReport::default();
        let mut seen = HashSet::new();
        let mut fresh = Vec::with_capacity(memories.len());
        let ids: Vec<Uuid> = memories.iter().map(|m| m.id).collect();
        let stored = self.records.contains_many(&ids)?;
        for (m, stored) in memories.into_iter().zip(stored) {
            if stored || !seen.insert(m.id) {
                report.skipped.push(m.id);
            } else {
                report.stored.push(m.id);
                fresh.push(m);
            }
        }
        Ok((report, fresh))
    }

    /// Builds segments of at most [`SEGMENT_DOCS_MAX`] documents from every record and publishes
    /// them alone, then removes the files no manifest names. Reads nothing of the old index, so
    /// it works whatever state that is in. Memory: one builder of at most `SEGMENT_DOCS_MAX`
    /// documents and a few batches of records, whatever the store's size; the records are
    /// decoded on one thread while another builds (`pipeline.rs`).
    fn rebuild_index(&mut self, progress: Option<records::Progress<'_>>) -> Result<()> {
        // A rebuild covers every record: documents waiting to be published are in it.
        self.pending = None;
        let Writer { publisher, records, .. } = self;
        let generation = publisher.generation() + 1;
        let segments = pipeline::build_all(publisher, records, generation, progress)?;
        publisher.publish(records.seq(), segments)?;
        self.index_behind = false;
        // Best effort: files left behind are removed by a later collection.
        let _ = self.publisher.collect_garbage();
        Ok(())
    }
}

/// Feeds memories to a builder in batches of documents, as [`add_all`] does, one at a time.
struct Batcher<'a> {
    builder: &'a mut SegmentBuilder,
    content: &'a mut ContentBuilder,
    batch: Vec<semantic_index::Document>,
}

impl<'a> Batcher<'a> {
    const BATCH: usize = 16_384;

    fn new(builder: &'a mut SegmentBuilder, content: &'a mut ContentBuilder) -> Batcher<'a> {
        Batcher { builder, content, batch: Vec::with_capacity(Self::BATCH) }
    }

    fn push(&mut self, m: &Memory) -> Result<()> {
        m.add_content(self.content);
        self.batch.push(m.to_document());
        if self.batch.len() == Self::BATCH {
            self.builder.add_batch(&self.batch)?;
            self.batch.clear();
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        Ok(self.builder.add_batch(&self.batch)?)
    }
}

/// Adds memories to a builder in batches, so that they are tokenized on every core while at
/// most one batch of documents is held at a time: batches of at most 16,384 documents, of even
/// sizes (20k memories are two of 10k, not 16k and a 3.6k tail too small to be split over
/// threads). `document` makes each memory's document: the bulk paths (ingest, rebuild) give
/// their memories up and pass [`Memory::into_document`], which moves the strings instead of
/// copying five per memory.
fn add_all<M: std::borrow::Borrow<Memory>>(
    builder: &mut SegmentBuilder,
    content: &mut ContentBuilder,
    memories: impl ExactSizeIterator<Item = M>,
    document: impl Fn(M) -> semantic_index::Document,
) -> std::result::Result<(), BuildError> {
    const BATCH: usize = 16_384;
    let n = memories.len();
    let size = n.div_ceil(n.div_ceil(BATCH).max(1)).max(1);
    let mut batch = Vec::with_capacity(size.min(n));
    for m in memories {
        m.borrow().add_content(content);
        batch.push(document(m));
        if batch.len() == size {
            builder.add_batch(&batch)?;
            batch.clear();
        }
    }
    builder.add_batch(&batch)
}

/// Refuses weights that are not finite: a NaN or infinite weight makes every score NaN.
fn check_options(options: &SearchOptions) -> Result<()> {
    for (name, value) in [("w_score", options.w_score), ("w_sacred", options.w_sacred)] {
        if !value.is_finite() {
            return Err(Error::InvalidOption { name, value });
        }
    }
    Ok(())
}

fn uuid(bytes: [u8; 16]) -> Uuid {
    Uuid::from_bytes(bytes)
}

fn found(doc: &DocRef<'_>, score: f64, why: Option<Why>) -> Found {
    Found {
        id: uuid(doc.id()),
        score,
        domain: doc.domain().to_owned(),
        sacred: doc.sacred(),
        timestamp: DateTime::from_timestamp_micros(doc.timestamp_micros()).unwrap_or_default(),
        gist: doc.gist().to_owned(),
        why,
    }
}

impl MemoryStore {
    /// Opens (creating if needed) the store in `dir` for writing. Takes the writer lock and
    /// loads the records, which are the truth; the index is derived from them. The index is
    /// rebuilt from the records (and [`MemoryStore::repaired`] says why) when a crash left it
    /// behind, or when it cannot be read at all: a damaged `HEAD`, manifest or segment, a
    /// missing file, or a segment format version this build does not read (how a store moves to
    /// a new format).
    ///
    /// The store directory and its subdirectories are made owner-only (0700); one that other
    /// users may write is refused. If another process holds the writer lock, waits about
    /// 100 ms for it ([`MemoryStore::open_waiting`] waits longer).
    pub fn open(dir: impl AsRef<Path>) -> Result<MemoryStore> {
        MemoryStore::open_waiting(dir, LOCK_WAIT)
    }

    /// Opens like [`MemoryStore::open`], waiting up to `wait` for a writer lock another process
    /// holds (concurrent writers then take turns instead of failing).
    pub fn open_waiting(dir: impl AsRef<Path>, wait: Duration) -> Result<MemoryStore> {
        let dir = dir.as_ref().to_owned();
        files::prepare_writable(&dir)?;
        // The lock first: everything after it (the publisher's recovery writes the beacon and
        // names files after the newest generation) must see the previous writer's last word.
        let lock = files::lock(&dir, wait)?;
        let (publisher, damaged_head) = Publisher::recover(&dir)?;
        let records = Records::open(&dir, true)?;
        let mut writer =
            Writer { _lock: lock, publisher, records, index_behind: false, pending: None };
        let mut repaired = None;
        let reader = match damaged_head {
            // The manifest read; the segments are opened and checked by the first operation
            // that reads them (or on their own thread: `open_index_in_background`).
            None => lazy::Index::deferred(&dir),
            Some(damage) => {
                writer.rebuild_index(None)?;
                repaired = Some(format!("the index could not be read ({damage})"));
                lazy::Index::opened(&dir, Reader::open(&dir)?)
            }
        };
        // The manifest `HEAD` names (the publisher read it): its commit and counts.
        let (index_seq, indexed, without_content) = match writer.publisher.current() {
            Some(m) => (
                m.commit_seq,
                m.segments.iter().map(|s| u64::from(s.live())).sum::<u64>(),
                m.segments
                    .iter()
                    .filter(|s| {
                        let content = semantic_index::content::content_file_name(&s.file);
                        !semantic_index::layout::segment_path(&dir, &content).exists()
                    })
                    .count(),
            ),
            None => (0, 0, 0),
        };
        let generation = writer.publisher.generation();
        let mut store = MemoryStore {
            dir,
            reader,
            writer: Some(writer),
            read_records: OnceCell::new(),
            repaired,
            vectors: hybrid::VectorCache::default(),
            checked_generation: None,
            progress: None,
        };
        let records = &store.writer.as_ref().map_or(0, |w| w.records.len());
        let seq = store.writer.as_ref().map_or(0, |w| w.records.seq());
        if index_seq > seq {
            // The index is only published after its commit is durable: records that end
            // before it lost acknowledged commits (a cut or replaced log).
            return Err(Error::Records(RecordsError::Lost {
                count: indexed.saturating_sub(*records),
                detail: format!(
                    "the index was published at commit {index_seq} but the records end at commit {seq}{}",
                    store
                        .writer
                        .as_ref()
                        .and_then(|w| w.records.torn_tail())
                        .map(|(at, len)| format!(" ({len} damaged bytes at byte {at} of the log)"))
                        .unwrap_or_default()
                ),
            }));
        }
        if without_content > 0 && store.repaired.is_none() {
            // Segments of a build without content files: rebuilt, so readers can quote.
            store.rebuild()?;
            let segments = if without_content == 1 { "segment" } else { "segments" };
            store.repaired = Some(format!(
                "{without_content} {segments} had no content file (written by an older build)"
            ));
        } else if index_seq != seq || indexed != *records {
            store.rebuild()?;
            if store.repaired.is_none() && (generation != 0 || *records != 0) {
                store.repaired = Some(format!(
                    "the index covered commit {index_seq} of {seq} ({indexed} of {records} memories)"
                ));
            }
        }
        Ok(store)
    }

    /// Starts opening (and checking) the index on a thread of its own, for a writer that will
    /// search soon: its first search then waits only for what is left of the open. A writer
    /// opens its index only when something reads it otherwise (issue 17: a process that only
    /// stores never maps it).
    pub fn open_index_in_background(&mut self) {
        self.reader.start();
    }

    /// Why [`MemoryStore::open`] rebuilt the index from the records, if it did. Waits for the
    /// index that the open checks on its own thread (its damage is found there); if it cannot
    /// be opened at all, the next operation that reads it says why.
    pub fn repaired(&mut self) -> Option<&str> {
        let _ = self.index();
        self.repaired.as_deref()
    }

    /// The index, open and refreshed to the newest generation: waits for the writer's open
    /// (and its checks) on the first call. An index a writer finds damaged is rebuilt from
    /// the records, as at open, and [`MemoryStore::repaired`] says why.
    fn index(&mut self) -> Result<&mut Reader> {
        match self.reader.wait() {
            Ok(_) => {}
            Err(e @ ReaderError::Store { .. }) => return Err(e.into()),
            Err(damage) => {
                let Some(writer) = self.writer.as_mut() else { return Err(damage.into()) };
                writer.rebuild_index(None)?;
                self.repaired
                    .get_or_insert_with(|| format!("the index could not be read ({damage})"));
            }
        }
        let reader = self.reader.wait()?;
        reader.refresh()?;
        Ok(reader)
    }

    /// The current snapshot of the index (see [`MemoryStore::index`]).
    fn snapshot(&mut self) -> Result<std::sync::Arc<shm_reader::Snapshot>> {
        Ok(self.index()?.snapshot())
    }

    /// Opens the store in `dir` for reading only; takes no lock. Refuses a store other users
    /// may write. Searches, [`MemoryStore::stats`] and the other index reads fail with
    /// [`Error::IndexBehind`] when the index is missing or older than the records and no writer
    /// holds the lock to catch it up.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<MemoryStore> {
        let dir = dir.as_ref().to_owned();
        files::check_readable(&dir)?;
        let reader = lazy::Index::opened(&dir, Reader::open(&dir)?);
        Ok(MemoryStore {
            dir,
            reader,
            writer: None,
            read_records: OnceCell::new(),
            repaired: None,
            vectors: hybrid::VectorCache::default(),
            checked_generation: None,
            progress: None,
        })
    }

    /// Refreshes the index, then checks that it is not behind the records (see
    /// [`Error::IndexBehind`]). A writer's own index is caught up first if a publication failed.
    fn refresh_checked(&mut self) -> Result<()> {
        self.publish_pending()?;
        if let Some(w) = self.writer.as_mut() {
            if w.index_behind {
                w.rebuild_index(None)?;
            }
            self.index()?;
            return Ok(());
        }
        let generation = self.index()?.snapshot().generation();
        if self.checked_generation == Some(generation) {
            return Ok(());
        }
        // The records first, then the index: a writer publishes after it commits and releases
        // its lock after it publishes, so an index that is still behind the commit read here
        // once no writer holds the lock (checked, then the index read again) is really behind,
        // not merely a moment late.
        let records_seq = records::last_seq(&self.dir)?;
        if self.snapshot()?.commit_seq() < records_seq && files::writer_active(&self.dir) {
            return Ok(());
        }
        let snapshot = self.snapshot()?;
        if snapshot.commit_seq() < records_seq {
            return Err(Error::IndexBehind {
                dir: self.dir.clone(),
                index_seq: snapshot.commit_seq(),
                records_seq,
            });
        }
        self.checked_generation = Some(snapshot.generation());
        Ok(())
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this store holds the writer lock.
    pub(crate) fn is_writable(&self) -> bool {
        self.writer.is_some()
    }

    /// The index, refreshed and checked against the records (as searches are).
    pub(crate) fn snapshot_checked(&mut self) -> Result<std::sync::Arc<shm_reader::Snapshot>> {
        self.refresh_checked()?;
        self.snapshot()
    }

    /// The index generation this store currently sees (a writer: the one it last published).
    pub fn generation(&self) -> u64 {
        match (&self.writer, self.reader.get()) {
            (Some(w), _) => w.publisher.generation(),
            (None, Some(reader)) => reader.generation(),
            (None, None) => 0,
        }
    }

    fn writer(&mut self) -> Result<&mut Writer> {
        let dir = self.dir.clone();
        self.writer.as_mut().ok_or(Error::ReadOnly(dir))
    }

    /// Stores one memory durably and publishes it. Refuses an id already stored.
    pub fn store(&mut self, memory: Memory) -> Result<Uuid> {
        let id = memory.id;
        let report = self.store_batch(vec![memory])?;
        if report.skipped.contains(&id) {
            return Err(Error::Duplicate(id));
        }
        Ok(id)
    }

    /// Stores memories as one durable commit (group commit) and publishes them as one new
    /// generation. Every memory is validated first: one invalid memory stores nothing. Ids
    /// already stored (or repeated in the batch) are skipped and reported.
    pub fn store_batch(&mut self, memories: Vec<Memory>) -> Result<BatchReport> {
        for m in &memories {
            m.validate()?;
        }
        // Earlier ingested documents first. A failure leaves the index behind, and this batch's
        // publication then rebuilds it (or reports that it could not).
        let _ = self.publish_pending();
        let writer = self.writer()?;
        let (report, fresh) = writer.fresh(memories)?;
        if fresh.is_empty() {
            return Ok(report);
        }
        let mut builder = SegmentBuilder::new().generation(writer.publisher.generation() + 1);
        let mut content = ContentBuilder::new();
        add_all(&mut builder, &mut content, fresh.iter(), Memory::to_document)?;
        let entries = fresh.into_iter().map(|m| Entry::Put(Box::new(m))).collect();
        if writer.index_behind {
            let seq = writer.records.commit(entries)?;
            // Durable from here on: a failure is reported as such, never as "not stored".
            let published = self.publish_batch(seq, &builder, &content);
            self.after_commit(published, &report.stored, false)?;
            return Ok(report);
        }
        // The publication's files are written while the commit's fdatasync runs; `HEAD` names
        // them only after both are durable (a failed commit leaves unnamed files, collected).
        let next = writer.records.seq() + 1;
        let segments = writer.publisher.current().map(|m| m.segments.clone()).unwrap_or_default();
        let publisher = &mut writer.publisher;
        let (committed, prepared) = writer.records.commit_overlapped(entries, || {
            publisher.prepare_with_segment(next, segments, &builder, Some(&content))
        });
        let seq = committed?;
        // Durable from here on: a failure is reported as such, never as "not stored".
        debug_assert_eq!(seq, next, "a commit's sequence number is the next one");
        let headed = prepared.and_then(|prepared| writer.publisher.point_head_at(prepared));
        let published = match headed {
            Ok(_) => self.after_publish(seq),
            Err(e) => Err(e.into()),
        };
        self.after_commit(published, &report.stored, false)?;
        Ok(report)
    }

    fn publish_batch(
        &mut self,
        seq: u64,
        builder: &SegmentBuilder,
        content: &ContentBuilder,
    ) -> Result<()> {
        let writer = self.writer()?;
        if writer.index_behind {
            // The index is refreshed when it is next read.
            writer.rebuild_index(None)?;
            return Ok(());
        }
        let segments = writer.publisher.current().map(|m| m.segments.clone()).unwrap_or_default();
        writer.publisher.publish_with_segment(seq, segments, builder, Some(content))?;
        self.after_publish(seq)
    }

    /// Turns a failure after a durable commit into [`Error::Unpublished`], and remembers that
    /// the index missed the commit.
    fn after_commit(&mut self, published: Result<()>, ids: &[Uuid], forgotten: bool) -> Result<()> {
        let Err(source) = published else { return Ok(()) };
        if let Some(w) = self.writer.as_mut() {
            w.index_behind = true;
        }
        Err(Error::Unpublished { ids: ids.to_vec(), forgotten, source: Box::new(source) })
    }

    /// Forgets a memory: a durable tombstone, and the index stops returning it. `false` if no
    /// memory has that id.
    pub fn forget(&mut self, id: Uuid) -> Result<bool> {
        // As in `store_batch`: the forget's publication catches up if this fails.
        let _ = self.publish_pending();
        let writer = self.writer()?;
        if !writer.records.contains(&id)? {
            return Ok(false);
        }
        let seq = writer.records.commit(vec![Entry::Forget(id)])?;
        let published = self.publish_forget(seq, id);
        self.after_commit(published, &[id], true)?;
        Ok(true)
    }

    fn publish_forget(&mut self, seq: u64, id: Uuid) -> Result<()> {
        let writer = self.writer()?;
        if writer.index_behind {
            // The index is refreshed when it is next read.
            writer.rebuild_index(None)?;
            return Ok(());
        }
        // Where the memory is: the index is needed (waited for, if it is still being opened).
        let located = self.snapshot()?.locate(id.as_bytes());
        let writer = self.writer()?;
        let mut segments =
            writer.publisher.current().map(|m| m.segments.clone()).unwrap_or_default();
        if let Some((index, ordinal)) = located {
            if let Some(entry) = segments.get_mut(index) {
                if let Err(at) = entry.deleted.binary_search(&ordinal) {
                    entry.deleted.insert(at, ordinal);
                }
            }
        }
        self.publish(seq, segments)
    }

    /// Publishes `segments` at commit `seq`, merges per the policy, collects garbage, refreshes.
    fn publish(&mut self, seq: u64, segments: Vec<SegmentEntry>) -> Result<()> {
        let writer = self.writer.as_mut().ok_or_else(|| Error::ReadOnly(self.dir.clone()))?;
        writer.publisher.publish(seq, segments)?;
        self.after_publish(seq)
    }

    /// After a publication at commit `seq`: refreshes, merges per the policy, collects garbage.
    fn after_publish(&mut self, seq: u64) -> Result<()> {
        // The writer's own index is refreshed when it is next read (a merge reads it).
        while let Some(group) = self.merge_candidates() {
            self.merge(seq, &group)?;
        }
        if let Some(w) = self.writer.as_mut() {
            // Best effort: a file that cannot be removed now is removed by a later collection,
            // and never fails a store whose record is durable.
            let _ = w.publisher.collect_garbage();
        }
        Ok(())
    }

    /// The size tier of a segment: log base MERGE_FACTOR of its live documents.
    fn tier(live: u32) -> u32 {
        let mut t = 0;
        let mut n = live.max(1) as usize;
        while n >= MERGE_FACTOR {
            n /= MERGE_FACTOR;
            t += 1;
        }
        t
    }

    /// Segments to merge: MERGE_FACTOR or more in one tier, or a segment mostly deleted.
    /// Keeps live segments at most (MERGE_FACTOR - 1) per tier: logarithmic in the store size.
    /// A segment of more than `SEGMENT_DOCS_MAX / MERGE_FACTOR` live documents is full size:
    /// tiers never merge it, so no merge makes a segment above [`SEGMENT_DOCS_MAX`] and a
    /// million memories are never rebuilt again as a whole for one more small segment.
    fn merge_candidates(&self) -> Option<Vec<usize>> {
        let manifest = self.writer.as_ref()?.publisher.current()?;
        let mut tiers: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, s) in manifest.segments.iter().enumerate() {
            if s.live() == 0 || (s.deleted.len() as u32) * 2 > s.doc_count {
                return Some(vec![i]);
            }
            if s.live() as usize > SEGMENT_DOCS_MAX / MERGE_FACTOR {
                continue;
            }
            tiers.entry(Self::tier(s.live())).or_default().push(i);
        }
        let mut group = tiers.into_values().find(|g| g.len() >= MERGE_FACTOR)?;
        group.truncate(MERGE_FACTOR);
        Some(group)
    }

    /// The live ids of the segments at `group`, read from their own files when they are small
    /// (each checked against the manifest's checksum and count): a store's merge then reads a
    /// few small files instead of mapping and checking the whole index (about 870 MB at a
    /// million memories; issue 17's 100 MB for a storing process). `None` when the group is
    /// large or a member is not what the manifest says: the caller then opens the whole index,
    /// whose checks find (and a writer rebuilds) a damaged one.
    fn small_member_ids(&self, group: &[usize]) -> Option<Vec<[u8; 16]>> {
        let manifest = self.writer.as_ref()?.publisher.current()?;
        let members: Vec<&SegmentEntry> =
            group.iter().map(|&i| manifest.segments.get(i)).collect::<Option<_>>()?;
        let docs: usize = members.iter().map(|s| s.doc_count as usize).sum();
        if docs > SMALL_MERGE_DOCS {
            return None;
        }
        let mut ids = Vec::with_capacity(docs);
        for entry in members {
            let path = semantic_index::layout::segment_path(&self.dir, &entry.file);
            let segment = shm_reader::Segment::read(&path).ok()?;
            if segment.checksum() != entry.checksum || segment.len() != entry.doc_count {
                return None;
            }
            for ordinal in 0..segment.len() {
                if entry.deleted.binary_search(&ordinal).is_err() {
                    ids.push(segment.doc(ordinal)?.id());
                }
            }
        }
        Some(ids)
    }

    /// Rebuilds the segments at `group` into one, from the records.
    fn merge(&mut self, seq: u64, group: &[usize]) -> Result<()> {
        let members = match self.small_member_ids(group) {
            Some(ids) => ids,
            None => {
                let before = self.generation();
                let snapshot = self.snapshot()?;
                if self.generation() != before {
                    // The index was found damaged and rebuilt from the records: `group` named
                    // segments of the old manifest, and the policy looks at the new one.
                    return Ok(());
                }
                group.iter().flat_map(|&i| snapshot.segment_ids(i)).collect()
            }
        };
        let writer = self.writer.as_mut().ok_or_else(|| Error::ReadOnly(self.dir.clone()))?;
        let Some(current) = writer.publisher.current() else { return Ok(()) };
        let mut builder = SegmentBuilder::new().generation(current.generation + 1);
        let mut content = ContentBuilder::new();
        let mut batch = Batcher::new(&mut builder, &mut content);
        writer.records.visit_ids(members.into_iter(), &mut |m| batch.push(&m))?;
        batch.finish()?;
        let segments: Vec<SegmentEntry> = current
            .segments
            .iter()
            .enumerate()
            .filter(|(i, _)| !group.contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        if builder.is_empty() {
            writer.publisher.publish(seq, segments)?;
        } else {
            writer.publisher.publish_with_segment(seq, segments, &builder, Some(&content))?;
        }
        Ok(())
    }

    /// Recreates the index from the records as one segment and publishes it.
    ///
    /// The old segment files stay in `segments/` until the next publication: the previous
    /// generation is kept for readers that are switching to the new one. Which files are live is
    /// what `HEAD`'s manifest names, not what the directory holds: [`MemoryStore::stats`] counts
    /// the live segments and `shm_reader::Reader::segment_files` lists them.
    pub fn rebuild(&mut self) -> Result<()> {
        if self.writer.is_some() {
            // The old segments are not read by a rebuild: unmapped, not resident beside it.
            self.reader.close();
        }
        let mut progress = self.progress.take();
        let done = match self.writer.as_mut() {
            Some(w) => {
                w.rebuild_index(progress.as_mut().map(|p| p.as_mut() as records::Progress<'_>))
            }
            None => Err(Error::ReadOnly(self.dir.clone())),
        };
        self.progress = progress;
        // The index is refreshed when it is next read.
        done
    }

    fn records(&self) -> Result<&Records> {
        if let Some(w) = &self.writer {
            return Ok(&w.records);
        }
        if let Some(r) = self.read_records.get() {
            return Ok(r);
        }
        // The writer's compaction may delete a log generation between our look at the directory
        // and our read: the generation that replaced it is then in place, so look again.
        let mut attempt = 0;
        let loaded = loop {
            match Records::open(&self.dir, false) {
                Err(RecordsError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound
                        && attempt < RECORDS_LOAD_ATTEMPTS =>
                {
                    attempt += 1;
                }
                other => break other?,
            }
        };
        Ok(self.read_records.get_or_init(|| loaded))
    }

    /// The memory with `id`, as stored.
    pub fn get(&self, id: Uuid) -> Result<Option<Memory>> {
        Ok(self.records()?.get(&id)?)
    }

    /// The last commit of the records (0: none).
    pub fn commit_seq(&self) -> Result<u64> {
        Ok(self.records()?.seq())
    }

    /// Visits every commit after `after` in order, with its changes, until `visit` returns
    /// `false` (replication's catch-up). Fails with [`RecordsError::Compacted`] when the log
    /// no longer holds those commits one by one.
    pub fn commits_since(
        &self,
        after: u64,
        mut visit: impl FnMut(u64, Vec<Change>) -> Result<bool>,
    ) -> Result<()> {
        self.records()?.commits_since(after, &mut visit)
    }

    /// Searches the index (refreshing to the newest generation first).
    /// [`Ranking::Hybrid`](shm_reader::Ranking::Hybrid) and
    /// [`Ranking::Vector`](shm_reader::Ranking::Vector) rank by the query's
    /// [embedding](Query::with_embedding) when the store has vectors of its dimensions (each
    /// hit's `why.hybrid` says what each side gave); without them the search is BM25F.
    pub fn search(&mut self, query: &Query, options: &SearchOptions) -> Result<SearchResults> {
        check_options(options)?;
        self.refresh_checked()?;
        if options.ranking.is_semantic() {
            if let Some(results) = self.search_semantic(query, options)? {
                return Ok(results);
            }
        }
        // Never more room than there are memories, whatever limit was asked for.
        let reader = self.index()?;
        let snapshot = reader.snapshot();
        let mut hits = Hits::with_capacity(options.limit.min(snapshot.len() as usize));
        reader.search(query, options, &mut hits)?;
        Ok(self.results(&snapshot, query, options, &hits))
    }

    fn results(
        &self,
        snapshot: &shm_reader::Snapshot,
        query: &Query,
        options: &SearchOptions,
        hits: &Hits,
    ) -> SearchResults {
        let hits = hits
            .iter()
            .filter_map(|h| {
                let doc = snapshot.doc(h)?;
                let why = snapshot.explain(query, h, options).map(|e| {
                    // Per-field frequencies come from the memory itself: the segment keeps
                    // only the combined impact.
                    let memory = if e.terms.is_empty() {
                        None
                    } else {
                        self.records().ok().and_then(|r| r.get(&uuid(doc.id())).ok().flatten())
                    };
                    let fields = memory.map(|m| {
                        let d = m.to_document();
                        let insights: Vec<String> = d
                            .insights
                            .iter()
                            .take(semantic_index::DOCUMENT_INSIGHTS)
                            .flat_map(|i| semantic_index::analyze(i))
                            .collect();
                        [
                            semantic_index::analyze(&d.question),
                            insights,
                            semantic_index::analyze(&d.synthesis),
                        ]
                    });
                    let tf = |term: &str| {
                        let count = |f: usize| {
                            fields
                                .as_ref()
                                .map_or(0, |x| x[f].iter().filter(|t| *t == term).count() as u32)
                        };
                        FieldTf { question: count(0), insights: count(1), synthesis: count(2) }
                    };
                    Why {
                        ranking: e.ranking.name(),
                        matched: e.matched,
                        relevance: e.jaccard,
                        terms: e
                            .terms
                            .iter()
                            .map(|t| WhyTerm {
                                term: t.term.clone(),
                                idf: t.idf,
                                impact: t.impact,
                                contribution: t.contribution,
                                tf: tf(&t.term),
                            })
                            .collect(),
                        score_boost: e.score_boost,
                        sacred_boost: e.sacred_boost,
                        hybrid: None,
                    }
                });
                Some(found(&doc, h.score, why))
            })
            .collect();
        let keywords = match options.ranking {
            shm_reader::Ranking::Jaccard => query.keywords(),
            _ => query.terms(),
        };
        SearchResults { keywords: keywords.to_vec(), generation: snapshot.generation(), hits }
    }

    /// Memories related to `id` (its own keywords as the query, itself excluded); `None` if no
    /// memory has that id.
    pub fn related(&mut self, id: Uuid, options: &SearchOptions) -> Result<Option<SearchResults>> {
        check_options(options)?;
        self.refresh_checked()?;
        let snapshot = self.snapshot()?;
        let Some(doc) = snapshot.get(id.as_bytes()) else { return Ok(None) };
        let query = Query::from_keywords(doc.keywords());
        let options = SearchOptions { exclude: Some(*id.as_bytes()), ..options.clone() };
        let mut hits = Hits::with_capacity(options.limit.min(snapshot.len() as usize));
        snapshot.search(&query, &options, &mut hits);
        Ok(Some(self.results(&snapshot, &query, &options, &hits)))
    }

    /// Sacred memories, newest first, optionally of one domain.
    pub fn sacred(&mut self, domain: Option<&str>, limit: usize) -> Result<Vec<Found>> {
        self.refresh_checked()?;
        let snapshot = self.snapshot()?;
        Ok(snapshot
            .sacred(domain, limit.min(snapshot.len() as usize))
            .iter()
            .map(|d| found(d, f64::from(d.score()), None))
            .collect())
    }

    /// Counts of the current generation.
    pub fn stats(&mut self) -> Result<Stats> {
        self.refresh_checked()?;
        let snapshot = self.snapshot()?;
        let mut domains = BTreeMap::new();
        let mut sacred = 0;
        for d in snapshot.docs() {
            *domains.entry(d.domain().to_owned()).or_insert(0) += 1;
            sacred += u64::from(d.sacred());
        }
        Ok(Stats {
            memories: snapshot.len(),
            sacred,
            domains,
            generation: snapshot.generation(),
            commit_seq: snapshot.commit_seq(),
            segments: snapshot.segment_count(),
            index_bytes: snapshot.segment_files().map(|(_, b)| b as u64).sum(),
        })
    }

    /// Compares the index with the records, id by id, reads every record to check it, and
    /// runs the segments' deep checks.
    pub fn verify(&mut self) -> Result<VerifyReport> {
        self.publish_pending()?;
        let snapshot = self.snapshot()?;
        let mut indexed: Vec<Uuid> = snapshot.docs().map(|d| uuid(d.id())).collect();
        indexed.sort_unstable();
        let mut progress = self.progress.take();
        let checked = self.records().and_then(|records| {
            let check =
                records.check(progress.as_mut().map(|p| p.as_mut() as records::Progress<'_>))?;
            Ok((records.len(), records.seq(), records.live_ids()?, check))
        });
        self.progress = progress;
        let (count, seq, live, records_check) = checked?;
        let mut report = VerifyReport {
            records: usize::try_from(count).unwrap_or(usize::MAX),
            indexed: snapshot.len(),
            records_seq: seq,
            index_seq: snapshot.commit_seq(),
            records_check,
            ..VerifyReport::default()
        };
        let (mut i, mut j) = (0, 0);
        while i < live.len() || j < indexed.len() {
            match (live.get(i), indexed.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    report.missing_from_index.push(*a);
                    i += 1;
                }
                (Some(a), None) => {
                    report.missing_from_index.push(*a);
                    i += 1;
                }
                (_, Some(b)) => {
                    report.unknown_in_index.push(*b);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        if let Err(e) = snapshot.verify() {
            report.damaged_segment = Some(e.to_string());
        }
        Ok(report)
    }

    /// Calls `progress(done, total)` (bytes) during whole-store passes: rebuild, verify, list.
    pub fn set_progress(&mut self, progress: impl FnMut(u64, u64) + Send + 'static) {
        self.progress = Some(Box::new(progress));
    }

    /// Visits every live memory in the order it was stored (log order), reading the records
    /// once with bounded memory; stops when `visit` returns `false`. Damaged records are
    /// skipped (`verify` reports them); returns how many were.
    pub fn for_each_memory(&mut self, mut visit: impl FnMut(Memory) -> bool) -> Result<u64> {
        let mut progress = self.progress.take();
        let done = self.records().and_then(|r| {
            r.for_each_live(
                progress.as_mut().map(|p| p.as_mut() as records::Progress<'_>),
                &mut |m| Ok(visit(m)),
            )
        });
        self.progress = progress;
        done
    }

    /// Repairs the store in `dir`: keeps every intact record (as a new log), writes what it
    /// dropped to `quarantine/` with the ids lost, and rebuilds the index. Works on records a
    /// normal open refuses (a cut or missing log, missing commits, damaged records).
    pub fn repair(dir: impl AsRef<Path>) -> Result<(RepairReport, MemoryStore)> {
        let dir = dir.as_ref().to_owned();
        let (mut report, index_ids, short) = {
            files::prepare_writable(&dir)?;
            let _lock = files::lock(&dir, LOCK_WAIT)?;
            let (index_seq, index_ids) = match Reader::open(&dir) {
                Ok(r) => {
                    let snapshot = r.snapshot();
                    let ids: Vec<Uuid> = snapshot.docs().map(|d| uuid(d.id())).collect();
                    (snapshot.commit_seq(), ids)
                }
                Err(_) => (0, Vec::new()),
            };
            // Records that end before the published index lost commits the index still shows.
            let short = records::last_seq(&dir).map_or(true, |seq| seq < index_seq);
            (records::salvage(&dir, index_seq, None)?, index_ids, short)
        };
        let mut store = MemoryStore::open(&dir)?;
        store.rebuild()?;
        if short {
            let records = store.records()?;
            let mut lost: HashSet<Uuid> = report.lost.iter().copied().collect();
            for id in index_ids {
                if !records.contains(&id)? {
                    lost.insert(id);
                }
            }
            report.lost = lost.into_iter().collect();
            report.lost.sort_unstable();
        }
        Ok((report, store))
    }
}
