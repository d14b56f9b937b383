//! The builder's cost model: which of the format's equivalent forms is smaller. Readers accept
//! either form; only the builder decides, so none of this is part of the format.

use crate::format::bitmap_words;

/// Whether a segment with `postings` postings, `exceptions` of which have a frequency other
/// than 1, stores frequencies sparsely: an exception costs 5 bytes (its `u32` posting index and
/// its `u8` value), a dense frequency 1 byte, so sparse wins when fewer than one posting in
/// five is an exception. Short memories rarely repeat a keyword; long texts often do.
pub(crate) fn sparse_frequencies(postings: usize, exceptions: usize) -> bool {
    exceptions.saturating_mul(5) < postings
}

/// The bytes a bitmap saves a term found in `df` of `doc_count` documents (0 when it saves
/// none): a bitmap costs its words plus eight bytes (its entries in `frequent_terms` and
/// `frequent_offsets`), and saves a posting (two bytes) and a forward-list entry (two bytes, or
/// four when forward lists are wide) per document.
pub(crate) fn bitmap_saving(df: u32, doc_count: u32, narrow: bool) -> u64 {
    let per_document = if narrow { 4 } else { 6 };
    (u64::from(df) * per_document).saturating_sub(8 * bitmap_words(doc_count) as u64 + 8)
}
