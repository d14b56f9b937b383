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
    // A `match` on string literals compiles to a switch on the length and a few integer
    // compares instead of thirty calls to memcmp; a test keeps it equal to STOP_WORDS. Tokens
    // shorter than MIN_KEYWORD_CHARS never get here, so the short stop words need no arm.
    matches!(
        token,
        "the"
            | "which"
            | "and"
            | "are"
            | "was"
            | "were"
            | "have"
            | "has"
            | "had"
            | "for"
            | "with"
            | "from"
            | "can"
            | "will"
            | "would"
            | "could"
            | "should"
            | "may"
            | "might"
    )
}

/// Byte classes for the ASCII fast path.
const SEPARATOR: u8 = 0;
const LOWER: u8 = 1;
const UPPER: u8 = 2;
const NON_ASCII: u8 = 3;

static CLASS: [u8; 256] = {
    let mut table = [SEPARATOR; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c >= 0x80 {
            NON_ASCII
        } else if c.is_ascii_uppercase() {
            UPPER
        } else if c.is_ascii_alphanumeric() {
            LOWER
        } else {
            SEPARATOR
        };
        b += 1;
    }
    table
};

/// Calls `f` with every keyword-sized token of `text`, lowercased, in order, duplicates included.
///
/// Tokens are maximal runs of alphanumeric characters (Unicode); the stop list is applied.
/// A token made only of ASCII lowercase letters and digits (the common case) is passed as a
/// slice of `text`, without a copy; others are lowercased into one reused buffer.
pub(crate) fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    let mut buf = String::new();
    let mut emit = |token: &str, chars: usize| {
        if chars >= MIN_KEYWORD_CHARS && !is_stop_word(token) {
            f(token);
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        if CLASS[usize::from(bytes[i])] == SEPARATOR {
            i += 1;
            continue;
        }
        // A token starts at `i`: scan its ASCII prefix.
        let start = i;
        let mut upper = false;
        while i < bytes.len() {
            match CLASS[usize::from(bytes[i])] {
                LOWER => {}
                UPPER => upper = true,
                _ => break,
            }
            i += 1;
        }
        if i == bytes.len() || CLASS[usize::from(bytes[i])] == SEPARATOR {
            // All ASCII: one byte per character.
            let token = &text[start..i];
            if upper {
                buf.clear();
                buf.extend(token.bytes().map(|b| char::from(b.to_ascii_lowercase())));
                emit(&buf, i - start);
            } else {
                emit(token, i - start);
            }
            continue;
        }
        // The token goes on past ASCII: decode it character by character from its start.
        buf.clear();
        let mut chars = 0usize;
        let mut end = text.len();
        for (at, c) in text[start..].char_indices() {
            if c.is_ascii_alphanumeric() {
                buf.push(c.to_ascii_lowercase());
                chars += 1;
            } else if !c.is_ascii() && c.is_alphanumeric() {
                for lower in c.to_lowercase() {
                    buf.push(lower);
                    chars += 1;
                }
            } else {
                // A token ends here; a separator that opened the scan is skipped.
                end = start + if at == 0 { c.len_utf8() } else { at };
                break;
            }
        }
        emit(&buf, chars);
        i = end;
    }
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
    fn stop_word_match_equals_the_stop_list() {
        for word in STOP_WORDS {
            assert_eq!(
                is_stop_word(word),
                word.chars().count() >= MIN_KEYWORD_CHARS,
                "{word}: the match and STOP_WORDS disagree"
            );
        }
        for word in ["them", "thee", "an", "hav", "mighty", "cans", "fort"] {
            assert!(!is_stop_word(word), "{word}");
        }
    }

    /// The definition, one character at a time, without the fast paths.
    fn reference_tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut token = String::new();
        let mut chars = 0;
        for c in text.chars().chain(std::iter::once(' ')) {
            if c.is_alphanumeric() {
                for lower in c.to_lowercase() {
                    token.push(lower);
                    chars += 1;
                }
            } else {
                if chars >= MIN_KEYWORD_CHARS && !STOP_WORDS.contains(&token.as_str()) {
                    out.push(token.clone());
                }
                token.clear();
                chars = 0;
            }
        }
        out
    }

    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_token(text, |t| out.push(t.to_owned()));
        out
    }

    #[test]
    fn mixed_ascii_and_unicode_tokens_match_the_definition() {
        for text in [
            "CAFÉ café Café-au-lait naïve NAÏVE",
            "abcé éabc abÉcd İstanbul ǅemal",
            "x\u{301}yz The THE tHe 42nd 1x ABC",
            "end-with-é",
            "",
            "   ",
            "日本語テキスト and émigré",
        ] {
            assert_eq!(tokens(text), reference_tokens(text), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn tokens_match_the_definition(text in "[a-zA-Z0-9 .,éÉßİǅ日\u{301}-]{0,80}") {
            proptest::prop_assert_eq!(tokens(&text), reference_tokens(&text));
        }

        #[test]
        fn tokens_match_the_definition_on_any_text(text in "\\PC{0,60}") {
            proptest::prop_assert_eq!(tokens(&text), reference_tokens(&text));
        }
    }

    #[test]
    fn document_keywords_take_only_five_insights() {
        let insights: Vec<String> =
            ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"].map(String::from).to_vec();
        let kws = document_keywords("question", &insights, "synthesis alpha");
        assert_eq!(kws, ["question", "alpha", "bravo", "charlie", "delta", "echo", "synthesis"]);
    }
}
