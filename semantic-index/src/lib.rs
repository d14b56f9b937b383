//! The index's vocabulary and on-disk format: keyword extraction, the [`Document`] it indexes,
//! the segment format and the builder that turns documents into segment bytes.
//!
//! This crate does not read segments back for search; `shm-reader` does.
