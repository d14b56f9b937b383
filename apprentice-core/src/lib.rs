//! The apprentice runtime: the wire protocol, length-prefixed msgpack frames over local
//! sockets, the supervisor side (spawn, handshake, invite, terminate, reap) and the worker loop.
//!
//! This crate does not decide what an apprentice answers; `apprentice-kinds` does.
//!
//! # Overview
//!
//! - [`protocol`] holds the wire types ([`Invitation`], [`Response`], [`Message`]); it is the
//!   only module that derives serde. [`transport`] frames them: a `u32` length checked against
//!   an 8 MiB cap before anything is allocated, then msgpack nested at most 64 deep.
//! - [`Apprentice::spawn`] starts any [`std::process::Command`] as an apprentice: a private
//!   socket (0600, in a 0700 directory removed once the child connected; only the spawned
//!   child's pid is accepted), a Hello within a timeout,
//!   [`Apprentice::invite`] with a timeout (busy apprentices decline), [`Apprentice::terminate`],
//!   and a `Drop` that kills and reaps. [`Circle`] invites several at once and restarts the
//!   ones that crash, with backoff.
//! - [`run_worker`] is the loop a child runs: connect, Hello, open the kind's [`Memory`] on the
//!   store (for the shipped kinds, `shm_reader::Reader` mapping it read-only; the runtime does
//!   not depend on the reader), answer invitations through a [`Kind`], exit on Shutdown or when
//!   the supervisor goes away (on Linux also through a parent-death signal).
//!
//! # Example
//!
//! ```
//! use apprentice_core::{alignment, Invitation};
//!
//! let invitation = Invitation {
//!     task: "find what we learned about crashes".into(),
//!     specialization: "semantic memory navigation".into(),
//!     ..Invitation::default()
//! };
//! assert_eq!(alignment(&invitation.specialization, "semantic memory navigation"), 1.0);
//! let frame = apprentice_core::transport::encode(&apprentice_core::Message::Shutdown)?;
//! assert_eq!(apprentice_core::transport::read_frame(&frame[..])?, apprentice_core::Message::Shutdown);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Platform notes
//!
//! Unix domain sockets named by file path (interprocess `GenericFilePath`), never the Linux
//! abstract namespace, which has no permission checks. On Windows the same code uses named
//! pipes; the peer check relies on the pipe's default DACL there.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod circle;
mod kind;
pub mod protocol;
mod supervisor;
pub mod transport;
mod worker;

use std::process::ExitStatus;
use std::time::Duration;

pub use crate::circle::{Circle, RestartPolicy};
pub use crate::kind::{alignment, answer, Kind, Memory, ALIGNMENT_THRESHOLD};
pub use crate::protocol::{Context, Invitation, MemoryUsed, Message, Push, Response};
pub use crate::supervisor::{Apprentice, SpawnOptions, BUSY_REASON};
pub use crate::transport::FrameError;
pub use crate::worker::{run_worker, WorkerArgs};

/// The environment variable that carries the supervisor's socket path to a worker.
pub const SOCKET_ENV: &str = "MCS_APPRENTICE_SOCKET";
/// The environment variable that carries the store directory to a worker.
pub const STORE_ENV: &str = "MCS_APPRENTICE_STORE";

/// What went wrong with an apprentice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A frame could not be read or written.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The child did not say Hello in time (it was killed and reaped).
    #[error("apprentice did not say hello within {after:?}")]
    HelloTimeout {
        /// The timeout.
        after: Duration,
    },
    /// The child exited before saying Hello.
    #[error("apprentice exited before saying hello ({status})")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
    },
    /// The apprentice did not answer in time.
    #[error("apprentice did not answer within {after:?}")]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The apprentice died or closed the connection; an invitation in flight is lost.
    #[error("apprentice {pid} was lost{}; the invitation's outcome is unknown", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Lost {
        /// Its pid.
        pid: u32,
        /// Its exit status, if it had exited.
        status: Option<ExitStatus>,
        /// What the connection reported.
        #[source]
        cause: Option<FrameError>,
    },
    /// The peer speaks another protocol version.
    #[error("apprentice speaks protocol {got}, this supervisor speaks {expected}: run an apprentice built with this supervisor")]
    Protocol {
        /// Ours.
        expected: u32,
        /// Theirs.
        got: u32,
    },
    /// The connecting process runs as another user.
    #[error("peer runs as uid {got:?}, expected {expected}")]
    Peer {
        /// Our uid.
        expected: u32,
        /// Theirs.
        got: Option<u32>,
    },
    /// A process other than the spawned child connected to its socket (it was refused).
    #[error("peer is process {got:?}, not the apprentice {expected} that was spawned")]
    Impostor {
        /// The child's pid.
        expected: u32,
        /// The peer's, if the platform says.
        got: Option<u32>,
    },
    /// The other side reported an error.
    #[error("apprentice reported: {0}")]
    Worker(String),
    /// A frame that makes no sense at this point.
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// A worker started without its environment.
    #[error("{0} is not set: this program must be started by an apprentice supervisor")]
    MissingEnv(&'static str),
    /// The worker's parent was gone before it started.
    #[error("the supervisor exited before the apprentice started")]
    Orphaned,
    /// The worker could not open the store.
    #[error("opening the memory store")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A circle member failed for good (restart limit) or is down.
    #[error("{0}")]
    Failed(String),
}
