//! The I/O seam: every change the store makes to its files goes through these functions, so a
//! test can see each write, size change, sync, rename, removal and directory creation in the
//! order it took effect (in the spirit of SQLite's test VFS), and rebuild from that trace the
//! states a power cut may leave.
//!
//! Production installs nothing: each function is the plain system call after one atomic load
//! that finds no [`Hook`]. A test installs one [`Hook`] per process with [`install`]; it is
//! shown each [`Op`] when the change has been made (a write, rename, removal...) or just
//! before a sync runs, so that a change shown before a sync was made before that sync began.
//! Reads do not go through the seam: they see the real files.
//!
//! # Example
//!
//! ```
//! use std::sync::Mutex;
//! use atomic_write::seam::{self, Hook, Op};
//!
//! struct Count(Mutex<usize>);
//! impl Hook for Count {
//!     fn see(&self, op: &Op<'_>) {
//!         if matches!(op, Op::Rename { .. }) {
//!             *self.0.lock().unwrap() += 1;
//!         }
//!     }
//! }
//! static COUNT: Count = Count(Mutex::new(0));
//! seam::install(&COUNT).ok();
//! # let dir = tempfile::tempdir()?;
//! atomic_write::write(dir.path().join("a"), b"one")?;
//! assert!(*COUNT.0.lock().unwrap() >= 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::OnceLock;

/// One change to the file system, as the seam shows it to a [`Hook`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op<'a> {
    /// A new, empty regular file appeared at `path`.
    Create {
        /// The new file.
        path: &'a Path,
    },
    /// `bytes` were written at `offset` of the file at `path` (not yet durable).
    Write {
        /// The file.
        path: &'a Path,
        /// Where in the file.
        offset: u64,
        /// What was written.
        bytes: &'a [u8],
    },
    /// The file at `path` was cut or extended (with zeros) to `len` bytes.
    SetLen {
        /// The file.
        path: &'a Path,
        /// Its new length.
        len: u64,
    },
    /// The data and length of the file at `path` are about to be made durable (`fsync` or
    /// `fdatasync`); its name is not (that is its directory's sync).
    SyncFile {
        /// The file.
        path: &'a Path,
    },
    /// `from` was renamed to `to`, replacing whatever `to` named.
    Rename {
        /// The old name.
        from: &'a Path,
        /// The new name.
        to: &'a Path,
    },
    /// The name `path` was removed.
    Remove {
        /// The removed name.
        path: &'a Path,
    },
    /// The directory `path` was created.
    CreateDir {
        /// The new directory.
        path: &'a Path,
    },
    /// The names in directory `path` (creations, renames, removals) are about to be made
    /// durable.
    SyncDir {
        /// The directory.
        path: &'a Path,
    },
}

/// What a test installs to see the operations (see the [module](self) documentation).
pub trait Hook: Send + Sync {
    /// Sees `op`: a change once it is made, a sync just before it runs. Called on the thread
    /// that does the operation; several threads may call at once.
    fn see(&self, op: &Op<'_>);

    /// Whether syncs really run (default: yes). A test that throws its files away and needs
    /// no durability may skip them to run faster; they are still shown to [`Hook::see`].
    fn syncs(&self) -> bool {
        true
    }
}

static HOOK: OnceLock<&'static dyn Hook> = OnceLock::new();

/// Installs `hook` for the rest of the process. Only one hook per process: a second call
/// fails and returns its argument.
pub fn install(hook: &'static dyn Hook) -> Result<(), &'static dyn Hook> {
    HOOK.set(hook)
}

#[inline]
fn hook() -> Option<&'static dyn Hook> {
    HOOK.get().copied()
}

#[inline]
fn seen(op: Op<'_>) {
    if let Some(h) = hook() {
        h.see(&op);
    }
}

/// Whether to run a sync after showing it.
#[inline]
fn sync_shown(op: Op<'_>) -> bool {
    match hook() {
        Some(h) => {
            h.see(&op);
            h.syncs()
        }
        None => true,
    }
}

/// Reports that `path` was just created as an empty file (by a way of opening the seam does
/// not own, such as a temp file library).
pub fn created(path: &Path) {
    seen(Op::Create { path });
}

/// Shows that the name `path` is gone (removed by a guard the seam does not own).
pub(crate) fn seen_removed(path: &Path) {
    seen(Op::Remove { path });
}

/// Opens `path` with `open`, which may create it; shows [`Op::Create`] if it did not exist.
pub fn open_creating(path: &Path, open: impl FnOnce() -> io::Result<File>) -> io::Result<File> {
    let Some(h) = hook() else { return open() };
    let existed = fs::symlink_metadata(path).is_ok();
    let file = open()?;
    if !existed {
        h.see(&Op::Create { path });
    }
    Ok(file)
}

/// Writes all of `bytes` at `offset` of `file` (named `path`), not moving its cursor.
pub fn write_at(file: &File, path: &Path, bytes: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)?;
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < bytes.len() {
            let n = std::os::windows::fs::FileExt::seek_write(
                file,
                &bytes[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
    }
    seen(Op::Write { path, offset, bytes });
    Ok(())
}

/// Writes all of `bytes` at the end of `file` (named `path`, opened for appending).
pub fn append(mut file: &File, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let Some(h) = hook() else { return file.write_all(bytes) };
    let offset = file.metadata()?.len();
    file.write_all(bytes)?;
    h.see(&Op::Write { path, offset, bytes });
    Ok(())
}

/// Shows a write of `bytes` at `offset` of `path` that the caller made itself (through a
/// buffered writer over a file the seam does not own).
pub fn wrote(path: &Path, offset: u64, bytes: &[u8]) {
    seen(Op::Write { path, offset, bytes });
}

/// Cuts or extends `file` (named `path`) to `len` bytes.
pub fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    seen(Op::SetLen { path, len });
    Ok(())
}

/// `fdatasync`: makes the data and length of `file` (named `path`) durable.
pub fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    if sync_shown(Op::SyncFile { path }) {
        file.sync_data()
    } else {
        Ok(())
    }
}

/// `fsync`: makes the data, length and metadata of `file` (named `path`) durable.
pub fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    if sync_shown(Op::SyncFile { path }) {
        file.sync_all()
    } else {
        Ok(())
    }
}

/// Renames `from` to `to`, replacing `to` (on Windows one `MoveFileExW` with write-through).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    crate::replace(from, to)?;
    seen(Op::Rename { from, to });
    Ok(())
}

/// Removes the file `path`.
pub fn remove_file(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    seen(Op::Remove { path });
    Ok(())
}

/// Creates the directory `path` with `builder` (its mode, not recursive).
pub fn create_dir(builder: &fs::DirBuilder, path: &Path) -> io::Result<()> {
    builder.create(path)?;
    seen(Op::CreateDir { path });
    Ok(())
}

/// Makes the names in directory `dir` durable. A no-op on Windows, where directories cannot
/// be opened for sync (renames there are write-through instead).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    if !sync_shown(Op::SyncDir { path: dir }) {
        return Ok(());
    }
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        Ok(())
    }
}
