//! Memory ids as users type them: a whole id, or any unique prefix of one (tables print eight
//! characters).

use std::path::Path;

use anyhow::{bail, Context};
use uuid::Uuid;

/// The id `text` names in the store at `dir`: `text` itself when it is a whole id, otherwise the
/// one live memory whose id starts with it (dashes optional, any case). An error says when no
/// id or several ids start with it.
pub(crate) fn resolve(dir: &Path, text: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(text) {
        return Ok(id);
    }
    let prefix: String = text.chars().filter(|&c| c != '-').collect::<String>().to_lowercase();
    if prefix.is_empty() || prefix.len() > 32 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{text:?} is not a memory id nor the start of one (hexadecimal digits and dashes)");
    }
    let reader = shm_reader::Reader::open(dir)
        .with_context(|| format!("looking up id prefix {text} in {}", dir.display()))?;
    let snapshot = reader.snapshot();
    let mut found: Vec<Uuid> = snapshot
        .docs()
        .map(|d| Uuid::from_bytes(d.id()))
        .filter(|id| id.simple().to_string().starts_with(&prefix))
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [] => bail!("no memory id starts with {text}"),
        [one] => Ok(*one),
        many => {
            let shown: Vec<String> = many.iter().take(5).map(Uuid::to_string).collect();
            bail!(
                "{text} is ambiguous: {} ids start with it ({}{}); give more characters",
                many.len(),
                shown.join(", "),
                if many.len() > shown.len() { ", …" } else { "" }
            )
        }
    }
}
