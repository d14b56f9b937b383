//! The analyzer of ranked (BM25F) search: Unicode lowercasing, an English stop list of
//! function and question words, Snowball English stemming.
//!
//! [`keywords`](crate::keywords) stays the seed-compatible rule of the Jaccard ranking; this is
//! a second, independent vocabulary that the segment indexes beside it.

use crate::keywords::for_each_word;

/// Words never indexed nor searched by the ranked analyzer: English function words (articles,
/// pronouns, auxiliaries, conjunctions, prepositions), question words and the halves of
/// contractions left by splitting on apostrophes. Checked on the lowercased word, before
/// stemming. Sorted, so that [`is_rank_stop_word`] can search it.
pub const RANK_STOP_WORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "could",
    "couldn",
    "did",
    "didn",
    "do",
    "does",
    "doesn",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "either",
    "else",
    "ever",
    "few",
    "for",
    "from",
    "further",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "if",
    "in",
    "into",
    "is",
    "isn",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "may",
    "me",
    "might",
    "mightn",
    "more",
    "most",
    "must",
    "mustn",
    "my",
    "myself",
    "neither",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "re",
    "same",
    "shall",
    "shan",
    "she",
    "should",
    "shouldn",
    "since",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "ve",
    "very",
    "via",
    "was",
    "wasn",
    "we",
    "were",
    "weren",
    "what",
    "whatever",
    "when",
    "whenever",
    "where",
    "whereas",
    "wherever",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "won",
    "would",
    "wouldn",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// The shortest word the ranked analyzer keeps, in characters.
pub const MIN_TERM_CHARS: usize = 2;

/// Whether `word` (lowercased) is on [`RANK_STOP_WORDS`].
pub fn is_rank_stop_word(word: &str) -> bool {
    RANK_STOP_WORDS.binary_search(&word).is_ok()
}

/// Calls `f` with every ranked term of `text`, in order, duplicates included: lowercased words
/// of at least [`MIN_TERM_CHARS`] characters that are not stop words, stemmed with Snowball
/// English when they are ASCII (other words are kept as they are: the English rules do not
/// apply to them).
pub(crate) fn for_each_term(text: &str, mut f: impl FnMut(&str)) {
    let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
    for_each_word(text, |word, chars| {
        if chars < MIN_TERM_CHARS || is_rank_stop_word(word) {
            return;
        }
        if word.is_ascii() {
            f(&stemmer.stem(word));
        } else {
            f(word);
        }
    });
}

/// The ranked terms of `text`, in order, duplicates included (see [`RANK_STOP_WORDS`] and
/// [`MIN_TERM_CHARS`]; ASCII words are stemmed with Snowball English).
///
/// ```
/// assert_eq!(
///     semantic_index::analyze("How do apprentices share memory without copying it?"),
///     ["apprentic", "share", "memori", "copi"],
/// );
/// ```
pub fn analyze(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_term(text, |t| out.push(t.to_owned()));
    out
}

/// The distinct ranked terms of several texts, in order of first occurrence: what a query
/// searches for under BM25F.
///
/// ```
/// assert_eq!(semantic_index::query_terms(["Models crashed", "model crashes"]), ["model", "crash"]);
/// ```
pub fn query_terms<I>(texts: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    // A set beside the list: a query may carry hundreds of thousands of words, and a scan of
    // the list per word would be quadratic.
    let mut seen = std::collections::HashSet::new();
    for text in texts {
        for_each_term(text.as_ref(), |t| {
            if seen.insert(t.to_owned()) {
                out.push(t.to_owned());
            }
        });
    }
    out
}

/// The fields of a memory that BM25F weighs separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The question.
    Question,
    /// The first [`DOCUMENT_INSIGHTS`](crate::DOCUMENT_INSIGHTS) insights, as one field.
    Insights,
    /// The synthesis.
    Synthesis,
}

impl Field {
    /// Every field, in the order of [`Bm25fParams`]' arrays.
    pub const ALL: [Field; 3] = [Field::Question, Field::Insights, Field::Synthesis];

    /// The field's name, as explanations print it.
    pub fn name(self) -> &'static str {
        match self {
            Field::Question => "question",
            Field::Insights => "insights",
            Field::Synthesis => "synthesis",
        }
    }
}

/// BM25F's parameters: one saturation `k1`, and per field a weight and a length normalization.
///
/// For a term `t` and a document `d` with fields `f`:
///
/// ```text
/// tf~(t, d)  = Σ_f weight_f · tf_f(t, d) / (1 - b_f + b_f · len_f(d) / avglen_f)
/// impact     = tf~ / (k1 + tf~)                      (in [0, 1), stored as a u8)
/// idf(t)     = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
/// relevance  = Σ_t idf(t) · impact(t, d)
/// ```
///
/// `len_f` counts the field's ranked terms; `avglen_f` is the segment's mean (a field that is
/// empty everywhere normalizes by 1). `N` and `df` are summed over the segments searched, at
/// query time. This is BM25 divided by `k1 + 1`, a constant that changes no ranking.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25fParams {
    /// Term-frequency saturation.
    pub k1: f32,
    /// Per field (question, insights, synthesis): its weight.
    pub weights: [f32; 3],
    /// Per field: length normalization, 0 (none) to 1 (full).
    pub b: [f32; 3],
}

