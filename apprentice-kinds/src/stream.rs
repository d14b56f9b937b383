//! Memory streams: what a watching kind holds between generations.

use std::collections::HashSet;

use apprentice_core::{Context, Invitation, MemoryUsed};
use shm_reader::Query;

use crate::{clip, id_text, invitation_query, MappedStore};

/// Characters of a gist quoted in a push.
const QUOTE: usize = 160;

/// A standing interest and what it has already reported. Each new generation, the segments
/// it has not read yet (segments are immutable and named once, so a merge shows up as a new
/// segment holding old memories, which `seen` skips) are scanned for live memories stamped at or
/// after the watch's start that match a query keyword and the context. Reports each memory once
/// ever; a restarted worker is handed the ids already delivered and resumes from there.
#[derive(Debug)]
pub(crate) struct Watcher {
    query: Query,
    context: Context,
    after_micros: i64,
    seen: HashSet<[u8; 16]>,
    scanned: HashSet<String>,
}

impl Watcher {
    /// A watcher for `interest`, or `None` when it has no keywords to match.
    pub(crate) fn new(
        interest: &Invitation,
        after_micros: i64,
        seen: &[String],
    ) -> Option<Watcher> {
        let query = invitation_query(interest);
        if query.is_empty() {
            return None;
        }
        let seen = seen
            .iter()
            .filter_map(|s| uuid::Uuid::parse_str(s).ok())
            .map(|u| *u.as_bytes())
            .collect();
        Some(Watcher {
            query,
            context: interest.context.clone(),
            after_micros,
            seen,
            scanned: HashSet::new(),
        })
    }

    /// The memories new to this interest since the last call.
    pub(crate) fn notice(&mut self, memory: &MappedStore) -> Vec<(MemoryUsed, String)> {
        let snapshot = memory.snapshot();
        let files: Vec<String> = snapshot.segment_files().map(|(f, _)| f.to_owned()).collect();
        let q_len = self.query.keywords().len() as f64;
        let mut found = Vec::new();
        for (index, file) in files.iter().enumerate() {
            if self.scanned.contains(file) {
                continue;
            }
            for id in snapshot.segment_ids(index) {
                if self.seen.contains(&id) {
                    continue;
                }
                let Some(doc) = snapshot.get(&id) else { continue };
                let c = &self.context;
                let stamped = doc.timestamp_micros();
                if stamped < self.after_micros
                    || !c.in_time_range(stamped)
                    || (c.sacred_only && !doc.sacred())
                    || c.domain.as_deref().is_some_and(|d| d != doc.domain())
                {
                    continue;
                }
                let overlap =
                    doc.keywords().filter(|k| self.query.keywords().iter().any(|q| q == k)).count();
                if overlap == 0 {
                    continue;
                }
                self.seen.insert(id);
                let line = format!("[{}] {}", doc.domain(), clip(doc.gist(), QUOTE));
                found.push((MemoryUsed { id: id_text(&id), score: overlap as f64 / q_len }, line));
            }
        }
        // Only the live segments need remembering.
        self.scanned = files.into_iter().collect();
        found
    }
}
