//! The recorder behind `atomic_write::seam`, and the crash states a trace allows.
//!
//! # The model
//!
//! A file's data and length become durable at its `fsync`/`fdatasync`; until then any prefix
//! of the writes since its last sync may have reached the disk, the last of them torn: a prefix
//! of its bytes, or the new length with zeros where its data did not land, or a later part
//! without an earlier one. A name (a creation, rename, removal or new directory) becomes durable
//! at the `fsync` of its directory; until then the names changed since that directory's last
//! sync may be any subset of those changes, applied in the order they were made (a rename is
//! one change: both names or neither). Nothing else is durable: a file's `fsync` does not make
//! its name durable, a rename does not make its file's data durable. A file or directory whose
//! parent directory's name did not survive is unreachable and absent.
//!
//! # What is enumerated
//!
//! At every point of the trace (after each operation), from the pending changes then: none of
//! them, all of them; each prefix of the pending name changes (the order journaling file
//! systems keep), all but one of them; and for each file with unsynced data,
//! each prefix of its unsynced writes with the next one torn in each of the three ways, with no
//! pending name change or with all of them. A file written in place (the records log, the
//! beacon) is torn at its first byte, its second, its last, its middle and each 512-byte
//! sector boundary; a file under an atomic-write temp name (renamed into place only after its
//! fsync, so torn contents are only ever seen under the temp name) at its middle only.
//! Identical states are counted once. The model allows more (any subset of names times any tearing of every file at once);
//! that product is not enumerated.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use atomic_write::seam;
use memory_store::Uuid;

/// One recorded operation, paths relative to the recorded root.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Create(PathBuf),
    Write(PathBuf, u64, Vec<u8>),
    SetLen(PathBuf, u64),
    SyncFile(PathBuf),
    Rename(PathBuf, PathBuf),
    Remove(PathBuf),
    CreateDir(PathBuf),
    SyncDir(PathBuf),
}

/// What the trace holds: operations, and what the driver learnt between them.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Op(Op),
    /// A store returned: the memory with this id and question is acknowledged.
    Acked(Uuid, String),
    /// A forget starts: until it returns, the memory may be there or not.
    Forgetting(Uuid),
    /// A forget returned.
    Forgot(Uuid),
    /// The driver starts a phase (store, forget, ingest...).
    Phase(&'static str),
}

/// Records the operations under one root; syncs are skipped (nothing here needs durability).
pub(crate) struct Recorder {
    inner: Mutex<(Option<PathBuf>, Vec<Event>)>,
    installed: AtomicBool,
}

impl Recorder {
    pub(crate) const fn new() -> Recorder {
        Recorder { inner: Mutex::new((None, Vec::new())), installed: AtomicBool::new(false) }
    }

    /// Records every operation under `root` from now on.
    pub(crate) fn start(&'static self, root: &Path) {
        if !self.installed.swap(true, Ordering::SeqCst) {
            assert!(seam::install(self).is_ok(), "another seam hook is installed");
        }
        *self.inner.lock().unwrap() = (Some(root.to_owned()), Vec::new());
    }

    /// Stops recording and returns the trace.
    pub(crate) fn stop(&self) -> Vec<Event> {
        let mut inner = self.inner.lock().unwrap();
        inner.0 = None;
        std::mem::take(&mut inner.1)
    }

    pub(crate) fn mark(&self, event: Event) {
        let mut inner = self.inner.lock().unwrap();
        if inner.0.is_some() {
            inner.1.push(event);
        }
    }
}

impl seam::Hook for Recorder {
    fn see(&self, op: &seam::Op<'_>) {
        let mut inner = self.inner.lock().unwrap();
        let (Some(root), events) = &mut *inner else { return };
        let rel = |p: &Path| p.strip_prefix(&*root).ok().map(Path::to_owned);
        let op = match *op {
            seam::Op::Create { path } => rel(path).map(Op::Create),
            seam::Op::Write { path, offset, bytes } => {
                rel(path).map(|p| Op::Write(p, offset, bytes.to_vec()))
            }
            seam::Op::SetLen { path, len } => rel(path).map(|p| Op::SetLen(p, len)),
            seam::Op::SyncFile { path } => rel(path).map(Op::SyncFile),
            seam::Op::Rename { from, to } => rel(from).and_then(|f| Some(Op::Rename(f, rel(to)?))),
            seam::Op::Remove { path } => rel(path).map(Op::Remove),
            seam::Op::CreateDir { path } => rel(path).map(Op::CreateDir),
            seam::Op::SyncDir { path } => rel(path).map(Op::SyncDir),
            _ => None,
        };
        if let Some(op) = op {
            events.push(Event::Op(op));
        }
    }

