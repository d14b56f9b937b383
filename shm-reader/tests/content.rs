//! Content files read through a `Reader`: quoted zero-copy, a missing file is no content, a
//! damaged or foreign one is an error naming the file.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use index_publisher::Publisher;
use semantic_index::content::{content_file_name, ContentBuilder, ContentFields};
use semantic_index::layout::segment_path;
use semantic_index::{Document, SegmentBuilder};
use shm_reader::{ContentError, Hits, Query, Reader, ReaderError, SearchOptions};

fn doc(n: u8, question: &str) -> Document {
    Document {
        id: [n; 16],
        domain: "storage".into(),
        question: question.into(),
        ..Default::default()
    }
}

/// Publishes one segment of `docs`, with a content file unless `content` is false.
fn publish(dir: &std::path::Path, docs: &[Document], content: bool) -> String {
    let mut p = Publisher::open(dir).unwrap();
    let mut builder = SegmentBuilder::new().generation(p.generation() + 1);
    let mut c = ContentBuilder::new();
    for d in docs {
        builder.add(d).unwrap();
        let insights = vec![format!("insight of {}", d.question), "shared insight".to_string()];
        c.add(
            d.id,
            &ContentFields {
                question: &d.question,
                synthesis: "the synthesis",
                insights: &insights,
                ..Default::default()
            },
        );
    }
    let entry = p.write_segment(&builder).unwrap();
    if content {
        p.write_content(&entry, &c).unwrap();
    }
    p.publish(1, vec![entry.clone()]).unwrap();
    entry.file
}

#[test]
fn hits_read_their_memory_s_content() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &[doc(1, "why fsync the directory"), doc(2, "how rename works")], true);
    let reader = Reader::open(dir.path()).unwrap();
    let snapshot = reader.snapshot();
    let mut hits = Hits::with_capacity(4);
    snapshot.search(&Query::from_text("fsync directory"), &SearchOptions::default(), &mut hits);
    assert_eq!(hits.len(), 1);
    let content = snapshot.content(&hits.as_slice()[0]).unwrap().unwrap();
    assert_eq!(content.question(), "why fsync the directory");
    assert_eq!(content.synthesis(), "the synthesis");
    assert_eq!(
        content.insights().collect::<Vec<_>>(),
        ["insight of why fsync the directory", "shared insight"]
    );
    let other = snapshot.content_of(&[2; 16]).unwrap().unwrap();
    assert_eq!(other.question(), "how rename works");
    assert!(snapshot.content_of(&[3; 16]).unwrap().is_none());
    assert_eq!(snapshot.segments_without_content(), 0);
}

#[test]
fn a_segment_without_content_file_has_no_content() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &[doc(1, "why fsync the directory")], false);
    let snapshot = Reader::open(dir.path()).unwrap().snapshot();
    assert!(snapshot.content_of(&[1; 16]).unwrap().is_none());
    assert_eq!(snapshot.segments_without_content(), 1);
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        text = format!("{text}: {s}");
        next = s.source();
    }
    text
}

fn overwrite(path: &std::path::Path, bytes: &[u8]) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_or_foreign_content_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = publish(dir.path(), &[doc(1, "why fsync the directory"), doc(2, "rename")], true);
    let path = segment_path(dir.path(), &content_file_name(&file));
    let good = fs::read(&path).unwrap();

    // A flipped byte in an entry: open passes (header and table), reading it fails.
    let mut bytes = good.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    overwrite(&path, &bytes);
    let snapshot = Reader::open(dir.path()).unwrap().snapshot();
    assert!(matches!(snapshot.content_of(&[2; 16]), Err(ContentError::Entry { .. })));
    assert!(snapshot.content_of(&[1; 16]).unwrap().is_some(), "other entries stay readable");

    // Cut short: refused at open, naming the file.
    overwrite(&path, &good[..good.len() - 3]);
    let err = Reader::open(dir.path()).unwrap_err();
    assert!(matches!(err, ReaderError::Content(_)), "{err}");
    assert!(err.to_string().contains(&content_file_name(&file)), "{err}");

    // Another segment's content file.
    let mut other = ContentBuilder::new();
    other.add([1; 16], &ContentFields { question: "q", ..Default::default() });
    overwrite(&path, &other.to_bytes(12345));
    let err = Reader::open(dir.path()).unwrap_err();
    assert!(chain(&err).contains("belongs to segment"), "{}", chain(&err));
}
