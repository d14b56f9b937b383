//! The tools' arguments: their JSON schemas (from these types and their doc comments, which
//! become the descriptions an agent reads) and the bounds checked before a backend sees them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::ToolError;

/// The longest text an argument may carry, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// The most entries a list argument (insights, keywords, context) may carry.
pub const MAX_LIST_ITEMS: usize = 256;
/// The most hits a recall or related call returns.
const MAX_LIMIT: u32 = 1000;
/// The longest an invitation may wait for its apprentice, in milliseconds.
const MAX_TIMEOUT_MS: u64 = 60_000;

/// A memory to store.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RememberArgs {
    /// The domain it belongs to (e.g. "architecture", "debugging"); not empty.
    pub domain: String,
    /// The question the memory answers; its words are searchable.
    pub question: String,
    /// What was learned, one insight per entry; the first five are searchable.
    #[serde(default)]
    pub insights: Vec<String>,
    /// The synthesis: the answer in a few sentences.
    #[serde(default)]
    pub synthesis: String,
    /// How significant the memory is, 0 to 1 (default 0); raises it in rankings.
    #[serde(default)]
    pub score: Option<f32>,
    /// Mark the memory sacred: a foundational memory that ranks higher and can be listed alone.
    #[serde(default)]
    pub sacred: bool,
    /// Why it is sacred.
    #[serde(default)]
    pub sacred_reason: Option<String>,
    /// A free-form type ("decision", "insight", "bug", ...).
    #[serde(default)]
    pub memory_type: Option<String>,
    /// The session it came from.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Free-form context, key to value.
    #[serde(default)]
    pub context: BTreeMap<String, String>,
}

/// A search.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallArgs {
    /// Free text; its words of three letters or more (stop words aside) are the query.
    #[serde(default)]
    pub text: Option<String>,
    /// Keywords added to the text's.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Only memories of this domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// Only sacred memories.
    #[serde(default)]
    pub sacred_only: bool,
    /// At most this many hits (default 10, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// How hits are ranked: "bm25f" (stemmed BM25F over question, insights and synthesis;
    /// score and sacred only break ties), "jaccard" (keyword overlap plus the memory's score and
    /// sacred flag), "vector" (meaning: the embedding model's similarity) or "hybrid" (bm25f and
    /// vector fused). Default: hybrid when the store has vectors and the model is installed,
    /// else bm25f.
    #[serde(default)]
    pub ranking: Option<String>,
}

/// A memory whose neighbours are wanted.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelatedArgs {
    /// The memory's id (a UUID, as `remember` and `recall` return it).
    pub id: String,
    /// At most this many (default 10, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One memory, by id.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// The memory's id (a UUID, as `remember` and `recall` return it).
    pub id: String,
}

/// The built-in kinds of apprentice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprenticeKind {
    /// MemoryNavigator: finds the memories that bear on a task.
    Navigator,
    /// ConsciousnessWitness: looks for emergence patterns among the memories.
    Witness,
    /// Synthesizer: combines the insights of related memories into one answer, with sources.
    Synthesizer,
    /// Curator: finds near-duplicate and contradicting memories.
    Curator,
}

/// A task for an apprentice.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteArgs {
    /// Which apprentice to start.
    pub kind: ApprenticeKind,
    /// The task, in words; its keywords join the apprentice's search.
    pub task: String,
    /// Background for the task.
    #[serde(default)]
    pub context: String,
    /// Keywords for the search.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Only sacred memories.
    #[serde(default)]
    pub sacred_only: bool,
    /// At most this many memories in the answer (default 10).
    #[serde(default)]
    pub limit: Option<u32>,
    /// How long to wait for the answer, in milliseconds (default 5000, at most 60000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn text(tool: &str, field: &str, value: &str) -> Result<(), ToolError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(ToolError::Invalid(format!(
            "{tool}: `{field}` is {} bytes long, at most {MAX_TEXT_BYTES} are accepted",
            value.len()
        )));
    }
    Ok(())
}

fn list<'a>(
    tool: &str,
    field: &str,
    values: impl ExactSizeIterator<Item = &'a String>,
) -> Result<(), ToolError> {
    if values.len() > MAX_LIST_ITEMS {
        return Err(ToolError::Invalid(format!(
            "{tool}: `{field}` has {} entries, at most {MAX_LIST_ITEMS} are accepted",
            values.len()
        )));
    }
    for (i, v) in values.enumerate() {
        text(tool, &format!("{field}[{i}]"), v)?;
    }
    Ok(())
}

fn limit(tool: &str, value: Option<u32>) -> Result<(), ToolError> {
    match value {
        Some(0) => Err(ToolError::Invalid(format!("{tool}: `limit` must be at least 1"))),
        Some(n) if n > MAX_LIMIT => {
            Err(ToolError::Invalid(format!("{tool}: `limit` is {n}, at most {MAX_LIMIT}")))
        }
        _ => Ok(()),
    }
}

impl RememberArgs {
    pub(crate) fn check(&self) -> Result<(), ToolError> {
        let t = "remember";
        text(t, "domain", &self.domain)?;
        text(t, "question", &self.question)?;
        text(t, "synthesis", &self.synthesis)?;
        list(t, "insights", self.insights.iter())?;
        list(t, "context", self.context.values())?;
        list(t, "context keys", self.context.keys())?;
        for (field, v) in [
            ("sacred_reason", &self.sacred_reason),
            ("memory_type", &self.memory_type),
            ("session_id", &self.session_id),
        ] {
            text(t, field, v.as_deref().unwrap_or(""))?;
        }
        Ok(())
    }
}

impl RecallArgs {
    pub(crate) fn check(&self) -> Result<(), ToolError> {
        let t = "recall";
        text(t, "text", self.text.as_deref().unwrap_or(""))?;
        text(t, "domain", self.domain.as_deref().unwrap_or(""))?;
        list(t, "keywords", self.keywords.iter())?;
        limit(t, self.limit)
    }
}

impl RelatedArgs {
    pub(crate) fn check(&self) -> Result<(), ToolError> {
        text("related", "id", &self.id)?;
        limit("related", self.limit)
    }
}

impl InviteArgs {
    pub(crate) fn check(&self) -> Result<(), ToolError> {
        let t = "invite";
        text(t, "task", &self.task)?;
        text(t, "context", &self.context)?;
        list(t, "keywords", self.keywords.iter())?;
        limit(t, self.limit)?;
        match self.timeout_ms {
            Some(ms) if ms > MAX_TIMEOUT_MS => Err(ToolError::Invalid(format!(
                "invite: `timeout_ms` is {ms}, at most {MAX_TIMEOUT_MS}"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_fields_are_refused_by_name() {
        let mut args =
            RecallArgs { text: Some("x".repeat(MAX_TEXT_BYTES + 1)), ..RecallArgs::default() };
        let e = args.check().unwrap_err().to_string();
        assert!(e.contains("`text`") && e.contains("65537"), "{e}");
        args.text = None;
        args.keywords = vec!["k".into(); MAX_LIST_ITEMS + 1];
        assert!(args.check().unwrap_err().to_string().contains("`keywords` has 257"));
        args.keywords.clear();
        args.limit = Some(0);
        assert!(args.check().unwrap_err().to_string().contains("at least 1"));
        args.limit = Some(10);
        assert!(args.check().is_ok());
    }
}
