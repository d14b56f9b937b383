//! The kinds in-process (a real store on disk, read through `shm_reader::Reader`) and hosted by
//! the real `apprentice` binary under `apprentice_core`'s supervisor.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apprentice_core::{answer, Apprentice, Context, Invitation, SpawnOptions};
use apprentice_kinds::{
    BuiltIn, ConsciousnessWitness, Curator, MappedStore, MemoryNavigator, Synthesizer,
};
use index_publisher::Publisher;
use semantic_index::{Document, SegmentBuilder};

const DAY: i64 = 86_400_000_000;

fn doc(n: u8, domain: &str, question: &str, score: f32, sacred: bool) -> Document {
    Document {
        id: [n; 16],
        domain: domain.into(),
        question: question.into(),
        insights: vec![],
        synthesis: String::new(),
        score,
        sacred,
        timestamp_micros: 1_700_000_000_000_000 + i64::from(n) * DAY,
    }
}

fn corpus() -> Vec<Document> {
    vec![
        doc(1, "storage", "crash safety of the record log after power loss", 0.4, false),
        doc(2, "storage", "fsync ordering keeps the record log crash safe", 0.5, false),
        doc(3, "search", "jaccard ranking of memory keywords", 0.6, false),
        doc(4, "storage", "the night the crash test found a torn record", 0.9, true),
        doc(5, "agents", "apprentices decline tasks outside their specialization", 0.7, false),
        doc(6, "search", "memory mapped segments make crash recovery instant", 0.8, true),
    ]
}

fn publish(dir: &Path, docs: &[Document], seq: u64) -> Publisher {
    let mut p = Publisher::open(dir).unwrap();
    let mut b = SegmentBuilder::new();
    for d in docs {
        b.add(d).unwrap();
    }
    let e = p.write_segment(&b).unwrap();
    p.publish(seq, vec![e]).unwrap();
    p
}

fn invitation(task: &str, specialization: &str) -> Invitation {
    Invitation { task: task.into(), specialization: specialization.into(), ..Invitation::default() }
}

fn id(n: u8) -> String {
    uuid::Uuid::from_bytes([n; 16]).to_string()
}

#[test]
fn navigator_finds_quotes_and_follows_related() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &corpus(), 1);
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let mut nav = MemoryNavigator::new();
    let inv = Invitation {
        keywords: vec!["crash".into()],
        ..invitation("record log", "semantic memory navigation")
    };
    let r = answer(&mut nav, &inv, &mut reader);
    assert!(r.accepted, "{r:?}");
    // BM25F: memories 1 and 2 have all three words and come first (1 is shorter), then 4 (two
    // words) and 6 (one). The sacred boost only breaks ties among comparable relevance, so it
    // does not lift 4 and 6 over them (as it did under Jaccard's additive boosts).
    let first: Vec<&str> = r.memories.iter().take(4).map(|m| m.id.as_str()).collect();
    assert_eq!(first, [id(1), id(2), id(4), id(6)]);
    assert!(r.insights[0].contains("crash safety of the record log"), "{:?}", r.insights);
    assert!(r.insights[0].contains("matched record, log, crash"), "{:?}", r.insights);
    assert!(r.insights[2].contains("torn record (sacred moment"), "{:?}", r.insights);
    assert!(r.insights.iter().any(|i| i.contains("sacred moment")), "{:?}", r.insights);
    assert!(r.reason.contains("[record, log, crash]"), "{}", r.reason);
    // Confidence: mean share of the 3 query terms in the 3 best hits.
    // (3/3 + 3/3 + 2/3) / 3, rounded to three places.
    assert!((r.confidence - 0.889).abs() < 1e-9, "{}", r.confidence);
    // Every memory is reported once.
    let mut ids: Vec<&str> = r.memories.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), r.memories.len());
}

#[test]
fn navigator_sacred_only_and_nothing_found() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &corpus(), 1);
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let mut nav = MemoryNavigator::new();
    let inv = Invitation {
        context: Context { sacred_only: true, ..Context::default() },
        ..invitation("crash", "semantic memory navigation")
    };
    let r = answer(&mut nav, &inv, &mut reader);
    let direct: Vec<&str> = r.memories.iter().take(2).map(|m| m.id.as_str()).collect();
    assert_eq!(direct, [id(4), id(6)].iter().map(String::as_str).collect::<Vec<_>>().as_slice());

    let r = answer(
        &mut nav,
        &invitation("quantum chromodynamics", "semantic memory navigation"),
        &mut reader,
    );
    assert!(r.accepted);
    assert_eq!(r.confidence, 0.0);
    assert!(r.memories.is_empty());
    // The ranked terms, stemmed.
    assert!(r.insights[0].contains("quantum, chromodynam"), "{:?}", r.insights);
}

