//! Integration tests of apprentice-core with real processes and sockets.

mod supervisor;
