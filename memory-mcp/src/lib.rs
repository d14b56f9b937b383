//! A Model Context Protocol server for a memory circulation store: what `mcs mcp` runs.
//!
//! The crate is the protocol side only: the tools (`remember`, `recall`, `related`, `get`,
//! `forget`, `stats`, `invite`) with their JSON schemas, memories as `memory://<id>` resources,
//! and the notifications sent when a new index generation is published. What the tools do is a
//! [`Backend`]'s business; the `mcs` program implements it over `memory-store` (a reader that
//! follows generations, the writer lock taken only while writing). This crate does not depend on
//! `memory-store`, so `mcs` can depend on it without a cycle, and a program that only wants the
//! store library pulls neither this crate nor its runtime (tokio, rmcp).
//!
//! Two transports: standard input/output ([`serve_stdio`]), and with the `http` feature MCP's
//! streamable HTTP on a loopback address (`serve_http`, hyper underneath).
//!
//! # Example
//!
//! ```no_run
//! # fn backend() -> std::sync::Arc<dyn memory_mcp::Backend> { unimplemented!() }
//! // Serves MCP over standard input and output until the client closes it.
//! memory_mcp::serve_stdio(backend(), memory_mcp::ServeOptions::default())?;
//! # Ok::<(), memory_mcp::ServeError>(())
//! ```
#![forbid(unsafe_code)]

mod args;
#[cfg(feature = "http")]
mod http;
mod server;
mod stdio;

use std::time::Duration;

pub use crate::args::{
    ApprenticeKind, GetArgs, InviteArgs, RecallArgs, RelatedArgs, RememberArgs, MAX_LIST_ITEMS,
    MAX_TEXT_BYTES,
};
#[cfg(feature = "http")]
pub use crate::http::{serve_http, HTTP_PATH};
pub use crate::server::{serve_stdio, Server};

/// A failed tool call, as the client reads it: the text says what and which input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// An argument was refused (named in the text); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// No memory has this id.
    #[error("no memory with id {0}")]
    NotFound(String),
    /// The store (or an apprentice) failed; the text has the cause.
    #[error("{0}")]
    Failed(String),
}

/// One memory in a resource listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    /// The memory's id (the resource is `memory://<id>`).
    pub id: String,
    /// Its domain.
    pub domain: String,
    /// Its question, cut to a bound.
    pub gist: String,
}

/// What the tools and resources do. Every method may block (disk, fsync, a spawned
/// apprentice): the server calls them on tokio's blocking pool, several at once, so an
/// implementation synchronizes its own state.
///
/// Successful answers are JSON values; the server sends them to the client as JSON text.
pub trait Backend: Send + Sync + 'static {
    /// Stores one memory durably and publishes it; returns its id.
    fn remember(&self, args: RememberArgs) -> Result<String, ToolError>;
    /// Searches the newest generation.
    fn recall(&self, args: RecallArgs) -> Result<serde_json::Value, ToolError>;
    /// Memories related to one memory.
    fn related(&self, args: RelatedArgs) -> Result<serde_json::Value, ToolError>;
    /// One memory as stored.
    fn get(&self, id: &str) -> Result<serde_json::Value, ToolError>;
    /// Forgets one memory (durably, and publishes the forgetting).
    fn forget(&self, id: &str) -> Result<(), ToolError>;
    /// Counts of the newest generation.
    fn stats(&self) -> Result<serde_json::Value, ToolError>;
    /// Spawns an apprentice of the given kind, invites it to the task, returns its response.
    fn invite(&self, args: InviteArgs) -> Result<serde_json::Value, ToolError>;
    /// Memories of the newest generation from `offset` on, at most `limit`, and whether more
    /// follow.
    fn list(&self, offset: usize, limit: usize) -> Result<(Vec<Listed>, bool), ToolError>;
    /// Whether the newest generation this backend saw has a memory with this id (cheap).
    fn contains(&self, id: &str) -> bool;
    /// Moves to the newest published generation if there is one and returns it. Polled by the
    /// server's watcher, so it must be cheap when nothing changed.
    fn refresh(&self) -> Result<u64, ToolError>;
}

/// How the server runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How often the watcher checks for a new generation (one atomic load per check).
    pub poll: Duration,
    /// The longest JSON-RPC line read; longer lines are discarded (and logged on stderr) without
    /// being buffered, and the server reads on. Over HTTP, the largest request body (413).
    pub max_line_bytes: usize,
    /// Whether `serve_http` may listen on an address that is not loopback. Off by default:
    /// the server has no authentication, so anyone who reaches the port can call every tool.
    pub allow_remote: bool,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            poll: Duration::from_millis(50),
            max_line_bytes: 1 << 20,
            allow_remote: false,
        }
    }
}

/// The server could not start or its transport failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The async runtime could not be built.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The MCP handshake with the client failed.
    #[error("MCP handshake: {0}")]
    Handshake(String),
    /// The session ended with an error.
    #[error("MCP session: {0}")]
    Session(String),
    /// An HTTP address that is not loopback, without [`ServeOptions::allow_remote`].
    #[error(
        "{0} is not a loopback address: the MCP server has no authentication, so it listens on \
         127.0.0.1 or ::1 unless remote clients are explicitly allowed"
    )]
    NotLoopback(std::net::SocketAddr),
    /// The HTTP address could not be bound.
    #[error("listening on {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
}
