//! Integration tests of memory-store: the library, the real `mcs` binary, real processes.

mod cli;
mod hostile;
mod kill;
mod library;
mod polish;
