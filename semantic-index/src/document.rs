//! The unit the index stores: a memory reduced to what search needs.

/// A memory as the index sees it. Plain data; the store converts its records into documents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    /// The memory's id (UUID bytes, big-endian as in `uuid::Uuid::as_bytes`).
    pub id: [u8; 16],
    /// The memory's domain.
    pub domain: String,
    /// The question; its start becomes the gist.
    pub question: String,
    /// The insights; the first five contribute keywords.
    pub insights: Vec<String>,
    /// The synthesis.
    pub synthesis: String,
    /// The memory's own score, in `0.0..=1.0`.
    pub score: f32,
    /// Whether the memory is sacred.
    pub sacred: bool,
    /// When the memory was made, in microseconds since the Unix epoch (UTC).
    pub timestamp_micros: i64,
}
