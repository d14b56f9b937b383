//! The record a user stores, its validation and its JSON form.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One voice's view of a memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Perspective {
    /// Who speaks.
    #[serde(default)]
    pub voice: String,
    /// In which role.
    #[serde(default)]
    pub role: String,
    /// What they said, in short.
    #[serde(default)]
    pub summary: String,
    /// Their insights.
    #[serde(default)]
    pub insights: Vec<String>,
}

/// A memory: what an agent learned, with its question, insights and synthesis.
///
/// JSON in, JSON out; unknown fields are refused. `domain` (not empty) and `question` are
/// required; `timestamp` is RFC 3339 and defaults to now; `score` must lie in `0..=1`. When `id`
/// is absent, [`Memory::from_json`] derives it from the text (so the same line read twice is the
/// same memory); deserialized through serde directly, or made with [`Memory::new`], a memory
/// without an id gets a random one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// The memory's id.
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    /// The session it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// When it was made (RFC 3339).
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    /// A free-form type ("decision", "insight", …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_type: Option<String>,
    /// The domain it belongs to.
    pub domain: String,
    /// The question it answers.
    pub question: String,
    /// Its insights; the first five are indexed.
    #[serde(default)]
    pub insights: Vec<String>,
    /// Its synthesis.
    #[serde(default)]
    pub synthesis: String,
    /// Free-form context.
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// Views of several voices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perspectives: Option<Vec<Perspective>>,
    /// The consciousness score, `0..=1`.
    #[serde(default)]
    pub score: f32,
    /// Whether the memory is sacred.
    #[serde(default)]
    pub sacred: bool,
    /// Why it is sacred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sacred_reason: Option<String>,
    /// The human involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<String>,
}

/// A memory that could not be read or accepted: where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default(), field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct InvalidMemory {
    /// The input line (1-based), when read from JSON Lines.
    pub line: Option<usize>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Memory {
    /// A memory with the required fields and defaults for the rest.
    pub fn new(domain: impl Into<String>, question: impl Into<String>) -> Memory {
        Memory {
            id: Uuid::new_v4(),
            session_id: None,
            timestamp: Utc::now(),
            memory_type: None,
            domain: domain.into(),
            question: question.into(),
            insights: Vec::new(),
            synthesis: String::new(),
            context: BTreeMap::new(),
            perspectives: None,
            score: 0.0,
            sacred: false,
            sacred_reason: None,
            human: None,
        }
    }

    /// Parses one JSON object (a line of JSON Lines) and validates it. Errors name the field.
    ///
    /// Without an `id` field the id is derived from `text` (trimmed): the same line gives the
    /// same id every time, so reading a file twice stores its memories once.
    ///
    /// ```
    /// use memory_store::Memory;
    ///
    /// let line = r#"{"domain":"ops","question":"What survives a crash?"}"#;
    /// assert_eq!(Memory::from_json(line)?.id, Memory::from_json(line)?.id);
    /// # Ok::<(), memory_store::InvalidMemory>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Memory, InvalidMemory> {
        not_an_object(text)?;
        let de = &mut serde_json::Deserializer::from_str(text);
        let mut memory: Memory = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let mut message = strip_position(&inner.to_string());
            let syntax = matches!(
                inner.classify(),
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof
            );
            if matches!(inner.classify(), serde_json::error::Category::Syntax) {
                message = format!("not valid JSON: {message} at column {}", inner.column());
            } else if matches!(inner.classify(), serde_json::error::Category::Eof) {
                message = format!("not valid JSON: {message} (the object is not closed)");
            } else if path == "timestamp" {
                message.push_str(" (expected an RFC 3339 date-time, e.g. 2026-11-30T04:15:00Z)");
            }
            // serde names unknown fields in its message; the path then points at the parent.
            let field = if syntax || path == "." || path.is_empty() { None } else { Some(path) };
            InvalidMemory { line: None, field, message }
        })?;
        if !id_given(text, &memory.id) {
            memory.id = derived_id(text.trim());
        }
        memory.validate()?;
        Ok(memory)
    }

    /// Checks what types cannot: a non-empty domain, a score in `0..=1`.
    pub fn validate(&self) -> Result<(), InvalidMemory> {
        let bad = |field: &str, message: String| InvalidMemory {
            line: None,
            field: Some(field.into()),
            message,
        };
        if self.domain.trim().is_empty() {
            return Err(bad("domain", "must not be empty".into()));
        }
        if !(0.0..=1.0).contains(&self.score) {
            return Err(bad("score", format!("{} is outside 0..=1", self.score)));
        }
        Ok(())
    }

    /// The memory as the index sees it.
    pub fn to_document(&self) -> semantic_index::Document {
        semantic_index::Document {
            id: *self.id.as_bytes(),
            domain: self.domain.clone(),
            question: self.question.clone(),
            insights: self.insights.clone(),
            synthesis: self.synthesis.clone(),
            score: self.score,
            sacred: self.sacred,
            timestamp_micros: self.timestamp.timestamp_micros(),
        }
    }

    /// The memory as the index sees it, its strings moved rather than copied.
    pub(crate) fn into_document(self) -> semantic_index::Document {
        semantic_index::Document {
            id: *self.id.as_bytes(),
            domain: self.domain,
            question: self.question,
            insights: self.insights,
            synthesis: self.synthesis,
            score: self.score,
            sacred: self.sacred,
            timestamp_micros: self.timestamp.timestamp_micros(),
        }
    }

    /// Adds this memory's text to a content file being built (what readers quote).
    pub(crate) fn add_content(&self, content: &mut semantic_index::content::ContentBuilder) {
        content.add(
            *self.id.as_bytes(),
            &semantic_index::content::ContentFields {
                question: &self.question,
                synthesis: &self.synthesis,
                sacred_reason: self.sacred_reason.as_deref().unwrap_or_default(),
                insights: &self.insights,
            },
        );
    }
}

