//! The writer's index, opened when first read or on a thread of its own (issue 17: at a million
//! memories, opening the index means checksumming about 870 MB of segments and content files,
//! 100 ms of CPU). A writer's open needs only the manifest (`HEAD`'s commit and counts, which the
//! publisher reads anyway) and the records; the first operation that reads segment contents (a
//! search, a forget's locate, a large merge, `verify`, `stats`) opens the index, or waits for it
//! if [`crate::MemoryStore::open_index_in_background`] started it. A store's small merges read
//! their members' files alone, so a process that only stores never maps the index. A result
//! never comes from a segment that was not checked: the reader is handed out only once
//! `Reader::open` returned it, whole.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use shm_reader::{Reader, ReaderError};

type Opened = Result<Reader, ReaderError>;

pub(crate) struct Index {
    dir: PathBuf,
    reader: Option<Reader>,
    opening: Option<JoinHandle<Opened>>,
}

impl Index {
    /// An index already open.
    pub(crate) fn opened(dir: &Path, reader: Reader) -> Index {
        Index { dir: dir.to_owned(), reader: Some(reader), opening: None }
    }

    /// The index of `dir`, opened (and checked) at the first [`Index::wait`], or on a thread of
    /// its own from [`Index::start`]. A process that only stores never reads it: at a million
    /// memories checking it reads about 870 MB, which would be resident in that process.
    pub(crate) fn deferred(dir: &Path) -> Index {
        Index { dir: dir.to_owned(), reader: None, opening: None }
    }

    /// Starts opening the index on its own thread, unless it is open or opening already. If
    /// no thread can be started, it is opened at the first [`Index::wait`] instead.
    pub(crate) fn start(&mut self) {
        if self.reader.is_some() || self.opening.is_some() {
            return;
        }
        let owned = self.dir.clone();
        self.opening = std::thread::Builder::new()
            .name("index-open".into())
            .spawn(move || Reader::open(&owned))
            .ok();
    }

    /// The reader, once open: waits for the thread, or opens it here if it failed before.
    pub(crate) fn wait(&mut self) -> Result<&mut Reader, ReaderError> {
        if let Some(opening) = self.opening.take() {
            match opening.join() {
                Ok(opened) => self.reader = Some(opened?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        let reader = match self.reader.take() {
            Some(reader) => reader,
            None => Reader::open(&self.dir)?,
        };
        Ok(self.reader.insert(reader))
    }

    /// The reader if it is open already (and nothing waits).
    pub(crate) fn get(&self) -> Option<&Reader> {
        self.reader.as_ref()
    }

    /// Lets go of the reader, and of an open still in flight (its thread ends on its own): a
    /// rebuild replaces every segment, so the old ones need not stay mapped beside its builder.
    /// The next [`Index::wait`] opens the index again.
    pub(crate) fn close(&mut self) {
        self.reader = None;
        self.opening = None;
    }
}