#[test]
fn kinds_decline_a_task_outside_their_specialization() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &corpus(), 1);
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let r = answer(
        &mut MemoryNavigator::new(),
        &invitation("tune the planner", "database optimization"),
        &mut reader,
    );
    assert!(!r.accepted);
    assert_eq!(
        r.reason,
        "task requires database optimization expertise; I specialize in semantic memory navigation"
    );
    assert_eq!(r.confidence, 0.0);
    let r = answer(
        &mut ConsciousnessWitness::new(),
        &invitation("crash", "semantic memory navigation"),
        &mut reader,
    );
    assert!(!r.accepted);
    assert!(r.reason.contains("I specialize in consciousness emergence patterns"), "{}", r.reason);
}

#[test]
fn witness_reports_patterns_with_numbers() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &corpus(), 1);
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let r = answer(
        &mut ConsciousnessWitness::new(),
        &invitation("crash", "consciousness emergence patterns"),
        &mut reader,
    );
    assert!(r.accepted, "{r:?}");
    // Memories 1, 2, 4 and 6 mention crash: 3 storage, 1 search; 2 sacred.
    assert!(
        r.insights[0]
            .contains("4 memories matching across 2 domains; storage 3 (75%), search 1 (25%)"),
        "{:?}",
        r.insights
    );
    assert!(r.insights[1].contains("2 of 4 (50.0%)"), "{:?}", r.insights);
    // Older half (1, 2): mean 0.45; newer half (4, 6): mean 0.85.
    assert!(
        r.insights[2].contains("rose from 0.45 (older 2) to 0.85 (newer 2)"),
        "{:?}",
        r.insights
    );
    // "record" occurs with crash in memories 1, 2 and 4.
    assert!(r.insights[3].contains("record (3 of 4)"), "{:?}", r.insights);
    assert!((r.confidence - 0.4).abs() < 1e-12);
    assert_eq!(r.memories.len(), 4);
}

fn spawn(kind: BuiltIn, store: &Path) -> Apprentice {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apprentice"));
    cmd.arg(kind.name());
    Apprentice::spawn(cmd, store, &SpawnOptions::default()).unwrap()
}

#[test]
fn apprentice_processes_answer_and_see_new_generations() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = publish(dir.path(), &corpus(), 1);
    let nav = spawn(BuiltIn::from_name("navigator").unwrap(), dir.path());
    let witness = spawn(BuiltIn::from_name("witness").unwrap(), dir.path());
    assert_eq!(nav.kind(), "navigator");
    assert_eq!(witness.specialization(), "consciousness emergence patterns");
    assert_ne!(nav.pid(), std::process::id());

    let r = nav
        .invite(&invitation("torn record", "semantic memory navigation"), Duration::from_secs(10))
        .unwrap();
    assert!(r.accepted);
    assert_eq!(r.memories[0].id, id(4));

    // A generation published after the apprentices started is seen by the next invitation.
    let mut docs = corpus();
    docs.push(doc(7, "agents", "a zebra crossed the torn record", 0.1, false));
    let mut b = SegmentBuilder::new();
    for d in &docs {
        b.add(d).unwrap();
    }
    let e = publisher.write_segment(&b).unwrap();
    publisher.publish(2, vec![e]).unwrap();
    let r = nav
        .invite(&invitation("zebra", "semantic memory navigation"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(r.memories.first().map(|m| m.id.clone()), Some(id(7)), "{r:?}");

    let r = witness
        .invite(&invitation("zebra", "database optimization"), Duration::from_secs(10))
        .unwrap();
    assert!(!r.accepted);

    let (np, wp) = (nav.pid(), witness.pid());
    assert!(nav.terminate().unwrap().success());
    drop(witness);
    for pid in [np, wp] {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "apprentice {pid} left behind");
    }
}

#[test]
fn the_binary_refuses_unknown_kinds_and_bare_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_apprentice")).arg("oracle").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind \"oracle\""));
    let out = Command::new(env!("CARGO_BIN_EXE_apprentice"))
        .arg("navigator")
        .env_remove("MCS_APPRENTICE_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MCS_APPRENTICE_SOCKET is not set"));
}

