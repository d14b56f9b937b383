//! Quoting what memories say: their own insights and syntheses (read from the store's mapped
//! content files), grouped under the memory that first said them, deduplicated across memories,
//! each with the ids of every memory that said it.

use shm_reader::{ContentRef, Hit, Snapshot};

use crate::clip;

/// Characters of one insight or synthesis quoted.
pub(crate) const QUOTE: usize = 240;

/// One quoted sentence and the memories that said it.
#[derive(Debug)]
struct Quote {
    /// What it is: "insight" or "synthesis".
    label: &'static str,
    text: String,
    /// Comparison key: lowercase, spaces collapsed, no final period.
    key: String,
    /// Short ids (eight hex digits) of the memories that said it, first sayer first.
    ids: Vec<String>,
}

/// Lines grouped by memory: each group's heading, then the quotes it said first.
#[derive(Debug, Default)]
pub(crate) struct Quotes {
    groups: Vec<(String, Vec<usize>)>,
    quotes: Vec<Quote>,
    /// Memories that had content to quote.
    pub(crate) quoted: usize,
}

/// The first eight hex digits of an id (what tables print).
pub(crate) fn short_id(id: &[u8; 16]) -> String {
    id[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn key_of(text: &str) -> String {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    words.join(" ").trim_end_matches(['.', '!', ';']).to_owned()
}

/// The content of a hit, `None` if there is none; a damaged entry counts in `unreadable`.
pub(crate) fn content_of<'a>(
    snapshot: &'a Snapshot,
    hit: &Hit,
    unreadable: &mut usize,
) -> Option<ContentRef<'a>> {
    match snapshot.content(hit) {
        Ok(c) => c,
        Err(_) => {
            *unreadable += 1;
            None
        }
    }
}

impl Quotes {
    /// Starts the group of one memory with its heading line.
    pub(crate) fn group(&mut self, heading: String) {
        self.groups.push((heading, Vec::new()));
    }

    /// Quotes `text` for memory `id` under the current group, or adds `id` to the quote that
    /// already says the same (another memory's). Empty text is skipped.
    pub(crate) fn say(&mut self, label: &'static str, text: &str, id: &[u8; 16]) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let key = key_of(text);
        let short = short_id(id);
        if let Some(q) = self.quotes.iter_mut().find(|q| q.key == key) {
            if !q.ids.contains(&short) {
                q.ids.push(short);
            }
            return;
        }
        self.quotes.push(Quote { label, text: clip(text, QUOTE), key, ids: vec![short] });
        let index = self.quotes.len() - 1;
        if let Some((_, lines)) = self.groups.last_mut() {
            lines.push(index);
        }
    }

    /// Quotes a memory's insights (the first `max`) and its synthesis.
    pub(crate) fn say_content(&mut self, content: &ContentRef<'_>, max: usize) {
        self.quoted += 1;
        let id = content.id();
        for insight in content.insights().take(max) {
            self.say("insight", insight, &id);
        }
        self.say("synthesis", content.synthesis(), &id);
    }

    /// How many distinct sentences were quoted.
    pub(crate) fn len(&self) -> usize {
        self.quotes.len()
    }

    /// How many quotes more than one memory said.
    pub(crate) fn shared(&self) -> usize {
        self.quotes.iter().filter(|q| q.ids.len() > 1).count()
    }

    /// The lines: each heading, then its quotes as `  insight: "…" (ids)`.
    pub(crate) fn into_lines(self) -> Vec<String> {
        let mut out = Vec::new();
        for (heading, lines) in self.groups {
            out.push(heading);
            for i in lines {
                let q = &self.quotes[i];
                out.push(format!("  {}: \"{}\" ({})", q.label, q.text, q.ids.join(", ")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_grouped_and_deduplicated_with_every_source() {
        let mut q = Quotes::default();
        q.group("first".into());
        q.say("insight", "The rename lives in the directory.", &[1; 16]);
        q.say("synthesis", "fsync the directory", &[1; 16]);
        q.group("second".into());
        q.say("insight", "the rename  lives in the directory", &[2; 16]);
        q.say("insight", "", &[2; 16]);
        q.say("insight", "a new thing", &[2; 16]);
        assert_eq!((q.len(), q.shared()), (3, 1));
        assert_eq!(
            q.into_lines(),
            [
                "first",
                "  insight: \"The rename lives in the directory.\" (01010101, 02020202)",
                "  synthesis: \"fsync the directory\" (01010101)",
                "second",
                "  insight: \"a new thing\" (02020202)",
            ]
        );
    }
}
