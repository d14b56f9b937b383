use super::part::gist;
use super::*;
use crate::format::GIST_MAX_BYTES;

fn doc(n: u8, question: &str, sacred: bool, score: f32) -> Document {
    Document {
        id: [n; 16],
        domain: format!("d{}", n % 2),
        question: question.into(),
        insights: vec![],
        synthesis: String::new(),
        score,
        sacred,
        timestamp_micros: i64::from(n),
    }
}

#[test]
fn orders_documents_sacred_first_then_by_score() {
    let mut b = SegmentBuilder::new();
    b.add(&doc(1, "alpha beta", false, 0.9)).unwrap();
    b.add(&doc(2, "alpha gamma", true, 0.1)).unwrap();
    b.add(&doc(3, "beta gamma", false, 0.5)).unwrap();
    let data = b.data().unwrap();
    assert_eq!(data.ids, vec![[2; 16], [1; 16], [3; 16]]);
    assert_eq!(data.sacred_count, 1);
    // "alpha" is in docs 2 and 1, now ordinals 0 and 1.
    let alpha = data.term_bytes.windows(5).position(|w| w == b"alpha").unwrap();
    assert_eq!(alpha, 0);
    assert_eq!(&data.postings[0..2], &[0, 1]);
}

/// 64 documents that all hold `common`, the first five "fivers", the first four "fourers",
/// and each a word of its own; same score, so the newest (document 63) is ordinal 0.
fn sixty_four(common: &[String]) -> SegmentData {
    let mut b = SegmentBuilder::new();
    for n in 0..64u8 {
        let mut words = common.to_vec();
        words.push(format!("own{n:02}"));
        if n < 5 {
            words.push("fivers".into());
        }
        if n < 4 {
            words.push("fourers".into());
        }
        b.add(&doc(n, &words.join(" "), false, 0.5)).unwrap();
    }
    b.data().unwrap()
}

fn frequent_names(data: &SegmentData) -> Vec<String> {
    data.frequent_terms.iter().map(|&t| term_of(data, t)).collect()
}

#[test]
fn frequent_terms_become_bitmaps_up_to_the_cap() {
    // 64 documents: a bitmap is one word, so it pays from 5 documents on (5 * 4 > 8 + 8).
    // "word000".."word299" are in every document: more than the 255 allowed.
    let common: Vec<String> = (0..300).map(|i| format!("word{i:03}")).collect();
    let data = sixty_four(&common);
    // The 255 most frequent, ties to the lower ordinal: word000..word254.
    assert_eq!(frequent_names(&data), common[..255].to_vec());
    assert_eq!(data.frequent_bits, vec![u64::MAX; 255]);
    assert_eq!(data.frequent_counts, vec![255; 64]);
    assert_eq!(data.frequent_offsets, (0..=255).map(|i| i * 64).collect::<Vec<u32>>());
    // Everything else keeps postings and forward entries: 45 common words and the own
    // word per document, "fivers" and "fourers".
    assert_eq!(data.postings.len(), 64 * 46 + 5 + 4);
    assert_eq!(data.forward_offsets[64] as usize, data.postings.len());
    assert!(data
        .forward_narrow
        .iter()
        .all(|t| data.frequent_terms.binary_search(&u32::from(*t)).is_err()));
    // Frequencies: the postings', then the bitmaps' (all 1 here, so sparse and empty).
    assert!(data.frequencies.is_empty() && data.frequency_exceptions.is_empty());

    // Below the cap, the threshold decides: "fivers" pays, "fourers" does not.
    let data = sixty_four(&["everywhere".to_string()]);
    assert_eq!(frequent_names(&data), ["everywhere", "fivers"]);
    // Documents 0..5 are the last five ordinals.
    assert_eq!(data.frequent_bits, vec![u64::MAX, 0b11111 << 59]);
    assert_eq!(data.frequent_counts[..59], [1; 59]);
    assert_eq!(data.frequent_counts[59..], [2; 5]);
    // "fourers" and the own words: postings and forward entries.
    assert_eq!(data.postings.len(), 64 + 4);
}

