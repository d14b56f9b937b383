//! Replace a file so that a crash leaves either the old or the new content, never a mix.
//!
//! This crate owns the one durable write path of memory circulation. It does not lock, version
//! or merge files: callers decide what to write, this crate makes the replacement atomic and
//! durable.
//!
//! # Overview
//!
//! - [`write()`] replaces a file with a byte slice, [`Options`] sets the mode and whether missing
//!   parent directories are created.
//! - [`AtomicFile`] is the streaming form: fill it through [`std::io::Write`], then
//!   [`AtomicFile::commit`]. Dropping it without a commit removes the temp file.
//! - [`Error`] names the path and the [`Step`] that failed.
//! - [`seam`] is the I/O seam every change to a store's files goes through (this crate's own
//!   steps too), so that a test can record them and rebuild what a power cut may leave.
//!
//! The steps, in order: create a temp file in the target's directory (unique name, mode 0600),
//! write, `fsync` the file, set its final mode, rename it over the target, `fsync` the directory.
//!
//! # Example
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! let path = dir.path().join("nested/dir/config.json");
//! atomic_write::write(&path, b"{\"v\": 1}")?;
//! atomic_write::Options::new().mode(0o444).write(&path, b"{\"v\": 2}")?;
//! assert_eq!(std::fs::read(&path)?, b"{\"v\": 2}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Platform notes
//!
//! - **Process crash.** The target is only ever replaced by `rename`, which is atomic: a reader
//!   (or the next run) sees the old file or the complete new one. A crash before the rename
//!   leaves at most the temp file (named `.<target>.<random>.tmp`), which later writes ignore and
//!   [`remove_stale_temps`] deletes.
//! - **Power loss.** Surviving a power cut also needs the new content on disk before the rename
//!   (the file `fsync`) and the rename itself on disk (the directory `fsync`); both are done, and
//!   new parent directories are synced into their own parents too. `tempfile`'s `persist` does
//!   neither sync.
//! - **A failed fsync is never retried** on the same descriptor: Linux may drop the dirty pages
//!   after reporting the error, so a second `fsync` can "succeed" with the data gone. The error is
//!   returned, the temp file removed and the target left as it was; the caller may write again
//!   from its own copy.
//! - **Windows.** The replace is one `MoveFileExW(MOVEFILE_REPLACE_EXISTING |
//!   MOVEFILE_WRITE_THROUGH)`, never delete-then-rename; directories cannot be synced there and
//!   write-through stands in for it. Modes are Unix-only and ignored on Windows.
#![cfg_attr(not(windows), forbid(unsafe_code))]
#![doc(test(attr(deny(warnings))))]

mod fault;
pub mod seam;
#[cfg(windows)]
mod windows;

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A step of an atomic write, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Creating a missing parent directory.
    CreateParent,
    /// Creating the temp file.
    CreateTemp,
    /// Writing content into the temp file.
    Write,
    /// `fsync` of the temp file.
    SyncFile,
    /// Setting the final mode of the temp file.
    SetPermissions,
    /// Renaming the temp file over the target.
    Rename,
    /// `fsync` of the directory that holds the target.
    SyncDirectory,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::CreateParent => "creating parent directory",
            Step::CreateTemp => "creating temp file",
            Step::Write => "writing",
            Step::SyncFile => "syncing file",
            Step::SetPermissions => "setting permissions",
            Step::Rename => "renaming into place",
            Step::SyncDirectory => "syncing directory",
        })
    }
}

/// An atomic write failed at `step`; the target at `path` is untouched and no temp file remains.
#[derive(Debug, thiserror::Error)]
#[error("{step} for {}", path.display())]
pub struct Error {
    /// The target file (or, for [`Step::CreateParent`], the directory).
    pub path: PathBuf,
    /// The step that failed.
    pub step: Step,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl Error {
    fn new(path: &Path, step: Step, source: io::Error) -> Error {
        Error { path: path.to_owned(), step, source }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to write: final mode and parent creation.
#[derive(Clone, Debug)]
pub struct Options {
    mode: Option<u32>,
    create_parents: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { mode: None, create_parents: true }
    }
}

/// The mode of a new file when neither the caller nor an existing target gives one.
pub const DEFAULT_MODE: u32 = 0o644;

impl Options {
    /// Defaults: keep the target's mode (or [`DEFAULT_MODE`] for a new file), create parents.
    pub fn new() -> Options {
        Options::default()
    }

    /// The mode the file gets at commit (Unix permission bits), instead of the target's old one.
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = Some(mode);
        self
    }

    /// Whether missing parent directories are created (and synced into their parents).
    pub fn create_parents(mut self, yes: bool) -> Options {
        self.create_parents = yes;
        self
    }

    /// Replaces `path` with `bytes`.
    pub fn write(&self, path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
        let path = path.as_ref();
        let mut file = self.open(path)?;
        if let Err(e) = file.write_all(bytes) {
            return Err(Error::new(path, Step::Write, e));
        }
        file.commit()
    }

    /// Starts a streaming replacement of `path`.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<AtomicFile> {
        let target = path.as_ref().to_owned();
        let dir = parent_dir(&target);
        if self.create_parents {
            create_parents(&dir)?;
        }
        let prefix = temp_prefix(&target);
        let temp = fault::check(Step::CreateTemp)
            .and_then(|()| {
                tempfile::Builder::new().prefix(&prefix).suffix(TEMP_SUFFIX).tempfile_in(&dir)
            })
            .map_err(|e| Error::new(&target, Step::CreateTemp, e))?;
        seam::created(temp.path());
        Ok(AtomicFile { temp: Some(temp), target, dir, mode: self.mode, failed: None, written: 0 })
    }
}

