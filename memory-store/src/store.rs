//! The store: records, index publication, merge policy, search.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use semantic_index::layout::{LayoutError, Publisher, SegmentEntry};
use semantic_index::{BuildError, SegmentBuilder};
use serde::Serialize;
use shm_reader::{DocRef, Hits, Query, Reader, ReaderError, SearchOptions};
use uuid::Uuid;

use crate::memory::{InvalidMemory, Memory};
use crate::records::{Entry, Records, RecordsError};

pub(crate) mod hybrid;

/// The writer's lock file.
pub const LOCK_FILE: &str = "LOCK";
/// How many times a held writer lock is tried again, [`LOCK_RETRY_PAUSE`] apart, before the
/// store is reported locked (about 100 ms in all).
const LOCK_RETRIES: u32 = 50;
/// The pause between two tries of a held writer lock.
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
/// Segments of one size tier that trigger a merge.
const MERGE_FACTOR: usize = 4;

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
    /// Publishing the index failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
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

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a hit scored what it did (DESIGN.md's score, part by part).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Why {
    /// The query keywords the memory has.
    pub matched: Vec<String>,
    /// overlap / |Q ∪ D|.
    pub jaccard: f64,
    /// `w_score · score`.
    pub score_boost: f64,
    /// `w_sacred · [sacred]`.
    pub sacred_boost: f64,
    /// What the lexical and vector rankings contributed (hybrid and vector searches only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<hybrid::HybridWhy>,
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
    /// The hits, in DESIGN.md's order.
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
}

impl VerifyReport {
    /// Whether the index covers exactly the records.
    pub fn is_ok(&self) -> bool {
        self.missing_from_index.is_empty()
            && self.unknown_in_index.is_empty()
            && self.damaged_segment.is_none()
            && self.records_seq == self.index_seq
    }
}

struct Writer {
    _lock: File,
    publisher: Publisher,
    records: Records,
}

/// A store of memories in one directory: durable records and a published, shared index.
///
/// Open it for writing with [`MemoryStore::open`] (one writer at a time, enforced by an OS file
/// lock) or for reading with [`MemoryStore::open_read_only`] (any number, also while a writer
/// works). Readers see each write at their next search.
pub struct MemoryStore {
    dir: PathBuf,
    reader: Reader,
    writer: Option<Writer>,
    read_records: OnceCell<Records>,
    repaired: Option<String>,
    vectors: hybrid::VectorCache,
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
    /// Builds one segment from every record and publishes it alone, then removes the files no
    /// manifest names. Reads nothing of the old index, so it works whatever state that is in.
    fn rebuild_index(&mut self) -> Result<()> {
        let mut builder = SegmentBuilder::new().generation(self.publisher.generation() + 1);
        add_all(&mut builder, self.records.iter())?;
        let mut segments = Vec::new();
        if !builder.is_empty() {
            segments.push(self.publisher.write_segment(&builder)?);
        }
        self.publisher.publish(self.records.seq(), segments)?;
        self.publisher.collect_garbage()?;
        Ok(())
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { what, path: path.to_owned(), source }
}

fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("opening lock", &path))?;
    // A lock can outlive its store for a moment: a process that is starting another program
    // holds a copy of every descriptor until the program replaces it (close-on-exec), so a store
    // closed and reopened while another thread of the process spawns a child finds its own old
    // lock still held. Retry for a bounded moment before calling the store locked.
    let mut attempt = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if attempt < LOCK_RETRIES => {
                attempt += 1;
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid =
                    file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
                return Err(Error::Locked { dir: dir.to_owned(), pid });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &path)(e)),
        }
    }
    file.set_len(0).map_err(io_err("writing lock", &path))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err("writing lock", &path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err("writing lock", &path))?;
    Ok(file)
}

