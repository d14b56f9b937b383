//! Concrete apprentices behind `apprentice_core::Kind`: [`MemoryNavigator`] finds memories,
//! [`ConsciousnessWitness`] reads patterns across them, and [`worker_main`] is what the
//! `apprentice` binary (or any host program, such as `mcs`) runs in the child process.
//!
//! Every kind is testable in-process: open a [`MappedStore`] (a `shm_reader::Reader`) on a
//! store and call
//! [`apprentice_core::answer`], which applies the alignment rule before the kind's own
//! `consider`. This crate does not spawn or talk to processes; `apprentice-core` does.
//!
//! # Example
//!
//! ```no_run
//! use apprentice_core::{answer, Invitation};
//! use apprentice_kinds::{MappedStore, MemoryNavigator};
//!
//! let mut reader = MappedStore::open("mcs-store")?;
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

mod access;
mod curator;
mod memory;
mod navigator;
mod quotes;
mod related;
mod stream;
mod synthesizer;
mod witness;

use std::process::ExitCode;

use apprentice_core::{Invitation, Kind, WorkerArgs};
use shm_reader::{Query, SearchOptions};

pub use crate::curator::Curator;
pub use crate::memory::MappedStore;
pub use crate::navigator::MemoryNavigator;
pub use crate::synthesizer::Synthesizer;
pub use crate::witness::ConsciousnessWitness;

/// Every kind this crate ships, in the order `mcs circle` invites them. Adding a kind is its
/// module (with a `REGISTRATION`) and one line here.
const REGISTRY: &[BuiltIn] = &[
    navigator::REGISTRATION,
    witness::REGISTRATION,
    synthesizer::REGISTRATION,
    curator::REGISTRATION,
];

/// A kind this crate ships: its name, its specialization, and how to make one.
#[derive(Clone, Copy)]
pub struct BuiltIn {
    name: &'static str,
    specialization: &'static str,
    create: fn() -> Box<dyn Kind<Memory = MappedStore> + Send>,
}

impl BuiltIn {
    /// Every built-in kind.
    pub const ALL: &'static [BuiltIn] = REGISTRY;

    /// The name used on command lines and in Hello ("navigator", "witness").
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The kind's specialization in words.
    pub fn specialization(self) -> &'static str {
        self.specialization
    }

    /// The kind with this name, if there is one.
    pub fn from_name(name: &str) -> Option<BuiltIn> {
        BuiltIn::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// A fresh instance.
    pub fn create(self) -> Box<dyn Kind<Memory = MappedStore> + Send> {
        (self.create)()
    }
}

impl PartialEq for BuiltIn {
    fn eq(&self, other: &BuiltIn) -> bool {
        self.name == other.name
    }
}

impl Eq for BuiltIn {}

impl std::hash::Hash for BuiltIn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl std::fmt::Debug for BuiltIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BuiltIn").field(&self.name).finish()
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

/// The query an invitation asks for: the keywords of its task text, its keywords, then those
/// of its context's free-form values, each through the keyword rule, first occurrence first.
/// The task comes first: a ranked query keeps only its first terms, and an invitation's
/// keywords must not crowd its task out.
pub fn invitation_query(invitation: &Invitation) -> Query {
    Query::from_keywords(
        std::iter::once(invitation.task.as_str())
            .chain(invitation.keywords.iter().map(String::as_str))
            .chain(invitation.context.entries.values().map(String::as_str)),
    )
}

/// What [`search_invitation`] found: the query, the options it searched with, its keywords for
/// messages, the hits the context admits (time range applied), best first, and whether the
/// search fused in the vector ranking.
pub(crate) struct Found {
    pub(crate) query: Query,
    pub(crate) options: SearchOptions,
    pub(crate) asked: String,
    pub(crate) hits: Vec<shm_reader::Hit>,
    pub(crate) semantic: bool,
}

