//! The original design's algorithm, as a peer: every search scans every memory's keyword set,
//! scores it, and sorts all matches. No index.

use std::collections::HashSet;

use crate::corpus::CorpusMemory;

/// The naive scanner: one keyword set per memory.
#[derive(Debug)]
pub struct NaiveScan {
    sets: Vec<HashSet<String>>,
    memories: Vec<(f32, bool, i64, [u8; 16])>,
}

impl NaiveScan {
    /// Extracts every memory's keywords once.
    pub fn new(memories: &[CorpusMemory]) -> NaiveScan {
        NaiveScan {
            sets: memories
                .iter()
                .map(|m| {
                    semantic_index::document_keywords(&m.question, &m.insights, &m.synthesis)
                        .into_iter()
                        .collect()
                })
                .collect(),
            memories: memories
                .iter()
                .map(|m| (m.score(), m.sacred, m.timestamp_secs, m.id))
                .collect(),
        }
    }

    /// The top `k` (id, score) for `query`, the default weights and order of `shm_reader::SearchOptions` and `Hit::cmp_rank`.
    pub fn search(&self, query: &[String], k: usize) -> Vec<([u8; 16], f64)> {
        let q: HashSet<&String> = query.iter().collect();
        let mut scored: Vec<(f64, i64, [u8; 16])> = Vec::new();
        for (set, &(score, sacred, ts, id)) in self.sets.iter().zip(&self.memories) {
            let overlap = q.iter().filter(|w| set.contains(w.as_str())).count();
            if overlap == 0 {
                continue;
            }
            let union = q.len() + set.len() - overlap;
            let s = overlap as f64 / union as f64
                + 0.2 * f64::from(score)
                + if sacred { 0.3 } else { 0.0 };
            scored.push((s, ts, id));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        scored.into_iter().take(k).map(|(s, _, id)| (id, s)).collect()
    }
}
