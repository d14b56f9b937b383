//! Records, the store's truth: an append-only log of checksummed frames and an id index.
//!
//! - `records/<generation>.log` holds frames ([`frame`]): one per memory put or forgotten, the
//!   last frame of each commit flagged. A commit appends its frames in one write and one
//!   `fdatasync`; it is in the store exactly when its last frame is intact. Each frame checks
//!   its own header and payload, so a damaged byte costs the one record it is in; a scan finds
//!   the next intact frame after damage by its magic and header checksum.
//! - `records/ids` ([`ids`]) maps every live id to its frame, sorted by id, as of one point of
//!   the log; the commits after it (a few MiB at most) are replayed at open. Open, store-one and
//!   get-by-id read the index's footer, O(log n) entries and that tail, never the whole log.
//! - Commit sequence numbers are consecutive: a gap, a log shorter than its index covers, or a
//!   missing log is reported as loss, with the ids where the index knows them.
//! - A compaction or a repair ([`salvage`]) writes the live records to the next generation's
//!   log (atomically, then the old one is removed); a repair also writes what it dropped to
//!   `quarantine/`.
//! - Stores in the old format (one JSON Lines file per commit) are migrated by the first writer.

mod frame;
mod ids;
mod legacy;
mod scan;

use atomic_write::seam;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use uuid::Uuid;

use self::frame::{Header, Kind, COMPACTED, LAST};
use self::ids::{Footer, IdEntry, IdTable, Unusable};
use self::scan::Item;
use crate::memory::Memory;

pub(crate) const RECORDS_DIR: &str = "records";
const IDS_FILE: &str = "ids";
const LOG_EXT: &str = "log";
/// Where a repair puts what it dropped (in the store directory).
pub const QUARANTINE_DIR: &str = "quarantine";
/// Replayed log bytes after which a commit rewrites the id index (or a quarter of the index's
/// size, if larger: the rewrite then costs at most about what replaying costs at open).
const CHECKPOINT_BYTES: u64 = 4 << 20;
/// Dead put frames (forgotten memories' records) above which a commit compacts the log, when
/// they also outnumber the live ones: the log stays within about twice the live records.
const COMPACT_DEAD: u64 = if cfg!(test) { 32 } else { 1 << 16 };
/// Lookups in one call above which the whole id index is read into memory once.
const BULK_LOOKUPS: usize = 64;

/// Where a frame is in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// One change.
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    Put(Box<Memory>),
    Forget(Uuid),
}

/// One change of a commit, as replication carries it: a memory stored or an id forgotten.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Change {
    /// A memory stored.
    Put(Box<Memory>),
    /// A memory forgotten.
    Forget(Uuid),
}

impl From<Change> for Entry {
    fn from(c: Change) -> Entry {
        match c {
            Change::Put(m) => Entry::Put(m),
            Change::Forget(id) => Entry::Forget(id),
        }
    }
}

/// Records that cannot be read, written or trusted.
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
    #[error("records file {} is damaged at byte {offset}: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// One memory's record fails its checksum.
    #[error("the record of memory {id} (records file {}, byte {offset}) is damaged; `mcs repair` keeps every intact record and quarantines it", path.display())]
    Damaged {
        /// The memory.
        id: Uuid,
        /// The log.
        path: PathBuf,
        /// Where its frame starts.
        offset: u64,
    },
    /// Records the store acknowledged are gone (a missing or cut log).
    #[error("records of {count} memories are lost: {detail}; `mcs repair` keeps what is intact and records the loss")]
    Lost {
        /// How many memories (as far as the id index knows).
        count: u64,
        /// What is missing.
        detail: String,
    },
    /// A reader met a store whose records are in the old format.
    #[error("the records in {} are in the old format; the first writer (`mcs add`, `mcs ingest`, `mcs rebuild` or `mcs repair`) migrates them", .0.display())]
    OldFormat(PathBuf),
    /// Replication asked for commits after `after`, but a compaction or repair rewrote the
    /// history from commit `at` on: the commits one by one are gone.
    #[error(
        "the records were compacted at commit {at}: the commits after {after} cannot be sent \
         one by one (replicate into a fresh replica from the object store instead)"
    )]
    Compacted {
        /// The last commit the caller has.
        after: u64,
        /// The first commit rewritten.
        at: u64,
    },
    /// A memory too large for one record.
    #[error(
        "memory {id} is {bytes} bytes as JSON, more than a record holds ({} bytes)",
        frame::MAX_PAYLOAD
    )]
    TooLarge {
        /// The memory.
        id: Uuid,
        /// Its JSON size.
        bytes: usize,
    },
}

/// A stretch of a records log that is not an intact record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DamagedRange {
    /// The log file (name inside `records/`).
    pub file: String,
    /// Its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// The memory whose record it was, when the frame's header survived.
    pub id: Option<Uuid>,
    /// The commit it belonged to, when the header survived.
    pub seq: Option<u64>,
}

/// What checking every record found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecordsCheck {
    /// Live memories whose record is intact.
    pub intact: u64,
    /// Live memories whose record is damaged or gone.
    pub lost: Vec<Uuid>,
    /// Damaged stretches of the log.
    pub damaged: Vec<DamagedRange>,
    /// Commit sequence numbers missing from the log (first, last).
    pub missing_commits: Vec<(u64, u64)>,
    /// Bytes after the last complete commit (offset, length): an append a crash cut short,
    /// never acknowledged; the next write discards them.
    pub unacknowledged_tail: Option<(u64, u64)>,
}

impl RecordsCheck {
    /// Whether every record is intact and no commit is missing.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.damaged.is_empty() && self.missing_commits.is_empty()
    }
}

/// What a repair kept and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Memories kept (every intact live record).
    pub kept: u64,
    /// Memories lost: their record was damaged or gone.
    pub lost: Vec<Uuid>,
    /// Damaged stretches, copied to the quarantine file.
    pub damaged: Vec<DamagedRange>,
    /// Commit sequence numbers that were missing.
    pub missing_commits: Vec<(u64, u64)>,
    /// The quarantine report (JSON; the damaged bytes sit beside it as `.bin`), if anything
    /// was dropped.
    pub quarantine: Option<PathBuf>,
}