impl Bm25fParams {
    /// The textbook BM25 parameters on every field (k1 = 1.2, b = 0.75, weights 1): reported
    /// beside the defaults, so that tuning is never mistaken for quality.
    pub const CLASSIC: Bm25fParams = Bm25fParams { k1: 1.2, weights: [1.0; 3], b: [0.75; 3] };

    /// The defaults: the classic normalization, a question weighted three times (a memory's
    /// question says what it is about) and a milder saturation (k1 = 2.0, the top of the usual
    /// 1.2-2.0 range), so that a memory that repeats the query's words in every field is not
    /// overtaken by one that mentions one more query word once.
    pub const DEFAULT: Bm25fParams =
        Bm25fParams { k1: 2.0, weights: [3.0, 1.0, 1.0], b: [0.75; 3] };

    /// Whether every parameter is finite and in range (k1 > 0, weights >= 0, b in [0, 1]).
    pub fn is_valid(&self) -> bool {
        self.k1.is_finite()
            && self.k1 > 0.0
            && self.weights.iter().all(|w| w.is_finite() && *w >= 0.0)
            && self.b.iter().all(|b| (0.0..=1.0).contains(b))
    }

    /// The quantized impact (1..=255) of a term with per-field frequencies `tf` in a document
    /// with per-field lengths `len`, given the segment's mean field lengths `avg`; 0 when the
    /// term is absent. A present term never quantizes to 0 (it would vanish from the ranking).
    pub fn impact(&self, tf: [u32; 3], len: [u32; 3], avg: [f32; 3]) -> u8 {
        let mut saturated = 0.0f64;
        for f in 0..3 {
            if tf[f] == 0 {
                continue;
            }
            let norm = if avg[f] > 0.0 {
                1.0 - f64::from(self.b[f])
                    + f64::from(self.b[f]) * f64::from(len[f]) / f64::from(avg[f])
            } else {
                1.0
            };
            saturated +=
                f64::from(self.weights[f]) * f64::from(tf[f]) / norm.max(f64::MIN_POSITIVE);
        }
        if tf.iter().all(|&t| t == 0) {
            return 0;
        }
        let impact = saturated / (f64::from(self.k1) + saturated);
        (impact * 255.0).round().clamp(1.0, 255.0) as u8
    }
}

impl Default for Bm25fParams {
    fn default() -> Bm25fParams {
        Bm25fParams::DEFAULT
    }
}

/// BM25's inverse document frequency (Lucene's, never negative) of a term held by `df` of `n`
/// documents.
pub fn idf(n: u64, df: u64) -> f64 {
    let (n, df) = (n as f64, df.min(n) as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_list_is_sorted_and_holds_question_words() {
        assert!(RANK_STOP_WORDS.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicate");
        for w in ["what", "how", "been", "must", "that", "why", "which", "the"] {
            assert!(is_rank_stop_word(w), "{w}");
        }
        for w in ["memory", "made", "share", "model"] {
            assert!(!is_rank_stop_word(w), "{w}");
        }
    }

    #[test]
    fn stems_english_and_keeps_other_words() {
        assert_eq!(
            analyze("models crashed crashes Crashing"),
            ["model", "crash", "crash", "crash"]
        );
        assert_eq!(analyze("What progress has been made?"), ["progress", "made"]);
        assert_eq!(analyze("naïve Straße x 42 日本"), ["naïve", "straße", "42", "日本"]);
    }

    #[test]
    fn impacts_saturate_normalize_and_never_vanish() {
        let p = Bm25fParams::CLASSIC;
        let avg = [10.0, 10.0, 10.0];
        assert_eq!(p.impact([0, 0, 0], [10, 10, 10], avg), 0);
        // tf~ = 1 at the mean length: 1 / 2.2.
        assert_eq!(p.impact([1, 0, 0], [10, 0, 0], avg), (255.0f64 / 2.2).round() as u8);
        let short = p.impact([1, 0, 0], [2, 0, 0], avg);
        let long = p.impact([1, 0, 0], [100, 0, 0], avg);
        assert!(short > long, "{short} {long}");
        assert!(p.impact([50, 50, 50], [50, 50, 50], avg) > p.impact([1, 0, 0], [50, 50, 50], avg));
        assert!(p.impact([1, 0, 0], [1_000_000, 0, 0], avg) >= 1);
        let weighted = Bm25fParams::DEFAULT.impact([1, 0, 0], [10, 0, 0], avg);
        assert!(weighted > p.impact([1, 0, 0], [10, 0, 0], avg));
        assert!(Bm25fParams::DEFAULT.is_valid() && Bm25fParams::CLASSIC.is_valid());
        assert!(!Bm25fParams { k1: 0.0, ..p }.is_valid());
    }

    #[test]
    fn idf_falls_with_document_frequency_and_stays_positive() {
        assert!(idf(1000, 1) > idf(1000, 10));
        assert!(idf(1000, 1000) > 0.0);
        assert!(idf(10, 50) > 0.0, "df past n is clamped");
    }
}
