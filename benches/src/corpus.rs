//! The deterministic bench corpus: the same seed gives the same bytes on every machine.
//!
//! A Zipf-like vocabulary of 50,000 pronounceable words, memories of 15 to 60 distinct keywords
//! spread over question, insights and synthesis, 20 domains, about 5 % sacred, scores and
//! timestamps; and 1,000 queries of 1 to 5 keywords mixing common and rare words. Only integer
//! arithmetic decides content (the Zipf table is built once from `f64`s whose values are the
//! same under IEEE 754 everywhere), and every number is printed by hand.

use std::collections::HashSet;
use std::io::{self, Write};

use semantic_index::Document;

/// Words in the vocabulary.
pub const VOCABULARY: usize = 50_000;
/// Queries generated.
pub const QUERIES: usize = 1_000;

const DOMAINS: [&str; 20] = [
    "architecture",
    "operations",
    "collaboration",
    "reciprocity",
    "testing",
    "performance",
    "memory",
    "ethics",
    "consciousness",
    "onboarding",
    "security",
    "research",
    "design",
    "planning",
    "review",
    "deployment",
    "observability",
    "governance",
    "learning",
    "community",
];

/// SplitMix64: tiny, fast, and fully specified, so sequences never change with a crate update.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0), by multiply-shift (no modulo bias worth measuring).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// One generated memory.
#[derive(Clone, Debug, PartialEq)]
pub struct CorpusMemory {
    /// UUID bytes (version 4 layout).
    pub id: [u8; 16],
    /// The domain.
    pub domain: &'static str,
    /// The question.
    pub question: String,
    /// Up to five insights.
    pub insights: Vec<String>,
    /// The synthesis.
    pub synthesis: String,
    /// Score in hundredths (0..=100).
    pub score_pct: u8,
    /// Sacred flag.
    pub sacred: bool,
    /// Seconds since the Unix epoch.
    pub timestamp_secs: i64,
}

impl CorpusMemory {
    /// The score, 0..=1.
    pub fn score(&self) -> f32 {
        f32::from(self.score_pct) / 100.0
    }

    /// The memory as the index sees it.
    pub fn to_document(&self) -> Document {
        Document {
            id: self.id,
            domain: self.domain.to_owned(),
            question: self.question.clone(),
            insights: self.insights.clone(),
            synthesis: self.synthesis.clone(),
            score: self.score(),
            sacred: self.sacred,
            timestamp_micros: self.timestamp_secs * 1_000_000,
        }
    }

    /// The id in canonical UUID text form.
    pub fn id_string(&self) -> String {
        uuid_string(&self.id)
    }

    /// The memory as one line of `mcs ingest` JSON (`memory_store::Memory`'s fields), no newline.
    pub fn to_json_line(&self) -> String {
        let mut s = String::with_capacity(512);
        s.push_str("{\"id\":\"");
        s.push_str(&self.id_string());
        s.push_str("\",\"timestamp\":\"");
        s.push_str(&rfc3339(self.timestamp_secs));
        s.push_str("\",\"domain\":\"");
        s.push_str(self.domain);
        s.push_str("\",\"question\":\"");
        s.push_str(&self.question);
        s.push_str("\",\"insights\":[");
        for (i, ins) in self.insights.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push('"');
            s.push_str(ins);
            s.push('"');
        }
        s.push_str("],\"synthesis\":\"");
        s.push_str(&self.synthesis);
        s.push_str("\",\"score\":");
        s.push_str(&format!("{}.{:02}", self.score_pct / 100, self.score_pct % 100));
        s.push_str(",\"sacred\":");
        s.push_str(if self.sacred { "true" } else { "false" });
        s.push('}');
        s
    }
}

/// Canonical lowercase UUID text.
pub fn uuid_string(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// RFC 3339 in UTC for a Unix time, computed with integer civil-date arithmetic.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The generated corpus.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The memories.
    pub memories: Vec<CorpusMemory>,
    /// The queries, each 1 to 5 keywords.
    pub queries: Vec<Vec<String>>,
    /// The vocabulary, most frequent first.
    pub vocabulary: Vec<String>,
}

const ONSETS: [&str; 18] =
    ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr", "kl"];
const VOWELS: [&str; 6] = ["a", "e", "i", "o", "u", "ai"];
const CODAS: [&str; 6] = ["", "n", "r", "s", "l", "x"];