/// Progress of a whole-store pass: bytes done, bytes in all.
pub(crate) type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// The live memories, as the records say, and where the next commit goes.
#[derive(Debug)]
pub(crate) struct Records {
    dir: PathBuf,
    generation: u64,
    log_path: PathBuf,
    log: Option<File>,
    ids: Option<IdTable>,
    /// Changes after the id index's covered end: `None` for forgotten.
    delta: HashMap<[u8; 16], Option<Loc>>,
    count: u64,
    /// Put frames in the log (live or not), for the compaction policy.
    puts: u64,
    seq: u64,
    /// End of the last complete commit.
    end: u64,
    /// Bytes after `end` (a torn append) the next commit removes first.
    torn: Option<(u64, u64)>,
}

pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            done += std::os::windows::fs::FileExt::seek_write(
                file,
                &buf[done..],
                offset + done as u64,
            )?;
        }
        Ok(())
    }
}

/// Opens a regular file (refusing anything else: no link followed, no FIFO waited on) for
/// reading, or reading and writing.
pub(crate) fn open_regular(path: &Path, write: bool) -> io::Result<File> {
    semantic_index::layout::open_file(path, fs::OpenOptions::new().read(true).write(write))
}

/// Creates `dir` if needed and makes it owner-only, whatever the umask.
pub(crate) fn private_dir(dir: &Path) -> Result<(), RecordsError> {
    let io = |what| move |source| RecordsError::Io { what, path: dir.to_owned(), source };
    match seam::create_dir(&fs::DirBuilder::new(), dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("creating")(e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::symlink_metadata(dir).map_err(io("reading"))?;
        if !meta.is_dir() {
            return Err(io("opening")(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            )));
        }
        if meta.permissions().mode() & 0o777 != 0o700 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io("restricting"))?;
        }
    }
    Ok(())
}

fn log_name(generation: u64) -> String {
    format!("{generation:016}.{LOG_EXT}")
}

