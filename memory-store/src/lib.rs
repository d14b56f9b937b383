//! The whole system for its users: durable memory records, index maintenance and publication,
//! search, related and sacred memories, and rebuild at open.
//!
//! The `mcs` program in this package is its command line.
//!
//! # Overview
//!
//! - [`Memory`] is the record a user stores (DESIGN.md's fields; JSON in, JSON out; unknown
//!   fields refused with the field named).
//! - [`MemoryStore`] owns a store directory: [`MemoryStore::store`] and
//!   [`MemoryStore::store_batch`] are durable when they return (one atomic commit file each)
//!   and publish a new index generation that readers in other processes see at their next
//!   search; [`MemoryStore::search`], [`MemoryStore::related`], [`MemoryStore::sacred`] read it.
//! - Records are the truth; the index is derived. At open the store checks that the published
//!   index covers exactly the records and rebuilds it otherwise; [`MemoryStore::verify`]
//!   compares them id by id.
//! - Appends become small segments; a tiered merge policy keeps at most three segments per size
//!   tier (factor 4), so the segment count grows with the logarithm of the store size.
//!
//! # Example
//!
//! ```
//! use memory_store::{Memory, MemoryStore, Query, SearchOptions};
//!
//! # let dir = tempfile::tempdir()?;
//! let mut store = MemoryStore::open(dir.path().join("store"))?;
//! let mut memory = Memory::new("architecture", "How do apprentices share memory?");
//! memory.synthesis = "They map one immutable index read-only".into();
//! memory.sacred = true;
//! let id = store.store(memory)?;
//!
//! let results = store.search(&Query::from_text("shared memory index"), &SearchOptions::default())?;
//! assert_eq!(results.hits[0].id, id);
//! assert_eq!(store.get(id)?.map(|m| m.domain), Some("architecture".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod memory;
mod records;
mod store;

pub use crate::memory::{InvalidMemory, Memory, Perspective};
pub use crate::records::RecordsError;
pub use crate::store::hybrid::{
    embedding_text, Embed, EmbedError, Fusion, HybridWhy, FUSION_DEPTH,
};
pub use crate::store::{
    BatchReport, Error, Found, MemoryStore, Result, SearchResults, Stats, VerifyReport, Why,
    LOCK_FILE,
};
pub use shm_reader::{Query, SearchOptions};
