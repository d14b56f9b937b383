//! Criterion benches of the hot paths: segment build, open (map + validate), search, related.
//! The 100,000-memory corpus is the deterministic one of `benches::corpus` (seed 42).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use semantic_index::SegmentBuilder;
use shm_reader::{DeletedSet, Hits, Query, SearchOptions, Segment};

const N: usize = 100_000;

fn build(docs: &[semantic_index::Document]) -> SegmentBuilder {
    let mut b = SegmentBuilder::new();
    b.add_batch(docs).expect("corpus documents are valid");
    b
}

fn build_one_by_one(docs: &[semantic_index::Document]) -> SegmentBuilder {
    let mut b = SegmentBuilder::new();
    for d in docs {
        b.add(d).expect("corpus documents are valid");
    }
    b
}

fn benches(c: &mut Criterion) {
    let corpus = benches::corpus::generate(N, 42);
    let docs: Vec<_> = corpus.memories.iter().map(|m| m.to_document()).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.seg");
    build(&docs).write_file(&path, 0o444).expect("write segment");

    let mut g = c.benchmark_group("segment");
    g.sample_size(10);
    g.bench_function("build_100k", |b| {
        b.iter(|| black_box(build(&docs).to_bytes().expect("build")))
    });
    g.bench_function("build_100k_one_add_per_document", |b| {
        b.iter(|| black_box(build_one_by_one(&docs).to_bytes().expect("build")))
    });
    g.bench_function("open_100k", |b| {
        // SAFETY: the bench owns the file and never modifies it.
        b.iter(|| black_box(unsafe { Segment::map(&path) }.expect("open")))
    });
    g.finish();

    // SAFETY: as above.
    let segment = unsafe { Segment::map(&path) }.expect("open");
    let queries: Vec<Query> = corpus.queries.iter().map(Query::from_keywords).collect();
    let options = SearchOptions::default();
    let deleted = DeletedSet::empty();
    let mut g = c.benchmark_group("search");
    g.bench_function("1000_queries_top10_100k", |b| {
        b.iter_batched_ref(
            || Hits::with_capacity(10),
            |hits| {
                for q in &queries {
                    hits.clear();
                    segment.search(q, &options, &deleted, 0, hits);
                    black_box(hits.len());
                }
            },
            BatchSize::SmallInput,
        )
    });
    // related(): a memory's own keywords (15-60) as the query, itself excluded.
    let related: Vec<(Query, SearchOptions)> = (0..100u32)
        .filter_map(|i| {
            let ordinal = i * 997 % segment.len();
            let q = segment.query_for(ordinal)?;
            let exclude = segment.doc(ordinal).map(|d| d.id());
            Some((q, SearchOptions { limit: 3, exclude, ..SearchOptions::default() }))
        })
        .collect();
    g.bench_function("100_related_top3_100k", |b| {
        b.iter_batched_ref(
            || Hits::with_capacity(3),
            |hits| {
                for (q, o) in &related {
                    hits.clear();
                    segment.search(q, o, &deleted, 0, hits);
                    black_box(hits.len());
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(search, benches);
criterion_main!(search);
