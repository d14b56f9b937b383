//! Long help texts.

/// The memory format `mcs ingest` reads (also in docs/GUIDE.md, "The memory format").
pub(crate) const MEMORY_FORMAT: &str = "\
The input is JSON Lines: one JSON object per line, one memory per object; blank lines are
skipped. Fields (unknown fields are refused, naming the field and the line):

  domain         string, required, not empty
  question       string, required
  id             UUID; when absent, derived from the line's text, so ingesting the same
                 file again (or re-running an ingest that stopped half-way) stores each
                 memory once; a line that differs in any byte is another memory
  timestamp      RFC 3339 date-time, e.g. 2026-11-30T04:15:00Z (default: now)
  insights       list of strings (the first five are indexed)
  synthesis      string
  score          number in 0..=1, the consciousness score (default 0)
  sacred         true or false (default false)
  sacred_reason  string
  memory_type    string (\"decision\", \"insight\", ...)
  session_id     string
  human          string
  context        object of string values
  perspectives   list of objects: voice, role, summary (strings), insights (list)

Memories whose id is already stored are skipped, so re-running an ingest is safe. An invalid
line stops the ingest with its line number and field; what came before it is stored.

Example:
  {\"domain\":\"ops\",\"question\":\"What survives a crash?\",\"insights\":[\"acknowledged memories\"],\"score\":0.4,\"timestamp\":\"2026-11-30T04:15:00Z\"}";
