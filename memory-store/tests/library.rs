use memory_store::{Error, Memory, MemoryStore, Query, Ranking, SearchOptions};

fn memory(i: usize, domain: &str, text: &str, sacred: bool) -> Memory {
    let mut m = Memory::new(domain, format!("{text} number {i}"));
    m.insights = vec![format!("insight about {text}")];
    m.score = (i % 10) as f32 / 10.0;
    m.sacred = sacred;
    m
}

#[test]
fn store_search_get_related_forget_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    let a = store.store(memory(1, "design", "shared memory segments", true)).unwrap();
    let b = store.store(memory(2, "design", "shared memory readers", false)).unwrap();
    let c = store.store(memory(3, "ops", "crash recovery", false)).unwrap();

    let jaccard = SearchOptions { ranking: Ranking::Jaccard, ..SearchOptions::default() };
    let q = Query::from_text("shared memory");
    let r = store.search(&q, &jaccard).unwrap();
    assert_eq!(r.hits.iter().map(|h| h.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(r.keywords, ["shared", "memory"]);
    let why = r.hits[0].why.as_ref().unwrap();
    assert_eq!(why.matched, ["shared", "memory"]);
    assert!((why.relevance + why.score_boost + why.sacred_boost - r.hits[0].score).abs() < 1e-9);
    assert_eq!(why.sacred_boost, 0.3);

    // BM25F (the default): stemmed terms, per-term contributions with per-field frequencies.
    let q = Query::from_text("How are memories shared?");
    let r = store.search(&q, &SearchOptions::default()).unwrap();
    assert_eq!(r.keywords, ["memori", "share"]);
    let mut ids: Vec<_> = r.hits.iter().map(|h| h.id).collect();
    ids.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(ids, want, "stemming matches 'shared memory' from 'memories shared'");
    let why = r.hits[0].why.as_ref().unwrap();
    assert_eq!(why.ranking, "bm25f");
    assert_eq!(why.terms.len(), 2);
    let sum: f64 = why.terms.iter().map(|t| t.contribution).sum();
    assert!((sum - why.relevance).abs() < 1e-9);
    for t in &why.terms {
        assert_eq!((t.tf.question, t.tf.insights, t.tf.synthesis), (1, 1, 0), "{t:?}");
        assert!(t.idf > 0.0 && t.impact > 0.0 && t.impact < 1.0, "{t:?}");
    }

    let related = store.related(a, &jaccard).unwrap().unwrap();
    // b shares "shared memory" and the filler words; c only the filler words; a itself never.
    assert_eq!(related.hits.iter().map(|h| h.id).collect::<Vec<_>>(), [b, c]);
    assert_eq!(store.get(c).unwrap().unwrap().domain, "ops");
    assert_eq!(store.sacred(None, 10).unwrap().iter().map(|f| f.id).collect::<Vec<_>>(), [a]);

    assert!(store.forget(a).unwrap());
    assert!(!store.forget(a).unwrap());
    assert!(store.get(a).unwrap().is_none());
    let r = store.search(&q, &SearchOptions::default()).unwrap();
    assert_eq!(r.hits.iter().map(|h| h.id).collect::<Vec<_>>(), [b]);
    assert!(store.verify().unwrap().is_ok());
    drop(store);

    // Everything survives a reopen.
    let mut store = MemoryStore::open(dir.path()).unwrap();
    assert!(store.verify().unwrap().is_ok());
    assert_eq!(store.stats().unwrap().memories, 2);
    assert!(store.get(a).unwrap().is_none());
}

#[test]
fn duplicates_and_invalid_memories_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    let m = memory(1, "d", "alpha", false);
    let id = store.store(m.clone()).unwrap();
    assert!(matches!(store.store(m.clone()), Err(Error::Duplicate(x)) if x == id));
    let report = store.store_batch(vec![m.clone(), memory(2, "d", "beta", false)]).unwrap();
    assert_eq!((report.stored.len(), report.skipped,), (1, vec![id]));
    let mut bad = memory(3, "d", "gamma", false);
    bad.score = 1.5;
    let err = store.store_batch(vec![memory(4, "d", "delta", false), bad]).unwrap_err();
    assert!(err.to_string().contains("score"), "{err}");
    assert_eq!(store.stats().unwrap().memories, 2, "an invalid batch stores nothing");
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn second_writer_is_refused_with_the_pid_readers_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = MemoryStore::open(dir.path()).unwrap();
    w.store(memory(1, "d", "alpha", false)).unwrap();
    let err = MemoryStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains(&format!("locked by pid {}", std::process::id())), "{err}");
    let mut r = MemoryStore::open_read_only(dir.path()).unwrap();
    assert!(r.store(memory(2, "d", "beta", false)).is_err());
    w.store(memory(3, "d", "alpha again", false)).unwrap();
    let hits = r.search(&Query::from_text("alpha"), &SearchOptions::default()).unwrap();
    assert_eq!(hits.hits.len(), 2, "a reader sees the writer's newest generation");
    drop(w);
    assert!(MemoryStore::open(dir.path()).is_ok(), "the lock goes with the writer");
}

#[test]
fn many_single_stores_keep_segments_logarithmic_and_results_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(
            store
                .store(memory(
                    i,
                    if i % 2 == 0 { "even" } else { "odd" },
                    "segment merge policy",
                    i % 7 == 0,
                ))
                .unwrap(),
        );
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.memories, 300);
    assert!(stats.segments <= 3 * 5, "{} segments for 300 memories", stats.segments);
    for id in ids.iter().step_by(3) {
        store.forget(*id).unwrap();
    }
    assert_eq!(store.stats().unwrap().memories, 200);
    let r = store
        .search(&Query::from_text("merge"), &SearchOptions { limit: 500, ..Default::default() })
        .unwrap();
    assert_eq!(r.hits.len(), 200);
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn a_lost_index_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    let id = store.store(memory(1, "d", "survivor", false)).unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join("HEAD")).unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    let r = store.search(&Query::from_text("survivor"), &SearchOptions::default()).unwrap();
    assert_eq!(r.hits[0].id, id);
    assert!(store.verify().unwrap().is_ok());
}

