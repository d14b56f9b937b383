//! Random corpora and a brute-force scorer kept independent of the crate's search.

use proptest::prelude::*;
use semantic_index::Document;
use shm_reader::{Ranking, SearchOptions, Segment};

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
    proptest::collection::vec(doc_strategy(), 0..max).prop_map(distinct)
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
            ranking: Ranking::Jaccard,
        })
}

/// [`options_strategy`] under BM25F.
pub(crate) fn ranked_options_strategy() -> impl Strategy<Value = SearchOptions> {
    options_strategy().prop_map(|o| SearchOptions { ranking: Ranking::Bm25f, ..o })
}

/// The default options under the Jaccard ranking.
pub(crate) fn jaccard_default() -> SearchOptions {
    SearchOptions { ranking: Ranking::Jaccard, ..SearchOptions::default() }
}

/// The naive BM25F scorer: every document of every segment (`segments` lists each segment's
/// documents), per-field term counts from the analyzer, the format's quantized impact with each
/// segment's own mean field lengths, idf from the summed document frequencies, a full sort.
/// Returns `(id, score)` best first.
pub(crate) fn brute_force_ranked(
    segments: &[&[Document]],
    query: &[String],
    o: &SearchOptions,
) -> Vec<([u8; 16], f64)> {
    let params = semantic_index::Bm25fParams::DEFAULT;
    let fields = |d: &Document| -> [Vec<String>; 3] {
        let insights: Vec<String> = d
            .insights
            .iter()
            .take(semantic_index::DOCUMENT_INSIGHTS)
            .flat_map(|i| semantic_index::analyze(i))
            .collect();
        [semantic_index::analyze(&d.question), insights, semantic_index::analyze(&d.synthesis)]
    };
    let analyzed: Vec<Vec<[Vec<String>; 3]>> =
        segments.iter().map(|docs| docs.iter().map(fields).collect()).collect();
    let n: u64 = segments.iter().map(|s| s.len() as u64).sum();
    let weights: Vec<u64> = query
        .iter()
        .map(|t| {
            let df = analyzed.iter().flatten().filter(|f| f.iter().any(|f| f.contains(t))).count();
            let (nf, dff) = (n as f64, (df as u64).min(n) as f64);
            let idf = (1.0 + (nf - dff + 0.5) / (dff + 0.5)).ln();
            ((idf * 65_536.0).round() as u64).max(1)
        })
        .collect();
    let mut scored: Vec<([u8; 16], f64, i64)> = Vec::new();
    for (docs, analyzed) in segments.iter().zip(&analyzed) {
        let mut avg = [0f32; 3];
        for (f, a) in avg.iter_mut().enumerate() {
            let total: u64 = analyzed.iter().map(|d| d[f].len() as u64).sum();
            *a = if docs.is_empty() { 0.0 } else { (total as f64 / docs.len() as f64) as f32 };
        }
        for (d, f) in docs.iter().zip(analyzed) {
            if o.sacred_only && !d.sacred
                || o.domain.as_ref().is_some_and(|dom| *dom != d.domain)
                || o.exclude == Some(d.id)
            {
                continue;
            }
            let len = [f[0].len() as u32, f[1].len() as u32, f[2].len() as u32];
            let mut relevance = 0u64;
            for (t, w) in query.iter().zip(&weights) {
                let tf = [0, 1, 2].map(|i| f[i].iter().filter(|x| *x == t).count() as u32);
                relevance += w * u64::from(params.impact(tf, len, avg));
            }
            if relevance == 0 {
                continue;
            }
            let s = shm_reader::ranked_score(relevance, d.score, d.sacred, o);
            scored.push((d.id, s, d.timestamp_micros));
        }
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    scored.truncate(o.limit);
    scored.into_iter().map(|(id, s, _)| (id, s)).collect()
}

/// `docs` sorted by id, repeated ids dropped (a segment holds each id once).
pub(crate) fn distinct(mut docs: Vec<Document>) -> Vec<Document> {
    docs.sort_by_key(|d| d.id);
    docs.dedup_by_key(|d| d.id);
    docs
}

/// Every `n`-th ordinal of `segment` deleted (none when `n < 2`), and the deleted ids.
pub(crate) fn every_nth_deleted(
    segment: &Segment<shm_reader::Aligned>,
    n: usize,
) -> (shm_reader::DeletedSet, Vec<[u8; 16]>) {
    let ordinals: Vec<u32> = if n < 2 {
        Vec::new()
    } else {
        (0..segment.len()).filter(|o| (*o as usize).is_multiple_of(n)).collect()
    };
    let ids = ordinals.iter().map(|&o| segment.doc(o).unwrap().id()).collect();
    (shm_reader::DeletedSet::from_sorted(&ordinals, segment.len()), ids)
}

/// [`brute_force_ranked`] over one segment's `docs` without the `deleted` ones, which still
/// count in the statistics (as they do in the segment).
pub(crate) fn brute_force_ranked_live(
    docs: &[Document],
    query: &[String],
    o: &SearchOptions,
    deleted: &[[u8; 16]],
) -> Vec<([u8; 16], f64)> {
    let all = SearchOptions { limit: docs.len(), ..o.clone() };
    let mut want = brute_force_ranked(&[docs], query, &all);
    want.retain(|(id, _)| !deleted.contains(id));
    want.truncate(o.limit);
    want
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

pub(crate) fn segment_of(docs: &[Document], generation: u64) -> Segment<shm_reader::Aligned> {
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