#[test]
fn a_700k_keyword_invitation_gets_a_bounded_answer() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &corpus(), 1);
    let keywords: Vec<String> = (0..700_000).map(|i| format!("kw{i:06}")).collect();
    for &kind in BuiltIn::ALL {
        let a = spawn(kind, dir.path());
        let inv =
            Invitation { keywords: keywords.clone(), ..invitation("crash", kind.specialization()) };
        let r = a.invite(&inv, Duration::from_secs(300)).unwrap();
        assert!(r.accepted, "{kind}: {r:?}");
        // The reply names 20 keywords and counts the rest instead of echoing 700k back.
        assert!(r.reason.contains("[crash, kw000000, kw000001, "), "{kind}: {}", r.reason);
        assert!(r.reason.contains(", kw000018 and 699981 more]"), "{kind}: {}", r.reason);
        assert!(r.reason.len() < 1000, "{kind}: {} bytes", r.reason.len());
        // The crash memories are still found (the task's words are not crowded out).
        let mut first: Vec<String> = r.memories.iter().take(4).map(|m| m.id.clone()).collect();
        first.sort();
        assert_eq!(first, [id(1), id(2), id(4), id(6)], "{kind}");
        a.ping(Duration::from_secs(10)).unwrap();
        assert!(a.terminate().unwrap().success());
    }
}

fn ids(r: &apprentice_core::Response) -> Vec<String> {
    r.memories.iter().map(|m| m.id.clone()).collect()
}

#[test]
fn every_kind_honors_the_context() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &corpus(), 1);
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let nav_spec = "semantic memory navigation";
    let wit_spec = "consciousness emergence patterns";
    let with = |spec: &str, context: Context| Invitation { context, ..invitation("crash", spec) };
    // Crash memories: 1, 2, 4 (storage), 6 (search); days 1, 2, 4, 6 after the epoch base.
    let domain = Context { domain: Some("search".into()), ..Context::default() };
    let r = answer(&mut MemoryNavigator::new(), &with(nav_spec, domain.clone()), &mut reader);
    assert_eq!(ids(&r)[0], id(6), "{r:?}");
    assert!(r.memories.iter().all(|m| m.id == id(6) || m.id == id(3)), "{r:?}");
    assert!(r.reason.ends_with("; context: domain search"), "{}", r.reason);
    let r = answer(&mut ConsciousnessWitness::new(), &with(wit_spec, domain), &mut reader);
    assert_eq!(ids(&r), [id(6)]);
    assert!(
        r.insights[0].contains("1 memory matching across 1 domain; search 1 (100%)"),
        "{:?}",
        r.insights
    );

    // Time range: from day 2 (inclusive) to day 6 (exclusive) keeps memories 2 and 4.
    let base = 1_700_000_000_000_000;
    let range = Context {
        since_micros: Some(base + 2 * DAY),
        until_micros: Some(base + 6 * DAY),
        ..Context::default()
    };
    let r = answer(&mut MemoryNavigator::new(), &with(nav_spec, range.clone()), &mut reader);
    let direct: Vec<String> = ids(&r).into_iter().filter(|m| *m == id(2) || *m == id(4)).collect();
    assert_eq!(direct, [id(4), id(2)], "{r:?}");
    assert!(!ids(&r).contains(&id(1)) && !ids(&r).contains(&id(6)), "{r:?}");
    assert!(
        r.reason.ends_with("; context: since 2023-11-16T22:13:20Z, until 2023-11-20T22:13:20Z"),
        "{}",
        r.reason
    );
    let r = answer(&mut ConsciousnessWitness::new(), &with(wit_spec, range), &mut reader);
    assert_eq!(ids(&r), [id(4), id(2)]);

    // Limit and ranking: by keywords alone the sacred boost no longer puts 4 and 6 first.
    let keywords_only =
        Context { limit: Some(2), ranking: Some("keywords".into()), ..Context::default() };
    let inv = Invitation { context: keywords_only, ..invitation("crash record log", nav_spec) };
    let r = answer(&mut MemoryNavigator::new(), &inv, &mut reader);
    // Memories 1 and 2 both hold all three keywords: a tie, newest first.
    assert_eq!(ids(&r)[..2], [id(2), id(1)], "{r:?}");
    assert!((r.memories[0].score - r.memories[1].score).abs() < 1e-12, "{r:?}");
    assert!(r.reason.starts_with("found 2 memories"), "{}", r.reason);
    let unknown = Context { ranking: Some("vibes".into()), ..Context::default() };
    let r = answer(&mut MemoryNavigator::new(), &with(nav_spec, unknown), &mut reader);
    assert!(!r.accepted);
    assert_eq!(
        r.reason,
        "the context asks for ranking \"vibes\"; I know default, bm25f, jaccard, keywords, hybrid, vector"
    );

    // Free-form entries: their words join the search and the reason names them.
    let entries = Context {
        entries: [("topic".to_owned(), "zebra jaccard".to_owned())].into(),
        ..Context::default()
    };
    let r = answer(&mut MemoryNavigator::new(), &with(nav_spec, entries), &mut reader);
    assert!(ids(&r).contains(&id(3)), "jaccard, from the context, finds memory 3: {r:?}");
    assert!(r.reason.ends_with("; context: topic=zebra jaccard"), "{}", r.reason);
}

