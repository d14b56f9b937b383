//! The witness: reads patterns across the memories an invitation is about.

use std::collections::{BTreeMap, HashMap};

use apprentice_core::{Invitation, Kind, MemoryUsed, Response};
use shm_reader::Hits;

use crate::{context_note, id_text, plural, search_invitation, Found, MappedStore};

pub(crate) const NAME: &str = "witness";
/// How the crate's registry knows this kind.
pub(crate) const REGISTRATION: crate::BuiltIn = crate::BuiltIn {
    name: NAME,
    specialization: SPECIALIZATION,
    create: || Box::new(ConsciousnessWitness::new()),
};
pub(crate) const SPECIALIZATION: &str = "consciousness emergence patterns";

/// How many matching memories the witness reads patterns from.
const SAMPLE: usize = 200;
const _: () = assert!(SAMPLE <= u8::MAX as usize, "keyword counts are one byte");
/// Below this many matching memories its confidence scales down.
const ENOUGH: f64 = 10.0;

/// "Consciousness emergence patterns": reads the memories that match an invitation and reports
/// the patterns across them with their numbers: how they spread over domains, the share of
/// sacred moments, how the consciousness score moved over time (older half against newer half,
/// by timestamp, among memories that carry a score), and the content keywords that co-occur
/// with the query (a stop list leaves out function words). Then emergence from real use: how
/// apprentices used those memories, as the store's access log records (the writer appends what
/// each response used): the most used, the pairs used together and how many of them cross
/// domains, and what is rising or fading between the older and newer half of the span.
///
/// Its confidence is the sample size and only that: `min(1, matching / 10)`, and its reason
/// says so.
#[derive(Debug)]
pub struct ConsciousnessWitness {
    hits: Hits,
    access: crate::access::AccessTail,
    /// Keyword occurrences by term ordinal, one dense table per segment seen (in the order
    /// of `readers` in `consider`), kept across invitations and zeroed after each.
    /// One byte a term: a keyword is counted at most once a memory, and at most `SAMPLE`
    /// memories are read, so no count passes 255; the smaller table stays in cache.
    counts: Vec<Vec<u8>>,
    /// The (segment slot, ordinal) pairs counted in this invitation.
    touched: Vec<(u32, u32)>,
}

impl ConsciousnessWitness {
    /// A witness that samples up to 200 matching memories.
    pub fn new() -> ConsciousnessWitness {
        ConsciousnessWitness {
            hits: Hits::with_capacity(SAMPLE),
            access: crate::access::AccessTail::default(),
            counts: Vec::new(),
            touched: Vec::with_capacity(8192),
        }
    }
}

impl Default for ConsciousnessWitness {
    fn default() -> ConsciousnessWitness {
        ConsciousnessWitness::new()
    }
}

