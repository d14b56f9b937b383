//! Proof that search does not allocate: a counting global allocator around 1,000 searches.
//! Its own test binary, so that the allocator sees no other test's threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use index_publisher::Publisher;
use semantic_index::{Document, SegmentBuilder};
use shm_reader::{DeletedSet, Hits, Query, Ranking, Reader, SearchOptions};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds GlobalAlloc's contract, which System needs.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WORDS: [&str; 12] = [
    "memory",
    "index",
    "sacred",
    "apprentice",
    "segment",
    "search",
    "socket",
    "witness",
    "pattern",
    "store",
    "crash",
    "mmap",
];

fn corpus(n: u32, offset: u32) -> Vec<Document> {
    (0..n)
        .map(|i| {
            let i = i + offset;
            let words: Vec<&str> = (0..6).map(|k| WORDS[((i * 7 + k * 5) % 12) as usize]).collect();
            let mut id = [0u8; 16];
            id[12..].copy_from_slice(&i.to_be_bytes());
            Document {
                id,
                domain: format!("d{}", i % 4),
                question: words.join(" "),
                score: (i % 100) as f32 / 100.0,
                sacred: i.is_multiple_of(9),
                timestamp_micros: i64::from(i),
                ..Default::default()
            }
        })
        .collect()
}

#[test]
fn a_thousand_searches_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    let mut entries = Vec::new();
    for part in 0..3 {
        let mut b = SegmentBuilder::new();
        for d in corpus(3000, part * 3000) {
            b.add(&d).unwrap();
        }
        entries.push(p.write_segment(&b).unwrap());
    }
    entries[1].deleted = vec![0, 5, 17];
    p.publish(1, entries).unwrap();
    let mut reader = Reader::open(dir.path()).unwrap();
    let segment = shm_reader::Segment::read(semantic_index::layout::segment_path(
        dir.path(),
        &p.current().unwrap().segments[0].file,
    ))
    .unwrap();

    // Prepare everything first: queries, options, buffers.
    let queries: Vec<Query> = (0..50)
        .map(|i| Query::from_keywords((0..1 + i % 5).map(|k| WORDS[(i * 3 + k * 7) % 12])))
        .collect();
    // Both rankings (BM25F is the default), each with filters and weights.
    let options: Vec<SearchOptions> = [Ranking::Bm25f, Ranking::Jaccard]
        .into_iter()
        .flat_map(|ranking| {
            let base = SearchOptions { ranking, ..Default::default() };
            [
                base.clone(),
                SearchOptions { domain: Some("d2".into()), ..base.clone() },
                SearchOptions { sacred_only: true, ..base.clone() },
                SearchOptions { w_score: 0.0, w_sacred: 0.0, limit: 25, ..base.clone() },
                SearchOptions { domain: Some("nowhere".into()), sacred_only: true, ..base },
            ]
        })
        .collect();
    let mut hits = Hits::with_capacity(25);
    let empty = DeletedSet::empty();
    // Warm up: the reader's first refresh may map the beacon.
    reader.search(&queries[0], &options[0], &mut hits).unwrap();

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut total_hits = 0;
    for i in 0..1000 {
        let (q, o) = (&queries[i % queries.len()], &options[i % options.len()]);
        if i % 2 == 0 {
            reader.search(q, o, &mut hits).unwrap();
        } else {
            hits.clear();
            segment.search(q, o, &empty, 0, &mut hits);
        }
        total_hits += hits.len();
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(total_hits > 1000, "the searches must find something: {total_hits}");
    assert_eq!(after - before, 0, "allocations during 1,000 searches");
}
