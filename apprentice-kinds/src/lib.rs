//! Concrete apprentices behind `apprentice_core::Kind`: [`MemoryNavigator`] finds memories,
//! [`ConsciousnessWitness`] reads patterns across them, and [`worker_main`] is what the
//! `apprentice` binary (or any host program, such as `mcs`) runs in the child process.
//!
//! Every kind is testable in-process: open a [`shm_reader::Reader`] on a store and call
//! [`apprentice_core::answer`], which applies DESIGN.md's alignment rule before the kind's own
//! `consider`. This crate does not spawn or talk to processes; `apprentice-core` does.
//!
//! # Example
//!
//! ```no_run
//! use apprentice_core::{answer, Invitation};
//! use apprentice_kinds::MemoryNavigator;
//!
//! let mut reader = shm_reader::Reader::open("mcs-store")?;
//! let invitation = Invitation {
//!     task: "what did we learn about crash safety".into(),
//!     specialization: "semantic memory navigation".into(),
//!     ..Invitation::default()
//! };
//! let response = answer(&mut MemoryNavigator::new(), &invitation, &mut reader);
//! for insight in &response.insights {
//!     println!("{insight}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod navigator;
mod witness;

use std::process::ExitCode;

use apprentice_core::{Invitation, Kind, WorkerArgs};
use shm_reader::{Query, SearchOptions};

pub use crate::navigator::MemoryNavigator;
pub use crate::witness::ConsciousnessWitness;

/// The kinds this crate ships, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltIn {
    /// [`MemoryNavigator`].
    Navigator,
    /// [`ConsciousnessWitness`].
    Witness,
}

impl BuiltIn {
    /// Every built-in kind.
    pub const ALL: [BuiltIn; 2] = [BuiltIn::Navigator, BuiltIn::Witness];

    /// The name used on command lines and in Hello ("navigator", "witness").
    pub fn name(self) -> &'static str {
        match self {
            BuiltIn::Navigator => navigator::NAME,
            BuiltIn::Witness => witness::NAME,
        }
    }

    /// The kind's specialization in words.
    pub fn specialization(self) -> &'static str {
        match self {
            BuiltIn::Navigator => navigator::SPECIALIZATION,
            BuiltIn::Witness => witness::SPECIALIZATION,
        }
    }

    /// The kind with this name, if there is one.
    pub fn from_name(name: &str) -> Option<BuiltIn> {
        BuiltIn::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A fresh instance.
    pub fn create(self) -> Box<dyn Kind + Send> {
        match self {
            BuiltIn::Navigator => Box::new(MemoryNavigator::new()),
            BuiltIn::Witness => Box::new(ConsciousnessWitness::new()),
        }
    }
}

impl std::fmt::Display for BuiltIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs the named built-in kind as an apprentice in this process, with the socket and store
/// the supervisor passed in the environment. Errors go to stderr; the exit code is 0 after a
/// clean Shutdown or when the supervisor went away, 1 on error and 2 for an unknown kind.
pub fn worker_main(kind: &str) -> ExitCode {
    let Some(builtin) = BuiltIn::from_name(kind) else {
        let known: Vec<&str> = BuiltIn::ALL.iter().map(|k| k.name()).collect();
        eprintln!("apprentice: unknown kind {kind:?} (known: {})", known.join(", "));
        return ExitCode::from(2);
    };
    let result = WorkerArgs::from_env().and_then(|args| {
        let mut k = builtin.create();
        apprentice_core::run_worker(&mut *k, &args)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apprentice {kind}: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The query an invitation asks for: its keywords and the keywords of its task text, each
/// through the keyword rule, first occurrence first.
pub fn invitation_query(invitation: &Invitation) -> Query {
    Query::from_keywords(
        invitation
            .keywords
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(invitation.task.as_str())),
    )
}

/// The first step of every kind: the invitation's query, searched with `limit` into `hits`.
/// Returns the query and its keywords joined for messages, or the declining response when the
/// invitation has no keywords (`purpose` says what for) or the index cannot be read.
pub(crate) fn search_invitation(
    invitation: &Invitation,
    purpose: &str,
    limit: usize,
    memory: &mut shm_reader::Reader,
    hits: &mut shm_reader::Hits,
) -> Result<(Query, SearchOptions, String), apprentice_core::Response> {
    let query = invitation_query(invitation);
    let options = options_for(invitation, limit);
    if query.is_empty_for(options.ranking) {
        return Err(apprentice_core::Response::declined(
            format!(
                "the invitation has no keywords {purpose} (its task and keywords are all stop words or empty)"
            ),
            0.0,
        ));
    }
    let asked = match options.ranking {
        shm_reader::Ranking::Jaccard => query.keywords().join(", "),
        _ => query.terms().join(", "),
    };
    if let Err(e) = memory.search(&query, &options, hits) {
        return Err(apprentice_core::Response::declined(
            format!("could not read the memory index: {e}"),
            0.0,
        ));
    }
    Ok((query, options, asked))
}

/// The memory id as UUID text.
pub(crate) fn id_text(id: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*id).hyphenated().to_string()
}

/// Search options for an invitation: its limit (at least 1, at most 100) and sacred filter.
pub(crate) fn options_for(invitation: &Invitation, limit: usize) -> SearchOptions {
    SearchOptions { limit, sacred_only: invitation.sacred_only, ..SearchOptions::default() }
}

/// The invitation's limit, clamped to 1..=100.
pub(crate) fn limit_of(invitation: &Invitation) -> usize {
    (invitation.limit as usize).clamp(1, 100)
}

/// Shortens text to at most `max` characters, on a char boundary, with an ellipsis.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}…", text[..i].trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_round_trip_their_names() {
        for k in BuiltIn::ALL {
            assert_eq!(BuiltIn::from_name(k.name()), Some(k));
            assert_eq!(k.create().kind(), k.name());
            assert_eq!(k.create().specialization(), k.specialization());
        }
        assert_eq!(BuiltIn::from_name("oracle"), None);
    }

    #[test]
    fn invitation_query_merges_keywords_and_task() {
        let inv = Invitation {
            task: "Find crash-safety lessons".into(),
            keywords: vec!["Memory-Mapped".into(), "crash".into()],
            ..Invitation::default()
        };
        let q = invitation_query(&inv);
        assert_eq!(q.keywords(), ["memory", "mapped", "crash", "find", "safety", "lessons"]);
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("héllo wörld", 5), "héllo…");
        assert_eq!(clip("short", 10), "short");
    }
}
