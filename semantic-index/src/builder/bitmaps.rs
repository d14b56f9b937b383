//! Frequent terms: stored as one bit per document instead of postings when that is smaller.

use crate::cost;
use crate::format;

use super::part::Part;

/// The frequent terms (sorted ordinals, ascending): those for which [`cost::bitmap_saving`] is positive,
/// at most [`format::FREQUENT_MAX`] of them, most frequent first (ties: lower ordinal). None
/// at all when the bytes they save would not pay for the per-document counts.
pub(super) fn frequent_terms(part: &Part, sorted_terms: &[u32], n: u32, narrow: bool) -> Vec<u32> {
    // (df, ordinal, bytes saved) of every term a bitmap pays for.
    let mut chosen: Vec<(u32, u32, u64)> = sorted_terms
        .iter()
        .enumerate()
        .map(|(new, &old)| {
            let df = part.stats[old as usize].df;
            (df, new as u32, cost::bitmap_saving(df, n, narrow))
        })
        .filter(|&(_, _, saved)| saved > 0)
        .collect();
    chosen.sort_unstable_by_key(|&(df, t, _)| (std::cmp::Reverse(df), t));
    chosen.truncate(format::FREQUENT_MAX);
    let saved: u64 = chosen.iter().map(|&(_, _, saved)| saved).sum();
    if saved <= u64::from(n) {
        return Vec::new();
    }
    let mut terms: Vec<u32> = chosen.into_iter().map(|(_, t, _)| t).collect();
    terms.sort_unstable();
    terms
}