    fn syncs(&self) -> bool {
        false
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    File(usize),
    Dir,
}

#[derive(Clone, Copy, Debug)]
enum FileOp<'t> {
    Write(u64, &'t [u8]),
    SetLen(u64),
}

#[derive(Default)]
struct Inode<'t> {
    durable: Vec<u8>,
    pending: Vec<FileOp<'t>>,
}

#[derive(Clone, Debug)]
enum NameOp {
    Link(PathBuf, Node),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, Node),
}

/// A pending name change and the directory whose sync makes it durable.
struct Pending {
    dir: PathBuf,
    op: NameOp,
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_owned).unwrap_or_default()
}

fn apply_name(names: &mut BTreeMap<PathBuf, Node>, op: &NameOp) {
    match op {
        NameOp::Link(p, n) => {
            names.insert(p.clone(), *n);
        }
        NameOp::Unlink(p) => {
            names.remove(p);
        }
        NameOp::Rename(from, to, n) => {
            names.remove(from);
            names.insert(to.clone(), *n);
        }
    }
}

fn apply_file(data: &mut Vec<u8>, op: FileOp<'_>) {
    match op {
        FileOp::Write(off, bytes) => {
            let (off, end) = (off as usize, off as usize + bytes.len());
            if data.len() < end {
                data.resize(end, 0);
            }
            data[off..end].copy_from_slice(bytes);
        }
        FileOp::SetLen(len) => data.resize(len as usize, 0),
    }
}

/// How the next unsynced write of a file landed.
#[derive(Clone, Copy, Debug)]
enum Tear {
    /// Its first `cut` bytes only.
    Prefix(usize),
    /// Its first `cut` bytes and the new length, zeros for the rest.
    Zeros(usize),
    /// Its bytes from `cut` on and the new length, zeros before.
    Hole(usize),
}

/// The data of one file in a crash state.
#[derive(Clone, Copy, Debug)]
enum Data {
    Durable,
    Live,
    /// The first `k` pending operations of inode `ino`, then the next one torn.
    Torn {
        ino: usize,
        k: usize,
        tear: Tear,
    },
}

/// The file system a trace built, up to one point.
#[derive(Default)]
struct Model<'t> {
    inodes: Vec<Inode<'t>>,
    /// Whether each inode was created under an atomic-write temp name (renamed into place only
    /// after its fsync, so its torn contents are only ever seen under that name).
    temp: Vec<bool>,
    live: BTreeMap<PathBuf, Node>,
    durable: BTreeMap<PathBuf, Node>,
    pending: Vec<Pending>,
}

impl<'t> Model<'t> {
    fn ino(&self, p: &Path) -> usize {
        match self.live.get(p) {
            Some(Node::File(i)) => *i,
            other => panic!("{}: not a file in the trace ({other:?})", p.display()),
        }
    }

