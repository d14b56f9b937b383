//! The kinds in-process (a real store on disk, read through `shm_reader::Reader`) and hosted by
//! the real `apprentice` binary under `apprentice_core`'s supervisor.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apprentice_core::{answer, Apprentice, Invitation, SpawnOptions};
use apprentice_kinds::{BuiltIn, ConsciousnessWitness, MemoryNavigator};
use semantic_index::layout::Publisher;
use semantic_index::{Document, SegmentBuilder};
use shm_reader::Reader;

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
    let mut reader = Reader::open(dir.path()).unwrap();
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
    assert!(r.insights[0].contains("matched crash, record, log"), "{:?}", r.insights);
    assert!(r.insights[2].contains("torn record (sacred moment"), "{:?}", r.insights);
    assert!(r.insights.iter().any(|i| i.contains("sacred moment")), "{:?}", r.insights);
    assert!(r.reason.contains("[crash, record, log]"), "{}", r.reason);
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
    let mut reader = Reader::open(dir.path()).unwrap();
    let mut nav = MemoryNavigator::new();
    let inv = Invitation { sacred_only: true, ..invitation("crash", "semantic memory navigation") };
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
    let mut reader = Reader::open(dir.path()).unwrap();
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
    let mut reader = Reader::open(dir.path()).unwrap();
    let r = answer(
        &mut ConsciousnessWitness::new(),
        &invitation("crash", "consciousness emergence patterns"),
        &mut reader,
    );
    assert!(r.accepted, "{r:?}");
    // Memories 1, 2, 4 and 6 mention crash: 3 storage, 1 search; 2 sacred.
    assert!(
        r.insights[0]
            .contains("4 matching memories across 2 domains; storage 3 (75%), search 1 (25%)"),
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
    let nav = spawn(BuiltIn::Navigator, dir.path());
    let witness = spawn(BuiltIn::Witness, dir.path());
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
