//! Open published segments read-only, validate them once, and search them with no heap
//! allocation on the hot path, following the writer's generations.
//!
//! This crate never writes to a store directory; `semantic-index` and the store do.
//!
//! # Overview
//!
//! - [`Segment`] is one segment file: [`Segment::map`] maps it (read-only, a [`Mapped`] file),
//!   [`Segment::read`] copies it, [`Segment::from_bytes`] takes any [`Storage`]. All three run
//!   every check once: header, length, checksum, alignment, rkyv validation, table consistency.
//! - [`Query`] is a prepared query (keywords through `semantic_index::keywords`),
//!   [`SearchOptions`] the limit, filters and weights, [`Hits`] the caller's fixed-capacity top-k
//!   buffer. [`Segment::search`] fills it without allocating; every [`Hit`] can be read
//!   zero-copy through [`DocRef`] and explained with [`Segment::explain`].
//! - [`Reader`] follows a whole store directory: it maps the segments its current manifest
//!   names, notices a new generation with one atomic load of the beacon, and searches every
//!   live segment with deletions honoured.
//! - [`Content`] is a segment's content file (each memory's whole text), mapped beside it;
//!   [`Snapshot::content`] reads a hit's insights and synthesis zero-copy, each entry checked
//!   as it is read.
//!
//! # Example
//!
//! ```
//! use semantic_index::{Document, SegmentBuilder};
//! use shm_reader::{Hits, Query, SearchOptions, DeletedSet, Segment};
//!
//! let mut builder = SegmentBuilder::new();
//! for (n, q) in ["how do apprentices share memory", "why memory-map the index"].iter().enumerate() {
//!     builder.add(&Document { id: [n as u8; 16], domain: "design".into(), question: q.to_string(),
//!         score: 0.5, ..Document::default() })?;
//! }
//! let segment = Segment::from_bytes(shm_reader::aligned(&builder.to_bytes()?))?;
//! let query = Query::from_text("shared memory");
//! let mut hits = Hits::with_capacity(10);
//! segment.search(&query, &SearchOptions::default(), &DeletedSet::empty(), 0, &mut hits);
//! assert_eq!(hits.len(), 2);
//! let best = segment.doc(hits.as_slice()[0].ordinal).unwrap();
//! assert_eq!(best.gist(), "how do apprentices share memory");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety
//!
//! Three things are `unsafe` here, each argued where it happens:
//! - mapping a file ([`Segment::map`] is an `unsafe fn`: the file must not change while mapped;
//!   store segments never do, they are written once and renamed into place), and the beacon
//!   mapping the [`Reader`] reads one atomic integer from;
//! - reading the archive without re-validating it (`rkyv::access_unchecked`), allowed only
//!   because [`Segment::from_bytes`] validated the same bytes with rkyv's checked access, and
//!   [`Storage`] (an `unsafe trait`) promises the bytes cannot change afterwards;
//! - a prefetch hint in the search loop (an x86_64 intrinsic that never faults, whatever the
//!   address).
//!
//! A file that fails any check is an [`OpenError`], never a panic. Searches index only through
//! checked accesses, so even a file forged to pass the checksum cannot cause a panic or
//! undefined behaviour; [`Segment::verify`] runs the deep checks open skips.
//!
//! # Memory usage
//!
//! Per search: nothing. Per [`Query`]: its keywords, their hashes (so each segment's hashed term
//! table is probed without hashing again) and one cursor per keyword. Per open: the list of
//! checksum chunk hashes (8 bytes per MiB of segment). Per [`Hits`]:
//! `k` hits and a 512-entry window of counters. Per [`Reader`] generation: one deletion bitset
//! per segment with deletions.
#![doc(test(attr(deny(warnings))))]

mod check;
mod content;
mod hybrid;
mod jaccard;
mod rank;
mod reader;
mod search;
mod segment;
pub mod vectors;

pub use crate::content::{Content, ContentOpenError};
pub use crate::hybrid::{Fused, HybridSearch, FUSION_DEPTH};
pub use crate::rank::{ranked_score, IDF_SCALE, MAX_QUERY_TERMS, TIE_BREAK};
pub use crate::reader::{Reader, ReaderError, Snapshot};
pub use crate::search::{
    score, DeletedSet, Explanation, Hit, Hits, Query, Ranking, SearchOptions, TermContribution,
    DEFAULT_LIMIT, DEFAULT_W_SACRED, DEFAULT_W_SCORE,
};
pub use crate::segment::{
    aligned, map_file, Aligned, Check, DocRef, Mapped, OpenError, Segment, Storage,
};
pub use semantic_index::content::{ContentError, ContentRef};
