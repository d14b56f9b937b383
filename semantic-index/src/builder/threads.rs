//! The builder's threads: scoped, spawned for large batches and builds only, none held
//! between calls.

use crate::document::Document;

use super::part::Part;
use super::BuildError;

/// Batches smaller than this are tokenized on the calling thread alone.
pub(super) const PARALLEL_MIN_DOCS: usize = 4096;
/// Builds with fewer postings than this run on one thread.
pub(super) const PARALLEL_MIN_POSTINGS: usize = 1 << 18;
/// The most threads a batch is split over.
pub(super) const MAX_THREADS: usize = 8;

pub(super) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
}

/// Runs `a` and `b`, on two threads when `parallel`.
pub(super) fn join<A: Send, B: Send>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B,
) -> (A, B) {
    if !parallel {
        let a = a();
        return (a, b());
    }
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        match a.join() {
            Ok(a) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Tokenizes the first share of `docs` here and the others on scoped threads, each into
/// its own [`Part`], then merges those in order.
pub(super) fn add_parallel(
    part: &mut Part,
    docs: &[Document],
    domains: &[u32],
    threads: usize,
) -> Result<(), BuildError> {
    let share = docs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = docs
            .chunks(share)
            .zip(domains.chunks(share))
            .skip(1)
            .map(|(docs, domains)| {
                s.spawn(move || {
                    let mut part = Part::default();
                    docs.iter().zip(domains).try_for_each(|(d, &dom)| part.add(d, dom))?;
                    Ok::<Part, BuildError>(part)
                })
            })
            .collect();
        let mut result = docs
            .iter()
            .zip(domains)
            .take(share)
            .try_for_each(|(doc, &domain)| part.add(doc, domain));
        for worker in workers {
            let other = match worker.join() {
                Ok(other) => other,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            if result.is_ok() {
                result = other.and_then(|other| part.absorb(other));
            }
        }
        result
    })
}
