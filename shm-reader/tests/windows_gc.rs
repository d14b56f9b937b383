//! Windows only (`.ci/wine-tests` runs it under wine): a segment a reader still maps is no error
//! for the writer's garbage collection, the reader's mapping stays intact, and the file is gone
//! once the reader let go. Windows either refuses the deletion (the collection defers it and a
//! later one retries) or marks the file delete-pending until it is unmapped, as wine 8 does; the
//! test holds for both, so under wine it does not exercise the deferral itself (the removal
//! module's unit test checks which errors defer).

use index_publisher::Publisher;
use semantic_index::layout::segment_path;
use semantic_index::{Document, SegmentBuilder};
use shm_reader::Segment;

#[test]
fn a_mapped_segment_is_deleted_by_a_later_collection() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    let mut builder = SegmentBuilder::new();
    builder
        .add(&Document {
            id: [1; 16],
            domain: "d".into(),
            question: "mapped".into(),
            ..Default::default()
        })
        .unwrap();
    let entry = p.write_segment(&builder).unwrap();
    let path = segment_path(dir.path(), &entry.file);
    p.publish(1, vec![entry]).unwrap();
    // SAFETY: the publisher never modifies or truncates a published segment.
    let segment = unsafe { Segment::map(&path) }.unwrap();
    // Two generations later neither the current nor the previous manifest names the segment.
    p.publish(2, Vec::new()).unwrap();
    p.publish(3, Vec::new()).unwrap();
    p.collect_garbage().expect("a mapped segment is no error");
    assert!(path.exists(), "Windows cannot delete a mapped file; it is kept");
    assert_eq!(segment.len(), 1, "the reader's mapping is intact");
    drop(segment);
    p.collect_garbage().unwrap();
    assert!(!path.exists(), "deleted once unmapped");
}
