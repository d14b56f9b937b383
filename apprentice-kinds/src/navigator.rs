//! The navigator: finds the memories an invitation is about and the ones related to them.

use apprentice_core::{Invitation, Kind, MemoryUsed, Response};
use shm_reader::{Hits, Ranking};

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

/// "Semantic memory navigation": searches by the invitation's keywords and task text, follows
/// the related memories of its best hits, and answers with insights that quote what it found.
///
/// Its confidence is the match quality: the mean share of query keywords that its best
/// (up to three) hits contain, so a response built on memories that match every keyword has
/// confidence 1 and one built on single-keyword matches of a long query stays low.
#[derive(Debug)]
pub struct MemoryNavigator {
    hits: Hits,
    related: Hits,
    watcher: Option<Watcher>,
}

impl MemoryNavigator {
    /// A navigator with result buffers for up to 100 hits.
    pub fn new() -> MemoryNavigator {
        MemoryNavigator {
            hits: Hits::with_capacity(100),
            related: Hits::with_capacity(RELATED_PER_HIT),
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
        let Found { query, options, asked, hits } = found;
        let context = &invitation.context;
        let note = context_note(context);
        let generation = memory.generation();
        if hits.is_empty() {
            return Response {
                accepted: true,
                reason: format!(
                    "searched {} (generation {generation}) for [{asked}]{note}",
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

        let mut insights = Vec::new();
        let mut used = Vec::new();
        let mut quality = 0.0;
        // The words the ranking searched for: a hit's overlap counts those.
        let q_len = match options.ranking {
            Ranking::Jaccard => query.keywords().len(),
            _ => query.terms().len(),
        } as f64;
        for (rank, hit) in hits.iter().enumerate() {
            let Some(doc) = memory.doc(hit) else { continue };
            let matched = memory
                .explain(&query, hit, &options)
                .map(|e| e.matched.join(", "))
                .unwrap_or_default();
            if rank < FOLLOW {
                quality += f64::from(hit.overlap) / q_len;
            }
            let sacred = if doc.sacred() { "sacred moment, " } else { "" };
            insights.push(format!(
                "[{}] {} ({sacred}score {:.3}; matched {matched})",
                doc.domain(),
                clip(doc.gist(), QUOTE),
                hit.score
            ));
            used.push(MemoryUsed { id: id_text(&hit.id), score: hit.score });
        }
        let followed = hits.len().min(FOLLOW);
        quality /= followed as f64;

        // Follow the best hits to memories that share their keywords but not the query's, within
        // the same context.
        let best: Vec<([u8; 16], String)> = hits
            .iter()
            .take(FOLLOW)
            .filter_map(|h| memory.doc(h).map(|d| (h.id, clip(d.gist(), 60))))
            .collect();
        let mut related_options = options.clone();
        related_options.limit = RELATED_PER_HIT;
        for (id, gist) in best {
            if memory.related(&id, &related_options, &mut self.related).is_err() {
                break;
            }
            for hit in self.related.iter() {
                if !context.in_time_range(hit.timestamp_micros)
                    || used.iter().any(|u| u.id == id_text(&hit.id))
                {
                    continue;
                }
                let Some(doc) = memory.doc(hit) else { continue };
                insights.push(format!(
                    "Related to \"{gist}\": [{}] {} (score {:.3})",
                    doc.domain(),
                    clip(doc.gist(), QUOTE),
                    hit.score
                ));
                used.push(MemoryUsed { id: id_text(&hit.id), score: hit.score });
            }
        }

        let direct = hits.len();
        let sacred = hits.iter().filter(|h| memory.doc(h).is_some_and(|d| d.sacred())).count();
        Response {
            accepted: true,
            reason: format!(
                "found {} for [{asked}] among {} (generation {generation}), {sacred} of them sacred, and {} related{note}",
                plural(direct as u64, "memory", "memories"),
                memory.len(),
                plural((used.len() - direct) as u64, "memory", "memories"),
            ),
            confidence: (quality * 1000.0).round() / 1000.0,
            insights,
            memories: used,
        }
    }
}
