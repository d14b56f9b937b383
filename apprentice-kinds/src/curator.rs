//! The curator: finds memories that repeat or contradict each other.

use std::collections::BTreeSet;

use apprentice_core::{Invitation, Kind, MemoryUsed, Response};
use shm_reader::Hits;

use crate::witness::STOP;
use crate::{clip, context_note, id_text, limit_of, plural, search_invitation, Found, MappedStore};

pub(crate) const NAME: &str = "curator";
/// How the crate's registry knows this kind.
pub(crate) const REGISTRATION: crate::BuiltIn = crate::BuiltIn {
    name: NAME,
    specialization: SPECIALIZATION,
    create: || Box::new(Curator::new()),
};
pub(crate) const SPECIALIZATION: &str = "memory curation and hygiene";

/// Keyword overlap (Jaccard) from which two memories are near-duplicates.
const DUPLICATE: f64 = 0.6;
/// Keyword overlap from which two memories, one negated, may contradict each other.
const CONTRADICTION: f64 = 0.4;
/// Words that negate a statement.
const NEGATIONS: [&str; 7] = ["not", "no", "never", "cannot", "without", "nothing", "none"];
/// Characters of a gist quoted in a finding.
const QUOTE: usize = 80;
/// Findings of each sort reported at most.
const FINDINGS: usize = 5;

/// "Memory curation and hygiene": reviews the memories an invitation matches, pair by pair,
/// for near-duplicates (at least 60% of their content keywords shared) and possible
/// contradictions (at least 40% shared, and exactly one of the two negated: "not", "never",
/// "without"...). Memories nobody has used are not reported: no use is recorded yet, and the
/// curator says so rather than guess.
///
/// Its confidence is the keyword overlap of its strongest finding (0 when it found none).
#[derive(Debug)]
pub struct Curator {
    hits: Hits,
}

impl Curator {
    /// A curator over up to 100 matching memories.
    pub fn new() -> Curator {
        Curator { hits: Hits::with_capacity(100) }
    }
}

impl Default for Curator {
    fn default() -> Curator {
        Curator::new()
    }
}

fn negated(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(str::to_lowercase)
        .any(|w| NEGATIONS.contains(&w.as_str()) || w.ends_with("n't"))
}

fn jaccard(a: &BTreeSet<&str>, b: &BTreeSet<&str>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

impl Kind for Curator {
    type Memory = MappedStore;

    fn kind(&self) -> &str {
        NAME
    }

    fn specialization(&self) -> &str {
        SPECIALIZATION
    }

    fn consider(&mut self, invitation: &Invitation, memory: &mut MappedStore) -> Response {
        let limit = limit_of(invitation);
        let found = match search_invitation(invitation, "to curate", limit, memory, &mut self.hits)
        {
            Ok(found) => found,
            Err(declined) => return declined,
        };
        let ranked = found.ranked();
        let Found { asked, hits, .. } = found;
        let note = context_note(&invitation.context);
        // Each matching memory: its short id, gist, content keywords and whether it negates.
        let docs: Vec<(String, &str, BTreeSet<&str>, bool)> = hits
            .iter()
            .filter_map(|h| {
                let d = memory.doc(h)?;
                let words = d.keywords().filter(|k| STOP.binary_search(k).is_err()).collect();
                Some((id_text(&h.id)[..8].to_owned(), d.gist(), words, negated(d.gist())))
            })
            .collect();
        let n = docs.len();
        let mut duplicates = Vec::new();
        let mut contradictions = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (&docs[i], &docs[j]);
                let overlap = jaccard(&a.2, &b.2);
                if a.3 != b.3 && overlap >= CONTRADICTION {
                    contradictions.push((overlap, i, j));
                } else if overlap >= DUPLICATE {
                    duplicates.push((overlap, i, j));
                }
            }
        }
        let strongest = duplicates.iter().chain(&contradictions).map(|f| f.0).fold(0.0, f64::max);
        let by_overlap = |a: &(f64, usize, usize), b: &(f64, usize, usize)| {
            b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
        };
        duplicates.sort_by(by_overlap);
        contradictions.sort_by(by_overlap);
        let quote = |i: usize| format!("\"{}\" ({})", clip(docs[i].1, QUOTE), docs[i].0);
        let mut insights = Vec::new();
        let pairs = |k: usize| plural(k as u64, "pair", "pairs");
        if duplicates.is_empty() {
            insights.push("Near-duplicates: none.".to_owned());
        } else {
            let shown: Vec<String> = duplicates
                .iter()
                .take(FINDINGS)
                .map(|&(o, i, j)| format!("{} ≈ {} ({:.0}% shared)", quote(i), quote(j), o * 100.0))
                .collect();
            insights.push(format!(
                "Near-duplicates, {}: {}.",
                pairs(duplicates.len()),
                shown.join("; ")
            ));
        }
        if contradictions.is_empty() {
            insights.push("Possible contradictions: none.".to_owned());
        } else {
            let shown: Vec<String> = contradictions
                .iter()
                .take(FINDINGS)
                .map(|&(o, i, j)| {
                    format!(
                        "{} against {} ({:.0}% shared, one negated)",
                        quote(i),
                        quote(j),
                        o * 100.0
                    )
                })
                .collect();
            insights.push(format!(
                "Possible contradictions, {}: {}.",
                pairs(contradictions.len()),
                shown.join("; ")
            ));
        }
        insights.push("Unused memories: not reported; no memory use is recorded yet.".to_owned());
        let memories =
            hits.iter().map(|h| MemoryUsed { id: id_text(&h.id), score: h.score }).collect();
        Response {
            accepted: true,
            reason: format!(
                "reviewed {} matching [{asked}] ({}): {} near-duplicate, {} possibly contradicting; confidence is the strongest finding's keyword overlap{ranked}{note}",
                plural(n as u64, "memory", "memories"),
                plural((n * n.saturating_sub(1) / 2) as u64, "pair", "pairs"),
                pairs(duplicates.len()),
                pairs(contradictions.len()),
            ),
            confidence: (strongest * 1000.0).round() / 1000.0,
            insights,
            memories,
        }
    }
}
