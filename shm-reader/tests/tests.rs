//! Integration tests of shm-reader: exactness against brute force, hostile bytes, generations.

mod errors;
mod golden;
mod hostile;
mod reader;
mod search;
mod util;
#[cfg(windows)]
mod windows_gc;
