//! Integration tests of memory-store: the library, the real `mcs` binary, real processes.

mod cli;
mod damage;
mod hostile;
mod kill;
mod library;
mod polish;
