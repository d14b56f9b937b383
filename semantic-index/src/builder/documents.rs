//! The per-document arrays, forward lists and frequent terms' bitmaps, in ordinal order.

use crate::format::{self, SegmentData};

use super::part::Part;
use super::{u32_of, BuildError};

/// How documents' builder ids map to the segment's.
pub(super) struct DocLayout<'a> {
    /// Sorted term ordinal per builder term id.
    pub(super) remap: &'a [u32],
    /// Sorted domain ordinal per builder domain id.
    pub(super) domain_remap: &'a [u32],
    /// Forward lists are `u16` (the caller checked that every term ordinal fits).
    pub(super) narrow: bool,
}

/// Everything but the term table and postings, in ordinal order: per-document arrays, forward
/// lists (without the frequent terms) and the frequent terms' bitmaps, counts and offsets.
/// Also returns the frequent terms' frequencies, one list per term, each in ordinal order.
pub(super) fn per_document(
    part: &Part,
    order: &[u32],
    layout: &DocLayout<'_>,
    bitmap_of: &[u32],
    frequent: usize,
) -> Result<(SegmentData, Vec<Vec<u8>>), BuildError> {
    let DocLayout { remap, domain_remap, narrow } = *layout;
    let n = order.len();
    let mut data = SegmentData { doc_count: n as u32, ..SegmentData::default() };
    let words = format::bitmap_words(n as u32);
    data.frequent_bits = vec![0u64; frequent * words];
    if frequent > 0 {
        data.frequent_counts.reserve(n);
    }
    let mut frequent_frequencies: Vec<Vec<u8>> = vec![Vec::new(); frequent];
    if narrow {
        data.forward_narrow.reserve(part.doc_terms.len());
    } else {
        data.forward_wide.reserve(part.doc_terms.len());
    }
    data.forward_offsets.reserve(n + 1);
    data.gist_bytes.reserve(part.gists.len());
    data.gist_offsets.reserve(n + 1);
    data.ids.reserve(n);
    data.domain_of.reserve(n);
    data.token_counts.reserve(n);
    data.scores.reserve(n);
    data.timestamps.reserve(n);
    data.forward_offsets.push(0);
    data.gist_offsets.push(0);
    let mut min_keywords = u32::MAX;
    for &d in order {
        let d = d as usize;
        let doc = &part.docs[d];
        let terms = part.terms_of(d);
        let count = terms.len() as u32;
        data.ids.push(doc.id);
        data.domain_of.push(domain_remap[doc.domain as usize]);
        data.token_counts.push(doc.tokens);
        data.scores.push(doc.score);
        data.timestamps.push(doc.timestamp);
        if doc.sacred {
            data.sacred_count += 1;
        }
        if count > 0 {
            min_keywords = min_keywords.min(count);
        }
        // One pass over the document's terms: frequent ones set their bit, the others go to
        // the forward list (sorted after).
        let ordinal = data.ids.len() - 1;
        let block = ordinal / 64 * frequent;
        let mut frequent_here = 0u8;
        let forward_start = data.forward_narrow.len() + data.forward_wide.len();
        for (&t, &f) in part.doc_terms[terms.clone()].iter().zip(&part.doc_freqs[terms]) {
            let i = bitmap_of[t as usize];
            if i != u32::MAX {
                let i = i as usize;
                data.frequent_bits[block + i] |= 1u64 << (ordinal % 64);
                frequent_frequencies[i].push(f);
                frequent_here += 1;
            } else if narrow {
                data.forward_narrow.push(remap[t as usize] as u16);
            } else {
                data.forward_wide.push(remap[t as usize]);
            }
        }
        if frequent > 0 {
            data.frequent_counts.push(frequent_here);
        }
        let end = if narrow {
            data.forward_narrow[forward_start..].sort_unstable();
            data.forward_narrow.len()
        } else {
            data.forward_wide[forward_start..].sort_unstable();
            data.forward_wide.len()
        };
        data.forward_offsets.push(u32_of(end, "forward lists")?);
        data.gist_bytes.extend_from_slice(&part.gists[part.gist_of(d)]);
        data.gist_offsets.push(u32_of(data.gist_bytes.len(), "gist bytes")?);
    }
    data.min_keywords = if min_keywords == u32::MAX { 1 } else { min_keywords };

    // Sacred newest first; ids sorted.
    data.sacred_newest = (0..data.sacred_count).collect();
    data.sacred_newest.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        data.timestamps[b].cmp(&data.timestamps[a]).then(data.ids[a].cmp(&data.ids[b]))
    });
    data.by_id = (0..n as u32).collect();
    // Big-endian u128 order is the bytewise order of the ids, without a memcmp per compare.
    data.by_id.sort_unstable_by_key(|&a| u128::from_be_bytes(data.ids[a as usize]));
    data.frequent_offsets.reserve(frequent + 1);
    data.frequent_offsets.push(0);
    let mut end = 0;
    for f in &frequent_frequencies {
        end += f.len();
        data.frequent_offsets.push(u32_of(end, "postings")?);
    }
    Ok((data, frequent_frequencies))
}
