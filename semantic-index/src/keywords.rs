//! Keyword extraction: one function for documents and queries alike ([`keywords`] states the
//! rule).

use std::hash::BuildHasher as _;

/// Words never kept as keywords (the stop list of the keyword rule).
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
    for_each_word(text, |token, chars| {
        if chars >= MIN_KEYWORD_CHARS && !is_stop_word(token) {
            f(token);
        }
    });
}

/// Calls `emit` with every maximal run of alphanumeric characters (Unicode) of `text`,
/// lowercased, and its length in characters, in order: the tokenizer under [`keywords`] and the
/// BM25F analyzer, which filter the words differently.
pub(crate) fn for_each_word(text: &str, mut emit: impl FnMut(&str, usize)) {
    let bytes = text.as_bytes();
    let mut buf = String::new();
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
    keywords_of([text])
}

/// The keywords of several texts taken as one: [`keywords`]' rule, deduplicated across all of
/// them in order of first occurrence. Linear in the length of the texts, however many distinct
/// keywords they hold.
///
/// ```
/// assert_eq!(semantic_index::keywords_of(["Memory-Mapped", "memory index"]), ["memory", "mapped", "index"]);
/// ```
pub fn keywords_of<I>(texts: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut out = Distinct::default();
    for text in texts {
        for_each_token(text.as_ref(), |token| out.add(token));
    }
    out.words
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
    let insights = insights.iter().take(DOCUMENT_INSIGHTS).map(String::as_str);
    keywords_of(std::iter::once(question).chain(insights).chain(std::iter::once(synthesis)))
}

/// Up to this many distinct keywords are deduplicated by comparing with each (a query's handful
/// is cheaper to scan than to hash); past it, through a hash index.
const SCAN_LIMIT: usize = 16;

/// Distinct keywords in order of first occurrence.
#[derive(Default)]
struct Distinct {
    words: Vec<String>,
    /// Indexes into `words`, hashed by the word; filled once `words` reaches [`SCAN_LIMIT`].
    index: hashbrown::HashTable<u32>,
    /// SipHash with a random key: text may come from anyone, so no crafted collisions.
    state: std::hash::RandomState,
}

impl Distinct {
    fn add(&mut self, token: &str) {
        let Distinct { words, index, state } = self;
        if words.len() < SCAN_LIMIT {
            if !words.iter().any(|k| k == token) {
                words.push(token.to_owned());
                if words.len() == SCAN_LIMIT {
                    for (i, word) in words.iter().enumerate() {
                        let rehash = |&j: &u32| state.hash_one(words[j as usize].as_str());
                        index.insert_unique(state.hash_one(word.as_str()), i as u32, rehash);
                    }
                }
            }
            return;
        }
        let h = state.hash_one(token);
        if index.find(h, |&i| words[i as usize] == token).is_none() {
            let rehash = |&j: &u32| state.hash_one(words[j as usize].as_str());
            index.insert_unique(h, words.len() as u32, rehash);
            words.push(token.to_owned());
        }
    }
}

/// How many insights of a memory contribute keywords.
pub const DOCUMENT_INSIGHTS: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deduplicates_past_the_scan_limit_in_order_of_first_occurrence() {
        let words: Vec<String> = (0..3 * SCAN_LIMIT).map(|i| format!("word{i}")).collect();
        // Every word, then every word again backwards, then the first half once more, with
        // case and punctuation that the rule folds away.
        let mut text = words.join(" ");
        for w in words.iter().rev() {
            text.push_str(&format!(", {}", w.to_uppercase()));
        }
        text.push(' ');
        text.push_str(&words[..words.len() / 2].join("-"));
        assert_eq!(keywords(&text), words);
        assert_eq!(keywords_of([text.as_str(), "extra word0", ""]), {
            let mut w = words.clone();
            w.push("extra".into());
            w
        });
        // Exactly at the limit, then one more, then a repeat of each.
        for n in [SCAN_LIMIT - 1, SCAN_LIMIT, SCAN_LIMIT + 1] {
            let some = &words[..n];
            assert_eq!(keywords_of(some.iter().chain(some)), some, "{n} words");
        }
    }

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