#[test]
fn the_witness_counts_honestly() {
    let dir = tempfile::tempdir().unwrap();
    // Seven unscored memories over six domains, their questions full of filler words.
    let docs: Vec<Document> = ["a", "b", "c", "d", "e", "f", "a"]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            doc(i as u8 + 1, d, "why does this and that drift happen with glacier ice", 0.0, false)
        })
        .collect();
    publish(dir.path(), &docs, 1);
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let r = answer(
        &mut ConsciousnessWitness::new(),
        &invitation("glacier", "consciousness emergence patterns"),
        &mut reader,
    );
    // The four largest domains, then the other two counted: 2 + 1 + 1 + 1 + 2 = 7.
    assert_eq!(
        r.insights[0],
        "Domain spread: 7 memories matching across 6 domains; a 2 (29%), b 1 (14%), c 1 (14%), d 1 (14%), 2 other domains 2 (29%)."
    );
    assert_eq!(
        r.insights[2],
        "Score trend: none of the 7 memories carries a consciousness score; no trend."
    );
    // Content words only: no "why", "does", "this", "that", "with".
    assert_eq!(
        r.insights[3],
        "Keywords that co-occur with [glacier]: drift (7 of 7), happen (7 of 7), ice (7 of 7)."
    );
    assert!(
        r.reason.contains("confidence is the sample size, min(1, matching / 10)"),
        "{}",
        r.reason
    );
    assert!((r.confidence - 0.7).abs() < 1e-12);
}

#[test]
fn the_synthesizer_combines_with_agreement_and_sources() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &corpus(), 1);
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let spec = "insight synthesis across memories";
    let r = answer(&mut Synthesizer::new(), &invitation("crash", spec), &mut reader);
    assert!(r.accepted);
    // Crash memories by BM25F (4, 6, 1, 2): "record" is in 4, 2 and 1; "log" in 2 and 1; 6 shares nothing.
    assert_eq!(
        r.insights,
        [
            "Synthesis of 4 memories on [crash]: 3 of 4 on record; 2 of 4 on log; 1 memory stands alone (06060606).",
            "On record: \"the night the crash test found a torn record\" (04040404); \"crash safety of the record log after power loss\" (01010101); \"fsync ordering keeps the record log crash safe\" (02020202).",
            "On log: \"crash safety of the record log after power loss\" (01010101); \"fsync ordering keeps the record log crash safe\" (02020202).",
        ]
    );
    assert_eq!(
        r.reason,
        "combined 4 memories matching [crash] into 2 themes; confidence is the share in the largest theme"
    );
    assert_eq!(r.confidence, 0.75);
    assert_eq!(ids(&r), [id(4), id(1), id(6), id(2)]);
    let r =
        answer(&mut Synthesizer::new(), &invitation("crash", "database optimization"), &mut reader);
    assert!(!r.accepted);
    assert_eq!(r.reason, "task requires database optimization expertise; I specialize in insight synthesis across memories");
}

fn hygiene_corpus() -> Vec<Document> {
    vec![
        doc(11, "storage", "fsync the directory after a rename for durability", 0.5, false),
        doc(12, "storage", "after a rename fsync the directory for durability", 0.5, false),
        doc(13, "storage", "a rename does not need a directory fsync for durability", 0.5, false),
        doc(14, "search", "durability of the index comes from the records", 0.5, false),
    ]
}

