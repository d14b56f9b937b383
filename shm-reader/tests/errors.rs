//! Error messages name their cause once: in the message, not again down the source chain.

use std::error::Error;

use shm_reader::{Reader, ReaderError, Segment};

/// The message and every source's, as `anyhow`'s `{:#}` prints them.
fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

#[test]
fn reader_open_on_a_missing_directory_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = Reader::open(&missing).expect_err("a missing directory is an error");
    let ReaderError::Store { cause, .. } = &err else { panic!("not a Store error: {err}") };
    assert_eq!(cause.kind(), std::io::ErrorKind::NotFound);
    let message = err.to_string();
    assert_eq!(
        message,
        format!("cannot read store directory {}: {cause}", missing.display()),
        "the message names the directory and the cause"
    );
    let full = chain(&err);
    assert_eq!(full.matches(&cause.to_string()).count(), 1, "{full}");
}

#[test]
fn segment_map_errors_say_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.seg");
    // SAFETY: the file does not exist; nothing is mapped.
    let err = unsafe { Segment::map(&missing) }.expect_err("a missing file is an error");
    let full = chain(&err);
    let io = std::fs::File::open(&missing).unwrap_err().to_string();
    assert_eq!(full.matches(&io).count(), 1, "{full}");
    assert!(full.starts_with(&format!("segment {}: cannot read: ", missing.display())), "{full}");

    let junk = dir.path().join("junk.seg");
    std::fs::write(&junk, vec![0u8; 200]).unwrap();
    // SAFETY: nobody modifies the file while it is mapped.
    let err = unsafe { Segment::map(&junk) }.expect_err("junk is refused");
    let full = chain(&err);
    assert!(full.contains("bad header: not a segment"), "{full}");
    assert_eq!(full.matches("not a segment").count(), 1, "{full}");
}
