//! Benchmark support for memory circulation: the deterministic corpus, the peers measured beside
//! it, and the suite behind `cargo xtask bench`.
//!
//! # Overview
//!
//! - [`corpus`] generates the bench corpus and queries from a seed, byte for byte the same on
//!   every machine ([`corpus::generate`]).
//! - [`cranfield`] reads the Cranfield relevance collection and computes nDCG@10, MAP and P@10.
//! - [`records_rows`] measures the records (ingest, single store, open, get, rebuild) at scale.
//! - [`naive::NaiveScan`] is the original design's search: score every memory, sort.
//! - [`word_vectors`] writes stand-in vectors beside a bench store (no model needed).
//! - `peers` (feature `peers`) wraps tantivy and SQLite FTS5 on the same corpus; it is off for
//!   `cargo test --workspace`, so the workspace builds without them.
//!
//! # Example
//!
//! ```
//! let corpus = benches::corpus::generate(100, 42);
//! assert_eq!(corpus.memories.len(), 100);
//! assert_eq!(corpus.queries.len(), benches::corpus::QUERIES);
//! let naive = benches::naive::NaiveScan::new(&corpus.memories);
//! let _top = naive.search(&corpus.queries[0], 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc(test(attr(deny(warnings))))]

pub mod corpus;
pub mod cranfield;
pub mod naive;
pub mod os;
#[cfg(feature = "peers")]
pub mod peers;
pub mod records_rows;
pub mod stats;
pub mod word_vectors;

use std::path::PathBuf;

/// A binary built beside the running one (`cargo xtask` builds the ones it needs), or an error
/// that says how to build it.
pub fn sibling_exe(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        anyhow::bail!(
            "{} not found: build it with `cargo build --release --bin {name}` (cargo xtask does)",
            path.display()
        );
    }
    Ok(path)
}