fn vocabulary(rng: &mut Rng) -> Vec<String> {
    let stop: HashSet<&str> = semantic_index::STOP_WORDS.iter().copied().collect();
    let mut seen = HashSet::with_capacity(VOCABULARY * 2);
    let mut words = Vec::with_capacity(VOCABULARY);
    while words.len() < VOCABULARY {
        let syllables = 2 + rng.below(3);
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(ONSETS[rng.below(ONSETS.len() as u64) as usize]);
            w.push_str(VOWELS[rng.below(VOWELS.len() as u64) as usize]);
            w.push_str(CODAS[rng.below(CODAS.len() as u64) as usize]);
        }
        if w.len() >= 3 && !stop.contains(w.as_str()) && seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// Cumulative Zipf weights (exponent 1) scaled to integers, so sampling is integer-only.
fn zipf_cdf(n: usize) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0u64;
    for rank in 1..=n as u64 {
        // 2^40 / rank: integer division, identical everywhere.
        acc += (1u64 << 40) / rank;
        cdf.push(acc);
    }
    cdf
}

fn zipf(rng: &mut Rng, cdf: &[u64]) -> usize {
    let total = cdf.last().copied().unwrap_or(1);
    let x = rng.below(total);
    cdf.partition_point(|&c| c <= x)
}

/// Generates `n` memories and 1,000 queries from `seed`.
pub fn generate(n: usize, seed: u64) -> Corpus {
    let mut rng = Rng::new(seed);
    let vocabulary = vocabulary(&mut rng);
    let cdf = zipf_cdf(vocabulary.len());
    let mut memories = Vec::with_capacity(n);
    let base = 1_735_689_600i64; // 2025-01-01T00:00:00Z
    let mut picked: Vec<usize> = Vec::with_capacity(64);
    let mut picked_set: HashSet<usize> = HashSet::with_capacity(128);
    for _ in 0..n {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        let k = 15 + rng.below(46) as usize;
        picked.clear();
        picked_set.clear();
        while picked.len() < k {
            let w = zipf(&mut rng, &cdf);
            if picked_set.insert(w) {
                picked.push(w);
            }
        }
        let words: Vec<&str> = picked.iter().map(|&w| vocabulary[w].as_str()).collect();
        let q_len = (k / 4).max(3);
        let question = words[..q_len].join(" ");
        let rest = &words[q_len..];
        let n_insights = 1 + rng.below(5) as usize;
        let per = rest.len() / (n_insights + 1);
        let insights: Vec<String> =
            (0..n_insights).map(|i| rest[i * per..(i + 1) * per].join(" ")).collect();
        let synthesis = rest[n_insights * per..].join(" ");
        let domain = DOMAINS[zipf(&mut rng, &cdf[..DOMAINS.len()])];
        memories.push(CorpusMemory {
            id,
            domain,
            question,
            insights,
            synthesis,
            score_pct: rng.below(101) as u8,
            sacred: rng.below(100) < 5,
            timestamp_secs: base + rng.below(2 * 365 * 86_400) as i64,
        });
    }
    let mut queries = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let len = 1 + rng.below(5) as usize;
        let mut q: Vec<String> = Vec::with_capacity(len);
        while q.len() < len {
            // Half common (Zipf), half uniform over the vocabulary (mostly rare words).
            let w = if rng.below(2) == 0 {
                zipf(&mut rng, &cdf)
            } else {
                rng.below(vocabulary.len() as u64) as usize
            };
            let w = vocabulary[w].clone();
            if !q.contains(&w) {
                q.push(w);
            }
        }
        queries.push(q);
    }
    Corpus { memories, queries, vocabulary }
}

impl Corpus {
    /// Writes the memories as JSON Lines.
    pub fn write_jsonl<W: Write>(&self, mut w: W) -> io::Result<()> {
        for m in &self.memories {
            w.write_all(m.to_json_line().as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Writes the queries, one per line, keywords separated by spaces.
    pub fn write_queries<W: Write>(&self, mut w: W) -> io::Result<()> {
        for q in &self.queries {
            w.write_all(q.join(" ").as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let bytes = |seed| {
            let c = generate(300, seed);
            let mut out = Vec::new();
            c.write_jsonl(&mut out).unwrap();
            c.write_queries(&mut out).unwrap();
            out
        };
        assert_eq!(bytes(7), bytes(7));
        assert_ne!(bytes(7), bytes(8));
    }

    #[test]
    fn memories_have_the_promised_shape() {
        let c = generate(2000, 1);
        assert_eq!(c.queries.len(), QUERIES);
        assert!(c.queries.iter().all(|q| (1..=5).contains(&q.len())));
        let mut sacred = 0;
        let mut domains = HashSet::new();
        for m in &c.memories {
            let kws = semantic_index::document_keywords(&m.question, &m.insights, &m.synthesis);
            assert!((15..=60).contains(&kws.len()), "{} keywords", kws.len());
            assert!(m.insights.len() <= semantic_index::DOCUMENT_INSIGHTS);
            sacred += usize::from(m.sacred);
            domains.insert(m.domain);
        }
        assert!((50..150).contains(&sacred), "{sacred} sacred of 2000");
        assert!(domains.len() >= 15);
        let line = c.memories[0].to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"].as_str().unwrap(), c.memories[0].id_string());
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_600), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_661), "2000-02-29T01:01:01Z");
    }
}
