//! The wire protocol: the only module whose types are serialized. Every frame is one
//! [`Message`], encoded as msgpack with named fields (see `transport`).
//!
//! Compatibility rule: [`Message::Hello`] is the first variant and never changes shape; new
//! variants are added at the end and name the version that introduced them.

use serde::{Deserialize, Serialize};

/// Protocol versions.
pub mod version {
    /// The first protocol: Hello, Invite, Respond, Ping, Pong, Shutdown, Error.
    pub const V1: u32 = 1;
    /// The version this build speaks.
    pub const CURRENT: u32 = V1;
}

/// A task offered to an apprentice. `Invitation::default()` has a limit of 10, like a
/// decoded invitation that omits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// What to do, in words.
    pub task: String,
    /// Background for the task.
    #[serde(default)]
    pub context: String,
    /// The expertise the task needs, in words ("semantic memory navigation").
    pub specialization: String,
    /// Keywords to search memories with (passed through the keyword rule).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Only sacred memories.
    #[serde(default)]
    pub sacred_only: bool,
    /// At most this many memories.
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    10
}

impl Default for Invitation {
    fn default() -> Invitation {
        Invitation {
            task: String::new(),
            context: String::new(),
            specialization: String::new(),
            keywords: Vec::new(),
            sacred_only: false,
            limit: default_limit(),
        }
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
}
