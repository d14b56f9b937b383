//! The navigator: finds the memories an invitation is about and the ones related to them.

use apprentice_core::{Invitation, Kind, MemoryUsed, Response};
use shm_reader::{Hit, Hits, Ranking};

use crate::quotes::{content_of, short_id, Quotes};
use crate::related::{By, RelatedSearch};
use crate::stream::Watcher;

use crate::{clip, context_note, id_text, limit_of, plural, search_invitation, Found, MappedStore};

pub(crate) const NAME: &str = "navigator";
/// How the crate's registry knows this kind.
pub(crate) const REGISTRATION: crate::BuiltIn = crate::BuiltIn {
    name: NAME,
    specialization: SPECIALIZATION,
    create: || Box::new(MemoryNavigator::new()),
};
pub(crate) const SPECIALIZATION: &str = "semantic memory navigation";

/// How many of the best hits the navigator follows to their related memories.
const FOLLOW: usize = 3;
/// Related memories read per followed hit.
const RELATED_PER_HIT: usize = 3;
/// Characters of a gist quoted in an insight.
const QUOTE: usize = 160;
/// Insights quoted per memory (and its synthesis).
const INSIGHTS_PER_MEMORY: usize = 3;

/// "Semantic memory navigation": searches by the invitation's keywords and task text (hybrid
/// when the invitation carries the task's embedding and the store has vectors), follows the
/// related memories of its best hits (the nearest by each hit's own stored vector, else by its
/// most discriminative terms), and answers with insights that quote what it found:
/// each matching memory's heading (domain, question, score, matched words, id), then its own
/// insights (up to three) and synthesis read from the store's content files, each sentence
/// once with the ids of every memory that said it.
///
/// Its confidence is the match quality: the mean share of query keywords that its best
/// (up to three) hits contain, so a response built on memories that match every keyword has
/// confidence 1 and one built on single-keyword matches of a long query stays low.
#[derive(Debug)]
pub struct MemoryNavigator {
    hits: Hits,
    related: RelatedSearch,
    watcher: Option<Watcher>,
}

impl MemoryNavigator {
    /// A navigator with result buffers for up to 100 hits.
    pub fn new() -> MemoryNavigator {
        MemoryNavigator {
            hits: Hits::with_capacity(100),
            related: RelatedSearch::new(RELATED_PER_HIT),
            watcher: None,
        }
    }
}

impl Default for MemoryNavigator {
    fn default() -> MemoryNavigator {
        MemoryNavigator::new()
    }
}

impl Kind for MemoryNavigator {
    type Memory = MappedStore;

    fn kind(&self) -> &str {
        NAME
    }

    fn specialization(&self) -> &str {
        SPECIALIZATION
    }

    /// Watches: new memories that share a keyword with the interest and fit its context are
    /// pushed once each (see the crate's stream module).
    fn watch(
        &mut self,
        interest: &Invitation,
        after_micros: i64,
        seen: &[String],
        _memory: &mut MappedStore,
    ) -> bool {
        self.watcher = Watcher::new(interest, after_micros, seen);
        self.watcher.is_some()
    }

    fn notice(&mut self, memory: &mut MappedStore) -> Vec<(MemoryUsed, String)> {
        self.watcher.as_mut().map(|w| w.notice(memory)).unwrap_or_default()
    }

