//! Concrete apprentice kinds behind one trait, `MemoryNavigator` and `ConsciousnessWitness`,
//! and the `apprentice` binary that hosts a kind in a child process.
//!
//! This crate does not spawn or talk to processes; `apprentice-core` does.
#![forbid(unsafe_code)]
