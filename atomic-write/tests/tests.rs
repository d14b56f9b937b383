//! Integration tests of atomic-write on real files and processes.

mod crash;
mod roundtrip;
mod seam;