fn term_of(data: &SegmentData, i: u32) -> String {
    let (a, b) = (data.term_offsets[i as usize], data.term_offsets[i as usize + 1]);
    String::from_utf8(data.term_bytes[a as usize..b as usize].to_vec()).unwrap()
}

#[test]
fn counts_frequencies_and_tokens() {
    let mut b = SegmentBuilder::new();
    let mut d = doc(1, "echo echo echo delta", false, 0.0);
    d.insights = vec!["echo".into()];
    b.add(&d).unwrap();
    let data = b.data().unwrap();
    assert_eq!(data.forward_offsets, vec![0, 2], "two distinct keywords");
    assert_eq!(data.token_counts, vec![5]);
    // Sorted terms: delta, echo. One posting in two is not 1: stored densely.
    assert_eq!(data.frequencies, vec![1, 4]);
    assert!(data.frequency_exceptions.is_empty() && data.frequency_values.is_empty());
}

#[test]
fn stores_frequencies_sparsely_when_few_differ_from_one() {
    // Ten postings, one of frequency 3: an exception (5 bytes) beats ten dense bytes.
    let mut b = SegmentBuilder::new();
    b.add(&doc(1, "alpha bravo charlie delta echo", false, 0.0)).unwrap();
    b.add(&doc(2, "foxtrot golf hotel india juliet juliet juliet", false, 0.0)).unwrap();
    let data = b.data().unwrap();
    assert!(data.frequencies.is_empty());
    // Sorted terms: alpha .. juliet; juliet is the last term, with one posting.
    assert_eq!(data.frequency_exceptions, vec![9]);
    assert_eq!(data.frequency_values, vec![3]);
    // Two postings in ten differ from 1: 10 bytes dense against 10 sparse, dense wins.
    let mut b = SegmentBuilder::new();
    b.add(&doc(1, "alpha bravo charlie delta echo echo", false, 0.0)).unwrap();
    b.add(&doc(2, "foxtrot golf hotel india juliet juliet", false, 0.0)).unwrap();
    let data = b.data().unwrap();
    assert_eq!(data.frequencies, vec![1, 1, 1, 1, 2, 1, 1, 1, 1, 2]);
    assert!(data.frequency_exceptions.is_empty());
}

#[test]
fn refuses_duplicates_and_bad_scores() {
    let mut b = SegmentBuilder::new();
    b.add(&doc(1, "a", false, 0.5)).unwrap();
    assert!(matches!(b.add(&doc(1, "b", false, 0.5)), Err(BuildError::DuplicateId { .. })));
    assert!(matches!(b.add(&doc(2, "b", false, 1.5)), Err(BuildError::Score { .. })));
    assert!(matches!(b.add(&doc(3, "b", false, f32::NAN)), Err(BuildError::Score { .. })));
    assert_eq!(b.len(), 1);
}

#[test]
fn gist_cuts_on_a_char_boundary() {
    let long = "é".repeat(GIST_MAX_BYTES);
    let g = gist(&long);
    assert!(g.len() <= GIST_MAX_BYTES && g.len() >= GIST_MAX_BYTES - 1);
    assert!(g.chars().all(|c| c == 'é'));
}

/// Documents with a shared vocabulary (mixed case, some non-ASCII), repeated words and
/// several domains.
fn many(n: usize, seed: u32) -> Vec<Document> {
    let words = ["Rust", "mmap", "ÉCOLE", "segment", "index", "writer", "reader", "naïve"];
    (0..n)
        .map(|i| {
            let pick = |k: usize| words[(i * 7 + k * 3 + seed as usize) % words.len()];
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            id[8..12].copy_from_slice(&seed.to_be_bytes());
            Document {
                id,
                domain: format!("domain{}", i % 5),
                question: format!("{} {} w{} {}?", pick(0), pick(1), i % 97, pick(0)),
                insights: vec![format!("{} term{}", pick(2), i % 1013)],
                synthesis: format!("{} x{}", pick(3), i % 7),
                score: (i % 11) as f32 / 10.0,
                sacred: i % 13 == 0,
                timestamp_micros: (i % 1000) as i64,
            }
        })
        .collect()
}

