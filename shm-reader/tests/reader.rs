//! The Reader on real store directories: generations, deletions, segments, other processes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use index_publisher::Publisher;
use proptest::prelude::*;
use semantic_index::{Document, SegmentBuilder};
use shm_reader::{Hits, Query, Reader, SearchOptions};

use crate::util::*;

fn doc(i: u32, text: &str, sacred: bool) -> Document {
    let mut id = [0u8; 16];
    id[12..].copy_from_slice(&i.to_be_bytes());
    Document {
        id,
        domain: if i.is_multiple_of(2) { "even".into() } else { "odd".into() },
        question: text.into(),
        score: (i % 10) as f32 / 10.0,
        sacred,
        timestamp_micros: i64::from(i),
        ..Default::default()
    }
}

fn publish(
    p: &mut Publisher,
    docs: &[Document],
    commit: u64,
) -> semantic_index::layout::SegmentEntry {
    let mut b = SegmentBuilder::new().generation(p.generation() + 1);
    for d in docs {
        b.add(d).unwrap();
    }
    let entry = p.write_segment(&b).unwrap();
    let mut segments = p.current().map(|m| m.segments.clone()).unwrap_or_default();
    segments.push(entry.clone());
    p.publish(commit, segments).unwrap();
    entry
}

fn ids(hits: &Hits) -> Vec<[u8; 16]> {
    hits.iter().map(|h| h.id).collect()
}

#[test]
fn follows_generations_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    let mut reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.generation(), 0);
    let q = Query::from_text("shared memory");
    let mut hits = Hits::with_capacity(10);
    reader.search(&q, &SearchOptions::default(), &mut hits).unwrap();
    assert!(hits.is_empty());

    publish(&mut p, &[doc(1, "shared memory one", false), doc(2, "other thing", true)], 1);
    reader.search(&q, &SearchOptions::default(), &mut hits).unwrap();
    assert_eq!(reader.generation(), 1, "search refreshes");
    assert_eq!(ids(&hits), [doc(1, "", false).id]);

    publish(&mut p, &[doc(3, "memory shared sacred", true)], 2);
    assert!(reader.refresh().unwrap());
    assert!(!reader.refresh().unwrap(), "nothing new: no reload");
    reader.search(&q, &SearchOptions::default(), &mut hits).unwrap();
    assert_eq!(ids(&hits), [doc(3, "", false).id, doc(1, "", false).id]);
    assert_eq!(reader.len(), 3);
    assert_eq!(reader.sacred(None, 10).len(), 2);

    // Forget doc 3: a manifest with its ordinal deleted.
    let mut segments = p.current().unwrap().segments.clone();
    segments[1].deleted = vec![0];
    p.publish(3, segments).unwrap();
    reader.search(&q, &SearchOptions::default(), &mut hits).unwrap();
    assert_eq!(ids(&hits), [doc(1, "", false).id]);
    assert!(reader.get(&doc(3, "", false).id).is_none());
    assert!(reader.get(&doc(1, "", false).id).is_some());
    assert_eq!(reader.sacred(None, 10).len(), 1);
    assert_eq!(reader.len(), 2);
    let related =
        reader.related(&doc(1, "", false).id, &SearchOptions::default(), &mut hits).unwrap();
    assert!(related && hits.is_empty(), "only itself and a deleted doc share its words");
}

#[test]
fn snapshot_survives_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    publish(&mut p, &[doc(1, "alpha memory", false)], 1);
    let reader = Reader::open(dir.path()).unwrap();
    let old = reader.snapshot();
    // Replace everything twice, then collect: the first segment file is unlinked.
    for g in 0..2 {
        let mut b = SegmentBuilder::new();
        b.add(&doc(10 + g, "beta memory", false)).unwrap();
        let entry = p.write_segment(&b).unwrap();
        p.publish(2 + u64::from(g), vec![entry]).unwrap();
    }
    let stats = p.collect_garbage().unwrap();
    assert_eq!(stats.segments, 1);
    assert_eq!(stats.manifests, 1);
    let mut hits = Hits::with_capacity(5);
    old.search(&Query::from_text("alpha"), &SearchOptions::default(), &mut hits);
    assert_eq!(ids(&hits), [doc(1, "", false).id], "old mapping still searchable after unlink");
    let mut fresh = Reader::open(dir.path()).unwrap();
    fresh.search(&Query::from_text("alpha"), &SearchOptions::default(), &mut hits).unwrap();
    assert!(hits.is_empty());
}

#[test]
fn hostile_head_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    publish(&mut p, &[doc(1, "alpha", false)], 1);
    std::fs::write(dir.path().join("HEAD"), b"../../etc/passwd\n").unwrap();
    assert!(Reader::open(dir.path()).is_err());
    let man = std::fs::read_dir(dir.path().join("manifests")).unwrap().next().unwrap().unwrap();
    std::fs::write(dir.path().join("HEAD"), man.file_name().to_str().unwrap()).unwrap();
    assert!(Reader::open(dir.path()).is_ok());
    let path = dir.path().join("manifests").join(man.file_name());
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, b"MCMANIF\0 not really").unwrap();
    let err = Reader::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("manifest"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]
    #[test]
    fn many_segments_equal_one(docs in corpus_strategy(80), cuts in proptest::collection::vec(0usize..80, 0..5),
                               query in query_strategy(), options in options_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Publisher::open(dir.path()).unwrap();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(docs.len())).collect();
        cuts.push(docs.len());
        cuts.sort_unstable();
        let mut at = 0;
        for (i, &c) in cuts.iter().enumerate() {
            publish(&mut p, &docs[at..c], i as u64);
            at = c;
        }
        let mut reader = Reader::open(dir.path()).unwrap();
        let q = Query::from_keywords(&query);
        let mut hits = Hits::with_capacity(16);
        reader.search(&q, &options, &mut hits).unwrap();
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_same(&got, &brute_force(&docs, q.keywords(), &options))?;
        for h in hits.iter() {
            prop_assert_eq!(reader.doc(h).unwrap().id(), h.id);
        }
    }
}

/// Searches a store in a loop until generation 20 (tests/bin/reader_child.rs).
const CHILD: &str = env!("CARGO_BIN_EXE_shm-reader-test-reader-child");

#[test]
fn another_process_sees_every_generation_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    // Generation g holds exactly 5·g memories, each matching "memory".
    let generation = |g: u32| -> Vec<Document> {
        (0..5).map(|i| doc(g * 100 + i, "memory of a generation", false)).collect()
    };
    publish(&mut p, &generation(1), 1);
    let mut child = Command::new(CHILD)
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready", "the child opened the store");
    // Publish while the child searches; it must see each generation whole.
    for g in 2..=20u32 {
        publish(&mut p, &generation(g), u64::from(g));
        p.collect_garbage().unwrap();
    }
    let text: String = lines.map(|l| l.unwrap() + "\n").collect();
    assert!(child.wait().unwrap().success());
    let mut seen = 0;
    for line in text.lines() {
        let (g, n) = line.split_once(' ').expect("GENERATION HITS");
        let (g, n) = (g.parse::<u32>().unwrap(), n.parse::<u32>().unwrap());
        assert_eq!(n, 5 * g, "generation {g} seen with {n} hits: incomplete");
        seen += 1;
    }
    assert!(seen > 0 && text.contains("20 100"), "child output: {text}");
}