fn log_generations(dir: &Path) -> Result<Vec<u64>, RecordsError> {
    let mut found = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|source| RecordsError::Io {
                    what: "listing",
                    path: dir.to_owned(),
                    source,
                })?;
                let name = entry.file_name();
                let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else {
                    continue;
                };
                if ext == LOG_EXT {
                    if let Ok(g) = stem.parse::<u64>() {
                        found.push(g);
                    }
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(RecordsError::Io { what: "listing", path: dir.to_owned(), source })
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// How many memories a log cut to `len` bytes lost. The id index (`all`, as of commit
/// `checkpoint`) names those whose records lay past the cut; memories stored after its
/// checkpoint lay past it too (the cut is inside what the id index covers). When the published
/// index is readable and at least as new, it says which of them were still live: the loss is
/// the live memories the cut took, whether or not the id index names them. Otherwise the id
/// index's count (a lower bound).
fn cut_loss(store: &Path, all: &[IdEntry], len: u64, checkpoint: u64) -> u64 {
    let past_cut = |e: &IdEntry| e.loc.offset + u64::from(e.loc.len) > len;
    let named = all.iter().filter(|e| past_cut(e)).count() as u64;
    let Ok(reader) = shm_reader::Reader::open(store) else { return named };
    let snapshot = reader.snapshot();
    if snapshot.commit_seq() < checkpoint {
        return named;
    }
    // `all` is sorted by id (checked when it was read).
    snapshot
        .docs()
        .filter(|d| {
            let id = d.id();
            match all.binary_search_by(|e| e.id.cmp(&id)) {
                Ok(i) => past_cut(&all[i]),
                Err(_) => true,
            }
        })
        .count() as u64
}

/// What a replay of part of the log found, in commit order.
#[derive(Debug, Default)]
struct Replay {
    seq: u64,
    end: u64,
    changes: Vec<([u8; 16], Option<Loc>)>,
    puts: u64,
    forgets: u64,
    damaged: Vec<DamagedRange>,
    gaps: Vec<(u64, u64)>,
    torn: Option<(u64, u64)>,
    /// Offsets of intact put frames (only when asked for).
    intact: Option<HashSet<u64>>,
    pending: Vec<(u64, Header)>,
}

impl Replay {
    fn apply_pending(&mut self) {
        for (offset, h) in std::mem::take(&mut self.pending) {
            let loc = Loc { offset, len: h.frame_len() as u32 };
            match h.kind {
                Kind::Put => {
                    self.changes.push((h.id, Some(loc)));
                    self.puts += 1;
                }
                Kind::Forget => {
                    self.changes.push((h.id, None));
                    self.forgets += 1;
                }
                Kind::Base => {}
            }
            self.seq = self.seq.max(h.seq);
            self.end = offset + h.frame_len();
        }
    }

    fn frame(&mut self, offset: u64, h: Header, file: &str) {
        if h.kind == Kind::Base {
            self.apply_pending();
            self.seq = self.seq.max(h.seq);
            self.end = offset + h.frame_len();
            return;
        }
        if h.compacted {
            self.pending.push((offset, h));
            self.apply_pending();
            return;
        }
        if let Some((_, first)) = self.pending.first() {
            if first.seq != h.seq {
                // The previous commit's last frame was lost to damage (reported as such).
                self.apply_pending();
            }
        }
        if self.pending.is_empty() {
            if h.seq <= self.seq {
                self.damaged.push(DamagedRange {
                    file: file.to_owned(),
                    offset,
                    len: h.frame_len(),
                    id: Some(Uuid::from_bytes(h.id)),
                    seq: Some(h.seq),
                });
                return;
            }
            if h.seq > self.seq + 1 {
                self.gaps.push((self.seq + 1, h.seq - 1));
            }
        }
        self.pending.push((offset, h));
        if h.last {
            self.apply_pending();
        }
    }
}

/// Replays `[from, to)` of the log. A torn last commit (see [`torn_start`]) is not replayed: it
/// is the unacknowledged tail that the next commit cuts, never damage to report. A commit up
/// to `acknowledged` (one the published index or the id index covers; 0 when the caller does
/// not know) is never torn: a missing end or tear-shaped damage there is damage to a durable
/// commit, and its intact frames are replayed.
#[allow(clippy::too_many_arguments)]
fn replay(
    log: &File,
    file: &str,
    path: &Path,
    from: u64,
    to: u64,
    seq: u64,
    acknowledged: u64,
    want_intact: bool,
    mut progress: Option<Progress<'_>>,
) -> Result<Replay, RecordsError> {
    let r = replay_region(
        log,
        file,
        path,
        (from, to),
        seq,
        acknowledged,
        want_intact,
        progress.as_mut().map(|p| &mut **p as Progress<'_>),
    )?;
    if r.damaged.is_empty() {
        return Ok(r);
    }
    let io = |source| RecordsError::Io { what: "reading", path: path.to_owned(), source };
    let Some((cut, torn_seq)) = torn_start(log, from, to, seq).map_err(io)? else { return Ok(r) };
    if torn_seq <= acknowledged {
        return Ok(r);
    }
    let mut r =
        replay_region(log, file, path, (from, cut), seq, acknowledged, want_intact, progress)?;
    r.torn = Some((cut, to - cut));
    Ok(r)
}

/// Where the region ends in a torn commit, and that commit's sequence number, if it does: damage
/// shaped like a tear (zeros where
/// data did not land, or a short end) after which no frame of a later commit follows. A commit is one append, acknowledged once its `fdatasync` returns, and the
/// next commit is only appended after that; so damage followed by a later commit is damage to a
/// durable commit (reported as such), while damage in the last commit is an append a power cut
/// tore (a prefix, zeros where the data did not land, or a later part without an earlier one):
/// never acknowledged, so the whole commit is cut like a short tail, and a batch never shows in
/// part.
fn torn_start(log: &File, from: u64, to: u64, seq: u64) -> io::Result<Option<(u64, u64)>> {
    let mut done = seq;
    let mut commit_start: Option<u64> = None;
    // Where the torn commit starts, and its sequence number.
    let mut torn: Option<(u64, u64)> = None;
    let mut probe = log.try_clone()?;
    scan::scan(log.try_clone()?, from, to, |item| {
        let (offset, header) = match item {
            Item::Frame { offset, header, .. } => {
                if torn.is_some_and(|(_, s)| header.seq > s) {
                    torn = None;
                }
                (offset, Some(header))
            }
            Item::Damaged { offset, len, header } => {
                // A tear leaves zeros where the data did not land (appends only ever extend
                // the file), at the damaged bytes' start or end; a flipped bit inside an
                // acknowledged commit does not, and stays damage to report.
                if tear_shaped(&mut probe, offset, len) {
                    torn.get_or_insert((commit_start.unwrap_or(offset), done + 1));
                }
                (offset, header)
            }
            Item::Incomplete { offset, .. } => {
                torn.get_or_insert((commit_start.unwrap_or(offset), done + 1));
                return true;
            }
        };
        if let Some(h) = header {
            commit_start.get_or_insert(offset);
            if h.last {
                done = done.max(h.seq);
                commit_start = None;
            }
        }
        true
    })?;
    Ok(torn)
}

/// Whether the `len` damaged bytes at `offset` begin or end with a zero byte, as a torn append
/// leaves them (see [`torn_start`]). A read error counts as not torn: the damage is reported.
fn tear_shaped(log: &mut File, offset: u64, len: u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut byte_at = |at: u64| -> Option<u8> {
        let mut b = [0u8; 1];
        log.seek(SeekFrom::Start(at)).ok()?;
        log.read_exact(&mut b).ok()?;
        Some(b[0])
    };
    len > 0 && (byte_at(offset) == Some(0) || byte_at(offset + len - 1) == Some(0))
}

#[allow(clippy::too_many_arguments)]
fn replay_region(
    log: &File,
    file: &str,
    path: &Path,
    (from, to): (u64, u64),
    seq: u64,
    acknowledged: u64,
    want_intact: bool,
    progress: Option<Progress<'_>>,
) -> Result<Replay, RecordsError> {
    let io = |source| RecordsError::Io { what: "reading", path: path.to_owned(), source };
    let mut r = Replay { seq, end: from, ..Replay::default() };
    if want_intact {
        r.intact = Some(HashSet::new());
    }
    let mut progress = progress;
    let mut last_report = from;
    scan::scan(log.try_clone().map_err(io)?, from, to, |item| {
        match item {
            Item::Frame { offset, header, .. } => {
                if header.kind == Kind::Put {
                    if let Some(set) = &mut r.intact {
                        set.insert(offset);
                    }
                }
                r.frame(offset, header, file);
                if let Some(p) = progress.as_mut() {
                    if offset - last_report > 1 << 22 {
                        last_report = offset;
                        p(offset - from, to - from);
                    }
                }
            }
            Item::Damaged { offset, len, header } => {
                r.damaged.push(DamagedRange {
                    file: file.to_owned(),
                    offset,
                    len,
                    id: header.map(|h| Uuid::from_bytes(h.id)),
                    seq: header.map(|h| h.seq),
                });
                if let Some(h) = header {
                    r.frame(offset, h, file);
                }
            }
            Item::Incomplete { offset, len } => r.torn = Some((offset, len)),
        }
        true
    })
    .map_err(io)?;
    if let Some(&(first, h)) = r.pending.first() {
        if h.seq <= acknowledged {
            // The commit's end is gone, but it was acknowledged: keep what is intact of it.
            r.apply_pending();
        } else {
            r.pending.clear();
            r.torn = Some((first, to - first));
        }
    }
    if let Some(p) = progress.as_mut() {
        p(to - from, to - from);
    }
    Ok(r)
}

fn sorted_live(changes: Vec<([u8; 16], Option<Loc>)>) -> Vec<IdEntry> {
    let mut map: HashMap<[u8; 16], Option<Loc>> = HashMap::with_capacity(changes.len());
    for (id, loc) in changes {
        map.insert(id, loc);
    }
    let mut live: Vec<IdEntry> =
        map.into_iter().filter_map(|(id, loc)| Some(IdEntry { id, loc: loc? })).collect();
    live.sort_unstable_by_key(|e| e.id);
    live
}

/// Writes one copied frame into a new log.
type Emit<'a> = &'a mut dyn FnMut(&Header, &[u8]) -> io::Result<()>;

/// Writes a log of generation `generation` holding a base frame at `base_seq` and `frames`
/// (copied as compacted frames). Returns the id entries of the copies and the log's length.
fn write_log(
    dir: &Path,
    generation: u64,
    base_seq: u64,
    frames: &mut dyn FnMut(Emit<'_>) -> Result<(), RecordsError>,
) -> Result<(Vec<IdEntry>, u64), RecordsError> {
    let path = dir.join(log_name(generation));
    let file = atomic_write::Options::new().mode(0o600).open(&path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    frame::encode(&mut buf, Kind::Base, LAST, base_seq, [0; 16], &[]);
    let io = |source| RecordsError::Io { what: "writing", path: path.clone(), source };
    out.write_all(&buf).map_err(io)?;
    let mut at = buf.len() as u64;
    let mut entries = Vec::new();
    frames(&mut |h, payload| {
        buf.clear();
        frame::encode(&mut buf, h.kind, LAST | COMPACTED, h.seq, h.id, payload);
        out.write_all(&buf)?;
        entries.push(IdEntry { id: h.id, loc: Loc { offset: at, len: buf.len() as u32 } });
        at += buf.len() as u64;
        Ok(())
    })?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.commit()?;
    entries.sort_unstable_by_key(|e| e.id);
    Ok((entries, at))
}

fn encode_memory(m: &Memory) -> Result<Vec<u8>, RecordsError> {
    // Serializing our own plain data to a Vec cannot fail (no maps with non-string keys).
    let json = serde_json::to_vec(m).unwrap_or_default();
    if json.len() > frame::MAX_PAYLOAD as usize {
        return Err(RecordsError::TooLarge { id: m.id, bytes: json.len() });
    }
    Ok(json)
}

/// A commit written after the log's end, not yet synced: its sequence number, its length in
/// bytes and each entry's id and location.
type Appended = (u64, u64, Vec<([u8; 16], Option<Loc>)>);

impl Records {
    /// Opens the records of the store in `store`. A writer (`writable`) creates them, migrates
    /// the old format, removes a log a finished compaction replaced, and rewrites a missing or
    /// damaged id index from the log. Never reads the whole log when the id index is sound.
    pub(crate) fn open(store: &Path, writable: bool) -> Result<Records, RecordsError> {
        let dir = store.join(RECORDS_DIR);
        if writable {
            private_dir(&dir)?;
        }
        let mut gens = log_generations(&dir)?;
        let ids_path = dir.join(IDS_FILE);
        if gens.is_empty() {
            let table = IdTable::open(&ids_path).ok();
            if let Some(t) = table.filter(|t| t.footer.count > 0 || t.footer.last_seq > 0) {
                return Err(RecordsError::Lost {
                    count: t.footer.count,
                    detail: format!(
                        "the records log of {} is missing (its id index names {} memories, up to commit {})",
                        dir.display(),
                        t.footer.count,
                        t.footer.last_seq
                    ),
                });
            }
            if !writable {
                if legacy::load_exists(&dir) {
                    return Err(RecordsError::OldFormat(dir));
                }
                return Ok(Records::empty(dir));
            }
            let (base, memories) = legacy::load(&dir)?.unwrap_or_default();
            let mut payloads = Vec::with_capacity(memories.len());
            for m in &memories {
                payloads.push((m.id, encode_memory(m)?));
            }
            drop(memories);
            let (entries, end) = write_log(&dir, 1, base, &mut |emit| {
                for (id, json) in &payloads {
                    let h = Header {
                        kind: Kind::Put,
                        last: true,
                        compacted: true,
                        len: json.len() as u32,
                        seq: base,
                        id: *id.as_bytes(),
                        payload_sum: 0,
                    };
                    emit(&h, json).map_err(|source| RecordsError::Io {
                        what: "writing",
                        path: dir.join(log_name(1)),
                        source,
                    })?;
                }
                Ok(())
            })?;
            let footer = Footer {
                generation: 1,
                count: 0,
                last_seq: base,
                covered_end: end,
                puts: entries.len() as u64,
            };
            ids::write(&ids_path, footer, entries.into_iter())?;
            legacy::remove(&dir)?;
            gens.push(1);
        }
        let generation = *gens.last().unwrap_or(&1);
        let log_path = dir.join(log_name(generation));
        if writable {
            for old in &gens[..gens.len() - 1] {
                let _ = seam::remove_file(&dir.join(log_name(*old)));
            }
        }
        let log = open_regular(&log_path, writable).map_err(|source| RecordsError::Io {
            what: "opening",
            path: log_path.clone(),
            source,
        })?;
        let len = log
            .metadata()
            .map_err(|source| RecordsError::Io { what: "reading", path: log_path.clone(), source })?
            .len();
        let mut records = Records {
            dir: dir.clone(),
            generation,
            log_path: log_path.clone(),
            log: Some(log),
            ids: None,
            delta: HashMap::new(),
            count: 0,
            puts: 0,
            seq: 0,
            end: 0,
            torn: None,
        };
        let name = log_name(generation);
        let table = match IdTable::open(&ids_path) {
            Ok(t) if t.footer.generation == generation => Ok(t),
            Ok(t) => Err(Unusable::Damaged(format!(
                "it indexes log generation {}, not {generation}",
                t.footer.generation
            ))),
            Err(e) => Err(e),
        };
        match table {
            Ok(t) if t.footer.covered_end > len => {
                let lost = match t.all() {
                    Ok(all) => cut_loss(store, all, len, t.footer.last_seq),
                    Err(_) => t.footer.count,
                };
                return Err(RecordsError::Lost {
                    count: lost,
                    detail: format!(
                        "records log {} is {len} bytes, its id index covers {} (cut after commit {} or earlier)",
                        log_path.display(),
                        t.footer.covered_end,
                        t.footer.last_seq
                    ),
                });
            }
            Ok(t) => {
                let log = records.log()?;
                let r = replay(
                    log,
                    &name,
                    &log_path,
                    t.footer.covered_end,
                    len,
                    t.footer.last_seq,
                    0,
                    false,
                    None,
                )?;
                records.count = (t.footer.count + r.puts).saturating_sub(r.forgets);
                records.puts = t.footer.puts + r.puts;
                records.seq = r.seq;
                records.end = r.end;
                records.torn = r.torn;
                records.delta = r.changes.into_iter().collect();
                records.ids = Some(t);
            }
            Err(_) => {
                let log = records.log()?;
                let r = replay(log, &name, &log_path, 0, len, 0, 0, false, None)?;
                records.seq = r.seq;
                records.end = r.end;
                records.torn = r.torn;
                records.puts = r.puts;
                let live = sorted_live(r.changes);
                records.count = live.len() as u64;
                if writable {
                    let footer = Footer {
                        generation,
                        count: 0,
                        last_seq: r.seq,
                        covered_end: r.end,
                        puts: r.puts,
                    };
                    ids::write(&ids_path, footer, live.into_iter())?;
                    records.ids = IdTable::open(&ids_path).ok();
                } else {
                    records.delta = live.into_iter().map(|e| (e.id, Some(e.loc))).collect();
                }
            }
        }
        Ok(records)
    }

    fn empty(dir: PathBuf) -> Records {
        Records {
            log_path: dir.join(log_name(1)),
            dir,
            generation: 1,
            log: None,
            ids: None,
            delta: HashMap::new(),
            count: 0,
            puts: 0,
            seq: 0,
            end: 0,
            torn: None,
        }
    }

    fn log(&self) -> Result<&File, RecordsError> {
        self.log.as_ref().ok_or_else(|| RecordsError::Io {
            what: "opening",
            path: self.log_path.clone(),
            source: io::ErrorKind::NotFound.into(),
        })
    }

    /// The sequence number of the last commit.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Live memories.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Bytes a crash left after the last complete commit, if any (offset, length).
    pub(crate) fn torn_tail(&self) -> Option<(u64, u64)> {
        self.torn
    }

    fn lookup(&self, id: &[u8; 16]) -> Result<Option<Loc>, RecordsError> {
        if let Some(d) = self.delta.get(id) {
            return Ok(*d);
        }
        match &self.ids {
            Some(t) => t.lookup(id),
            None => Ok(None),
        }
    }

    pub(crate) fn contains(&self, id: &Uuid) -> Result<bool, RecordsError> {
        Ok(self.lookup(id.as_bytes())?.is_some())
    }

    /// Whether each id is stored; reads the whole id index once for many ids.
    pub(crate) fn contains_many(&self, ids: &[Uuid]) -> Result<Vec<bool>, RecordsError> {
        if ids.len() > BULK_LOOKUPS {
            if let Some(t) = &self.ids {
                t.all()?;
            }
        }
        ids.iter().map(|id| self.contains(id)).collect()
    }

    fn read_frame(&self, id: &[u8; 16], loc: Loc) -> Result<Memory, RecordsError> {
        let damaged = || RecordsError::Damaged {
            id: Uuid::from_bytes(*id),
            path: self.log_path.clone(),
            offset: loc.offset,
        };
        if u64::from(loc.len) > (frame::HEADER as u64) + u64::from(frame::MAX_PAYLOAD) {
            return Err(damaged());
        }
        let mut buf = vec![0u8; loc.len as usize];
        match read_at(self.log()?, &mut buf, loc.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(damaged()),
            Err(source) => {
                return Err(RecordsError::Io {
                    what: "reading",
                    path: self.log_path.clone(),
                    source,
                })
            }
        }
        let h = frame::decode(&buf).ok_or_else(damaged)?;
        let payload = &buf[frame::HEADER.min(buf.len())..];
        if h.kind != Kind::Put || h.id != *id || !frame::payload_ok(&h, payload) {
            return Err(damaged());
        }
        let m: Memory = serde_json::from_slice(payload).map_err(|_| damaged())?;
        if m.id.as_bytes() != id {
            return Err(damaged());
        }
        Ok(m)
    }

    /// The memory with `id`: one id-index lookup and one read.
    pub(crate) fn get(&self, id: &Uuid) -> Result<Option<Memory>, RecordsError> {
        match self.lookup(id.as_bytes())? {
            Some(loc) => self.read_frame(id.as_bytes(), loc).map(Some),
            None => Ok(None),
        }
    }

    /// Visits the memories with these ids (those stored and intact), in log order. Returns how
    /// many were stored but damaged.
    pub(crate) fn visit_ids(
        &self,
        ids: impl Iterator<Item = [u8; 16]>,
        visit: &mut dyn FnMut(Memory) -> Result<(), crate::store::Error>,
    ) -> Result<u64, crate::store::Error> {
        if let Some(t) = &self.ids {
            t.all()?;
        }
        let mut locs = Vec::new();
        for id in ids {
            if let Some(loc) = self.lookup(&id)? {
                locs.push((loc, id));
            }
        }
        locs.sort_unstable_by_key(|(loc, _)| loc.offset);
        let mut damaged = 0;
        for (loc, id) in locs {
            match self.read_frame(&id, loc) {
                Ok(m) => visit(m)?,
                Err(RecordsError::Damaged { .. }) => damaged += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(damaged)
    }

    /// Visits every live memory, in log order, reading the log once with a bounded buffer.
    /// Returns how many live records were damaged (and skipped).
    pub(crate) fn for_each_live(
        &self,
        mut progress: Option<Progress<'_>>,
        visit: &mut dyn FnMut(Memory) -> Result<bool, crate::store::Error>,
    ) -> Result<u64, crate::store::Error> {
        let Some(log) = &self.log else { return Ok(0) };
        // Every live record's (offset, id), sorted: the scan meets offsets in increasing order,
        // so a cursor tells whether a frame is live, where a lookup per frame (a binary search
        // of the id index, a cache miss per step at a million memories) cost more than the
        // JSON decoding.
        let mut live: Vec<(u64, [u8; 16])> = Vec::new();
        if let Some(t) = &self.ids {
            let all = t.all()?;
            live.reserve_exact(all.len());
            live.extend(
                all.iter()
                    .filter(|e| !self.delta.contains_key(&e.id))
                    .map(|e| (e.loc.offset, e.id)),
            );
        }
        live.extend(self.delta.iter().filter_map(|(id, loc)| loc.map(|l| (l.offset, *id))));
        live.sort_unstable();
        let mut cursor = 0usize;
        // Whether `id`'s live record is at `offset`; offsets must come in increasing order.
        let mut is_live = |offset: u64, id: &[u8; 16]| {
            while live.get(cursor).is_some_and(|&(o, _)| o < offset) {
                cursor += 1;
            }
            live[cursor..].iter().take_while(|&&(o, _)| o == offset).any(|(_, i)| i == id)
        };
        let io = |source| RecordsError::Io { what: "reading", path: self.log_path.clone(), source };
        let mut failure: Option<crate::store::Error> = None;
        let mut damaged = 0u64;
        let mut last_report = 0u64;
        let end = self.end;
        scan::scan(log.try_clone().map_err(io)?, 0, end, |item| {
            let mut step = || -> Result<bool, crate::store::Error> {
                match item {
                    Item::Frame { offset, header, payload } if header.kind == Kind::Put => {
                        if !is_live(offset, &header.id) {
                            return Ok(true);
                        }
                        match serde_json::from_slice::<Memory>(payload) {
                            Ok(m) if m.id.as_bytes() == &header.id => visit(m),
                            _ => {
                                damaged += 1;
                                Ok(true)
                            }
                        }
                    }
                    Item::Damaged { header: Some(h), offset, .. } => {
                        if is_live(offset, &h.id) {
                            damaged += 1;
                        }
                        Ok(true)
                    }
                    _ => Ok(true),
                }
            };
            let offset = match &item {
                Item::Frame { offset, .. }
                | Item::Damaged { offset, .. }
                | Item::Incomplete { offset, .. } => *offset,
            };
            if let Some(p) = progress.as_mut() {
                if offset - last_report > 1 << 22 {
                    last_report = offset;
                    p(offset, end);
                }
            }
            match step() {
                Ok(go_on) => go_on,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })
        .map_err(io)?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(p) = progress.as_mut() {
            p(end, end);
        }
        Ok(damaged)
    }

    /// Visits every commit after `after`, in order, with its changes as the log holds them
    /// (replication's catch-up). Fails with [`RecordsError::Compacted`] when a compaction or
    /// repair rewrote the history after `after` (then the commits one by one are gone), and
    /// with [`RecordsError::Damaged`] on a damaged record of such a commit.
    pub(crate) fn commits_since(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, Vec<Change>) -> Result<bool, crate::store::Error>,
    ) -> Result<(), crate::store::Error> {
        let Some(log) = &self.log else { return Ok(()) };
        if self.seq <= after {
            return Ok(());
        }
        let io = |source| RecordsError::Io { what: "reading", path: self.log_path.clone(), source };
        let mut failure: Option<crate::store::Error> = None;
        let mut pending: Vec<Change> = Vec::new();
        let path = self.log_path.clone();
        scan::scan(log.try_clone().map_err(io)?, 0, self.end, |item| {
            let mut step = || -> Result<bool, crate::store::Error> {
                match item {
                    Item::Frame { header, .. } if header.seq <= after => Ok(true),
                    Item::Frame { header, .. } if header.compacted || header.kind == Kind::Base => {
                        Err(RecordsError::Compacted { after, at: header.seq }.into())
                    }
                    Item::Frame { header, payload, offset } => {
                        match header.kind {
                            Kind::Put => match serde_json::from_slice::<Memory>(payload) {
                                Ok(m) if m.id.as_bytes() == &header.id => {
                                    pending.push(Change::Put(Box::new(m)));
                                }
                                _ => {
                                    return Err(RecordsError::Damaged {
                                        id: Uuid::from_bytes(header.id),
                                        path: path.clone(),
                                        offset,
                                    }
                                    .into())
                                }
                            },
                            Kind::Forget => {
                                pending.push(Change::Forget(Uuid::from_bytes(header.id)))
                            }
                            Kind::Base => {}
                        }
                        if header.last {
                            return visit(header.seq, std::mem::take(&mut pending));
                        }
                        Ok(true)
                    }
                    Item::Damaged { offset, header, .. } => match header {
                        Some(h) if h.seq <= after => Ok(true),
                        _ => Err(RecordsError::Damaged {
                            id: header.map_or(Uuid::nil(), |h| Uuid::from_bytes(h.id)),
                            path: path.clone(),
                            offset,
                        }
                        .into()),
                    },
                    Item::Incomplete { .. } => Ok(false),
                }
            };
            match step() {
                Ok(go_on) => go_on,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })
        .map_err(io)?;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every live id, sorted.
    pub(crate) fn live_ids(&self) -> Result<Vec<Uuid>, RecordsError> {
        let mut out = Vec::new();
        if let Some(t) = &self.ids {
            for e in t.all()? {
                if !self.delta.contains_key(&e.id) {
                    out.push(Uuid::from_bytes(e.id));
                }
            }
        }
        out.extend(
            self.delta.iter().filter(|(_, l)| l.is_some()).map(|(id, _)| Uuid::from_bytes(*id)),
        );
        out.sort_unstable();
        Ok(out)
    }

    /// Reads every record and checks it: checksums, the commit sequence, and that every live
    /// memory's record is intact.
    pub(crate) fn check(
        &self,
        progress: Option<Progress<'_>>,
    ) -> Result<RecordsCheck, RecordsError> {
        let Some(log) = &self.log else { return Ok(RecordsCheck::default()) };
        let name = log_name(self.generation);
        let len = log
            .metadata()
            .map_err(|source| RecordsError::Io {
                what: "reading",
                path: self.log_path.clone(),
                source,
            })?
            .len();
        let r = replay(log, &name, &self.log_path, 0, len, 0, 0, true, progress)?;
        let intact = r.intact.unwrap_or_default();
        let mut check = RecordsCheck {
            damaged: r.damaged,
            missing_commits: r.gaps,
            unacknowledged_tail: r.torn,
            ..RecordsCheck::default()
        };
        let mut judge = |id: &[u8; 16], loc: &Loc| {
            if intact.contains(&loc.offset) {
                check.intact += 1;
            } else {
                check.lost.push(Uuid::from_bytes(*id));
            }
        };
        if let Some(t) = &self.ids {
            for e in t.all()? {
                if !self.delta.contains_key(&e.id) {
                    judge(&e.id, &e.loc);
                }
            }
        }
        for (id, loc) in &self.delta {
            if let Some(loc) = loc {
                judge(id, loc);
            }
        }
        check.lost.sort_unstable();
        Ok(check)
    }

    /// Appends `entries` as the next commit, durably (one write, one `fdatasync`). Returns its
    /// sequence number.
    pub(crate) fn commit(&mut self, entries: Vec<Entry>) -> Result<u64, RecordsError> {
        let appended = self.append(entries)?;
        let synced = match self.log() {
            Ok(log) => seam::sync_data(log, &self.log_path),
            Err(_) => Err(io::ErrorKind::NotFound.into()),
        };
        self.settle(appended, synced)
    }

    /// [`Records::commit`], running `overlap` on this thread while the commit's `fdatasync`
    /// runs on another: the publication's files are written while the records reach the disk
    /// (`HEAD`, which names them, is replaced only after both). The commit is acknowledged
    /// (its sequence number, [`Records::seq`]` + 1` before the call, is returned) only once
    /// its bytes are durable; `overlap`'s result is returned either way.
    pub(crate) fn commit_overlapped<T>(
        &mut self,
        entries: Vec<Entry>,
        overlap: impl FnOnce() -> T,
    ) -> (Result<u64, RecordsError>, T) {
        match self.append(entries) {
            Ok(appended) => {
                let (synced, done) = match self.log() {
                    Ok(log) => {
                        let path = &self.log_path;
                        std::thread::scope(|s| {
                            let sync = s.spawn(|| seam::sync_data(log, path));
                            let done = overlap();
                            // If the syncing thread panicked, the commit is not durable.
                            let synced = sync.join().unwrap_or_else(|_| {
                                Err(io::Error::other("the fdatasync thread panicked"))
                            });
                            (synced, done)
                        })
                    }
                    Err(_) => (Err(io::ErrorKind::NotFound.into()), overlap()),
                };
                (self.settle(appended, synced), done)
            }
            Err(e) => (Err(e), overlap()),
        }
    }

    /// After an appended commit's `fdatasync`: acknowledged if it succeeded, taken back (and the
    /// failure returned) if not.
    fn settle(
        &mut self,
        (seq, len, locs): Appended,
        synced: io::Result<()>,
    ) -> Result<u64, RecordsError> {
        if let Err(source) = synced {
            self.take_back(len);
            let path = self.log_path.clone();
            return Err(RecordsError::Io { what: "appending to", path, source });
        }
        Ok(self.acknowledge(seq, len, locs))
    }

    /// Not acknowledged: takes the appended `len` bytes back so the next commit starts clean; if
    /// even that fails, the next commit cuts them first.
    fn take_back(&mut self, len: u64) {
        let cut = self.log().is_ok_and(|log| seam::set_len(log, &self.log_path, self.end).is_ok());
        if !cut {
            self.torn = Some((self.end, len));
        }
    }

    /// Encodes `entries` as the next commit and writes them after the log's end, not yet
    /// synced. Returns the commit's sequence number, its length and the entries' locations.
    fn append(&mut self, entries: Vec<Entry>) -> Result<Appended, RecordsError> {
        let seq = self.seq + 1;
        let mut buf = Vec::new();
        let mut locs = Vec::with_capacity(entries.len());
        let n = entries.len();
        for (i, e) in entries.iter().enumerate() {
            let flags = if i + 1 == n { LAST } else { 0 };
            let at = self.end + buf.len() as u64;
            match e {
                Entry::Put(m) => {
                    let json = encode_memory(m)?;
                    frame::encode(&mut buf, Kind::Put, flags, seq, *m.id.as_bytes(), &json);
                    locs.push((
                        *m.id.as_bytes(),
                        Some(Loc { offset: at, len: (frame::HEADER + json.len()) as u32 }),
                    ));
                }
                Entry::Forget(id) => {
                    frame::encode(&mut buf, Kind::Forget, flags, seq, *id.as_bytes(), &[]);
                    locs.push((*id.as_bytes(), None));
                }
            }
        }
        let path = self.log_path.clone();
        let log = self.log()?.try_clone().map_err(|source| RecordsError::Io {
            what: "opening",
            path: path.clone(),
            source,
        })?;
        let log = &log;
        let io = |source| RecordsError::Io { what: "appending to", path: path.clone(), source };
        if self.torn.is_some() {
            seam::set_len(log, &path, self.end).map_err(io)?;
            seam::sync_data(log, &path).map_err(io)?;
            self.torn = None;
        }
        if let Err(e) = seam::write_at(log, &path, &buf, self.end) {
            self.take_back(buf.len() as u64);
            return Err(io(e));
        }
        Ok((seq, buf.len() as u64, locs))
    }

    /// After a commit's bytes are durable: counts its entries, moves the end, checkpoints the
    /// id index or compacts when due. Returns the commit's sequence number.
    fn acknowledge(&mut self, seq: u64, len: u64, locs: Vec<([u8; 16], Option<Loc>)>) -> u64 {
        for (id, loc) in locs {
            if loc.is_some() {
                self.count += 1;
                self.puts += 1;
            } else {
                self.count = self.count.saturating_sub(1);
            }
            self.delta.insert(id, loc);
        }
        self.seq = seq;
        self.end += len;
        // The commit is durable; a failed index rewrite only leaves more to replay at open,
        // a failed compaction a longer log.
        let _ = self.maybe_checkpoint();
        let _ = self.maybe_compact();
        seq
    }

    /// Compacts when dead records outnumber live ones (and [`COMPACT_DEAD`]): the intact live
    /// records are copied into the next log generation (the same path as a repair). A log with
    /// any damage is left alone: dropping records is for `mcs repair`, never silent.
    fn maybe_compact(&mut self) -> Result<(), RecordsError> {
        let dead = self.puts.saturating_sub(self.count);
        if dead <= COMPACT_DEAD || dead <= self.count {
            return Ok(());
        }
        let check = self.check(None)?;
        if !check.is_clean() || check.unacknowledged_tail.is_some() {
            return Ok(());
        }
        let Some(store) = self.dir.parent().map(Path::to_owned) else { return Ok(()) };
        // Close our handles first (Windows cannot remove an open file), and reopen from what
        // is on disk whatever the outcome: the highest complete log generation is the truth.
        self.log = None;
        self.ids = None;
        let done = salvage(&store, self.seq, None);
        *self = Records::open(&store, true)?;
        done.map(|_| ())
    }

    fn maybe_checkpoint(&mut self) -> Result<(), RecordsError> {
        let (covered, table_bytes) = self
            .ids
            .as_ref()
            .map_or((0, 0), |t| (t.footer.covered_end, t.footer.count * ids::ENTRY as u64));
        if self.end - covered <= CHECKPOINT_BYTES.max(table_bytes / 4) {
            return Ok(());
        }
        self.checkpoint()
    }

    /// Rewrites the id index to cover the whole log: the old index merged with the changes.
    pub(crate) fn checkpoint(&mut self) -> Result<(), RecordsError> {
        let mut delta: Vec<([u8; 16], Option<Loc>)> =
            self.delta.iter().map(|(k, v)| (*k, *v)).collect();
        delta.sort_unstable_by_key(|(id, _)| *id);
        let old: &[IdEntry] = match &self.ids {
            Some(t) => t.all()?,
            None => &[],
        };
        let merged = MergeLive { old: old.iter().peekable(), delta: delta.into_iter().peekable() };
        let footer = Footer {
            generation: self.generation,
            count: 0,
            last_seq: self.seq,
            covered_end: self.end,
            puts: self.puts,
        };
        let path = self.dir.join(IDS_FILE);
        ids::write(&path, footer, merged)?;
        self.ids = None;
        self.ids = Some(IdTable::open(&path).map_err(|e| RecordsError::Corrupt {
            path: path.clone(),
            offset: 0,
            problem: format!("{e} right after writing it"),
        })?);
        self.delta.clear();
        Ok(())
    }
}

/// The old id index's entries updated by the changes after it (both sorted by id).
struct MergeLive<'a, D: Iterator<Item = ([u8; 16], Option<Loc>)>> {
    old: std::iter::Peekable<std::slice::Iter<'a, IdEntry>>,
    delta: std::iter::Peekable<D>,
}

impl<D: Iterator<Item = ([u8; 16], Option<Loc>)>> Iterator for MergeLive<'_, D> {
    type Item = IdEntry;
    fn next(&mut self) -> Option<IdEntry> {
        loop {
            let take_old = match (self.old.peek(), self.delta.peek()) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(o), Some((d, _))) => o.id < *d,
            };
            if take_old {
                return self.old.next().copied();
            }
            let (id, loc) = self.delta.next()?;
            if self.old.peek().is_some_and(|o| o.id == id) {
                self.old.next();
            }
            if let Some(loc) = loc {
                return Some(IdEntry { id, loc });
            }
        }
    }
}

/// The last committed sequence number of the store in `store`, cheaply: the id index's footer
/// and the commits after it.
pub(crate) fn last_seq(store: &Path) -> Result<u64, RecordsError> {
    Ok(Records::open(store, false)?.seq())
}

/// The memory with `id` in the store in `store`, read from the records alone (the index is not
/// opened): the id index's footer, O(log n) of its entries, the replayed tail and one record.
pub fn get_from_records(store: &Path, id: Uuid) -> Result<Option<Memory>, RecordsError> {
    Records::open(store, false)?.get(&id)
}

/// Keeps every intact live record of the store in `store` (the caller holds the writer lock):
/// writes them as the next log generation with a base at least `min_seq`, a new id index, and
/// what was dropped to `quarantine/`. Works on a store whose log is damaged, cut or missing.
pub(crate) fn salvage(
    store: &Path,
    min_seq: u64,
    progress: Option<Progress<'_>>,
) -> Result<RepairReport, RecordsError> {
    let dir = store.join(RECORDS_DIR);
    private_dir(&dir)?;
    if log_generations(&dir)?.is_empty() && legacy::load_exists(&dir) {
        // Migrate first: the old format's records are the truth until then.
        drop(Records::open(store, true)?);
    }
    let ids_path = dir.join(IDS_FILE);
    let gens = log_generations(&dir)?;
    let generation = gens.last().copied();
    let table = IdTable::open(&ids_path).ok();
    // What the id index says was live (if it is readable and of this log or a lost one).
    let known: Vec<IdEntry> = match &table {
        Some(t) if generation.is_none_or(|g| g == t.footer.generation) => {
            t.all().map(<[IdEntry]>::to_vec).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let mut report = RepairReport::default();
    let mut base_seq = min_seq.max(table.as_ref().map_or(0, |t| t.footer.last_seq));
    let mut raw: Vec<(u64, u64)> = Vec::new();
    let mut forgotten: HashSet<[u8; 16]> = HashSet::new();
    let new_gen = generation.unwrap_or(0) + 1;
    let (entries, end, old) = if let Some(g) = generation {
        let name = log_name(g);
        let path = dir.join(&name);
        let log = open_regular(&path, false).map_err(|source| RecordsError::Io {
            what: "opening",
            path: path.clone(),
            source,
        })?;
        let len = log
            .metadata()
            .map_err(|source| RecordsError::Io { what: "reading", path: path.clone(), source })?
            .len();
        // Commits up to `base_seq` were acknowledged: the published index or the id index
        // covers them, so a cut or damaged end of one is damage, not a torn append.
        let r = replay(&log, &name, &path, 0, len, 0, base_seq, false, progress)?;
        base_seq = base_seq.max(r.seq);
        report.missing_commits = r.gaps;
        raw.extend(r.damaged.iter().map(|d| (d.offset, d.len)));
        if let Some((o, l)) = r.torn {
            raw.push((o, l));
        }
        report.damaged = r.damaged;
        let mut last: HashMap<[u8; 16], Option<Loc>> = HashMap::new();
        for (id, loc) in r.changes {
            last.insert(id, loc);
        }
        let live: HashMap<[u8; 16], Loc> =
            last.iter().filter_map(|(id, loc)| Some((*id, (*loc)?))).collect();
        forgotten.extend(last.iter().filter(|(_, loc)| loc.is_none()).map(|(id, _)| *id));
        let io = |source| RecordsError::Io { what: "reading", path: path.clone(), source };
        let (entries, end) = write_log(&dir, new_gen, base_seq, &mut |emit| {
            let mut failure = None;
            scan::scan(log.try_clone().map_err(io)?, 0, len, |item| {
                if let Item::Frame { offset, header, payload } = item {
                    if header.kind == Kind::Put
                        && live.get(&header.id).map(|l| l.offset) == Some(offset)
                    {
                        if let Err(e) = emit(&header, payload) {
                            failure = Some(e);
                            return false;
                        }
                    }
                }
                true
            })
            .map_err(io)?;
            match failure {
                Some(source) => Err(RecordsError::Io {
                    what: "writing",
                    path: dir.join(log_name(new_gen)),
                    source,
                }),
                None => Ok(()),
            }
        })?;
        (entries, end, Some((path, log, live)))
    } else {
        let (entries, end) = write_log(&dir, new_gen, base_seq, &mut |_| Ok(()))?;
        (entries, end, None)
    };
    // Lost: live per the id index or per the log, but not copied.
    let kept: HashSet<[u8; 16]> = entries.iter().map(|e| e.id).collect();
    let mut lost: HashSet<[u8; 16]> = HashSet::new();
    if let Some((_, _, live)) = &old {
        lost.extend(live.keys().filter(|id| !kept.contains(*id)));
    }
    lost.extend(
        known.iter().map(|e| e.id).filter(|id| !kept.contains(id) && !forgotten.contains(id)),
    );
    report.kept = entries.len() as u64;
    report.lost = lost.into_iter().map(Uuid::from_bytes).collect();
    report.lost.sort_unstable();
    let footer = Footer {
        generation: new_gen,
        count: 0,
        last_seq: base_seq,
        covered_end: end,
        puts: entries.len() as u64,
    };
    // Quarantine before the old log goes.
    if !report.lost.is_empty()
        || !report.damaged.is_empty()
        || !raw.is_empty()
        || !report.missing_commits.is_empty()
    {
        let qdir = store.join(QUARANTINE_DIR);
        private_dir(&qdir)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let stem = format!("{stamp}-{:016}", generation.unwrap_or(0));
        if let Some((path, log, _)) = &old {
            let mut bytes = Vec::new();
            for (o, l) in &raw {
                let mut b = vec![0u8; (*l).min(64 << 20) as usize];
                if read_at(log, &mut b, *o).is_ok() {
                    bytes.extend_from_slice(&b);
                }
            }
            let _ = path;
            atomic_write::Options::new()
                .mode(0o600)
                .write(qdir.join(format!("{stem}.bin")), &bytes)?;
        }
        let json = qdir.join(format!("{stem}.json"));
        report.quarantine = Some(json.clone());
        let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
        atomic_write::Options::new().mode(0o600).write(&json, &text)?;
    }
    ids::write(&ids_path, footer, entries.into_iter())?;
    if let Some((path, _, _)) = old {
        seam::remove_file(&path).map_err(|source| RecordsError::Io {
            what: "removing",
            path,
            source,
        })?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
