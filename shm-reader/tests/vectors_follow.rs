//! `SnapshotVectors::follow`: a later generation keeps the mappings of the segments that stay
//! live (no file opened or mapped again for them) and maps only the new segments' files.

use index_publisher::Publisher;
use semantic_index::vectors::{encode, vectors_path, VECTORS_DIR};
use semantic_index::{Document, SegmentBuilder};
use shm_reader::vectors::SnapshotVectors;
use shm_reader::Reader;

const DIM: usize = 8;

fn document(i: u32) -> Document {
    let mut id = [0u8; 16];
    id[12..].copy_from_slice(&i.to_be_bytes());
    Document {
        id,
        domain: "d".into(),
        question: format!("memory number {i} about segments"),
        timestamp_micros: i64::from(i),
        ..Default::default()
    }
}

/// Writes the vector file of every live segment of `reader`'s snapshot that has none yet.
fn write_vectors(store: &std::path::Path, reader: &Reader) {
    let snapshot = reader.snapshot();
    std::fs::create_dir_all(store.join(VECTORS_DIR)).unwrap();
    let files: Vec<String> = snapshot.segment_files().map(|(f, _)| f.to_owned()).collect();
    for (segment, file) in files.iter().enumerate() {
        let path = vectors_path(store, file);
        if path.exists() {
            continue;
        }
        let count = snapshot.segment_doc_count(segment).unwrap();
        let ids: Vec<[u8; 16]> =
            (0..count).map(|o| snapshot.segment_doc_id(segment, o).unwrap()).collect();
        let flat: Vec<f32> =
            (0..count as usize * DIM).map(|k| if k % DIM == segment { 1.0 } else { 0.1 }).collect();
        std::fs::write(path, encode(&ids, &flat, DIM, "t").unwrap()).unwrap();
    }
}

#[test]
fn follow_keeps_live_segments_mappings_and_maps_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let mut p = Publisher::open(store).unwrap();
    let mut b = SegmentBuilder::new();
    for i in 0..50 {
        b.add(&document(i)).unwrap();
    }
    let first = p.write_segment(&b).unwrap();
    let first_file = first.file.clone();
    p.publish(1, vec![first.clone()]).unwrap();
    let mut reader = Reader::open(store).unwrap();
    write_vectors(store, &reader);
    let vectors = SnapshotVectors::open(store, &reader.snapshot());
    assert!(vectors.segment(0).is_some());

    // Generation 2 adds a segment. The first segment's vector file is unlinked (as the writer
    // may do once no manifest names it): only a kept mapping can still serve it.
    let mut b = SegmentBuilder::new();
    for i in 50..80 {
        b.add(&document(i)).unwrap();
    }
    let second = p.write_segment(&b).unwrap();
    p.publish(2, vec![first, second]).unwrap();
    assert!(reader.refresh().unwrap());
    write_vectors(store, &reader);
    std::fs::remove_file(vectors_path(store, &first_file)).unwrap();

    let snapshot = reader.snapshot();
    let fresh = SnapshotVectors::open(store, &snapshot);
    let first_at = snapshot.segment_files().position(|(f, _)| f == first_file).unwrap();
    assert!(fresh.segment(first_at).is_none(), "open maps files anew");
    let followed = vectors.follow(store, &snapshot);
    assert_eq!(followed.generation(), 2);
    assert_eq!(followed.segment(first_at).map(|v| v.len()), Some(50));
    assert_eq!(followed.segment(1 - first_at).map(|v| v.len()), Some(30));
    assert!(followed.problems().is_empty(), "{:?}", followed.problems());
}
