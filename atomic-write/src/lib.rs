//! Replace a file so that a crash leaves either the old or the new content, never a mix.
//!
//! This crate owns the one durable write path of memory circulation: a temp file in the
//! target's directory, write, `fsync` the file, rename over the target, `fsync` the directory.
//! It does not lock, version or merge files; callers decide what to write.
#![forbid(unsafe_code)]
