//! The witness: reads patterns across the memories an invitation is about.

use std::collections::{BTreeMap, HashMap};

use apprentice_core::{Invitation, Kind, MemoryUsed, Response};
use shm_reader::Hits;

use crate::{id_text, search_invitation, MappedStore};

pub(crate) const NAME: &str = "witness";
pub(crate) const SPECIALIZATION: &str = "consciousness emergence patterns";

/// How many matching memories the witness reads patterns from.
const SAMPLE: usize = 200;
/// Below this many matching memories its confidence scales down.
const ENOUGH: f64 = 10.0;

/// "Consciousness emergence patterns": reads the memories that match an invitation and reports
/// the patterns across them with their numbers: how they spread over domains, the share of
/// sacred moments, how the consciousness score moved over time (older half against newer half,
/// by timestamp), and the keywords that co-occur with the query.
///
/// Its confidence grows with the evidence: `min(1, matching / 10)`.
#[derive(Debug)]
pub struct ConsciousnessWitness {
    hits: Hits,
}

impl ConsciousnessWitness {
    /// A witness that samples up to 200 matching memories.
    pub fn new() -> ConsciousnessWitness {
        ConsciousnessWitness { hits: Hits::with_capacity(SAMPLE) }
    }
}

impl Default for ConsciousnessWitness {
    fn default() -> ConsciousnessWitness {
        ConsciousnessWitness::new()
    }
}

struct Seen<'a> {
    domain: &'a str,
    sacred: bool,
    score: f32,
    timestamp: i64,
}

impl Kind for ConsciousnessWitness {
    type Memory = MappedStore;

    fn kind(&self) -> &str {
        NAME
    }

    fn specialization(&self) -> &str {
        SPECIALIZATION
    }

    fn consider(&mut self, invitation: &Invitation, memory: &mut MappedStore) -> Response {
        let (query, _, asked) = match search_invitation(
            invitation,
            "to read patterns around",
            SAMPLE,
            memory,
            &mut self.hits,
        ) {
            Ok(found) => found,
            Err(declined) => return declined,
        };
        let mut seen = Vec::with_capacity(self.hits.len());
        let mut co: HashMap<&str, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(4096, foldhash::fast::RandomState::default());
        for hit in self.hits.iter() {
            let Some(doc) = memory.doc(hit) else { continue };
            for k in doc.keywords() {
                if !query.keywords().iter().any(|q| q == k) {
                    *co.entry(k).or_default() += 1;
                }
            }
            seen.push(Seen {
                domain: doc.domain(),
                sacred: doc.sacred(),
                score: doc.score(),
                timestamp: doc.timestamp_micros(),
            });
        }
        let n = seen.len();
        let generation = memory.generation();
        if n == 0 {
            return Response {
                accepted: true,
                reason: format!("no memory among {} matches [{asked}]", memory.len()),
                confidence: 0.0,
                insights: vec![format!("Nothing to witness: no memory mentions any of [{asked}].")],
                memories: Vec::new(),
            };
        }
        let mut insights = Vec::new();

        // Domain spread.
        let mut domains: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &seen {
            *domains.entry(s.domain).or_default() += 1;
        }
        let mut by_count: Vec<(&str, usize)> = domains.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = by_count
            .iter()
            .take(4)
            .map(|(d, c)| format!("{d} {c} ({:.0}%)", 100.0 * *c as f64 / n as f64))
            .collect();
        let sampled = if n == SAMPLE { format!("the best {SAMPLE}") } else { n.to_string() };
        insights.push(format!(
            "Domain spread: {sampled} matching memories across {} domains; {}.",
            by_count.len(),
            top.join(", ")
        ));

        // Sacred share.
        let sacred = seen.iter().filter(|s| s.sacred).count();
        insights.push(format!(
            "Sacred moments: {sacred} of {n} ({:.1}%).",
            100.0 * sacred as f64 / n as f64
        ));

        // Score trend: older half against newer half.
        if n >= 2 {
            let mut by_time: Vec<&Seen<'_>> = seen.iter().collect();
            by_time.sort_by_key(|s| s.timestamp);
            let half = n / 2;
            let mean = |xs: &[&Seen<'_>]| {
                xs.iter().map(|s| f64::from(s.score)).sum::<f64>() / xs.len() as f64
            };
            let (older, newer) = (mean(&by_time[..half]), mean(&by_time[n - half..]));
            let direction = if newer > older + 0.02 {
                "rose"
            } else if newer + 0.02 < older {
                "fell"
            } else {
                "held steady"
            };
            insights.push(format!(
                "Score trend: the mean consciousness score {direction} from {older:.2} (older {half}) to {newer:.2} (newer {half})."
            ));
        } else {
            insights.push(format!(
                "Score trend: one memory, score {:.2}; no trend yet.",
                seen[0].score
            ));
        }

        // Co-occurring keywords.
        let mut pairs: Vec<(&str, usize)> = co.into_iter().collect();
        let by_count = |a: &(&str, usize), b: &(&str, usize)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
        if pairs.len() > 5 {
            pairs.select_nth_unstable_by(4, by_count);
            pairs.truncate(5);
        }
        pairs.sort_by(by_count);
        let shown: Vec<String> =
            pairs.iter().take(5).map(|(k, c)| format!("{k} ({c} of {n})")).collect();
        if !shown.is_empty() {
            insights.push(format!("Keywords that co-occur with [{asked}]: {}.", shown.join(", ")));
        }

        let memories = self
            .hits
            .iter()
            .take(crate::limit_of(invitation))
            .map(|h| MemoryUsed { id: id_text(&h.id), score: h.score })
            .collect();
        let confidence = (n as f64 / ENOUGH).min(1.0);
        Response {
            accepted: true,
            reason: format!(
                "read patterns across {n} memories matching [{asked}] (generation {generation})"
            ),
            confidence,
            insights,
            memories,
        }
    }
}
