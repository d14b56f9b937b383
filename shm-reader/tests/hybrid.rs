//! Hybrid and vector search over mapped vector files: the vector ranking against brute force
//! (exact scan, and the inverted lists' recall), the fusion against reciprocal rank fusion of
//! the two rankings computed apart, and no allocation across a thousand searches (a counting
//! global allocator; its own test binary, so that it sees no other test's threads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use index_publisher::Publisher;
use semantic_index::vectors::{encode, vectors_path, VECTORS_DIR};
use semantic_index::{Document, SegmentBuilder};
use shm_reader::vectors::{QueryVector, SnapshotVectors, VectorHits};
use shm_reader::{Hits, HybridSearch, Query, Ranking, Reader, SearchOptions};

struct Counting;

thread_local! {
    /// This thread's allocations: the harness's own thread (its "running for over 60
    /// seconds" notice on a slow machine) does not count.
    static MINE: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds GlobalAlloc's contract, which System needs.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DIM: usize = 32;
const WORDS: [&str; 8] =
    ["memory", "index", "sacred", "apprentice", "segment", "search", "socket", "witness"];

/// A unit vector near topic `i % 16`'s direction (deterministic noise).
fn vector(i: u32) -> Vec<f32> {
    let topic = (i % 16) as usize;
    let mut v: Vec<f32> =
        (0..DIM).map(|d| (i as f32 * 12.9898 + d as f32 * 78.233).sin() * 0.6).collect();
    v[topic] += 1.0;
    v[(topic + 5) % DIM] += 0.5;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn document(i: u32) -> Document {
    let words: Vec<&str> = (0..4).map(|k| WORDS[((i * 3 + k * 5) % 8) as usize]).collect();
    let mut id = [0u8; 16];
    id[12..].copy_from_slice(&i.to_be_bytes());
    Document {
        id,
        domain: format!("d{}", i % 3),
        question: words.join(" "),
        timestamp_micros: i64::from(i),
        ..Default::default()
    }
}

#[test]
fn hybrid_search_matches_brute_force_and_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    // A small segment (scanned whole) and a large one (inverted lists).
    let mut entries = Vec::new();
    for range in [0..600u32, 600..5600] {
        let mut b = SegmentBuilder::new();
        for i in range {
            b.add(&document(i)).unwrap();
        }
        entries.push(p.write_segment(&b).unwrap());
    }
    p.publish(1, entries).unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    let snapshot = reader.snapshot();
    // Each segment's vectors in its ordinal order (the builder orders documents its own way).
    std::fs::create_dir_all(dir.path().join(VECTORS_DIR)).unwrap();
    let mut all: Vec<(u32, u32, u32)> = Vec::new(); // (segment, ordinal, document number)
    let files: Vec<String> = snapshot.segment_files().map(|(f, _)| f.to_owned()).collect();
    for (segment, file) in files.iter().enumerate() {
        let count = snapshot.segment_doc_count(segment).unwrap();
        let ids: Vec<[u8; 16]> =
            (0..count).map(|o| snapshot.segment_doc_id(segment, o).unwrap()).collect();
        let mut flat = Vec::new();
        for (ordinal, id) in ids.iter().enumerate() {
            let i = u32::from_be_bytes(id[12..].try_into().unwrap());
            flat.extend(vector(i));
            all.push((segment as u32, ordinal as u32, i));
        }
        let bytes = encode(&ids, &flat, DIM, "t").unwrap();
        std::fs::write(vectors_path(dir.path(), file), bytes).unwrap();
    }
    let vectors = SnapshotVectors::open(dir.path(), &snapshot);
    assert!(vectors.problems().is_empty(), "{:?}", vectors.problems());
    assert_eq!(vectors.segment(0).unwrap().lists(), 0);
    assert!(vectors.segment(1).unwrap().lists() > 16, "the large file has lists");

    // The vector side: the exact scan equals brute force over the int8 similarities, and the
    // default probes find most of the exact top 10.
    let mut exact = VectorHits::with_capacity(10);
    exact.set_probes(usize::MAX);
    let mut approximate = VectorHits::with_capacity(10);
    let mut found = 0;
    for q in 0..50u32 {
        let query = QueryVector::new(&vector(q * 7919 + 3));
        vectors.search(&snapshot, &query, &mut exact);
        let mut brute: Vec<(f32, u32, u32)> = all
            .iter()
            .map(|&(s, o, _)| (vectors.similarity(&query, s, o).unwrap(), s, o))
            .collect();
        brute.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        // The same similarities (memories of equal similarity may swap at the 10th place).
        let top: Vec<(u32, u32)> =
            exact.as_slice().iter().map(|h| (h.segment, h.ordinal)).collect();
        let got: Vec<f32> = exact.as_slice().iter().map(|h| h.similarity).collect();
        let want: Vec<f32> = brute[..10].iter().map(|&(sim, _, _)| sim).collect();
        assert_eq!(got, want, "query {q}");
        vectors.search(&snapshot, &query, &mut approximate);
        found +=
            approximate.as_slice().iter().filter(|h| top.contains(&(h.segment, h.ordinal))).count();
    }
    assert!(found as f64 / 500.0 >= 0.9, "recall@10 of the lists: {found}/500");

    // The fusion: RRF of the lexical top 100 and the vector top 100, computed apart.
    let mut search = HybridSearch::new(DIM, 100);
    let embedding = vector(42);
    let query = Query::from_text("apprentice socket").with_embedding(&embedding);
    let options = SearchOptions { ranking: Ranking::Hybrid, limit: 10, ..Default::default() };
    let mut hits = Hits::with_capacity(10);
    search.search(&snapshot, &vectors, &query, &options, &mut hits);
    assert_eq!(hits.len(), 10);
    let mut lexical = Hits::with_capacity(100);
    let lexical_options = SearchOptions { limit: 100, ..Default::default() };
    snapshot.search(&query, &lexical_options, &mut lexical);
    // As deep as the hybrid's own vector side when nothing is filtered: the 4-bit pass keeps
    // `k + 32` candidates, so a deeper search may re-rank a different top 100.
    let mut by_vector = VectorHits::with_capacity(100);
    vectors.search(&snapshot, &QueryVector::new(&embedding), &mut by_vector);
    let rank_of = |s: u32, o: u32| {
        let l = lexical.iter().position(|h| (h.segment, h.ordinal) == (s, o));
        let v = by_vector.as_slice()[..100].iter().position(|h| (h.segment, h.ordinal) == (s, o));
        let part = |r: Option<usize>| r.map_or(0.0, |r| 1.0 / (61.0 + r as f64));
        part(l) + part(v)
    };
    for h in hits.iter() {
        assert!((h.score - rank_of(h.segment, h.ordinal)).abs() < 1e-12, "{h:?}");
        let c = search.contribution(h.segment, h.ordinal).unwrap();
        assert!((c.lexical_part + c.vector_part - h.score).abs() < 1e-12);
    }
    assert!(hits.as_slice().windows(2).all(|w| w[0].score >= w[1].score));
    // Filters hold on both sides.
    let filtered = SearchOptions { domain: Some("d1".into()), ..options.clone() };
    search.search(&snapshot, &vectors, &query, &filtered, &mut hits);
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| document_of(&all, h.segment, h.ordinal) % 3 == 1));

    // No allocation: a thousand searches of prepared queries, every ranking and filter.
    let queries: Vec<Query> = (0..20u32)
        .map(|i| {
            let words = [WORDS[(i % 8) as usize], WORDS[((i * 3 + 1) % 8) as usize]];
            Query::from_keywords(words).with_embedding(&vector(i * 31 + 5))
        })
        .collect();
    let option_sets: Vec<SearchOptions> = [Ranking::Hybrid, Ranking::Vector]
        .into_iter()
        .flat_map(|ranking| {
            let base = SearchOptions { ranking, limit: 10, ..Default::default() };
            [
                base.clone(),
                SearchOptions { domain: Some("d2".into()), ..base.clone() },
                SearchOptions { sacred_only: true, ..base },
            ]
        })
        .collect();
    // Warm up: each query and option set once (first uses may size scratch).
    for q in &queries {
        for o in &option_sets {
            search.search(&snapshot, &vectors, q, o, &mut hits);
        }
    }
    let before = MINE.with(Cell::get);
    let mut total = 0;
    for i in 0..1000 {
        let (q, o) = (&queries[i % queries.len()], &option_sets[i % option_sets.len()]);
        search.search(&snapshot, &vectors, q, o, &mut hits);
        total += hits.len();
    }
    let after = MINE.with(Cell::get);
    assert!(total > 1000, "the searches must find something: {total}");
    assert_eq!(after - before, 0, "allocations during 1,000 hybrid searches");
}

fn document_of(all: &[(u32, u32, u32)], segment: u32, ordinal: u32) -> u32 {
    all.iter().find(|&&(s, o, _)| (s, o) == (segment, ordinal)).map(|&(_, _, i)| i).unwrap()
}