/// Adds memories to a builder in batches, so that they are tokenized on every core while at
/// most one batch of documents is held at a time.
fn add_all<'a>(
    builder: &mut SegmentBuilder,
    memories: impl Iterator<Item = &'a Memory>,
) -> std::result::Result<(), BuildError> {
    const BATCH: usize = 16_384;
    let mut batch = Vec::with_capacity(BATCH);
    for m in memories {
        batch.push(m.to_document());
        if batch.len() == BATCH {
            builder.add_batch(&batch)?;
            batch.clear();
        }
    }
    builder.add_batch(&batch)
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
    pub fn open(dir: impl AsRef<Path>) -> Result<MemoryStore> {
        let dir = dir.as_ref().to_owned();
        let (publisher, damaged_head) = Publisher::recover(&dir)?;
        let lock = lock(&dir)?;
        let records = Records::load(&dir, true)?;
        let mut writer = Writer { _lock: lock, publisher, records };
        let mut repaired = None;
        let reader = match damaged_head.map_or_else(|| Reader::open(&dir), |e| Err(e.into())) {
            Ok(reader) => reader,
            Err(
                e @ (ReaderError::Store { .. } | ReaderError::Layout(LayoutError::Write { .. })),
            ) => return Err(e.into()),
            Err(damage) => {
                writer.rebuild_index()?;
                repaired = Some(format!("the index could not be read ({damage})"));
                Reader::open(&dir)?
            }
        };
        let mut store = MemoryStore {
            dir,
            reader,
            writer: Some(writer),
            read_records: OnceCell::new(),
            repaired,
            vectors: hybrid::VectorCache::default(),
        };
        let snapshot = store.reader.snapshot();
        let records = &store.writer.as_ref().map_or(0, |w| w.records.len());
        let seq = store.writer.as_ref().map_or(0, |w| w.records.seq());
        if snapshot.commit_seq() != seq || snapshot.len() != *records as u64 {
            store.rebuild()?;
            if store.repaired.is_none() && (snapshot.generation() != 0 || *records != 0) {
                store.repaired = Some(format!(
                    "the index covered commit {} of {seq} ({} of {records} memories)",
                    snapshot.commit_seq(),
                    snapshot.len()
                ));
            }
        }
        Ok(store)
    }

    /// Why [`MemoryStore::open`] rebuilt the index from the records, if it did.
    pub fn repaired(&self) -> Option<&str> {
        self.repaired.as_deref()
    }

    /// Opens the store in `dir` for reading only; takes no lock.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<MemoryStore> {
        let dir = dir.as_ref().to_owned();
        let reader = Reader::open(&dir)?;
        Ok(MemoryStore {
            dir,
            reader,
            writer: None,
            read_records: OnceCell::new(),
            repaired: None,
            vectors: hybrid::VectorCache::default(),
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index generation this store currently sees.
    pub fn generation(&self) -> u64 {
        self.reader.generation()
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
        let writer = self.writer()?;
        let mut report = BatchReport::default();
        let mut seen = HashSet::new();
        let mut fresh = Vec::with_capacity(memories.len());
        for m in memories {
            if writer.records.contains(&m.id) || !seen.insert(m.id) {
                report.skipped.push(m.id);
            } else {
                report.stored.push(m.id);
                fresh.push(m);
            }
        }
        if fresh.is_empty() {
            return Ok(report);
        }
        let mut builder = SegmentBuilder::new().generation(writer.publisher.generation() + 1);
        add_all(&mut builder, fresh.iter())?;
        let seq =
            writer.records.commit(fresh.into_iter().map(|m| Entry::Put(Box::new(m))).collect())?;
        let entry = writer.publisher.write_segment(&builder)?;
        let mut segments =
            writer.publisher.current().map(|m| m.segments.clone()).unwrap_or_default();
        segments.push(entry);
        self.publish(seq, segments)?;
        Ok(report)
    }

    /// Forgets a memory: a durable tombstone, and the index stops returning it. `false` if no
    /// memory has that id.
    pub fn forget(&mut self, id: Uuid) -> Result<bool> {
        let writer = self.writer()?;
        if !writer.records.contains(&id) {
            return Ok(false);
        }
        let seq = writer.records.commit(vec![Entry::Forget(id)])?;
        let mut segments =
            writer.publisher.current().map(|m| m.segments.clone()).unwrap_or_default();
        if let Some((index, ordinal)) = self.reader.snapshot().locate(id.as_bytes()) {
            if let Some(entry) = segments.get_mut(index) {
                if let Err(at) = entry.deleted.binary_search(&ordinal) {
                    entry.deleted.insert(at, ordinal);
                }
            }
        }
        self.publish(seq, segments)?;
        Ok(true)
    }

    /// Publishes `segments` at commit `seq`, merges per the policy, collects garbage, refreshes.
    fn publish(&mut self, seq: u64, segments: Vec<SegmentEntry>) -> Result<()> {
        let writer = self.writer.as_mut().ok_or_else(|| Error::ReadOnly(self.dir.clone()))?;
        writer.publisher.publish(seq, segments)?;
        self.reader.refresh()?;
        while let Some(group) = self.merge_candidates() {
            self.merge(seq, &group)?;
        }
        if let Some(w) = self.writer.as_mut() {
            w.publisher.collect_garbage()?;
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
    fn merge_candidates(&self) -> Option<Vec<usize>> {
        let manifest = self.writer.as_ref()?.publisher.current()?;
        let mut tiers: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, s) in manifest.segments.iter().enumerate() {
            if s.live() == 0 || (s.deleted.len() as u32) * 2 > s.doc_count {
                return Some(vec![i]);
            }
            tiers.entry(Self::tier(s.live())).or_default().push(i);
        }
        tiers.into_values().find(|g| g.len() >= MERGE_FACTOR)
    }

    /// Rebuilds the segments at `group` into one, from the records.
    fn merge(&mut self, seq: u64, group: &[usize]) -> Result<()> {
        let snapshot = self.reader.snapshot();
        let writer = self.writer.as_mut().ok_or_else(|| Error::ReadOnly(self.dir.clone()))?;
        let Some(current) = writer.publisher.current() else { return Ok(()) };
        let mut builder = SegmentBuilder::new().generation(current.generation + 1);
        let records = &writer.records;
        let members = group
            .iter()
            .flat_map(|&i| snapshot.segment_ids(i))
            .filter_map(|id| records.get(&uuid(id)));
        add_all(&mut builder, members)?;
        let mut segments: Vec<SegmentEntry> = current
            .segments
            .iter()
            .enumerate()
            .filter(|(i, _)| !group.contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        if !builder.is_empty() {
            segments.push(writer.publisher.write_segment(&builder)?);
        }
        writer.publisher.publish(seq, segments)?;
        self.reader.refresh()?;
        Ok(())
    }

    /// Recreates the index from the records as one segment and publishes it.
    pub fn rebuild(&mut self) -> Result<()> {
        self.writer()?.rebuild_index()?;
        self.reader.refresh()?;
        Ok(())
    }

    fn records(&self) -> Result<&Records> {
        if let Some(w) = &self.writer {
            return Ok(&w.records);
        }
        if let Some(r) = self.read_records.get() {
            return Ok(r);
        }
        let loaded = Records::load(&self.dir, false)?;
        Ok(self.read_records.get_or_init(|| loaded))
    }

    /// The memory with `id`, as stored.
    pub fn get(&self, id: Uuid) -> Result<Option<Memory>> {
        Ok(self.records()?.get(&id).cloned())
    }

    /// Searches the index (refreshing to the newest generation first).
    pub fn search(&mut self, query: &Query, options: &SearchOptions) -> Result<SearchResults> {
        let mut hits = Hits::with_capacity(options.limit);
        self.reader.search(query, options, &mut hits)?;
        Ok(self.results(query, options, &hits))
    }

    fn results(&self, query: &Query, options: &SearchOptions, hits: &Hits) -> SearchResults {
        let snapshot = self.reader.snapshot();
        let hits = hits
            .iter()
            .filter_map(|h| {
                let doc = snapshot.doc(h)?;
                let why = snapshot.explain(query, h, options).map(|e| Why {
                    matched: e.matched,
                    jaccard: e.jaccard,
                    score_boost: e.score_boost,
                    sacred_boost: e.sacred_boost,
                    hybrid: None,
                });
                Some(found(&doc, h.score, why))
            })
            .collect();
        SearchResults {
            keywords: query.keywords().to_vec(),
            generation: snapshot.generation(),
            hits,
        }
    }

    /// Memories related to `id` (its own keywords as the query, itself excluded); `None` if no
    /// memory has that id.
    pub fn related(&mut self, id: Uuid, options: &SearchOptions) -> Result<Option<SearchResults>> {
        self.reader.refresh()?;
        let snapshot = self.reader.snapshot();
        let Some(doc) = snapshot.get(id.as_bytes()) else { return Ok(None) };
        let query = Query::from_keywords(doc.keywords());
        let options = SearchOptions { exclude: Some(*id.as_bytes()), ..options.clone() };
        let mut hits = Hits::with_capacity(options.limit);
        snapshot.search(&query, &options, &mut hits);
        Ok(Some(self.results(&query, &options, &hits)))
    }

    /// Sacred memories, newest first, optionally of one domain.
    pub fn sacred(&mut self, domain: Option<&str>, limit: usize) -> Result<Vec<Found>> {
        self.reader.refresh()?;
        let snapshot = self.reader.snapshot();
        Ok(snapshot
            .sacred(domain, limit)
            .iter()
            .map(|d| found(d, f64::from(d.score()), None))
            .collect())
    }

    /// Counts of the current generation.
    pub fn stats(&mut self) -> Result<Stats> {
        self.reader.refresh()?;
        let snapshot = self.reader.snapshot();
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

    /// Compares the index with the records, id by id, and runs the segments' deep checks.
    pub fn verify(&mut self) -> Result<VerifyReport> {
        self.reader.refresh()?;
        let snapshot = self.reader.snapshot();
        let records = self.records()?;
        let indexed: HashSet<Uuid> = snapshot.docs().map(|d| uuid(d.id())).collect();
        let mut report = VerifyReport {
            records: records.len(),
            indexed: snapshot.len(),
            records_seq: records.seq(),
            index_seq: snapshot.commit_seq(),
            ..VerifyReport::default()
        };
        report.missing_from_index =
            records.iter().map(|m| m.id).filter(|id| !indexed.contains(id)).collect();
        report.unknown_in_index =
            indexed.iter().copied().filter(|id| records.get(id).is_none()).collect();
        report.missing_from_index.sort_unstable();
        report.unknown_in_index.sort_unstable();
        if let Err(e) = snapshot.verify() {
            report.damaged_segment = Some(e.to_string());
        }
        Ok(report)
    }
}
