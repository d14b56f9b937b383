//! The few operating-system calls the bench programs make, for POSIX and Windows, so that the
//! workspace builds for both (CI checks `x86_64-pc-windows-gnu`).

use std::fs::File;

/// Drops `file`'s pages from the page cache, so that its next read comes from disk.
#[cfg(unix)]
pub fn drop_page_cache(file: &File) -> std::io::Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

/// Windows has no per-file "drop from cache" advice; the bench's cold-open row needs one.
#[cfg(not(unix))]
pub fn drop_page_cache(_file: &File) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "dropping a file's page cache needs posix_fadvise",
    ))
}

/// Asks the kernel to write back every dirty page now (`sync(2)`), so that later measurements
/// do not run beside a flush of what earlier ones wrote.
#[cfg(unix)]
pub fn sync_all() {
    rustix::fs::sync();
}

/// Windows flushes per file only; nothing to do for the whole system.
#[cfg(not(unix))]
pub fn sync_all() {}