/// Replaces `path` with `bytes`, creating missing parents; see [`Options`] for more control.
pub fn write(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    Options::new().write(path, bytes)
}

/// Serializes `value` as pretty JSON and replaces `path` with it.
#[cfg(feature = "json")]
pub fn write_json<T: serde::Serialize + ?Sized>(path: impl AsRef<Path>, value: &T) -> Result<()> {
    let path = path.as_ref();
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::new(path, Step::Write, io::Error::other(e)))?;
    write(path, &bytes)
}

const TEMP_SUFFIX: &str = ".tmp";

fn temp_prefix(target: &Path) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(target.file_name().unwrap_or_default());
    prefix.push(".");
    prefix
}

fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` and its missing ancestors, syncing each new directory into its parent.
fn create_parents(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d.to_owned());
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        fault::check(Step::CreateParent)
            .and_then(|()| match seam::create_dir(&fs::DirBuilder::new(), d) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => Ok(()),
                other => other,
            })
            .map_err(|e| Error::new(d, Step::CreateParent, e))?;
        seam::sync_dir(&parent_dir(d)).map_err(|e| Error::new(d, Step::CreateParent, e))?;
    }
    Ok(())
}

/// Removes temp files that interrupted writes of `target` left behind (a crash between creating
/// the temp file and the rename). Returns how many were removed.
///
/// Only call this when no other process is writing `target` at the same moment: it cannot tell
/// an abandoned temp file from one being filled.
pub fn remove_stale_temps(target: impl AsRef<Path>) -> io::Result<usize> {
    let target = target.as_ref();
    let dir = parent_dir(target);
    let prefix = temp_prefix(target);
    let (Some(prefix), mut removed) = (prefix.to_str(), 0) else { return Ok(0) };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(prefix) && name.ends_with(TEMP_SUFFIX) {
            match seam::remove_file(&entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// A file being written; it replaces its target at [`AtomicFile::commit`].
///
/// Dropping it without a commit removes the temp file and leaves the target as it was.
pub struct AtomicFile {
    temp: Option<tempfile::NamedTempFile>,
    target: PathBuf,
    dir: PathBuf,
    mode: Option<u32>,
    failed: Option<io::ErrorKind>,
    /// Bytes written so far: where the next write lands, for the seam.
    written: u64,
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let path = temp.path().to_owned();
            // The temp file's guard removes it; the seam is told once it is gone.
            drop(temp);
            if fs::symlink_metadata(&path).is_err() {
                seam::seen_removed(&path);
            }
        }
    }
}

impl fmt::Debug for AtomicFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicFile").field("target", &self.target).finish_non_exhaustive()
    }
}

impl AtomicFile {
    /// The file this one will replace.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the content, sets the mode, renames the temp file over the target and syncs the
    /// directory. On error the temp file is removed and the target is untouched (or, if only the
    /// final directory sync failed, replaced but possibly not yet durable).
    pub fn commit(mut self) -> Result<()> {
        let Some(temp) = self.temp.take() else {
            return Err(self.error(Step::Write, io::Error::other("file already committed")));
        };
        if let Some(kind) = self.failed {
            // A write failed earlier and the caller went on: refuse to publish a partial file.
            return Err(self.error(Step::Write, io::Error::new(kind, "an earlier write failed")));
        }
        // One fsync attempt only: after a failure the page cache may have dropped the data.
        fault::check(Step::SyncFile)
            .and_then(|()| seam::sync_all(temp.as_file(), temp.path()))
            .map_err(|e| self.error(Step::SyncFile, e))?;
        fault::check(Step::SetPermissions)
            .and_then(|()| set_mode(temp.as_file(), &self.target, self.mode))
            .map_err(|e| self.error(Step::SetPermissions, e))?;
        fault::check(Step::Rename)
            .and_then(|()| seam::rename(temp.path(), &self.target))
            .map_err(|e| self.error(Step::Rename, e))?;
        // Renamed: the temp path is gone, so the guard must not try to remove it.
        let _ = temp.into_temp_path().keep();
        fault::check(Step::SyncDirectory)
            .and_then(|()| seam::sync_dir(&self.dir))
            .map_err(|e| self.error(Step::SyncDirectory, e))
    }

    fn error(&self, step: Step, source: io::Error) -> Error {
        Error::new(&self.target, step, source)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(temp) = self.temp.as_mut() else {
            return Err(io::Error::other("file already committed"));
        };
        let result = fault::check(Step::Write).and_then(|()| temp.write(buf));
        match &result {
            Ok(n) => {
                seam::wrote(temp.path(), self.written, &buf[..*n]);
                self.written += *n as u64;
            }
            Err(e) if e.kind() != io::ErrorKind::Interrupted => self.failed = Some(e.kind()),
            Err(_) => {}
        }
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.temp.as_mut() {
            Some(temp) => temp.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(unix)]
fn set_mode(file: &File, target: &Path, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match mode {
        Some(mode) => mode,
        None => match fs::metadata(target) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(e) if e.kind() == io::ErrorKind::NotFound => DEFAULT_MODE,
            Err(e) => return Err(e),
        },
    };
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &File, _target: &Path, _mode: Option<u32>) -> io::Result<()> {
    Ok(())
}

#[cfg(not(windows))]
pub(crate) fn replace(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)
}

#[cfg(windows)]
pub(crate) fn replace(from: &Path, to: &Path) -> io::Result<()> {
    windows::replace(from, to)
}

#[cfg(test)]
mod tests;
