//! The apprentice runtime: the wire protocol, length-prefixed msgpack frames over local
//! sockets, the supervisor side (spawn, handshake, invite, terminate, reap) and the worker loop.
//!
//! This crate does not decide what an apprentice answers; `apprentice-kinds` does.
