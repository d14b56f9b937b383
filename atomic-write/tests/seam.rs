//! The I/O seam shows every step of an atomic write, in the order the steps took effect.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use atomic_write::seam::{self, Hook, Op};

/// Records the operations under one directory (other tests of this binary write elsewhere).
struct Record {
    root: Mutex<Option<PathBuf>>,
    seen: Mutex<Vec<String>>,
}

impl Hook for Record {
    fn see(&self, op: &Op<'_>) {
        let root = self.root.lock().unwrap();
        let Some(root) = root.as_deref() else { return };
        let name = |p: &Path| -> Option<String> {
            let rel = p.strip_prefix(root).ok()?.to_string_lossy().into_owned();
            // Temp names are random: keep their shape only.
            Some(if rel.ends_with(".tmp") { "TEMP".to_owned() } else { rel })
        };
        let line = match *op {
            Op::Create { path } => name(path).map(|p| format!("create {p}")),
            Op::Write { path, offset, bytes } => {
                name(path).map(|p| format!("write {p} @{offset} {}", bytes.len()))
            }
            Op::SyncFile { path } => name(path).map(|p| format!("sync {p}")),
            Op::Rename { from, to } => {
                name(from).and_then(|f| Some(format!("rename {f} {}", name(to)?)))
            }
            Op::SyncDir { path } => name(path).map(|p| format!("syncdir {p}")),
            Op::CreateDir { path } => name(path).map(|p| format!("mkdir {p}")),
            Op::Remove { path } => name(path).map(|p| format!("remove {p}")),
            _ => Some(format!("{op:?}")),
        };
        self.seen.lock().unwrap().extend(line);
    }
}

static RECORD: Record = Record { root: Mutex::new(None), seen: Mutex::new(Vec::new()) };

#[test]
fn an_atomic_write_shows_each_step_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    *RECORD.root.lock().unwrap() = Some(base.clone());
    assert!(seam::install(&RECORD).is_ok());
    atomic_write::write(base.join("sub/file"), b"hello").unwrap();
    let mut file = atomic_write::Options::new().open(base.join("sub/dropped")).unwrap();
    std::io::Write::write_all(&mut file, b"never committed").unwrap();
    drop(file);
    *RECORD.root.lock().unwrap() = None;
    let seen = RECORD.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "mkdir sub",
            "syncdir ",
            "create TEMP",
            "write TEMP @0 5",
            "sync TEMP",
            "rename TEMP sub/file",
            "syncdir sub",
            "create TEMP",
            "write TEMP @0 15",
            "remove TEMP",
        ]
    );
    // A second hook is refused: one per process.
    assert!(seam::install(&RECORD).is_err());
}
