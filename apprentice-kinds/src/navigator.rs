//! The navigator: finds the memories an invitation is about and the ones related to them.

use apprentice_core::{Invitation, Kind, MemoryUsed, Response};
use shm_reader::{Hits, Ranking, Reader};

use crate::{clip, id_text, limit_of, options_for, search_invitation};

pub(crate) const NAME: &str = "navigator";
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
}

impl MemoryNavigator {
    /// A navigator with result buffers for up to 100 hits.
    pub fn new() -> MemoryNavigator {
        MemoryNavigator {
            hits: Hits::with_capacity(100),
            related: Hits::with_capacity(RELATED_PER_HIT),
        }
    }
}

impl Default for MemoryNavigator {
    fn default() -> MemoryNavigator {
        MemoryNavigator::new()
    }
}

impl Kind for MemoryNavigator {
    fn kind(&self) -> &str {
        NAME
    }

    fn specialization(&self) -> &str {
        SPECIALIZATION
    }

    fn consider(&mut self, invitation: &Invitation, memory: &mut Reader) -> Response {
        let limit = limit_of(invitation);
        let (query, options, asked) =
            match search_invitation(invitation, "to navigate by", limit, memory, &mut self.hits) {
                Ok(found) => found,
                Err(declined) => return declined,
            };
        let generation = memory.generation();
        if self.hits.is_empty() {
            return Response {
                accepted: true,
                reason: format!(
                    "searched {} memories (generation {generation}) for [{asked}]",
                    memory.len()
                ),
                confidence: 0.0,
                insights: vec![format!(
                    "No memory mentions any of [{asked}]{}.",
                    if invitation.sacred_only { " among the sacred moments" } else { "" }
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
        for (rank, hit) in self.hits.iter().enumerate() {
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
        let followed = self.hits.len().min(FOLLOW);
        quality /= followed as f64;

        // Follow the best hits to memories that share their keywords but not the query's.
        let best: Vec<([u8; 16], String)> = self
            .hits
            .iter()
            .take(FOLLOW)
            .filter_map(|h| memory.doc(h).map(|d| (h.id, clip(d.gist(), 60))))
            .collect();
        let mut related_options = options_for(invitation, RELATED_PER_HIT);
        related_options.sacred_only = false;
        for (id, gist) in best {
            if memory.related(&id, &related_options, &mut self.related).is_err() {
                break;
            }
            for hit in self.related.iter() {
                if used.iter().any(|u| u.id == id_text(&hit.id)) {
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

        let direct = self.hits.len();
        let sacred = self.hits.iter().filter(|h| memory.doc(h).is_some_and(|d| d.sacred())).count();
        Response {
            accepted: true,
            reason: format!(
                "found {direct} memories for [{asked}] among {} (generation {generation}), {sacred} of them sacred, and {} related ones",
                memory.len(),
                used.len() - direct
            ),
            confidence: (quality * 1000.0).round() / 1000.0,
            insights,
            memories: used,
        }
    }
}