    fn step(&mut self, op: &'t Op) {
        match op {
            Op::Create(p) => {
                self.inodes.push(Inode::default());
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                self.temp.push(name.starts_with('.') && name.ends_with(".tmp"));
                let node = Node::File(self.inodes.len() - 1);
                self.live.insert(p.clone(), node);
                self.pending.push(Pending { dir: parent(p), op: NameOp::Link(p.clone(), node) });
            }
            Op::CreateDir(p) => {
                self.live.insert(p.clone(), Node::Dir);
                self.pending
                    .push(Pending { dir: parent(p), op: NameOp::Link(p.clone(), Node::Dir) });
            }
            Op::Write(p, off, bytes) => {
                let i = self.ino(p);
                self.inodes[i].pending.push(FileOp::Write(*off, bytes));
            }
            Op::SetLen(p, len) => {
                let i = self.ino(p);
                self.inodes[i].pending.push(FileOp::SetLen(*len));
            }
            Op::SyncFile(p) => {
                let i = self.ino(p);
                let inode = &mut self.inodes[i];
                for op in std::mem::take(&mut inode.pending) {
                    apply_file(&mut inode.durable, op);
                }
            }
            Op::Rename(from, to) => {
                assert_eq!(parent(from), parent(to), "renames stay in one directory");
                let node = self.live.remove(from).expect("rename of a known name");
                self.live.insert(to.clone(), node);
                self.pending.push(Pending {
                    dir: parent(to),
                    op: NameOp::Rename(from.clone(), to.clone(), node),
                });
            }
            Op::Remove(p) => {
                self.live.remove(p);
                self.pending.push(Pending { dir: parent(p), op: NameOp::Unlink(p.clone()) });
            }
            Op::SyncDir(d) => {
                let mut keep = Vec::new();
                for pending in std::mem::take(&mut self.pending) {
                    if pending.dir == *d {
                        apply_name(&mut self.durable, &pending.op);
                    } else {
                        keep.push(pending);
                    }
                }
                self.pending = keep;
            }
        }
    }

    fn data(&self, ino: usize, data: Data) -> Vec<u8> {
        let inode = &self.inodes[ino];
        let mut bytes = inode.durable.clone();
        let (k, tear) = match data {
            Data::Durable => (0, None),
            Data::Live => (inode.pending.len(), None),
            Data::Torn { ino: torn, k, tear } if torn == ino => (k, Some(tear)),
            Data::Torn { .. } => (0, None),
        };
        for op in &inode.pending[..k] {
            apply_file(&mut bytes, *op);
        }
        if let (Some(tear), Some(FileOp::Write(off, w))) = (tear, inode.pending.get(k)) {
            let off = *off as usize;
            let end = off + w.len();
            match tear {
                Tear::Prefix(cut) => apply_file(&mut bytes, FileOp::Write(off as u64, &w[..cut])),
                Tear::Zeros(cut) | Tear::Hole(cut) => {
                    if bytes.len() < end {
                        bytes.resize(end, 0);
                    }
                    bytes[off..end].fill(0);
                    let part = if let Tear::Zeros(_) = tear { 0..cut } else { cut..w.len() };
                    bytes[off + part.start..off + part.end].copy_from_slice(&w[part]);
                }
            }
        }
        bytes
    }

    /// The state with the pending name changes `mask` selects and file data `data`.
    fn state(&self, mask: impl Fn(usize) -> bool, data: Data) -> Files {
        let mut names = self.durable.clone();
        for (i, p) in self.pending.iter().enumerate() {
            if mask(i) {
                apply_name(&mut names, &p.op);
            }
        }
        let reachable = |p: &Path| {
            p.ancestors()
                .skip(1)
                .all(|a| a.as_os_str().is_empty() || names.get(a) == Some(&Node::Dir))
        };
        let mut files = BTreeMap::new();
        for (p, node) in &names {
            if !reachable(p) {
                continue;
            }
            files.insert(
                p.clone(),
                match node {
                    Node::Dir => None,
                    Node::File(ino) => Some(self.data(*ino, data)),
                },
            );
        }
        Files(files)
    }

    /// Every crash state enumerated at this point, with a short description of each.
    fn states(&self) -> Vec<(String, Files)> {
        let n = self.pending.len();
        let mut out = vec![
            ("nothing pending landed".to_owned(), self.state(|_| false, Data::Durable)),
            ("everything landed".to_owned(), self.state(|_| true, Data::Live)),
            ("names only".to_owned(), self.state(|_| true, Data::Durable)),
            ("data only".to_owned(), self.state(|_| false, Data::Live)),
        ];
        for j in 0..n {
            out.push((format!("names up to {j}"), self.state(|i| i <= j, Data::Live)));
            out.push((format!("all names but {j}"), self.state(|i| i != j, Data::Live)));
        }
        for (ino, inode) in self.inodes.iter().enumerate() {
            for (k, op) in inode.pending.iter().enumerate() {
                let FileOp::Write(_, w) = op else { continue };
                let mut cuts: Vec<usize> = vec![w.len() / 2];
                if !self.temp[ino] {
                    cuts.extend([0, 1, w.len().saturating_sub(1)]);
                    cuts.extend((1..4).map(|s| s * 512).filter(|&c| c < w.len()));
                }
                cuts.retain(|&c| c < w.len());
                cuts.sort_unstable();
                cuts.dedup();
                for &cut in &cuts {
                    for tear in [Tear::Prefix(cut), Tear::Zeros(cut), Tear::Hole(cut)] {
                        let data = Data::Torn { ino, k, tear };
                        // A torn temp file is only ever under its temp name, which nothing
                        // reads: with or without the other pending names is one case.
                        for all in
                            [false, true].into_iter().take(if self.temp[ino] { 1 } else { 2 })
                        {
                            out.push((
                                format!("file {ino} write {k} torn {tear:?}, names {all}"),
                                self.state(|_| all, data),
                            ));
                        }
                    }
                }
            }
        }
        out
    }
}