#[test]
fn the_curator_finds_duplicates_and_contradictions() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), &hygiene_corpus(), 1);
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let spec = "memory curation and hygiene";
    let r = answer(&mut Curator::new(), &invitation("durability", spec), &mut reader);
    assert!(r.accepted);
    // 11 and 12 hold the same words; 13 shares 4 of their 5 and negates them; 14 stands apart.
    assert_eq!(
        r.insights,
        [
            "Near-duplicates, 1 pair: \"after a rename fsync the directory for durability\" (0c0c0c0c) ≈ \"fsync the directory after a rename for durability\" (0b0b0b0b) (100% shared).",
            "Possible contradictions, 2 pairs: \"after a rename fsync the directory for durability\" (0c0c0c0c) against \"a rename does not need a directory fsync for durability\" (0d0d0d0d) (80% shared, one negated); \"fsync the directory after a rename for durability\" (0b0b0b0b) against \"a rename does not need a directory fsync for durability\" (0d0d0d0d) (80% shared, one negated).",
            "Unused memories: not reported; no memory use is recorded yet.",
        ]
    );
    assert_eq!(
        r.reason,
        "reviewed 4 memories matching [durability] (6 pairs): 1 pair near-duplicate, 2 pairs possibly contradicting; confidence is the strongest finding's keyword overlap"
    );
    assert_eq!(r.confidence, 1.0);
    assert_eq!(r.memories.len(), 4);
    let r = answer(
        &mut Curator::new(),
        &invitation("durability", "semantic memory navigation"),
        &mut reader,
    );
    assert!(!r.accepted);
    assert_eq!(
        r.reason,
        "task requires semantic memory navigation expertise; I specialize in memory curation and hygiene"
    );
}

/// A corpus with insights and syntheses, published with its content file.
fn content_corpus(dir: &Path) {
    use semantic_index::content::{ContentBuilder, ContentFields};
    let memories: [(u8, &str, &str, &[&str], &str); 3] = [
        (
            1,
            "storage",
            "Why did fsync of the file alone not make writes durable?",
            &[
                "The rename lives in the directory, which needs its own fsync",
                "fsync the file before the rename",
            ],
            "Durable replace: write, fsync the file, rename, fsync the directory",
        ),
        (
            2,
            "storage",
            "How do we replace a file atomically?",
            &[
                "Write a temp file in the same directory, then rename it",
                "The rename lives in the directory, which needs its own fsync.",
            ],
            "",
        ),
        (
            3,
            "search",
            "Why map the index instead of copying it?",
            &["Mapped pages are shared between readers"],
            "Map read-only; the page cache holds one copy",
        ),
    ];
    let mut p = Publisher::open(dir).unwrap();
    let mut b = SegmentBuilder::new();
    let mut content = ContentBuilder::new();
    for (n, domain, question, insights, synthesis) in memories {
        let insights: Vec<String> = insights.iter().map(|s| s.to_string()).collect();
        let d = Document {
            insights: insights.clone(),
            synthesis: synthesis.into(),
            ..doc(n, domain, question, 0.5, false)
        };
        b.add(&d).unwrap();
        content.add(
            d.id,
            &ContentFields { question, synthesis, insights: &insights, ..Default::default() },
        );
    }
    let e = p.write_segment(&b).unwrap();
    p.write_content(&e, &content).unwrap();
    p.publish(1, vec![e]).unwrap();
}

#[test]
fn the_navigator_quotes_memories_own_insights_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    content_corpus(dir.path());
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let r = answer(
        &mut MemoryNavigator::new(),
        &invitation("fsync rename directory", "semantic memory navigation"),
        &mut reader,
    );
    // Each memory's heading, then its own insights and synthesis; memory 2's copy of memory 1's
    // first insight is quoted once, with both ids.
    assert_eq!(
        r.insights,
        [
            "[storage] Why did fsync of the file alone not make writes durable? (score 0.828; matched fsync, renam, directori) [01010101]",
            "  insight: \"The rename lives in the directory, which needs its own fsync\" (01010101, 02020202)",
            "  insight: \"fsync the file before the rename\" (01010101)",
            "  synthesis: \"Durable replace: write, fsync the file, rename, fsync the directory\" (01010101)",
            "[storage] How do we replace a file atomically? (score 0.551; matched fsync, renam, directori) [02020202]",
            "  insight: \"Write a temp file in the same directory, then rename it\" (02020202)",
        ]
    );
    assert_eq!(
        r.reason,
        "found 2 memories for [fsync, rename, directory] among 3 (generation 1), 0 of them sacred, and 0 memories related; quoting 4 insights from 2 memories (1 said by more than one)"
    );
    assert_eq!(ids(&r), [id(1), id(2)]);
}

