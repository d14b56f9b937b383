//! Deleting a file that a reader may still map.
//!
//! On POSIX systems unlinking a mapped file always works: the name goes, the reader's mapping
//! stays valid until it unmaps. Windows refuses to delete a file while any process maps it, so
//! there a segment that a slow reader still maps is left in place (the deletion is deferred) and
//! the next garbage collection, which finds it still unnamed by any manifest, tries again.

use std::io;
use std::path::Path;

/// What became of a file [`remove_unless_mapped`] was asked to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Deleted now.
    Removed,
    /// Already gone (another collection, or a crash before it finished, took it).
    Gone,
    /// Still mapped or open elsewhere (Windows only): kept, and retried at the next collection.
    Deferred,
}

/// Deletes `path`, unless a reader still maps it on a system that forbids that (Windows); any
/// other failure is an error.
pub(crate) fn remove_unless_mapped(path: &Path) -> io::Result<Removal> {
    match atomic_write::seam::remove_file(path) {
        Ok(()) => Ok(Removal::Removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::Gone),
        Err(e) if in_use(&e) => Ok(Removal::Deferred),
        Err(e) => Err(e),
    }
}

/// Whether `e` says the file is mapped or open by another process (Windows error codes
/// `ERROR_ACCESS_DENIED` = 5, which `DeleteFileW` returns for a mapped file,
/// `ERROR_SHARING_VIOLATION` = 32 and `ERROR_USER_MAPPED_FILE` = 1224). Never on POSIX, where
/// deleting a mapped file succeeds. Windows also says `ERROR_ACCESS_DENIED` for a directory: a
/// directory under `segments/` would be retried at every collection, which is harmless.
fn in_use(e: &io::Error) -> bool {
    cfg!(windows) && matches!(e.raw_os_error(), Some(5 | 32 | 1224))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_file_and_says_when_it_was_already_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.seg");
        std::fs::write(&path, b"segment").unwrap();
        assert_eq!(remove_unless_mapped(&path).unwrap(), Removal::Removed);
        assert!(!path.exists());
        assert_eq!(remove_unless_mapped(&path).unwrap(), Removal::Gone);
    }

    #[test]
    fn other_failures_are_errors() {
        // POSIX: a directory is not a file. Windows answers that with ERROR_ACCESS_DENIED, which
        // is also its answer for a mapped file (so it would defer), hence an invalid name there.
        let dir = tempfile::tempdir().unwrap();
        let path =
            if cfg!(windows) { dir.path().join("bad?name.seg") } else { dir.path().to_owned() };
        let err = remove_unless_mapped(&path).unwrap_err();
        assert!(!in_use(&err), "{err}");
        assert!(dir.path().exists());
    }

    #[test]
    fn only_windows_in_use_errors_defer() {
        for code in [5, 32, 1224] {
            assert_eq!(in_use(&io::Error::from_raw_os_error(code)), cfg!(windows), "{code}");
        }
        assert!(!in_use(&io::Error::from_raw_os_error(2)));
        assert!(!in_use(&io::Error::other("no code")));
    }
}
