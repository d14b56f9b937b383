//! The segment reader on arbitrary bytes: opening must return a segment or an error, never
//! panic; a segment that opens must answer searches and lookups without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shm_reader::{DeletedSet, Hits, Query, SearchOptions, Segment};

fuzz_target!(|data: &[u8]| {
    let Ok(segment) = Segment::from_bytes(shm_reader::aligned(data)) else { return };
    let _ = segment.verify();
    let mut hits = Hits::with_capacity(10);
    let query = Query::from_text("memory index crash");
    let deleted = DeletedSet::from_sorted(&[0], segment.len());
    segment.search(&query, &SearchOptions::default(), &deleted, 0, &mut hits);
    for ordinal in 0..segment.len().min(64) {
        if let Some(doc) = segment.doc(ordinal) {
            let _ = (doc.gist(), doc.domain(), doc.keywords().count());
            let _ = segment.find(&doc.id());
        }
    }
    let _ = segment.sacred().take(16).count();
});