/// Every segment the writer publishes (single stores, merges, rebuilds) has its content file,
/// and a store whose segments have none (an older build's) gains them at the next writer open.
#[test]
fn content_files_follow_every_publication_and_old_stores_gain_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    let ids: Vec<_> =
        (0..40).map(|i| store.store(memory(i, "d", "content merge", false)).unwrap()).collect();
    let check = |expect_without: usize| {
        let snapshot = shm_reader::Reader::open(dir.path()).unwrap().snapshot();
        assert_eq!(snapshot.segments_without_content(), expect_without);
        for (i, id) in ids.iter().enumerate() {
            let content = snapshot.content_of(id.as_bytes()).unwrap();
            if expect_without == 0 {
                let content = content.unwrap();
                assert_eq!(content.question(), format!("content merge number {i}"));
                assert_eq!(content.insights().collect::<Vec<_>>(), ["insight about content merge"]);
            }
        }
    };
    check(0);
    drop(store);
    for entry in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cnt") {
            std::fs::remove_file(path).unwrap();
        }
    }
    check(shm_reader::Reader::open(dir.path()).unwrap().snapshot().segment_count());
    let mut store = MemoryStore::open(dir.path()).unwrap();
    assert!(
        store.repaired().is_some_and(|r| r.contains("no content file")),
        "{:?}",
        store.repaired()
    );
    check(0);
}

/// Makes a published (mode 0444) file writable again so a test can damage it.
fn writable(path: &std::path::Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Stores a few memories in three commits, closes the store, damages its index with `damage`,
/// and checks that a reader is refused with an error naming what, while the writer rebuilds the
/// index from the records, says why, and loses nothing.
fn damaged_index_is_rebuilt_from_records(damage: impl Fn(&std::path::Path), expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    assert_eq!(store.repaired(), None);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(store.store(memory(i, "d", "keeper", i == 1)).unwrap());
    }
    drop(store);
    damage(dir.path());

    let err = MemoryStore::open_read_only(dir.path()).unwrap_err().to_string();
    assert!(err.contains(expect), "read-only open: {err}");

    let mut store = MemoryStore::open(dir.path()).unwrap();
    let why = store.repaired().expect("the writer says it rebuilt the index").to_owned();
    assert!(why.contains(expect), "repair reason: {why}");
    let r = store.search(&Query::from_text("keeper"), &SearchOptions::default()).unwrap();
    let mut found: Vec<_> = r.hits.iter().map(|h| h.id).collect();
    found.sort();
    ids.sort();
    assert_eq!(found, ids);
    assert!(store.verify().unwrap().is_ok());
    assert_eq!(store.stats().unwrap().segments, 1, "the index is the rebuilt segment alone");
    let damaged = segment_files(dir.path());
    let id = store.store(memory(9, "d", "after the repair", false)).unwrap();
    drop(store);
    let mut reader = MemoryStore::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.stats().unwrap().memories, 4);
    assert_eq!(reader.get(id).unwrap().map(|m| m.id), Some(id));
    let left = segment_files(dir.path());
    assert!(
        damaged.iter().filter(|f| left.contains(f)).count() == 1,
        "the damaged segments go at the next publication: {damaged:?} then {left:?}"
    );
    assert_eq!(MemoryStore::open(dir.path()).unwrap().repaired(), None);
}

#[test]
fn a_segment_of_an_unknown_format_version_is_rebuilt_from_records() {
    damaged_index_is_rebuilt_from_records(
        |dir| {
            for seg in segment_files(dir) {
                writable(&seg);
                let mut bytes = std::fs::read(&seg).unwrap();
                bytes[8..12].copy_from_slice(&1u32.wrapping_sub(2).to_le_bytes());
                std::fs::write(&seg, bytes).unwrap();
            }
        },
        "unsupported segment format version 4294967295",
    );
}

#[test]
fn a_corrupt_segment_is_rebuilt_from_records() {
    damaged_index_is_rebuilt_from_records(
        |dir| {
            let seg = segment_files(dir).pop().unwrap();
            writable(&seg);
            let mut bytes = std::fs::read(&seg).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x10;
            std::fs::write(&seg, bytes).unwrap();
        },
        "checksum mismatch",
    );
}

#[test]
fn a_missing_segment_is_rebuilt_from_records() {
    damaged_index_is_rebuilt_from_records(
        |dir| std::fs::remove_file(segment_files(dir).remove(0)).unwrap(),
        "No such file",
    );
}

#[test]
fn a_damaged_manifest_is_rebuilt_from_records() {
    damaged_index_is_rebuilt_from_records(
        |dir| {
            let head = std::fs::read_to_string(dir.join("HEAD")).unwrap();
            let manifest = dir.join("manifests").join(head.trim());
            writable(&manifest);
            std::fs::write(&manifest, b"MCMANIF\0 and then nonsense").unwrap();
        },
        "manifest",
    );
}

#[test]
fn a_missing_manifest_is_rebuilt_from_records() {
    damaged_index_is_rebuilt_from_records(
        |dir| {
            let head = std::fs::read_to_string(dir.join("HEAD")).unwrap();
            std::fs::remove_file(dir.join("manifests").join(head.trim())).unwrap();
        },
        "manifests",
    );
}