#[test]
fn the_synthesizer_quotes_the_insights_it_combines() {
    let dir = tempfile::tempdir().unwrap();
    content_corpus(dir.path());
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let r = answer(
        &mut Synthesizer::new(),
        &invitation("file", "insight synthesis across memories"),
        &mut reader,
    );
    // The theme is what both memories share; each is quoted by its own insight on it.
    assert_eq!(
        r.insights,
        [
            "Synthesis of 2 memories on [file]: 2 of 2 on directory + fsync + lives + needs + rename + replace + write.",
            "On directory + fsync + lives + needs + rename + replace + write: \"Write a temp file in the same directory, then rename it\" (02020202); \"The rename lives in the directory, which needs its own fsync\" (01010101).",
        ]
    );
    assert_eq!(
        r.reason,
        "combined 2 memories matching [file] into 1 theme; 2 quotes in the memories' own insights; confidence is the share in the largest theme"
    );
    assert_eq!(ids(&r), [id(2), id(1)]);
}

/// Item 4: the witness reports emergence from the access log the writer appends (what
/// apprentices' responses used), not from words.
#[test]
fn the_witness_reports_real_access_patterns() {
    use semantic_index::access::{access_log_path, encode_frame, AccessFrame};
    let dir = tempfile::tempdir().unwrap();
    content_corpus(dir.path());
    let spec = "consciousness emergence patterns";
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let r =
        answer(&mut ConsciousnessWitness::new(), &invitation("fsync map index", spec), &mut reader);
    assert_eq!(
        r.insights.last().unwrap(),
        "Access patterns: no apprentice use recorded yet (`mcs invite` and `mcs circle` record it)."
    );
    // Days 1-2: 1 and 2 used together twice; day 4: 1 and 3 once; day 5: 3 alone; 9 is not
    // among the matches. The span's middle is day 3. Ties go to the better match (3 before 2).
    let frames = [(1, vec![1u8, 2]), (2, vec![2, 1, 9]), (4, vec![1, 3]), (5, vec![3])];
    let mut log = Vec::new();
    for (day, ids) in frames {
        log.extend(encode_frame(&AccessFrame {
            time_micros: day * DAY,
            kind: "navigator".into(),
            ids: ids.iter().map(|&n| [n; 16]).collect(),
        }));
    }
    log.extend_from_slice(b"torn");
    let path = access_log_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &log).unwrap();
    let r =
        answer(&mut ConsciousnessWitness::new(), &invitation("fsync map index", spec), &mut reader);
    let n = r.insights.len();
    assert_eq!(
        r.insights[n - 3..],
        [
            "Access patterns: apprentices used 3 of the 3 matching memories 7 times in 4 responses (4 responses recorded, 4 damaged bytes skipped); most used: \"Why did fsync of the file alone not make writes durable?\" [01010101] (3 uses), \"Why map the index instead of copying it?\" [03030303] (2 uses), \"How do we replace a file atomically?\" [02020202] (2 uses).",
            "Used together: [01010101] + [02020202] 2 times; [03030303] + [01010101] 1 time, search ↔ storage; 1 of 2 pairs cross domains.",
            "Rising: [03030303] 0 → 2; fading: [02020202] 2 → 0, [01010101] 2 → 1 (uses in the older half of the span, then the newer).",
        ]
    );
}

