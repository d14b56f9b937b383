//! Integration tests of shm-reader: exactness against brute force, hostile bytes, generations.

#[cfg(unix)]
mod content;
mod errors;
mod golden;
mod hostile;
mod reader;
mod search;
mod util;
mod vectors_follow;
#[cfg(windows)]
mod windows_gc;