impl Found {
    /// How the hits were ranked, for a reason: "" for the lexical ranking, else
    /// "; ranked hybrid (keywords fused with the query's embedding)".
    pub(crate) fn ranked(&self) -> &'static str {
        match (self.semantic, self.options.ranking) {
            (false, _) => "",
            (true, shm_reader::Ranking::Vector) => "; ranked by the query's embedding alone",
            (true, _) => "; ranked hybrid (keywords fused with the query's embedding)",
        }
    }
}

/// The first step of every kind: the invitation's query, searched under its context, keeping at
/// most `limit` hits. With a time range the search fills all of `hits` (its capacity) and keeps
/// those in range, so a range is applied among the best `hits.capacity()` matches. When the
/// invitation carries its task's [embedding](Invitation::embedding) and the store has vectors
/// of its dimensions, the default ranking is hybrid (as `mcs search`'s is). Returns the
/// declining response when the invitation has no keywords (`purpose` says what for), names an
/// unknown ranking, asks for a semantic ranking that cannot run, or the index cannot be read.
pub(crate) fn search_invitation(
    invitation: &Invitation,
    purpose: &str,
    limit: usize,
    memory: &mut MappedStore,
    hits: &mut shm_reader::Hits,
) -> Result<Found, apprentice_core::Response> {
    let declined = |why: String| apprentice_core::Response::declined(why, 0.0);
    let mut query = invitation_query(invitation);
    let context = &invitation.context;
    let ranged = context.since_micros.is_some() || context.until_micros.is_some();
    let mut options =
        options_for(invitation, if ranged { hits.capacity() } else { limit }).map_err(declined)?;
    if let Err(e) = memory.refresh() {
        return Err(declined(format!("could not read the memory index: {e}")));
    }
    let dim = invitation.embedding.len();
    let vectors = dim > 0 && memory.has_vectors_of(dim);
    if vectors {
        query.set_embedding(&invitation.embedding);
        if context.ranking.as_deref().is_none_or(|r| r == "default") {
            options.ranking = shm_reader::Ranking::Hybrid;
        }
    } else if options.ranking.is_semantic() {
        let name = options.ranking.name();
        return Err(declined(if dim == 0 {
            format!(
                "the context asks for ranking {name}, which needs the task's embedding: the invitation carries none (the supervisor embeds it when the model is installed)"
            )
        } else {
            format!("the context asks for ranking {name}, but no memory of this store has a vector of {dim} dimensions yet (`mcs embed` computes them)")
        }));
    }
    if query.is_empty_for(options.ranking) {
        return Err(declined(format!(
            "the invitation has no keywords {purpose} (its task and keywords are all stop words or empty)"
        )));
    }
    // Messages name the query's words as the user gave them (BM25F searches their stems).
    let asked = keyword_list(query.keywords());
    let semantic = match memory.search_semantic(&query, &options, hits) {
        Ok(semantic) => semantic,
        Err(e) => return Err(declined(format!("could not read the memory index: {e}"))),
    };
    options.limit = limit;
    let hits = hits
        .iter()
        .filter(|h| context.in_time_range(h.timestamp_micros))
        .take(limit)
        .copied()
        .collect();
    Ok(Found { query, options, asked, hits, semantic })
}

/// How many of a query's keywords messages name; the rest are counted.
const NAMED_KEYWORDS: usize = 20;

/// A query's keywords for messages: the first 20 joined, then how many more (an invitation may
/// carry hundreds of thousands, which a reply must not echo back).
pub(crate) fn keyword_list(keywords: &[String]) -> String {
    let named = keywords[..keywords.len().min(NAMED_KEYWORDS)].join(", ");
    match keywords.len().saturating_sub(NAMED_KEYWORDS) {
        0 => named,
        more => format!("{named} and {more} more"),
    }
}

/// The memory id as UUID text.
pub(crate) fn id_text(id: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*id).hyphenated().to_string()
}

