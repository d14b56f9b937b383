//! Random corpora and a brute-force scorer kept independent of the crate's search.

use proptest::prelude::*;
use semantic_index::Document;
use shm_reader::{SearchOptions, Segment};

pub(crate) const VOCAB: [&str; 24] = [
    "memory",
    "index",
    "apprentice",
    "segment",
    "sacred",
    "insight",
    "reader",
    "writer",
    "socket",
    "process",
    "witness",
    "navigator",
    "pattern",
    "domain",
    "keyword",
    "jaccard",
    "search",
    "store",
    "durable",
    "crash",
    "atomic",
    "mmap",
    "generation",
    "circle",
];

/// How many rare words [`rare`] makes.
pub(crate) const RARE: usize = 60;

/// Rare word `i`: a corpus draws a few per memory from [`RARE`] of them, so that they stay in
/// postings while the [`VOCAB`] words, in a third of the memories or more, become bitmaps.
pub(crate) fn rare(i: usize) -> String {
    let letter = |x: usize| char::from(b'a' + (x % 26) as u8);
    format!("rare{}{}", letter(i / 26), letter(i))
}

pub(crate) fn doc_strategy() -> impl Strategy<Value = Document> {
    (
        any::<[u8; 16]>(),
        0u8..3,
        (
            proptest::collection::vec(0usize..VOCAB.len(), 0..8),
            proptest::collection::vec(0usize..RARE, 0..3),
        ),
        proptest::collection::vec(proptest::collection::vec(0usize..VOCAB.len(), 0..4), 0..7),
        0u8..5,
        any::<bool>(),
        0i64..4,
    )
        .prop_map(|(id, domain, q, insights, score, sacred, ts)| Document {
            id,
            domain: format!("domain-{domain}"),
            question: q
                .0
                .iter()
                .map(|&i| VOCAB[i].to_string())
                .chain(q.1.iter().map(|&i| rare(i)))
                .collect::<Vec<_>>()
                .join(" "),
            insights: insights
                .iter()
                .map(|ws| ws.iter().map(|&i| VOCAB[i]).collect::<Vec<_>>().join(", "))
                .collect(),
            synthesis: String::new(),
            score: f32::from(score) / 4.0,
            sacred,
            timestamp_micros: ts * 1_000_000,
        })
}

pub(crate) fn corpus_strategy(max: usize) -> impl Strategy<Value = Vec<Document>> {
    proptest::collection::vec(doc_strategy(), 0..max).prop_map(|mut docs| {
        docs.sort_by_key(|d| d.id);
        docs.dedup_by_key(|d| d.id);
        docs
    })
}

pub(crate) fn options_strategy() -> impl Strategy<Value = SearchOptions> {
    (
        1usize..12,
        prop::option::of(0u8..4),
        any::<bool>(),
        prop::sample::select(vec![(0.2, 0.3), (0.0, 0.0), (1.0, 0.0), (0.5, 2.0), (0.0, 1.0)]),
    )
        .prop_map(|(limit, domain, sacred_only, (w_score, w_sacred))| SearchOptions {
            limit,
            domain: domain.map(|d| format!("domain-{d}")),
            sacred_only,
            w_score,
            w_sacred,
            exclude: None,
        })
}

pub(crate) fn query_strategy() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(query_word(), 1..5)
}

/// A query keyword: a common word, a rare one, or one no memory has.
pub(crate) fn query_word() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0usize..VOCAB.len()).prop_map(|i| VOCAB[i].to_string()),
        3 => (0usize..RARE).prop_map(rare),
        1 => Just("unknownword".to_string()),
    ]
}

pub(crate) fn segment_of(docs: &[Document], generation: u64) -> Segment<rkyv::util::AlignedVec> {
    let mut b = semantic_index::SegmentBuilder::new().generation(generation);
    for d in docs {
        b.add(d).unwrap();
    }
    Segment::from_bytes(shm_reader::aligned(&b.to_bytes().unwrap())).unwrap()
}

/// The naive scorer: every document, its keyword set, `shm_reader::score`'s formula, a full sort.
pub(crate) fn brute_force(
    docs: &[Document],
    query: &[String],
    o: &SearchOptions,
) -> Vec<([u8; 16], f64)> {
    let q = query.len();
    let mut scored: Vec<([u8; 16], f64, i64)> = Vec::new();
    for d in docs {
        if o.sacred_only && !d.sacred
            || o.domain.as_ref().is_some_and(|dom| *dom != d.domain)
            || o.exclude == Some(d.id)
        {
            continue;
        }
        let kws = semantic_index::document_keywords(&d.question, &d.insights, &d.synthesis);
        let overlap = query.iter().filter(|k| kws.contains(k)).count();
        if overlap == 0 {
            continue;
        }
        let jaccard = overlap as f64 / (q + kws.len() - overlap) as f64;
        let s = jaccard + o.w_score * f64::from(d.score) + if d.sacred { o.w_sacred } else { 0.0 };
        scored.push((d.id, s, d.timestamp_micros));
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    scored.truncate(o.limit);
    scored.into_iter().map(|(id, s, _)| (id, s)).collect()
}

pub(crate) fn assert_same(
    got: &[([u8; 16], f64)],
    want: &[([u8; 16], f64)],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "hit counts differ: got {:?} want {:?}", got, want);
    for (g, w) in got.iter().zip(want) {
        prop_assert!((g.1 - w.1).abs() < 1e-6, "score {} vs {}", g.1, w.1);
        prop_assert_eq!(g.0, w.0, "order differs: got {:?} want {:?}", got, want);
    }
    Ok(())
}
