//! The segment reader on hostile bytes: opening must return a segment or an error, never panic;
//! a segment that opens must answer searches and lookups without panicking.
//!
//! Each input is tried twice: as a segment file as it is (which exercises the header and the
//! checksum), and as a recipe for a real segment (first half: documents to build it from;
//! second half: bytes to damage at chosen offsets) whose checksum is then forged, so that rkyv
//! validation and the table checks alone stand between the damage and the search.
#![no_main]

use libfuzzer_sys::fuzz_target;
use semantic_index::format::{self, HEADER_LEN};
use semantic_index::{Document, SegmentBuilder};
use shm_reader::{DeletedSet, Hits, Query, Ranking, SearchOptions, Segment};

const WORDS: [&str; 12] = [
    "memory", "index", "crash", "segment", "reader", "writer", "sacred", "insight", "durable",
    "apprentice", "search", "generation",
];

fn exercise(bytes: &[u8]) {
    let Ok(segment) = Segment::from_bytes(shm_reader::aligned(bytes)) else { return };
    let _ = segment.verify();
    let mut hits = Hits::with_capacity(10);
    let deleted = DeletedSet::from_sorted(&[0], segment.len());
    for (text, options) in [
        ("memory index crash", SearchOptions::default()),
        ("segment", SearchOptions { sacred_only: true, ..SearchOptions::default() }),
        ("reader writer durable search", SearchOptions { limit: 3, ..SearchOptions::default() }),
        ("insight", SearchOptions { domain: Some("d1".into()), ..SearchOptions::default() }),
        // The same walks under Jaccard (BM25F is the default above).
        ("memory index crash", SearchOptions { ranking: Ranking::Jaccard, ..Default::default() }),
        ("segment", SearchOptions { ranking: Ranking::Jaccard, limit: 3, ..Default::default() }),
    ] {
        let query = Query::from_text(text);
        hits.clear();
        segment.search(&query, &options, &deleted, 0, &mut hits);
        for hit in hits.iter() {
            let _ = segment.explain(&query, hit.ordinal, &options);
        }
    }
    for ordinal in 0..segment.len().min(64) {
        if let Some(doc) = segment.doc(ordinal) {
            let _ = (doc.gist(), doc.domain(), doc.keywords().count());
            let _ = (doc.term_frequency("memory"), doc.term_frequency("segment"));
            for keyword in doc.keywords().take(4) {
                let _ = doc.term_frequency(keyword);
            }
            let _ = segment.find(&doc.id());
            let _ = segment.query_for(ordinal);
        }
    }
    let _ = segment.sacred().take(16).count();
}

/// Documents described by `recipe`, four bytes each: two words, domain and flags.
fn documents(recipe: &[u8]) -> Vec<Document> {
    recipe
        .chunks_exact(4)
        .enumerate()
        .map(|(i, c)| Document {
            id: (i as u128 + u128::from(c[3])).to_be_bytes(),
            domain: format!("d{}", c[2] % 3),
            question: format!(
                "{} {}",
                WORDS[usize::from(c[0]) % WORDS.len()],
                WORDS[usize::from(c[1]) % WORDS.len()]
            ),
            insights: vec![WORDS[usize::from(c[2] >> 4) % WORDS.len()].to_string()],
            synthesis: String::new(),
            score: f32::from(c[3] % 5) / 4.0,
            sacred: c[2] & 1 == 1,
            timestamp_micros: i64::from(c[1]),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    exercise(data);

    let (recipe, damage) = data.split_at(data.len() / 2);
    let mut builder = SegmentBuilder::new();
    for doc in documents(recipe) {
        let _ = builder.add(&doc);
    }
    let Ok(mut bytes) = builder.to_bytes() else { return };
    let payload = bytes.len() - HEADER_LEN;
    if payload == 0 {
        return;
    }
    for d in damage.chunks_exact(3) {
        let at = HEADER_LEN + usize::from(u16::from_le_bytes([d[0], d[1]])) % payload;
        bytes[at] ^= d[2];
    }
    let sum = format::checksum(&bytes[..format::CHECKSUMMED_HEADER_LEN], &bytes[HEADER_LEN..]);
    bytes[40..48].copy_from_slice(&sum.to_le_bytes());
    exercise(&bytes);
});