/// The rankings kinds know, by name: `default` (hybrid when the invitation carries its task's
/// embedding and the store has vectors, else BM25F with the memory's score and the sacred
/// boost), `keywords` (keyword matches alone), and `hybrid` and `vector`, which need the
/// embedding.
pub const RANKINGS: [&str; 6] = ["default", "bm25f", "jaccard", "keywords", "hybrid", "vector"];

/// Search options for an invitation's context: `limit`, its domain, sacred filter and ranking;
/// an unknown ranking is an error naming the known ones.
pub(crate) fn options_for(invitation: &Invitation, limit: usize) -> Result<SearchOptions, String> {
    let context = &invitation.context;
    let mut options = SearchOptions {
        limit,
        domain: context.domain.clone(),
        sacred_only: context.sacred_only,
        ..SearchOptions::default()
    };
    match context.ranking.as_deref() {
        None | Some("default") => {}
        Some("bm25f") => options.ranking = shm_reader::Ranking::Bm25f,
        Some("jaccard") => options.ranking = shm_reader::Ranking::Jaccard,
        Some("hybrid") => options.ranking = shm_reader::Ranking::Hybrid,
        Some("vector") => options.ranking = shm_reader::Ranking::Vector,
        Some("keywords") => {
            // The seed's keyword overlap alone, without the score and sacred boosts.
            options.ranking = shm_reader::Ranking::Jaccard;
            options.w_score = 0.0;
            options.w_sacred = 0.0;
        }
        Some(other) => {
            return Err(format!(
                "the context asks for ranking {other:?}; I know {}",
                RANKINGS.join(", ")
            ))
        }
    }
    Ok(options)
}

/// The invitation's limit (its context's), clamped to 1..=100.
pub(crate) fn limit_of(invitation: &Invitation) -> usize {
    (invitation.context.limit() as usize).clamp(1, 100)
}

/// What of a context bounded an answer, for its reason: "" when nothing did, else
/// "; context: domain storage, sacred only, since 2023-11-14T22:13:20Z, team=infra".
pub(crate) fn context_note(context: &apprentice_core::Context) -> String {
    let time = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros).map_or_else(
            || format!("{micros} µs"),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )
    };
    let mut parts = Vec::new();
    if let Some(d) = &context.domain {
        parts.push(format!("domain {d}"));
    }
    if context.sacred_only {
        parts.push("sacred only".to_owned());
    }
    if let Some(s) = context.since_micros {
        parts.push(format!("since {}", time(s)));
    }
    if let Some(u) = context.until_micros {
        parts.push(format!("until {}", time(u)));
    }
    if let Some(r) = &context.ranking {
        parts.push(format!("ranking {r}"));
    }
    for (k, v) in &context.entries {
        parts.push(format!("{k}={}", clip(v, 60)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; context: {}", parts.join(", "))
    }
}

/// `n` with the noun in the form the number takes: "1 memory", "2 memories", "0 memories".
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
        for &k in BuiltIn::ALL {
            assert_eq!(BuiltIn::from_name(k.name()), Some(k));
            assert_eq!(k.create().kind(), k.name());
            assert_eq!(k.create().specialization(), k.specialization());
        }
        assert_eq!(BuiltIn::from_name("oracle"), None);
    }

    #[test]
    fn invitation_query_merges_task_and_keywords() {
        let inv = Invitation {
            task: "Find crash-safety lessons".into(),
            keywords: vec!["Memory-Mapped".into(), "crash".into()],
            context: apprentice_core::Context {
                entries: [("team".to_owned(), "storage crew".to_owned())].into(),
                ..Default::default()
            },
            ..Invitation::default()
        };
        let q = invitation_query(&inv);
        assert_eq!(
            q.keywords(),
            ["find", "crash", "safety", "lessons", "memory", "mapped", "storage", "crew"]
        );
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("héllo wörld", 5), "héllo…");
        assert_eq!(clip("short", 10), "short");
    }
}