/// Refuses a line that is not a JSON object, naming what it is instead (serde's message for an
/// array, "invalid type: map, expected a formatted UUID string", says nothing useful).
fn not_an_object(text: &str) -> Result<(), InvalidMemory> {
    let found = match text.trim_start().chars().next() {
        Some('{') | None => return Ok(()),
        Some('[') => "an array (each memory goes on a line of its own, not in a list)",
        Some('"') => "a string",
        Some('t' | 'f') => "a boolean",
        Some('n') => "null",
        Some(c) if c == '-' || c.is_ascii_digit() => "a number",
        Some(_) => "text that is not JSON",
    };
    Err(InvalidMemory {
        line: None,
        field: None,
        message: format!("expected a JSON object (one memory per line), found {found}"),
    })
}

/// Whether `text` holds an `id` field (else `parsed` is the random default).
fn id_given(text: &str, parsed: &Uuid) -> bool {
    // A key is spelled `"id"`, or with escapes (`"\u0069d"`), which the probe below decodes.
    if !text.contains("\"id\"") && !text.contains("\\u") {
        return false;
    }
    // Fast path: the id as uuid writes it (a random default cannot appear in the text).
    if text.contains(parsed.hyphenated().encode_lower(&mut Uuid::encode_buffer()) as &str) {
        return true;
    }
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        id: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_str::<Probe>(text).is_ok_and(|p| p.id.is_some())
}

