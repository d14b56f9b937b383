//! Postings: per term and page of ordinals, the documents that hold it and how often.

use crate::format;

use super::part::Part;
use super::{u32_of, BuildError};

/// Postings by counting sort on the term: documents visited in ordinal order keep each list
/// ascending, and a term's postings of one page follow those of the page before. Frequent
/// terms (`bitmap_of[t] != u32::MAX`) get no postings. Returns the per-(term, page) offsets,
/// the in-page ordinals and the frequencies.
#[allow(clippy::type_complexity)]
pub(super) fn postings(
    part: &Part,
    order: &[u32],
    sorted_terms: &[u32],
    bitmap_of: &[u32],
) -> Result<(Vec<u32>, Vec<u16>, Vec<u8>), BuildError> {
    let pages = format::posting_pages(order.len() as u32) as usize;
    // Next free slot per builder term id: one lookup per posting instead of two. Frequent
    // terms have none (u32::MAX) and keep an empty range where their postings would start.
    let mut fill = vec![0u32; part.terms.len()];
    let mut anchors = Vec::new();
    let mut acc = 0usize;
    for &old in sorted_terms {
        let at = u32_of(acc, "postings")?;
        if bitmap_of[old as usize] == u32::MAX {
            fill[old as usize] = at;
            acc += part.stats[old as usize].df as usize;
        } else {
            fill[old as usize] = u32::MAX;
            anchors.push(at);
        }
    }
    u32_of(acc, "postings")?;
    let mut offsets = vec![0u32; sorted_terms.len() * pages + 1];
    // Where each term's postings of page `page` start: where its fill pointer is when the
    // page's first ordinal comes (pages without documents start where the postings end).
    let mark = |offsets: &mut [u32], fill: &[u32], page: usize| {
        for (i, &old) in sorted_terms.iter().enumerate() {
            let at = fill[old as usize];
            offsets[i * pages + page] =
                if at == u32::MAX { anchors[bitmap_of[old as usize] as usize] } else { at };
        }
    };
    let mut postings = vec![0u16; acc];
    let mut frequencies = vec![0u8; acc];
    for (ordinal, &d) in order.iter().enumerate() {
        let ordinal = ordinal as u32;
        if ordinal.is_multiple_of(format::POSTING_PAGE) {
            mark(&mut offsets, &fill, (ordinal / format::POSTING_PAGE) as usize);
        }
        let low = (ordinal % format::POSTING_PAGE) as u16;
        let range = part.terms_of(d as usize);
        for (&t, &f) in part.doc_terms[range.clone()].iter().zip(&part.doc_freqs[range]) {
            let slot = &mut fill[t as usize];
            if *slot == u32::MAX {
                continue;
            }
            let at = *slot as usize;
            postings[at] = low;
            frequencies[at] = f;
            *slot += 1;
        }
    }
    if order.is_empty() {
        mark(&mut offsets, &fill, 0);
    }
    offsets[sorted_terms.len() * pages] = acc as u32;
    Ok((offsets, postings, frequencies))
}