    fn consider(&mut self, invitation: &Invitation, memory: &mut MappedStore) -> Response {
        let limit = limit_of(invitation);
        let found =
            match search_invitation(invitation, "to navigate by", limit, memory, &mut self.hits) {
                Ok(found) => found,
                Err(declined) => return declined,
            };
        let ranked = found.ranked();
        let Found { query, options, asked, hits, .. } = found;
        let context = &invitation.context;
        let note = context_note(context);
        let generation = memory.generation();
        if hits.is_empty() {
            return Response {
                accepted: true,
                reason: format!(
                    "searched {} (generation {generation}) for [{asked}]{ranked}{note}",
                    plural(memory.len(), "memory", "memories")
                ),
                confidence: 0.0,
                insights: vec![format!(
                    "No memory mentions any of [{asked}]{}.",
                    if context.is_empty() { "" } else { " within the context" }
                )],
                memories: Vec::new(),
            };
        }

        let snapshot = memory.snapshot();
        let mut quotes = Quotes::default();
        let mut unreadable = 0;
        let mut used = Vec::new();
        let mut quality = 0.0;
        // The words the ranking searched for: a hit's overlap counts those.
        let q_len = match options.ranking {
            Ranking::Jaccard => query.keywords().len(),
            _ => query.terms().len(),
        }
        .max(1) as f64;
        for (rank, hit) in hits.iter().enumerate() {
            let Some(doc) = snapshot.doc(hit) else { continue };
            let matched = match snapshot.explain(&query, hit, &options) {
                Some(e) if !e.matched.is_empty() => format!("matched {}", e.matched.join(", ")),
                // Only the vector side ranked it (hybrid).
                _ => "no keyword matched, near in meaning".to_owned(),
            };
            if rank < FOLLOW {
                quality += f64::from(hit.overlap) / q_len;
            }
            let sacred = if doc.sacred() { "sacred moment, " } else { "" };
            quotes.group(format!(
                "[{}] {} ({sacred}score {:.3}; {matched}) [{}]",
                doc.domain(),
                clip(doc.gist(), QUOTE),
                hit.score,
                short_id(&hit.id)
            ));
            if let Some(content) = content_of(&snapshot, hit, &mut unreadable) {
                quotes.say_content(&content, INSIGHTS_PER_MEMORY);
            }
            used.push(MemoryUsed { id: id_text(&hit.id), score: hit.score });
        }
        let followed = hits.len().min(FOLLOW);
        quality /= followed as f64;

        // Follow the best hits to their related memories, within the same context.
        let best: Vec<(Hit, String)> = hits
            .iter()
            .take(FOLLOW)
            .filter_map(|h| snapshot.doc(h).map(|d| (*h, clip(d.gist(), 60))))
            .collect();
        let (quoted, distinct, shared) = (quotes.quoted, quotes.len(), quotes.shared());
        let mut insights = quotes.into_lines();
        let mut ids: Vec<[u8; 16]> = hits.iter().map(|h| h.id).collect();
        let vectors = memory.vectors();
        let mut by_vector = 0;
        for (hit, gist) in best {
            let by = self.related.find(&snapshot, vectors, &hit, &options, context);
            by_vector += usize::from(by == Some(By::Vector));
            for r in self.related.found() {
                if ids.contains(&r.id) {
                    continue;
                }
                let Some(doc) = snapshot.doc(r) else { continue };
                let how = match by {
                    Some(By::Vector) => "similarity",
                    _ => "score",
                };
                insights.push(format!(
                    "Related to \"{gist}\": [{}] {} ({how} {:.3}) [{}]",
                    doc.domain(),
                    clip(doc.gist(), QUOTE),
                    r.score,
                    short_id(&r.id)
                ));
                ids.push(r.id);
                used.push(MemoryUsed { id: id_text(&r.id), score: r.score });
            }
        }
        let related_by = match by_vector {
            0 => "",
            _ => " (by their own vectors)",
        };
        let direct = hits.len();
        let sacred = hits.iter().filter(|h| snapshot.doc(h).is_some_and(|d| d.sacred())).count();
        let quoting = match (distinct, unreadable) {
            (0, 0) => String::new(),
            (_, 0) => format!(
                "; quoting {} from {} ({shared} said by more than one)",
                plural(distinct as u64, "insight", "insights"),
                plural(quoted as u64, "memory", "memories")
            ),
            (_, u) => format!(
                "; quoting {} from {}, {} unreadable",
                plural(distinct as u64, "insight", "insights"),
                plural(quoted as u64, "memory", "memories"),
                plural(u as u64, "memory's content", "memories' content")
            ),
        };
        Response {
            accepted: true,
            reason: format!(
                "found {} for [{asked}] among {} (generation {generation}){ranked}, {sacred} of them sacred, and {} related{related_by}{quoting}{note}",
                plural(direct as u64, "memory", "memories"),
                snapshot.len(),
                plural((used.len() - direct) as u64, "memory", "memories"),
            ),
            confidence: (quality * 1000.0).round() / 1000.0,
            insights,
            memories: used,
        }
    }
}