/// A UUID (version 8, "custom") made of two 64-bit XXH3 hashes of `text`: the same text always
/// gives the same id. Not a cryptographic hash: it keeps honest re-runs idempotent, it does not
/// stop someone who crafts a colliding line on purpose.
fn derived_id(text: &str) -> Uuid {
    use twox_hash::XxHash3_64;
    let a = XxHash3_64::oneshot_with_seed(0x6d63_735f_6964_5f31, text.as_bytes());
    let b = XxHash3_64::oneshot_with_seed(0x6d63_735f_6964_5f32, text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    uuid::Builder::from_bytes(bytes)
        .with_variant(uuid::Variant::RFC4122)
        .with_version(uuid::Version::Custom)
        .into_uuid()
}

/// serde_json appends " at line 1 column 17"; in JSON Lines the caller names the line.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_id_and_timestamp() {
        let m = Memory::from_json(r#"{"domain":"ops","question":"why?"}"#).unwrap();
        assert_eq!(m.domain, "ops");
        assert!(!m.sacred);
        assert_eq!(m.score, 0.0);
        assert_ne!(m.id, Uuid::nil());
    }

    #[test]
    fn errors_name_the_field() {
        let e = Memory::from_json(r#"{"domain":"ops","question":"q","colour":"red"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e = Memory::from_json(r#"{"domain":"ops","question":"q","score":"high"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("score"), "{e}");
        let e = Memory::from_json(r#"{"domain":"ops","question":"q","score":1.5}"#).unwrap_err();
        assert_eq!(e.to_string(), "field `score`: 1.5 is outside 0..=1");
        let e = Memory::from_json(r#"{"domain":"  ","question":"q"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("domain"));
        let e =
            Memory::from_json(r#"{"id":"not-a-uuid","domain":"d","question":"q"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("id"), "{e}");
        let e =
            Memory::from_json(r#"{"domain":"d","question":"q","insights":["a",3]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("insights[1]"), "{e}");
        let e = Memory::from_json(r#"{"question":"q"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `domain`"), "{e}");
    }

    #[test]
    fn a_line_without_id_always_gets_the_same_id() {
        let line = r#"{"domain":"ops","question":"why?"}"#;
        let (a, b) = (Memory::from_json(line).unwrap(), Memory::from_json(line).unwrap());
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.get_version(), Some(uuid::Version::Custom));
        let other = Memory::from_json(r#"{"domain":"ops","question":"why not?"}"#).unwrap();
        assert_ne!(a.id, other.id);
        // A given id is kept, however it is written.
        for given in [
            r#"{"id":"11111111-1111-4111-8111-111111111111","domain":"d","question":"q"}"#,
            r#"{"id":"11111111111141118111111111111111","domain":"d","question":"q"}"#,
            r#"{"\u0069d":"11111111-1111-4111-8111-111111111111","domain":"d","question":"q"}"#,
        ] {
            let m = Memory::from_json(given).unwrap();
            assert_eq!(m.id.to_string(), "11111111-1111-4111-8111-111111111111", "{given}");
        }
        // An "id" inside the context is not the memory's id.
        let m = Memory::from_json(r#"{"domain":"d","question":"q","context":{"id":"x"}}"#).unwrap();
        assert_eq!(m.id.get_version(), Some(uuid::Version::Custom));
    }

    #[test]
    fn errors_say_what_was_expected() {
        let e = Memory::from_json(r#"[{"domain":"d","question":"q"}]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a JSON object (one memory per line), found an array (each memory goes on a \
             line of its own, not in a list)"
        );
        let e = Memory::from_json("domain: ops").unwrap_err();
        assert!(e.to_string().contains("found text that is not JSON"), "{e}");
        let e = Memory::from_json(r#"{"domain":"d", question:"q"}"#).unwrap_err();
        assert!(e.to_string().starts_with("not valid JSON: key must be a string at column"), "{e}");
        let e = Memory::from_json(r#"{"domain":"d","question":"q""#).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = Memory::from_json(r#"{"domain":"d","question":"q","timestamp":"yesterday"}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("timestamp"));
        assert!(e.to_string().contains("expected an RFC 3339 date-time"), "{e}");
    }

    #[test]
    fn json_round_trip() {
        let mut m = Memory::new("design", "How do apprentices see new memories?");
        m.insights = vec!["one atomic load per search".into()];
        m.context.insert("session".into(), "42".into());
        m.perspectives = Some(vec![Perspective { voice: "reader".into(), ..Default::default() }]);
        m.score = 0.75;
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(Memory::from_json(&text).unwrap(), m);
    }
}
