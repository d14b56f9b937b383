//! Golden files: a small segment and manifest of the current formats, checked in under
//! `tests/data`. One test reads them back; one pins the bytes the builder and the manifest
//! encoder write for the same fixed input, so that a change to the bytes without a version bump
//! fails here.
//!
//! After a deliberate format change (with its version bump and FORMAT.md history entry),
//! regenerate them with `MCS_BLESS_GOLDEN=1 cargo test -p shm-reader --test tests golden`.

use std::path::PathBuf;

use semantic_index::format;
use semantic_index::layout::{Manifest, SegmentEntry, MANIFEST_VERSION};
use semantic_index::{Document, SegmentBuilder};
use shm_reader::{DeletedSet, Hits, Query, Ranking, SearchOptions, Segment};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn segment_file() -> PathBuf {
    data(&format!("segment-v{}.seg", format::VERSION))
}

fn manifest_file() -> PathBuf {
    data(&format!("manifest-v{MANIFEST_VERSION}.man"))
}

const DAY: i64 = 86_400_000_000;

/// The fixed corpus: sacred and not, insights, a synthesis, repeated words, non-ASCII text.
fn corpus() -> Vec<Document> {
    let doc = |n: u8, question: &str, insights: &[&str], synthesis: &str, score, sacred| Document {
        id: [n; 16],
        domain: if n.is_multiple_of(2) { "design".into() } else { "ops".into() },
        question: question.into(),
        insights: insights.iter().map(|s| s.to_string()).collect(),
        synthesis: synthesis.into(),
        score,
        sacred,
        timestamp_micros: 1_700_000_000_000_000 + i64::from(n) * DAY,
    };
    vec![
        doc(
            1,
            "Should apprentices copy the memory index or map it?",
            &["Copying the index into every worker exhausted memory", "A map costs one page table"],
            "Map one immutable segment read-only in every apprentice; never copy it.",
            0.9,
            true,
        ),
        doc(
            2,
            "What survives a crash?",
            &["acknowledged memories"],
            "records are the truth",
            0.4,
            false,
        ),
        doc(
            3,
            "Why fsync the directory after a rename?",
            &[],
            "the rename is durable only then",
            0.7,
            false,
        ),
        doc(4, "Café naïve Straße: non-ASCII words", &["ÉCOLE école"], "", 0.1, false),
        doc(5, "crash crash crash", &["crashed crashes"], "crashing", 0.5, true),
        doc(
            6,
            "How do readers share the index?",
            &["they map it"],
            "one mapped segment",
            0.6,
            false,
        ),
    ]
}

fn built_segment() -> Vec<u8> {
    let mut b = SegmentBuilder::new().generation(3);
    for d in corpus() {
        b.add(&d).unwrap();
    }
    b.to_bytes().unwrap()
}

fn manifest() -> Manifest {
    let checksum = format::Header::decode(&built_segment()).unwrap().checksum;
    Manifest {
        generation: 3,
        commit_seq: 7,
        store_id: *b"golden store id!",
        segments: vec![SegmentEntry {
            file: "0000000000000003-golden.seg".into(),
            doc_count: 6,
            checksum,
            deleted: vec![2],
        }],
    }
}

fn bless() -> bool {
    std::env::var_os("MCS_BLESS_GOLDEN").is_some()
}

#[test]
fn golden_files_read_back() {
    let segment = Segment::read(segment_file()).unwrap();
    segment.verify().unwrap();
    assert_eq!(segment.len(), 6);
    assert_eq!(segment.generation(), 3);
    assert_eq!(segment.sacred_count(), 2);
    let bytes = std::fs::read(segment_file()).unwrap();
    assert_eq!(format::Header::decode(&bytes).unwrap().version, format::VERSION);

    let mut hits = Hits::with_capacity(10);
    let bm25f = SearchOptions::default();
    segment.search(&Query::from_text("crashes"), &bm25f, &DeletedSet::empty(), 0, &mut hits);
    let ids: Vec<u8> = hits.iter().map(|h| h.id[0]).collect();
    assert_eq!(ids, [5, 2], "stemming: crashes, crashed, crashing and crash are one term");
    hits.clear();
    let query = Query::from_text("how do apprentices share memory without copying it");
    segment.search(&query, &bm25f, &DeletedSet::empty(), 0, &mut hits);
    assert_eq!(hits.as_slice()[0].id[0], 1);
    hits.clear();
    let jaccard = SearchOptions { ranking: Ranking::Jaccard, ..SearchOptions::default() };
    segment.search(&Query::from_text("école"), &jaccard, &DeletedSet::empty(), 0, &mut hits);
    assert_eq!(hits.iter().map(|h| h.id[0]).collect::<Vec<_>>(), [4]);

    let read = Manifest::from_bytes(&std::fs::read(manifest_file()).unwrap()).unwrap();
    assert_eq!(read, manifest());
}

#[test]
fn golden_bytes_are_pinned() {
    let (segment, manifest) = (built_segment(), manifest().to_bytes());
    if bless() {
        std::fs::write(segment_file(), &segment).unwrap();
        std::fs::write(manifest_file(), &manifest).unwrap();
    }
    let hint = "the bytes changed: bump the format version (format::VERSION or \
                layout::MANIFEST_VERSION), add a FORMAT.md history entry, then regenerate with \
                MCS_BLESS_GOLDEN=1";
    assert!(std::fs::read(segment_file()).unwrap() == segment, "segment: {hint}");
    assert!(std::fs::read(manifest_file()).unwrap() == manifest, "manifest: {hint}");
}