#[test]
fn batches_on_threads_give_the_bytes_of_single_adds() {
    let docs = many(3 * PARALLEL_MIN_DOCS, 1);
    let mut single = SegmentBuilder::new().generation(2);
    for d in &docs {
        single.add(d).unwrap();
    }
    let mut batched = SegmentBuilder::new().generation(2);
    let (a, b) = docs.split_at(100);
    let (b, c) = b.split_at(b.len() - 3);
    batched.add(&a[0]).unwrap();
    batched.add_batch(&a[1..]).unwrap();
    batched.add_batch(b).unwrap();
    // Single adds after a merged batch reuse the merged term table.
    for d in c {
        batched.add(d).unwrap();
    }
    assert_eq!(batched.len(), docs.len());
    assert_eq!(batched.data().unwrap(), single.data().unwrap());
    assert_eq!(batched.to_bytes().unwrap(), single.to_bytes().unwrap());
}

#[test]
fn a_refused_batch_adds_nothing() {
    let first = many(50, 2);
    let mut b = SegmentBuilder::new();
    b.add_batch(&first).unwrap();
    let before = b.to_bytes().unwrap();

    let mut batch = many(PARALLEL_MIN_DOCS + 10, 3);
    batch.push(first[7].clone());
    let err = b.add_batch(&batch).unwrap_err();
    assert!(matches!(err, BuildError::DuplicateId { id } if id == first[7].id), "{err}");

    let mut batch = many(20, 4);
    batch.push(batch[3].clone());
    assert!(matches!(b.add_batch(&batch), Err(BuildError::DuplicateId { .. })));

    let mut batch = many(20, 5);
    batch[19].score = -0.5;
    assert!(matches!(b.add_batch(&batch), Err(BuildError::Score { .. })));

    assert_eq!(b.len(), 50);
    assert_eq!(b.to_bytes().unwrap(), before, "a refused batch changed the segment");
    // The ids of refused batches stay free.
    b.add_batch(&many(20, 4)).unwrap();
    assert_eq!(b.len(), 70);
}

#[test]
fn interns_each_keyword_once_across_batches() {
    let mut b = SegmentBuilder::new();
    b.add_batch(&many(2 * PARALLEL_MIN_DOCS, 6)).unwrap();
    let data = b.data().unwrap();
    let terms: Vec<&[u8]> = data
        .term_offsets
        .windows(2)
        .map(|w| &data.term_bytes[w[0] as usize..w[1] as usize])
        .collect();
    assert!(terms.windows(2).all(|w| w[0] < w[1]), "terms not sorted and distinct");
    assert!(terms.contains(&"école".as_bytes()) && terms.contains(&"rust".as_bytes()));
    let rust = terms.iter().position(|t| *t == b"rust").unwrap();
    let postings = &data.postings
        [data.posting_offsets[rust] as usize..data.posting_offsets[rust + 1] as usize];
    assert!(postings.windows(2).all(|w| w[0] < w[1]), "postings not ascending");
}

#[test]
fn same_documents_in_any_order_give_the_same_bytes() {
    let docs =
        [doc(1, "alpha beta", false, 0.9), doc(2, "gamma", true, 0.2), doc(3, "beta", false, 0.9)];
    let mut a = SegmentBuilder::new().generation(4);
    let mut b = SegmentBuilder::new().generation(4);
    for d in &docs {
        a.add(d).unwrap();
    }
    for d in docs.iter().rev() {
        b.add(d).unwrap();
    }
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
}
