//! Checks that turn a confusing failure into a clear one before it happens.

use std::path::Path;

use anyhow::bail;

/// Fails when `dir` exists but is not a directory: `--store` pointing at a file is named as
/// such, rather than as a missing store or an I/O error deep in the open.
pub(crate) fn check_store_path(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            bail!("{} is a file, not a store directory (--store names a directory)", dir.display())
        }
        _ => Ok(()),
    }
}
