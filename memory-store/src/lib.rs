//! The whole system for its users: durable memory records, index maintenance and publication,
//! search, related and sacred memories, rebuild at open, and access to apprentices.
//!
//! The `mcs` program in this package is its command line.
#![forbid(unsafe_code)]
