//! Open published segments read-only through `memmap2`, validate them once, and search them
//! with no heap allocation on the hot path, following the writer's generations.
//!
//! This crate never writes to a store directory.
