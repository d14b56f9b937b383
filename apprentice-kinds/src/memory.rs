//! What the shipped kinds read: a store's index, mapped read-only through `shm_reader`.

use std::ops::{Deref, DerefMut};
use std::path::Path;

use shm_reader::{Reader, ReaderError};

/// A store's published index as the kinds read it: a [`shm_reader::Reader`] (every method of
/// which is reachable through `Deref`) behind `apprentice_core`'s [`Memory`] trait, so the
/// runtime opens and refreshes it without depending on the reader.
///
/// [`Memory`]: apprentice_core::Memory
#[derive(Debug)]
pub struct MappedStore {
    reader: Reader,
}

impl MappedStore {
    /// Maps the store at `dir` read-only.
    pub fn open(dir: impl AsRef<Path>) -> Result<MappedStore, ReaderError> {
        Reader::open(dir).map(MappedStore::from)
    }

    /// The reader underneath.
    pub fn into_inner(self) -> Reader {
        self.reader
    }
}

impl From<Reader> for MappedStore {
    fn from(reader: Reader) -> MappedStore {
        MappedStore { reader }
    }
}

impl Deref for MappedStore {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

impl DerefMut for MappedStore {
    fn deref_mut(&mut self) -> &mut Reader {
        &mut self.reader
    }
}

impl apprentice_core::Memory for MappedStore {
    type Error = ReaderError;

    fn open(store: &Path) -> Result<MappedStore, ReaderError> {
        MappedStore::open(store)
    }

    fn refresh(&mut self) -> Result<(), ReaderError> {
        self.reader.refresh().map(drop)
    }

    fn generation(&self) -> u64 {
        self.reader.generation()
    }
}
