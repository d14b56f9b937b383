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
/// JSON in, JSON out; unknown fields are refused. `id` is generated when absent, `timestamp`
/// defaults to now; `domain` must not be empty and `score` must lie in `0..=1`.
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
    pub fn from_json(text: &str) -> Result<Memory, InvalidMemory> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let memory: Memory = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = strip_position(&inner.to_string());
            // serde names unknown fields in its message; the path then points at the parent.
            let field = if path == "." || path.is_empty() { None } else { Some(path) };
            InvalidMemory { line: None, field, message }
        })?;
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