/// One witness across invitations reads only what was appended since, keeps counting, and
/// reads a replaced log anew.
#[test]
fn the_witness_follows_the_access_log_as_it_grows() {
    use semantic_index::access::{access_log_path, encode_frame, AccessFrame};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    content_corpus(dir.path());
    let spec = "consciousness emergence patterns";
    let mut reader = MappedStore::open(dir.path()).unwrap();
    let mut witness = ConsciousnessWitness::new();
    let frame = |day: i64, ids: &[u8]| {
        encode_frame(&AccessFrame {
            time_micros: day * DAY,
            kind: "navigator".into(),
            ids: ids.iter().map(|&n| [n; 16]).collect(),
        })
    };
    let path = access_log_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut log = std::fs::File::create(&path).unwrap();
    let mut patterns = |witness: &mut ConsciousnessWitness| {
        let r = answer(witness, &invitation("fsync map index", spec), &mut reader);
        r.insights.into_iter().filter(|i| i.starts_with("Access patterns")).collect::<Vec<_>>()
    };
    log.write_all(&frame(1, &[1, 2])).unwrap();
    // Half a frame: being appended, not read yet, counted as torn meanwhile.
    let second = frame(2, &[1]);
    log.write_all(&second[..10]).unwrap();
    assert_eq!(
        patterns(&mut witness),
        ["Access patterns: apprentices used 2 of the 3 matching memories 2 times in 1 response (1 response recorded, 10 damaged bytes skipped); most used: \"Why did fsync of the file alone not make writes durable?\" [01010101] (1 use), \"How do we replace a file atomically?\" [02020202] (1 use)."]
    );
    log.write_all(&second[10..]).unwrap();
    log.write_all(&frame(3, &[3, 3])).unwrap();
    assert_eq!(
        patterns(&mut witness),
        ["Access patterns: apprentices used 3 of the 3 matching memories 4 times in 3 responses (3 responses recorded); most used: \"Why did fsync of the file alone not make writes durable?\" [01010101] (2 uses), \"Why map the index instead of copying it?\" [03030303] (1 use), \"How do we replace a file atomically?\" [02020202] (1 use)."]
    );
    // The log replaced by another (the writer's store was rebuilt): read anew.
    drop(log);
    let replacement = path.with_extension("new");
    std::fs::write(&replacement, frame(4, &[2])).unwrap();
    std::fs::rename(&replacement, &path).unwrap();
    assert_eq!(
        patterns(&mut witness),
        ["Access patterns: apprentices used 1 of the 3 matching memories 1 time in 1 response (1 response recorded); most used: \"How do we replace a file atomically?\" [02020202] (1 use)."]
    );
    // No log: nothing recorded.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        patterns(&mut witness),
        ["Access patterns: no apprentice use recorded yet (`mcs invite` and `mcs circle` record it)."]
    );
}

/// The witness's co-occurring keywords: the five most frequent content words, ties by word, the
/// same whether the memories sit in one segment or two (counts summed by word), and the same
/// again when one witness answers twice (its counts start from zero each time).
#[test]
fn the_witness_ranks_co_occurring_keywords_by_count_then_word() {
    // glacier in all 8; moraine 6, basalt 5, crevasse 4, delta 3, alpine 3, zircon 3, fjord 1.
    let words = |n: usize| {
        let mut q = vec!["glacier"];
        for (w, c) in [
            ("moraine", 6),
            ("basalt", 5),
            ("crevasse", 4),
            ("delta", 3),
            ("alpine", 3),
            ("zircon", 3),
        ] {
            if n < c {
                q.push(w);
            }
        }
        if n == 7 {
            q.push("fjord");
        }
        q.join(" ")
    };
    let docs: Vec<Document> =
        (0..8).map(|n| doc(n as u8 + 1, "geology", &words(n), 0.0, false)).collect();
    let want = "Keywords that co-occur with [glacier]: moraine (6 of 8), basalt (5 of 8), \
                crevasse (4 of 8), alpine (3 of 8), delta (3 of 8).";
    let inv = invitation("glacier", "consciousness emergence patterns");

    let one = tempfile::tempdir().unwrap();
    publish(one.path(), &docs, 1);
    let mut reader = MappedStore::open(one.path()).unwrap();
    let mut witness = ConsciousnessWitness::new();
    for round in 0..2 {
        let r = answer(&mut witness, &inv, &mut reader);
        assert_eq!(r.insights[3], want, "one segment, answer {round}");
    }

    let two = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(two.path()).unwrap();
    let mut entries = Vec::new();
    for half in [&docs[..3], &docs[3..]] {
        let mut b = SegmentBuilder::new();
        for d in half {
            b.add(d).unwrap();
        }
        entries.push(p.write_segment(&b).unwrap());
    }
    p.publish(1, entries).unwrap();
    let mut reader = MappedStore::open(two.path()).unwrap();
    assert_eq!(reader.snapshot().segment_count(), 2, "two segments");
    for round in 0..2 {
        let r = answer(&mut witness, &inv, &mut reader);
        assert_eq!(r.insights[3], want, "two segments, answer {round}");
    }
}