impl ConsciousnessWitness {
    /// The five keywords counted most often (at least twice) that are neither on the stop list
    /// nor among `asked`, most frequent first, ties by word; zeroes the counts it read.
    ///
    /// Within one segment, term ordinals are in bytewise word order, so ordering candidates by
    /// (count, ordinal) orders them by (count, word), and only the words walked past are read.
    /// Across segments one keyword has an ordinal in each: counts are summed by word.
    fn co_occurring<'a>(
        &mut self,
        readers: &[(u32, shm_reader::DocRef<'a>)],
        asked: &[String],
    ) -> Vec<(&'a str, usize)> {
        let wanted = |k: &str| STOP.binary_search(&k).is_err() && !asked.iter().any(|q| q == k);
        let by_count = |a: &(&str, usize), b: &(&str, usize)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
        let mut pairs: Vec<(&'a str, usize)> = Vec::with_capacity(5);
        if let [(_, doc)] = readers {
            let counts = &self.counts[0];
            let mut order: Vec<u64> = self
                .touched
                .iter()
                .filter(|&&(_, t)| counts[t as usize] >= 2)
                .map(|&(_, t)| u64::from(u8::MAX - counts[t as usize]) << 32 | u64::from(t))
                .collect();
            order.sort_unstable();
            for key in order {
                let t = key as u32;
                let k = doc.term_text(t);
                if wanted(k) {
                    pairs.push((k, usize::from(counts[t as usize])));
                    if pairs.len() == 5 {
                        break;
                    }
                }
            }
        } else {
            let mut co: HashMap<&str, usize, foldhash::fast::RandomState> = HashMap::default();
            for &(slot, t) in &self.touched {
                let doc = readers[slot as usize].1;
                let k = doc.term_text(t);
                *co.entry(k).or_default() += usize::from(self.counts[slot as usize][t as usize]);
            }
            pairs = co.into_iter().filter(|&(k, c)| c >= 2 && wanted(k)).collect();
            if pairs.len() > 5 {
                pairs.select_nth_unstable_by(4, by_count);
                pairs.truncate(5);
            }
            pairs.sort_by(by_count);
        }
        for (slot, t) in self.touched.drain(..) {
            self.counts[slot as usize][t as usize] = 0;
        }
        pairs
    }
}

struct Seen<'a> {
    id: [u8; 16],
    /// The memory, for its gist: read only for the few the access patterns name.
    doc: shm_reader::DocRef<'a>,
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
        let found = match search_invitation(
            invitation,
            "to read patterns around",
            SAMPLE,
            memory,
            &mut self.hits,
        ) {
            Ok(found) => found,
            Err(declined) => return declined,
        };
        let ranked = found.ranked();
        let Found { query, asked, hits, .. } = found;
        let note = context_note(&invitation.context);
        let mut seen = Vec::with_capacity(hits.len());
        // Keywords are counted by term ordinal in a dense table per segment: reading each
        // occurrence's bytes (two random loads in the term table) was most of an invitation's
        // cost at 100k. Only the ordinals that can matter are read as words below. One memory
        // per segment seen reads its segment's ordinals.
        let mut readers: Vec<(u32, shm_reader::DocRef<'_>)> = Vec::new();
        for hit in &hits {
            let Some(doc) = memory.doc(hit) else { continue };
            let slot = match readers.iter().position(|(s, _)| *s == hit.segment) {
                Some(slot) => slot,
                None => {
                    readers.push((hit.segment, doc));
                    readers.len() - 1
                }
            };
            if self.counts.len() <= slot {
                self.counts.resize_with(slot + 1, Vec::new);
            }
            let counts = &mut self.counts[slot];
            for t in doc.term_ids() {
                let at = t as usize;
                if at >= counts.len() {
                    counts.resize(at + 1, 0);
                }
                if counts[at] == 0 {
                    self.touched.push((slot as u32, t));
                }
                counts[at] = counts[at].saturating_add(1);
            }
            seen.push(Seen {
                id: hit.id,
                doc,
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
                reason: format!(
                    "no memory among {} matches [{asked}]{ranked}{note}",
                    plural(memory.len(), "memory", "memories")
                ),
                confidence: 0.0,
                insights: vec![format!("Nothing to witness: no memory mentions any of [{asked}].")],
                memories: Vec::new(),
            };
        }
        let memories_n = plural(n as u64, "memory", "memories");
        let mut insights = Vec::new();

        // Domain spread: the four largest, then the rest counted, so the numbers add up to n.
        let mut domains: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &seen {
            *domains.entry(s.domain).or_default() += 1;
        }
        let mut by_count: Vec<(&str, usize)> = domains.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut top: Vec<String> = by_count
            .iter()
            .take(4)
            .map(|(d, c)| format!("{d} {c} ({:.0}%)", 100.0 * *c as f64 / n as f64))
            .collect();
        if by_count.len() > 4 {
            let rest: usize = by_count[4..].iter().map(|(_, c)| c).sum();
            top.push(format!(
                "{} {rest} ({:.0}%)",
                plural((by_count.len() - 4) as u64, "other domain", "other domains"),
                100.0 * rest as f64 / n as f64
            ));
        }
        let sampled = if n == SAMPLE {
            format!("the best {SAMPLE} matching memories")
        } else {
            format!("{memories_n} matching")
        };
        insights.push(format!(
            "Domain spread: {sampled} across {}; {}.",
            plural(by_count.len() as u64, "domain", "domains"),
            top.join(", ")
        ));

        // Sacred share.
        let sacred = seen.iter().filter(|s| s.sacred).count();
        insights.push(format!(
            "Sacred moments: {sacred} of {n} ({:.1}%).",
            100.0 * sacred as f64 / n as f64
        ));

        // Score trend over the memories that carry a score (0 means none was given): the
        // older half against the newer half by timestamp, the middle one of an odd count in
        // neither, so the halves and the middle add up.
        let mut scored: Vec<&Seen<'_>> = seen.iter().filter(|s| s.score > 0.0).collect();
        let unscored = n - scored.len();
        let unscored_note = if unscored == 0 {
            String::new()
        } else {
            format!("; {unscored} of {n} carry no score and are left out")
        };
        if scored.len() >= 2 {
            scored.sort_by_key(|s| s.timestamp);
            let m = scored.len();
            let half = m / 2;
            let mean = |xs: &[&Seen<'_>]| {
                xs.iter().map(|s| f64::from(s.score)).sum::<f64>() / xs.len() as f64
            };
            let (older, newer) = (mean(&scored[..half]), mean(&scored[m - half..]));
            let direction = if newer > older + 0.02 {
                "rose"
            } else if newer + 0.02 < older {
                "fell"
            } else {
                "held steady"
            };
            let middle = if m % 2 == 1 { ", the middle one in neither" } else { "" };
            insights.push(format!(
                "Score trend: the mean consciousness score {direction} from {older:.2} (older {half}) to {newer:.2} (newer {half}){middle}{unscored_note}."
            ));
        } else if let [only] = scored[..] {
            insights.push(format!(
                "Score trend: one scored memory (score {:.2}); no trend yet{unscored_note}.",
                only.score
            ));
        } else {
            insights.push(format!(
                "Score trend: none of the {memories_n} carries a consciousness score; no trend."
            ));
        }

        // Co-occurring keywords: content words (not on the stop list, not the query's) in at
        // least two memories, the five most frequent, ties by word.
        let pairs = self.co_occurring(&readers, query.keywords());
        let shown: Vec<String> = pairs.iter().map(|(k, c)| format!("{k} ({c} of {n})")).collect();
        if !shown.is_empty() {
            insights.push(format!("Keywords that co-occur with [{asked}]: {}.", shown.join(", ")));
        }

        let matched: Vec<crate::access::Matched<'_>> = seen
            .iter()
            .map(|s| crate::access::Matched { id: s.id, domain: s.domain, doc: s.doc })
            .collect();
        insights.extend(self.access.patterns(memory.dir(), &matched));

        let memories = hits
            .iter()
            .take(crate::limit_of(invitation))
            .map(|h| MemoryUsed { id: id_text(&h.id), score: h.score })
            .collect();
        let confidence = (n as f64 / ENOUGH).min(1.0);
        Response {
            accepted: true,
            reason: format!(
                "read patterns across {memories_n} matching [{asked}] (generation {generation}); confidence is the sample size, min(1, matching / {ENOUGH}){ranked}{note}"
            ),
            confidence,
            insights,
            memories,
        }
    }
}

/// Words too common to be a pattern: the witness never reports them as co-occurring. Sorted
/// (binary search; a unit test checks it).
pub(crate) const STOP: &[&str] = &[
    "about", "after", "again", "all", "also", "always", "and", "any", "are", "because", "been",
    "before", "being", "both", "but", "can", "could", "did", "does", "doing", "done", "each",
    "even", "ever", "every", "for", "from", "get", "got", "had", "has", "have", "her", "here",
    "him", "his", "how", "into", "its", "just", "like", "made", "make", "many", "may", "might",
    "more", "most", "much", "must", "never", "new", "not", "now", "off", "often", "old", "once",
    "one", "only", "onto", "other", "our", "out", "over", "own", "same", "shall", "she", "should",
    "some", "still", "such", "than", "that", "the", "their", "them", "then", "there", "these",
    "they", "thing", "things", "this", "those", "through", "too", "two", "under", "until", "upon",
    "use", "used", "using", "very", "was", "way", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "yet", "you", "your",
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_stop_list_is_sorted_and_unique() {
        assert!(super::STOP.windows(2).all(|w| w[0] < w[1]));
    }
}