/// A crash state: every reachable path, `None` for a directory.
pub(crate) struct Files(BTreeMap<PathBuf, Option<Vec<u8>>>);

impl Files {
    fn digest(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.0.hash(&mut h);
        h.finish()
    }

    /// Writes the state under `root` (directories 0700, files 0600).
    pub(crate) fn materialize(&self, root: &Path) -> io::Result<()> {
        std::fs::create_dir_all(root)?;
        for (p, content) in &self.0 {
            let path = root.join(p);
            match content {
                None => {
                    let mut b = std::fs::DirBuilder::new();
                    #[cfg(unix)]
                    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
                    b.create(&path)?;
                }
                Some(bytes) => {
                    let mut o = std::fs::OpenOptions::new();
                    o.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                    io::Write::write_all(&mut o.open(&path)?, bytes)?;
                }
            }
        }
        Ok(())
    }
}

/// One distinct crash state and what it must hold.
pub(crate) struct State {
    pub(crate) files: Files,
    /// The driver's phase and the kind of operation the crash followed.
    pub(crate) phase: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) point: usize,
    pub(crate) variant: String,
    /// Acknowledged and not forgotten (id, question); forgotten with acknowledgement.
    pub(crate) live: Vec<(Uuid, String)>,
    pub(crate) forgotten: Vec<Uuid>,
}

/// What the last operation touched: records, a publication, a merge, garbage collection.
fn kind(op: &Op, segments_in_step: usize) -> &'static str {
    let path = match op {
        Op::Create(p)
        | Op::Write(p, ..)
        | Op::SetLen(p, _)
        | Op::SyncFile(p)
        | Op::Rename(_, p)
        | Op::CreateDir(p)
        | Op::SyncDir(p) => p,
        Op::Remove(_) => return "gc",
    };
    let s = path.to_string_lossy();
    if s.contains("records") {
        "commit"
    } else if segments_in_step > 1 {
        "merge"
    } else {
        "publish"
    }
}

/// Every distinct crash state of `trace`, in trace order, handed to `visit` as it is found.
/// Returns how many states were generated before removing duplicates.
pub(crate) fn states(trace: &[Event], mut visit: impl FnMut(State)) -> usize {
    let mut model = Model::default();
    let mut seen = HashSet::new();
    let mut generated = 0;
    let (mut phase, mut live, mut forgotten) = ("open", Vec::new(), Vec::new());
    let mut segments_in_step = 0usize;
    for (point, event) in trace.iter().enumerate() {
        let op = match event {
            Event::Op(op) => op,
            Event::Acked(id, q) => {
                live.push((*id, q.clone()));
                segments_in_step = 0;
                continue;
            }
            Event::Forgetting(id) => {
                live.retain(|(l, _)| l != id);
                continue;
            }
            Event::Forgot(id) => {
                forgotten.push(*id);
                segments_in_step = 0;
                continue;
            }
            Event::Phase(p) => {
                phase = p;
                segments_in_step = 0;
                continue;
            }
        };
        if let Op::Create(p) = op {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if p.starts_with("store/segments") && name.contains(".seg.") {
                segments_in_step += 1;
            }
        }
        model.step(op);
        let kind = kind(op, segments_in_step);
        for (variant, files) in model.states() {
            generated += 1;
            if seen.insert(files.digest()) {
                visit(State {
                    files,
                    phase,
                    kind,
                    point,
                    variant,
                    live: live.clone(),
                    forgotten: forgotten.clone(),
                });
            }
        }
    }
    generated
}
