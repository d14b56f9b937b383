//! The records side of a replica: a store directory whose commits come from elsewhere.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::files;
use crate::records::{Change, Records};
use crate::store::{Error, Result};

/// A store directory that follows another store's commits (replication): it holds the writer
/// lock like a writer, appends the commits it is given, in order, and touches nothing of the
/// index (the caller publishes the index it downloaded, under this lock, with
/// `index_publisher`). Dropping it releases the lock; [`crate::MemoryStore::open`] then opens
/// the same directory as a writer (a promotion) with every applied commit in it.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    _lock: File,
    records: Records,
}

impl Follower {
    /// Opens (creating if needed) `dir`, taking the writer lock (waiting up to `wait` for it).
    pub fn open(dir: impl AsRef<Path>, wait: Duration) -> Result<Follower> {
        let dir = dir.as_ref().to_owned();
        files::prepare_writable(&dir)?;
        let lock = files::lock(&dir, wait)?;
        let records = Records::open(&dir, true)?;
        Ok(Follower { dir, _lock: lock, records })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last commit applied (0: none).
    pub fn seq(&self) -> u64 {
        self.records.seq()
    }

    /// Appends commit `seq` durably. Refuses a commit that is not the next one
    /// ([`Error::OutOfOrder`]): a replica never skips or repeats history.
    pub fn apply(&mut self, seq: u64, changes: Vec<Change>) -> Result<()> {
        let expected = self.records.seq() + 1;
        if seq != expected {
            return Err(Error::OutOfOrder { dir: self.dir.clone(), expected, got: seq });
        }
        let committed = self.records.commit(changes.into_iter().map(Into::into).collect())?;
        debug_assert_eq!(committed, seq);
        Ok(())
    }
}
