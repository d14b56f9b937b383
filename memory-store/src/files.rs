//! The store directory's own safety: who may read and write it, and the writer lock.
//!
//! The store is private to its owner: directories 0700, files 0600 or 0400, whatever the umask.
//! A directory others can write is refused (another user may have planted files in it); one
//! others can only read is tightened by the writer. The lock file is opened like every store
//! file: never through a link, never a FIFO, only a regular file.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atomic_write::seam;

use semantic_index::layout::{self, MANIFESTS_DIR, SEGMENTS_DIR};

use crate::records::RECORDS_DIR;
use crate::store::{Error, Result, LOCK_FILE};

/// Mode of the store directory and its subdirectories.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// Mode of the lock file.
#[cfg(unix)]
const LOCK_MODE: u32 = 0o600;
/// The first pause between two tries of a held writer lock; it doubles up to
/// [`LOCK_PAUSE_MAX`].
const LOCK_PAUSE_MIN: Duration = Duration::from_millis(2);
/// The longest pause between two tries of a held writer lock.
const LOCK_PAUSE_MAX: Duration = Duration::from_millis(25);

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { what, path: path.to_owned(), source }
}

/// The subdirectories of a store.
fn subdirs(dir: &Path) -> [PathBuf; 3] {
    [dir.join(RECORDS_DIR), dir.join(SEGMENTS_DIR), dir.join(MANIFESTS_DIR)]
}

/// For a writer: creates the store directory and its subdirectories owner-only (0700, whatever
/// the umask), tightens existing ones that others may read, and refuses any that others may
/// write or that is not a directory (a link, a file).
pub(crate) fn prepare_writable(dir: &Path) -> Result<()> {
    create_private(dir, true)?;
    for sub in subdirs(dir) {
        create_private(&sub, false)?;
    }
    Ok(())
}

/// For a reader: refuses a store directory (or subdirectory) others may write.
pub(crate) fn check_readable(dir: &Path) -> Result<()> {
    for d in std::iter::once(dir.to_owned()).chain(subdirs(dir)) {
        // The store directory itself may be a link the user chose; what is inside it may not.
        let meta = if d == dir { fs::metadata(&d) } else { fs::symlink_metadata(&d) };
        match meta {
            Ok(meta) if meta.is_dir() => check_mode(&d, &meta)?,
            Ok(_) => return Err(Error::NotADirectory(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspecting", &d)(e)),
        }
    }
    Ok(())
}

/// Creates `dir` 0700 if missing, checks and tightens it otherwise. `root`: the store
/// directory itself, which may be a link the user chose; what is inside it may not.
fn create_private(dir: &Path, root: bool) -> Result<()> {
    if root {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
            fs::create_dir_all(parent).map_err(io_err("creating directory", parent))?;
        }
    }
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    match seam::create_dir(&builder, dir) {
        Ok(()) => {
            if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                seam::sync_dir(p).map_err(io_err("syncing the directory of", dir))?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("creating directory", dir)(e)),
    }
    let meta = if root { fs::metadata(dir) } else { fs::symlink_metadata(dir) }
        .map_err(io_err("inspecting", dir))?;
    if !meta.is_dir() {
        return Err(Error::NotADirectory(dir.to_owned()));
    }
    check_mode(dir, &meta)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o777 != DIR_MODE {
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
                .map_err(io_err("making private", dir))?;
        }
    }
    Ok(())
}

/// Refuses a directory that users other than its owner may write.
fn check_mode(dir: &Path, meta: &fs::Metadata) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(Error::WritableByOthers { path: dir.to_owned(), mode });
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, meta);
    Ok(())
}

/// Takes the store's writer lock (`LOCK`, 0600, never through a link), waiting up to `wait`
/// while another process holds it, and writes this process's pid into it.
pub(crate) fn lock(dir: &Path, wait: Duration) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, LOCK_MODE);
    let mut file = layout::open_file(&path, &mut options).map_err(io_err("opening lock", &path))?;
    // A lock can outlive its store for a moment: a process that is starting another program
    // holds a copy of every descriptor until the program replaces it (close-on-exec), so a store
    // closed and reopened while another thread of the process spawns a child finds its own old
    // lock still held. So even a writer that does not wait retries for a bounded moment.
    let deadline = Instant::now() + wait.max(Duration::from_millis(100));
    let mut pause = LOCK_PAUSE_MIN;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(LOCK_PAUSE_MAX);
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = (&file)
                    .take(64)
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(Error::Locked { dir: dir.to_owned(), pid });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &path)(e)),
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(io_err("inspecting lock", &path))?.permissions().mode();
        if mode & 0o777 != LOCK_MODE {
            file.set_permissions(fs::Permissions::from_mode(LOCK_MODE))
                .map_err(io_err("making lock private", &path))?;
        }
    }
    file.set_len(0).map_err(io_err("writing lock", &path))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err("writing lock", &path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err("writing lock", &path))?;
    Ok(file)
}

/// Whether a writer holds the store's lock right now (a reader's question: is the index being
/// caught up?). Takes the lock for an instant if it is free; never creates the file.
pub(crate) fn writer_active(dir: &Path) -> bool {
    let path = dir.join(LOCK_FILE);
    let Ok(file) = layout::open_file(&path, fs::OpenOptions::new().read(true)) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}
