//! The wire protocol: the only module whose types are serialized. Every frame is one
//! [`Message`], encoded as msgpack with named fields (see `transport`).
//!
//! Compatibility rule: [`Message::Hello`] is the first variant and never changes shape; new
//! variants are added at the end and name the version that introduced them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Protocol versions.
pub mod version {
    /// The first protocol: Hello, Invite, Respond, Ping, Pong, Shutdown, Error.
    pub const V1: u32 = 1;
    /// The invitation's context became a typed [`Context`](super::Context) (it was a string;
    /// `sacred_only` and `limit` moved into it); streams: Watch, Watching, Push.
    pub const V2: u32 = 2;
    /// The invitation may carry its query's embedding
    /// ([`Invitation::embedding`](super::Invitation::embedding)), computed by the supervisor.
    pub const V3: u32 = 3;
    /// The version this build speaks.
    pub const CURRENT: u32 = V3;
}

/// A task offered to an apprentice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// What to do, in words.
    pub task: String,
    /// The expertise the task needs, in words ("semantic memory navigation").
    pub specialization: String,
    /// Keywords to search memories with (passed through the keyword rule).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// What the answer must keep to; every kind honors every field. Since v2.
    #[serde(default)]
    pub context: Context,
    /// The embedding of the task's text (the model's unit vector), when the supervisor has the
    /// model and the store has vectors: kinds then search hybrid (lexical fused with vector
    /// ranking) without loading the model themselves. Empty: none. Since v3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedding: Vec<f32>,
}

/// The limit when a context gives none.
pub const DEFAULT_LIMIT: u32 = 10;

/// An invitation's context: the bounds every kind keeps its answer within, and free-form
/// background. `Context::default()` bounds nothing (limit 10).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    /// Only memories of this domain.
    pub domain: Option<String>,
    /// Only sacred memories.
    pub sacred_only: bool,
    /// Only memories stored at or after this time (unix microseconds).
    pub since_micros: Option<i64>,
    /// Only memories stored before this time (unix microseconds).
    pub until_micros: Option<i64>,
    /// At most this many memories per answer ([`DEFAULT_LIMIT`] when absent).
    pub limit: Option<u32>,
    /// The ranking to search with, by name; a kind that does not know it declines.
    pub ranking: Option<String>,
    /// Free-form background, `key → value`: kinds search with the values' keywords too and
    /// name every entry in their reason.
    pub entries: BTreeMap<String, String>,
}

impl Context {
    /// The limit, [`DEFAULT_LIMIT`] when absent.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// Whether a memory stored at `micros` is within the time range.
    pub fn in_time_range(&self, micros: i64) -> bool {
        self.since_micros.is_none_or(|s| micros >= s)
            && self.until_micros.is_none_or(|u| micros < u)
    }

    /// Whether nothing bounds the answer and there is no background.
    pub fn is_empty(&self) -> bool {
        *self == Context::default()
    }
}

/// A memory an answer used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryUsed {
    /// The memory's id (UUID text).
    pub id: String,
    /// Its search score.
    pub score: f64,
}

/// An apprentice's answer to an invitation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the apprentice took the task.
    pub accepted: bool,
    /// Why it accepted or declined.
    pub reason: String,
    /// How sure it is, 0..=1 (the alignment when it declines).
    pub confidence: f64,
    /// What it found.
    pub insights: Vec<String>,
    /// The memories behind the insights.
    pub memories: Vec<MemoryUsed>,
}

impl Response {
    /// A refusal with a reason.
    pub fn declined(reason: impl Into<String>, confidence: f64) -> Response {
        Response { accepted: false, reason: reason.into(), confidence, ..Response::default() }
    }
}

/// One frame on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Worker → supervisor, first frame. Since v1; never changes shape.
    Hello {
        /// The worker's process id.
        pid: u32,
        /// The kind of apprentice ("navigator").
        kind: String,
        /// Its specialization in words.
        specialization: String,
        /// The protocol version it speaks.
        protocol: u32,
    },
    /// Supervisor → worker: consider this. Since v1.
    Invite {
        /// Correlates the answer.
        id: u64,
        /// The task.
        invitation: Invitation,
    },
    /// Worker → supervisor: the answer to `Invite { id }`. Since v1.
    Respond {
        /// The invitation's id.
        id: u64,
        /// The answer.
        response: Response,
    },
    /// Either way: are you there? Since v1.
    Ping {
        /// Echoed in the Pong.
        nonce: u64,
    },
    /// The answer to a Ping. Since v1.
    Pong {
        /// The Ping's nonce.
        nonce: u64,
    },
    /// Supervisor → worker: finish and exit. Since v1.
    Shutdown,
    /// Either way: something went wrong; the sender will close. Since v1.
    Error {
        /// What.
        message: String,
    },
    /// Supervisor → worker: hold this standing interest and push the memories that match it
    /// as they are published, unasked. Replaces any earlier interest. Since v2.
    Watch {
        /// What to watch for: its keywords, task words and context, as for an invitation.
        interest: Invitation,
        /// Only memories stamped at or after this time (unix microseconds) are new.
        after_micros: i64,
        /// Ids already pushed (a restarted worker resumes without repeating them).
        seen: Vec<String>,
    },
    /// Worker → supervisor: the answer to Watch; from `generation` on, new matching memories
    /// are pushed. `accepted` is false for a kind that does not watch. Since v2.
    Watching {
        /// Whether the kind holds the interest.
        accepted: bool,
        /// The generation the worker read when it took the interest.
        generation: u64,
    },
    /// Worker → supervisor, unasked: memories new in `generation` that match the interest.
    /// Since v2.
    Push(Push),
}

/// New memories matching a standing interest, pushed by a watching worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Push {
    /// The generation they were noticed in.
    pub generation: u64,
    /// The memories (id and search score).
    pub memories: Vec<MemoryUsed>,
    /// One line per memory, in the same order: its domain and gist.
    pub insights: Vec<String>,
}
