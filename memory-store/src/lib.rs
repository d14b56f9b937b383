//! The whole system for its users: durable memory records, index maintenance and publication,
//! search, related and sacred memories, and rebuild at open.
//!
//! The `mcs` program in this package is its command line.
//!
//! # Overview
//!
//! - [`Memory`] is the record a user stores (JSON in, JSON out, its fields documented there; unknown
//!   fields refused with the field named).
//! - [`MemoryStore`] owns a store directory: [`MemoryStore::store`] and
//!   [`MemoryStore::store_batch`] are durable when they return (one append and one `fdatasync`
//!   to the records log each)
//!   and publish a new index generation that readers in other processes see at their next
//!   search; [`MemoryStore::search`], [`MemoryStore::related`], [`MemoryStore::sacred`] read it.
//! - Records (an append-only log of checksummed frames with an id index, so open, store and
//!   [`MemoryStore::get`] never read every record) are the truth; damage costs only the damaged
//!   records, [`MemoryStore::verify`] names them ([`RecordsCheck`]), [`MemoryStore::repair`]
//!   keeps every intact record and quarantines the rest ([`RepairReport`]);
//!   [`get_from_records`] reads one memory without opening the index. The index is derived. At open the store checks that the published
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

mod access;
mod files;
mod follower;
mod memory;
mod records;
#[cfg(feature = "nats")]
mod replicated;
mod store;

pub use crate::access::{
    access_log_path, compute_access_metrics, decode_events, read_events, AccessEvent,
    AccessMetrics, CoAccess, DayLinks, MemoryAccess, ACCESS_DIR, ACCESS_LOG,
};
pub use crate::follower::Follower;
pub use crate::memory::{InvalidMemory, Memory, Perspective};
pub use crate::records::{
    get_from_records, Change, DamagedRange, RecordsCheck, RecordsError, RepairReport,
    QUARANTINE_DIR,
};
#[cfg(feature = "nats")]
pub use crate::replicated::{CommitLogOf, CommitSinkOf};
pub use crate::store::hybrid::{embedding_text, Embed, EmbedError, HybridWhy};
pub use crate::store::{
    BatchReport, Error, FieldTf, Found, MemoryStore, Result, SearchResults, Stats, VerifyReport,
    Why, WhyTerm, LOCK_FILE,
};
pub use shm_reader::{Query, Ranking, SearchOptions, FUSION_DEPTH};
/// The type of memory ids ([`Memory::id`]), re-exported so that callers need not depend on
/// `uuid` themselves; it displays as the usual hyphenated lowercase form.
pub use uuid::Uuid;
