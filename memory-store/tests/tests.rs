//! Integration tests of memory-store: the library, the real `mcs` binary, real processes.

/// A model directory that does not exist: these tests pin the behaviour without the embedding
/// model (lexical search, no embedding after writes), also where the model is installed (CI).
pub(crate) const NO_MODEL: &str = "/nonexistent/mcs-tests-without-a-model";

mod cli;
mod damage;
mod hostile;
mod kill;
mod library;
mod polish;
