//! The synthesizer: combines what related memories say into one answer, with its sources.

use std::collections::BTreeMap;

use apprentice_core::{Invitation, Kind, MemoryUsed, Response};
use shm_reader::Hits;

use crate::quotes::{content_of, QUOTE as INSIGHT_QUOTE};
use crate::witness::STOP;
use crate::{clip, context_note, id_text, limit_of, plural, search_invitation, Found, MappedStore};

pub(crate) const NAME: &str = "synthesizer";
/// How the crate's registry knows this kind.
pub(crate) const REGISTRATION: crate::BuiltIn = crate::BuiltIn {
    name: NAME,
    specialization: SPECIALIZATION,
    create: || Box::new(Synthesizer::new()),
};
pub(crate) const SPECIALIZATION: &str = "insight synthesis across memories";

/// Themes reported at most.
const THEMES: usize = 4;
/// Characters of a gist quoted under a theme.
const QUOTE: usize = 100;

/// "Insight synthesis across memories": reads the memories an invitation matches and combines
/// them into one answer. A theme is a content keyword (not the query's, not on the stop list)
/// that at least two of them share; keywords shared by exactly the same memories form one
/// theme. The answer says how many memories agree on each theme (largest first), quotes each
/// theme's memories with their ids, and names the memories that stand alone, so agreement and
/// sources stay visible. Under a theme each memory is quoted by its own words on it: its first
/// insight (else its synthesis) that holds a theme keyword, read from the store's content
/// files; the same sentence from several memories is quoted once with all their ids; a memory
/// with no such sentence (or no content file) is quoted by its question.
///
/// Its confidence is the agreement: the share of the matching memories in the largest theme
/// (0 when no two memories share a theme).
#[derive(Debug)]
pub struct Synthesizer {
    hits: Hits,
}

impl Synthesizer {
    /// A synthesizer over up to 100 matching memories.
    pub fn new() -> Synthesizer {
        Synthesizer { hits: Hits::with_capacity(100) }
    }
}

impl Default for Synthesizer {
    fn default() -> Synthesizer {
        Synthesizer::new()
    }
}

impl Kind for Synthesizer {
    type Memory = MappedStore;

    fn kind(&self) -> &str {
        NAME
    }

    fn specialization(&self) -> &str {
        SPECIALIZATION
    }

    fn consider(&mut self, invitation: &Invitation, memory: &mut MappedStore) -> Response {
        let limit = limit_of(invitation);
        let found =
            match search_invitation(invitation, "to synthesize", limit, memory, &mut self.hits) {
                Ok(found) => found,
                Err(declined) => return declined,
            };
        let ranked = found.ranked();
        let Found { query, asked, hits, .. } = found;
        let note = context_note(&invitation.context);
        let n = hits.len();
        if n == 0 {
            return Response {
                accepted: true,
                reason: format!("no memory matches [{asked}]{ranked}{note}"),
                confidence: 0.0,
                insights: vec![format!(
                    "Nothing to synthesize: no memory mentions any of [{asked}]."
                )],
                memories: Vec::new(),
            };
        }
        // keyword → the ranks (in `hits`) of the memories that hold it.
        let mut holders: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (rank, hit) in hits.iter().enumerate() {
            let Some(doc) = memory.doc(hit) else { continue };
            for k in doc.keywords() {
                if STOP.binary_search(&k).is_err() && !query.keywords().iter().any(|q| q == k) {
                    holders.entry(k).or_default().push(rank);
                }
            }
        }
        // Keywords with the same holders form one theme; keep themes of two or more.
        let mut themes: BTreeMap<Vec<usize>, Vec<&str>> = BTreeMap::new();
        for (k, ranks) in holders {
            if ranks.len() >= 2 {
                themes.entry(ranks).or_default().push(k);
            }
        }
        let mut themes: Vec<(Vec<usize>, Vec<&str>)> = themes.into_iter().collect();
        // Most memories first; then the best-ranked memories; then the words.
        themes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        themes.truncate(THEMES);

        let short = |rank: usize| id_text(&hits[rank].id)[..8].to_owned();
        let mut insights = Vec::new();
        let agreements: Vec<String> = themes
            .iter()
            .map(|(ranks, words)| format!("{} of {n} on {}", ranks.len(), words.join(" + ")))
            .collect();
        let alone: Vec<usize> =
            (0..n).filter(|r| !themes.iter().any(|(ranks, _)| ranks.contains(r))).collect();
        let alone_text = match alone.len() {
            0 => String::new(),
            k => format!(
                "; {} alone ({})",
                plural(k as u64, "memory stands", "memories stand"),
                alone.iter().map(|&r| short(r)).collect::<Vec<_>>().join(", ")
            ),
        };
        if agreements.is_empty() {
            insights.push(format!(
                "Synthesis of {} on [{asked}]: no two share a theme{alone_text}.",
                plural(n as u64, "memory", "memories")
            ));
        } else {
            insights.push(format!(
                "Synthesis of {} on [{asked}]: {}{alone_text}.",
                plural(n as u64, "memory", "memories"),
                agreements.join("; ")
            ));
        }
        let snapshot = memory.snapshot();
        let mut unreadable = 0;
        let mut from_insights = 0;
        for (ranks, words) in &themes {
            // (quote, short ids) in first-sayer order; the same sentence once.
            let mut quotes: Vec<(String, Vec<String>)> = Vec::new();
            for &r in ranks {
                let hit = &hits[r];
                let own = content_of(&snapshot, hit, &mut unreadable).and_then(|c| {
                    c.insights().chain([c.synthesis()]).find(|text| {
                        semantic_index::keywords(text).iter().any(|k| words.contains(&k.as_str()))
                    })
                });
                let quote = match own {
                    Some(text) => {
                        from_insights += 1;
                        clip(text.trim(), INSIGHT_QUOTE)
                    }
                    None => match memory.doc(hit) {
                        Some(d) => clip(d.gist(), QUOTE),
                        None => continue,
                    },
                };
                match quotes.iter_mut().find(|(q, _)| q.eq_ignore_ascii_case(&quote)) {
                    Some((_, ids)) => ids.push(short(r)),
                    None => quotes.push((quote, vec![short(r)])),
                }
            }
            let quotes: Vec<String> =
                quotes.iter().map(|(q, ids)| format!("\"{q}\" ({})", ids.join(", "))).collect();
            insights.push(format!("On {}: {}.", words.join(" + "), quotes.join("; ")));
        }
        let own_words = match (from_insights, unreadable) {
            (0, 0) => String::new(),
            (k, 0) => {
                format!("; {} in the memories' own insights", plural(k as u64, "quote", "quotes"))
            }
            (k, u) => format!(
                "; {} in the memories' own insights, {u} unreadable",
                plural(k as u64, "quote", "quotes")
            ),
        };
        let largest = themes.first().map_or(0, |(ranks, _)| ranks.len());
        let memories =
            hits.iter().map(|h| MemoryUsed { id: id_text(&h.id), score: h.score }).collect();
        Response {
            accepted: true,
            reason: format!(
                "combined {} matching [{asked}] into {}{own_words}; confidence is the share in the largest theme{ranked}{note}",
                plural(n as u64, "memory", "memories"),
                plural(themes.len() as u64, "theme", "themes")
            ),
            confidence: largest as f64 / n as f64,
            insights,
            memories,
        }
    }
}
