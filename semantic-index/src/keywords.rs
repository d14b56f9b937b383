//! Keyword extraction: one function for documents and queries alike (DESIGN.md, "Keywords").

/// Words never kept as keywords (DESIGN.md's stop list).
pub const STOP_WORDS: [&str; 30] = [
    "the", "is", "at", "which", "on", "and", "a", "an", "as", "are", "was", "were", "be", "have",
    "has", "had", "to", "of", "in", "for", "with", "by", "from", "can", "will", "would", "could",
    "should", "may", "might",
];

/// The shortest keyword kept, in characters (not bytes).
pub const MIN_KEYWORD_CHARS: usize = 3;

fn is_stop_word(token: &str) -> bool {
    // Stop words are ASCII and at most 6 bytes; anything longer cannot be one.
    token.len() <= 6 && STOP_WORDS.contains(&token)
}

/// Calls `f` with every keyword-sized token of `text`, lowercased, in order, duplicates included.
///
/// Tokens are maximal runs of alphanumeric characters (Unicode); the stop list is applied.
pub(crate) fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let mut token = String::new();
    let mut chars = 0usize;
    let mut flush = |token: &mut String, chars: &mut usize| {
        if *chars >= MIN_KEYWORD_CHARS && !is_stop_word(token) {
            f(token);
        }
        token.clear();
        *chars = 0;
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii() {
            // The common case, byte by byte: no char decoding.
            if b.is_ascii_alphanumeric() {
                token.push(char::from(b.to_ascii_lowercase()));
                chars += 1;
            } else {
                flush(&mut token, &mut chars);
            }
            i += 1;
            continue;
        }
        let Some(c) = text.get(i..).and_then(|rest| rest.chars().next()) else { break };
        i += c.len_utf8();
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                token.push(lower);
                chars += 1;
            }
        } else {
            flush(&mut token, &mut chars);
        }
    }
    flush(&mut token, &mut chars);
}

/// Extracts the keywords of `text`: lowercase (Unicode), split on every character that is not
/// alphanumeric, tokens of at least three characters that are not stop words, deduplicated in
/// order of first occurrence.
///
/// The same function serves documents and queries, so a query matches exactly the words a
/// document was indexed under.
///
/// ```
/// assert_eq!(
///     semantic_index::keywords("The Índex, the INDEX and an idea: re-use it!"),
///     ["índex", "index", "idea", "use"],
/// );
/// ```
pub fn keywords(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for_each_token(text, |token| {
        if !out.iter().any(|k| k == token) {
            out.push(token.to_owned());
        }
    });
    out
}

/// The keywords of a memory: those of its question, its first five insights and its synthesis,
/// deduplicated in that order of first occurrence.
///
/// ```
/// let insights = vec!["caching helps".to_string()];
/// assert_eq!(
///     semantic_index::document_keywords("why cache?", &insights, "cache the index"),
///     ["why", "cache", "caching", "helps", "index"],
/// );
/// ```
pub fn document_keywords(question: &str, insights: &[String], synthesis: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |text: &str| {
        for_each_token(text, |token| {
            if !out.iter().any(|k| k == token) {
                out.push(token.to_owned());
            }
        })
    };
    add(question);
    for insight in insights.iter().take(DOCUMENT_INSIGHTS) {
        add(insight);
    }
    add(synthesis);
    out
}

/// How many insights of a memory contribute keywords.
pub const DOCUMENT_INSIGHTS: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_unicode_and_splits_on_punctuation() {
        assert_eq!(keywords("ÉCOLE—Straße/ĞÜÇ"), ["école", "straße", "ğüç"]);
        assert_eq!(
            keywords("memory-mapped,zero_copy;index"),
            ["memory", "mapped", "zero", "copy", "index"]
        );
    }

    #[test]
    fn drops_stop_words_and_short_tokens() {
        assert_eq!(keywords("the cat is on a mat with an owl"), ["cat", "mat", "owl"]);
        assert_eq!(keywords("Should WOULD could might"), Vec::<String>::new());
        assert_eq!(keywords("go to it ok"), Vec::<String>::new());
    }

    #[test]
    fn counts_characters_not_bytes() {
        // Two characters, four bytes: too short. Three characters: kept.
        assert_eq!(keywords("éé ééé"), ["ééé"]);
        assert_eq!(keywords("日本 日本語"), ["日本語"]);
    }

    #[test]
    fn keeps_digits_and_deduplicates_in_first_occurrence_order() {
        assert_eq!(keywords("v100 Rust rust RUST 2026 v100"), ["v100", "rust", "2026"]);
    }

    #[test]
    fn document_keywords_take_only_five_insights() {
        let insights: Vec<String> =
            ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"].map(String::from).to_vec();
        let kws = document_keywords("question", &insights, "synthesis alpha");
        assert_eq!(kws, ["question", "alpha", "bravo", "charlie", "delta", "echo", "synthesis"]);
    }
}
