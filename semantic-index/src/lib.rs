//! The index's vocabulary and on-disk format: keyword extraction, the [`Document`] it indexes,
//! the segment format and the [`SegmentBuilder`] that turns documents into segment bytes.
//!
//! This crate writes; it does not search. `shm-reader` maps what it writes and searches it.
//!
//! # Overview
//!
//! - [`keywords`] is the one keyword function, used for documents and queries alike
//!   (Unicode lowercase, split on non-alphanumerics, at least three characters, stop words
//!   dropped, deduplicated). A memory's keywords are those of its question, its first five
//!   insights and its synthesis.
//! - [`Document`] is a memory reduced to what the index needs.
//! - [`SegmentBuilder`] collects documents and writes one immutable segment: to bytes, to any
//!   [`std::io::Write`], or (with the `write` feature) durably to a file through `atomic-write`.
//!   [`SegmentBuilder::add_batch`] tokenizes a batch on every core; the bytes are the same as
//!   with one [`SegmentBuilder::add`] per document. The builder spawns scoped threads only for
//!   batches of a few thousand documents and more; it holds no thread between calls.
//! - [`format`](mod@format) holds the header, the constants ([`format::MAGIC`], [`format::VERSION`]) and the
//!   archived [`format::SegmentData`] that `shm-reader` validates and reads.
//! - [`layout`] names the files of a store directory, defines the manifest and reads it; the
//!   writer's side (publishing generations) is the `index-publisher` crate.
//!
//! # Example
//!
//! ```
//! use semantic_index::{Document, SegmentBuilder};
//!
//! let mut builder = SegmentBuilder::new().generation(1);
//! builder.add(&Document {
//!     id: [7; 16],
//!     domain: "architecture".into(),
//!     question: "Why map the index instead of copying it?".into(),
//!     insights: vec!["Copies exhaust memory when many workers start".into()],
//!     synthesis: "One immutable segment, mapped read-only by every worker".into(),
//!     score: 0.8,
//!     sacred: true,
//!     timestamp_micros: 1_700_000_000_000_000,
//! })?;
//! let bytes = builder.to_bytes()?;
//! assert_eq!(&bytes[..8], &semantic_index::format::MAGIC);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Format
//!
//! A segment is one file, written once and never modified: a 64-byte little-endian header
//! (magic, format version, generation, document count, payload length, xxh3-64 checksum of the
//! header and the payload, hashed in 1 MiB chunks)
//! followed by an rkyv archive of [`format::SegmentData`]: the sorted term table (one byte blob
//! plus offsets) with a hashed index over it (a power-of-two array of term ordinals, so a lookup
//! is a slot read or two and one comparison), postings per term (ascending document ordinals, stored as `u16` offsets in pages of 65,536
//! ordinals, with each term's
//! frequency in the document as a saturating `u8`, stored sparsely when few differ from 1), per-document metadata (id, domain ordinal,
//! token count, score, timestamp; sacred documents come first), the domain
//! table, forward keyword lists (`u16` ordinals when the segment has at most 65,536 terms; a
//! list's length is the document's keyword count),
//! gists, the sacred list newest first, and the ids in sorted
//! order. Every array is flat and holds plain integers, so validation is cheap. `FORMAT.md`
//! draws the layout.
//!
//! **Version rule:** a reader refuses a format version it does not know, with an error naming
//! the version found and the version it reads. Any change to the bytes raises
//! [`format::VERSION`].
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod access;
mod analyzer;
mod builder;
pub mod content;
mod cost;
mod document;
pub mod format;
mod intern;
mod keywords;
pub mod layout;
mod rank;
pub mod vectors;

pub use crate::analyzer::{
    analyze, idf, is_rank_stop_word, query_terms, Bm25fParams, Field, MIN_TERM_CHARS,
    RANK_STOP_WORDS,
};
pub use crate::builder::{BuildError, SegmentBuilder, SegmentBytes};
pub use crate::document::Document;
pub use crate::keywords::{
    document_keywords, keywords, keywords_of, DOCUMENT_INSIGHTS, MIN_KEYWORD_CHARS, STOP_WORDS,
};
