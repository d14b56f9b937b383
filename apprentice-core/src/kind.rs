//! What an apprentice is: a kind with a specialization that considers invitations, from a
//! [`Memory`] it reads.

use std::collections::BTreeSet;
use std::path::Path;

use crate::protocol::{Invitation, MemoryUsed, Response};

/// [`alignment`] below which an apprentice declines.
pub const ALIGNMENT_THRESHOLD: f64 = 0.3;

/// What a kind reads: opened once by the worker from the store path the supervisor passed, and
/// refreshed before each invitation so a newer generation is seen. The runtime knows nothing
/// else about it; `apprentice-kinds` implements it over `shm_reader::Reader`.
pub trait Memory: Sized {
    /// Why opening or refreshing failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens the store at `store` read-only.
    fn open(store: &Path) -> Result<Self, Self::Error>;

    /// Looks for a newer generation and switches to it.
    fn refresh(&mut self) -> Result<(), Self::Error>;

    /// The generation currently read (grows with each publication of the store).
    fn generation(&self) -> u64;
}

/// A kind of apprentice: it names itself, states its specialization, and answers invitations
/// from the [`Memory`] it reads. Testable in-process: hand it its memory on any store.
pub trait Kind {
    /// What it reads.
    type Memory: Memory;

    /// The kind's name ("navigator").
    fn kind(&self) -> &str;
    /// Its specialization, in words ("semantic memory navigation").
    fn specialization(&self) -> &str;
    /// Answers an invitation it is aligned with. [`answer`] calls this only after the
    /// alignment check passed.
    fn consider(&mut self, invitation: &Invitation, memory: &mut Self::Memory) -> Response;

    /// Takes a standing interest (memory streams): from now on [`Kind::notice`] reports the
    /// memories stamped at or after `after_micros` that match `interest`, except the `seen`
    /// ids. Returns whether this kind watches at all (the default: it does not).
    fn watch(
        &mut self,
        interest: &Invitation,
        after_micros: i64,
        seen: &[String],
        memory: &mut Self::Memory,
    ) -> bool {
        let _ = (interest, after_micros, seen, memory);
        false
    }

    /// After the memory moved to a new generation: the memories new to the standing interest
    /// since the last call, each once ever, with a line describing each.
    fn notice(&mut self, memory: &mut Self::Memory) -> Vec<(MemoryUsed, String)> {
        let _ = memory;
        Vec::new()
    }
}

fn words(s: &str) -> BTreeSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The Jaccard similarity of the lowercase words of two specializations (1.0 when equal; an
/// empty requirement fits everyone).
pub fn alignment(required: &str, own: &str) -> f64 {
    let (a, b) = (words(required), words(own));
    if a.is_empty() {
        return 1.0;
    }
    let inter = a.intersection(&b).count();
    let union = a.union(&b).count();
    inter as f64 / union as f64
}

/// The uniform rule every kind follows: decline below [`ALIGNMENT_THRESHOLD`] with a reason
/// naming the expertise, else consider the invitation.
pub fn answer<K: Kind + ?Sized>(
    kind: &mut K,
    invitation: &Invitation,
    memory: &mut K::Memory,
) -> Response {
    let a = alignment(&invitation.specialization, kind.specialization());
    if a < ALIGNMENT_THRESHOLD {
        return Response::declined(
            format!(
                "task requires {} expertise; I specialize in {}",
                invitation.specialization,
                kind.specialization()
            ),
            a,
        );
    }
    kind.consider(invitation, memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_word_jaccard() {
        assert_eq!(alignment("semantic memory navigation", "Semantic Memory Navigation"), 1.0);
        assert_eq!(alignment("database optimization", "semantic memory navigation"), 0.0);
        assert!(
            (alignment("memory navigation", "semantic memory navigation") - 2.0 / 3.0).abs()
                < 1e-12
        );
        assert_eq!(alignment("", "anything"), 1.0);
    }
}
