//! Content files: each memory's full text, mapped read-only beside its segment
//! (`semantic_index::content` is the format).
//!
//! A [`Content`] is opened once per segment per generation (the header and the table are
//! checked, O(memories)), then read zero-copy: [`Snapshot::content`] returns strings borrowed
//! from the mapping, each entry checked (bounds, checksum, UTF-8) as it is read.

use std::path::{Path, PathBuf};

use semantic_index::content::{ContentError, ContentRef, ContentView};
use semantic_index::layout;

use crate::reader::Snapshot;
use crate::search::Hit;
use crate::segment::{map_sparse, Mapped, Storage};

/// Why a content file could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentOpenError {
    /// The file could not be opened or mapped.
    #[error("content file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file failed a check.
    #[error("content file {}", path.display())]
    Check {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: ContentError,
    },
}

impl ContentOpenError {
    /// Whether the file does not exist (a segment published by a build without content files).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContentOpenError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// One segment's content file, checked at open, read zero-copy.
pub struct Content<S: Storage = Mapped> {
    bytes: S,
    len: u32,
}

impl<S: Storage> std::fmt::Debug for Content<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content").field("memories", &self.len).finish_non_exhaustive()
    }
}

impl Content<Mapped> {
    /// Maps the content file at `path` read-only and checks it belongs to the segment whose
    /// header checksum is `segment_checksum`.
    ///
    /// # Safety
    ///
    /// As [`crate::Segment::map`]: the file must not be modified or truncated while mapped.
    /// Store content files are written once through atomic-write and never touched again.
    pub unsafe fn map(path: &Path, segment_checksum: u64) -> Result<Content, ContentOpenError> {
        let io = |source| ContentOpenError::Io { path: path.to_owned(), source };
        // SAFETY: this function's contract. Sparse: invitations read a few entries, so the
        // process should hold only their pages (no huge pages, no readahead).
        let mapped = unsafe { map_sparse(path) }.map_err(io)?;
        Content::from_bytes(mapped, segment_checksum)
            .map_err(|source| ContentOpenError::Check { path: path.to_owned(), source })
    }
}

impl<S: Storage> Content<S> {
    /// Checks `bytes` as the content of the segment whose checksum is `segment_checksum`.
    pub fn from_bytes(bytes: S, segment_checksum: u64) -> Result<Content<S>, ContentError> {
        let view = ContentView::new(bytes.as_ref())?;
        if view.segment_checksum() != segment_checksum {
            return Err(ContentError::Segment {
                expected: segment_checksum,
                found: view.segment_checksum(),
            });
        }
        let len = view.len();
        Ok(Content { bytes, len })
    }

    /// How many memories the file holds.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the file holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's view (O(1): the bytes were checked at open and cannot change).
    pub fn view(&self) -> ContentView<'_> {
        // The bytes passed `ContentView::new` in `from_bytes`, and `Storage` promises they
        // have not changed, so re-reading the header cannot fail; an empty view if it did.
        ContentView::after_check(self.bytes.as_ref()).unwrap_or_else(|_| ContentView::empty())
    }

    /// The content of memory `id`: `Ok(None)` if this file does not hold it.
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<ContentRef<'_>>, ContentError> {
        self.view().get(id)
    }
}

/// Opens the content file of segment `file` in store `dir`: `Ok(None)` if there is none.
pub(crate) fn open_for(
    dir: &Path,
    file: &str,
    checksum: u64,
) -> Result<Option<std::sync::Arc<Content>>, ContentOpenError> {
    let path = layout::segment_path(dir, &semantic_index::content::content_file_name(file));
    // SAFETY: content files named after a published segment are immutable: written once through
    // atomic-write before the manifest names their segment, renamed into place, never modified
    // or truncated, only unlinked with their segment (ARCHITECTURE.md).
    match unsafe { Content::map(&path, checksum) } {
        Ok(c) => Ok(Some(std::sync::Arc::new(c))),
        // No content file beside a segment that is still there: a segment of an older build.
        // Both gone: the writer collected them while we loaded; the caller starts again.
        Err(e) if e.is_not_found() && layout::segment_path(dir, file).exists() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Snapshot {
    /// The content (whole question, synthesis, sacred reason, insights) of the memory a hit
    /// names, borrowed from the mapped content file. `Ok(None)` if its segment has no content
    /// file (published by an older build) or the hit came from another snapshot; an error if the
    /// entry is damaged. No allocation.
    pub fn content(&self, hit: &Hit) -> Result<Option<ContentRef<'_>>, ContentError> {
        match self.content_file(hit.segment as usize) {
            Some(c) => c.get(&hit.id),
            None => Ok(None),
        }
    }

    /// The content of the live memory `id` (see [`Snapshot::content`]).
    pub fn content_of(&self, id: &[u8; 16]) -> Result<Option<ContentRef<'_>>, ContentError> {
        match self.locate(id).and_then(|(index, _)| self.content_file(index)) {
            Some(c) => c.get(id),
            None => Ok(None),
        }
    }

    /// How many live segments have no content file (published by a build without them).
    pub fn segments_without_content(&self) -> usize {
        (0..self.segment_count()).filter(|&i| self.content_file(i).is_none()).count()
    }
}
