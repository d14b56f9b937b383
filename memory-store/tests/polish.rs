//! `mcs` as a new user meets it: closed pipes, id prefixes, help, re-runs, clear errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn mcs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcs"));
    c.env_remove("MCS_STORE");
    c.env("MCS_MODEL_DIR", crate::NO_MODEL);
    c
}

fn run(store: &Path, args: &[&str]) -> Output {
    mcs().arg("--store").arg(store).args(args).output().unwrap()
}

fn ingest(store: &Path, text: &str) -> Output {
    let file = store.with_extension("jsonl");
    std::fs::write(&file, text).unwrap();
    run(store, &["ingest", file.to_str().unwrap()])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_reader_that_closes_the_pipe_ends_mcs_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    // 3,000 hits of about 100 bytes: far more than a pipe holds, so mcs is still writing (or
    // blocked writing) when the reader goes away.
    let lines: String = (0..3000)
        .map(|i| format!("{{\"domain\":\"d{}\",\"question\":\"flutter number {i}\"}}\n", i % 7))
        .collect();
    let out = ingest(&store, &lines);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [&["search", "flutter", "--limit", "5000"][..], &["sacred"], &["stats"]] {
        let mut child = mcs()
            .arg("--store")
            .arg(&store)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?} printed nothing");
        drop(stdout); // `| head -1`
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

const THREE: &str = r#"{"id":"11111111-1111-4111-8111-111111111111","domain":"design","question":"How do readers share the index?"}
{"id":"11112222-2222-4222-8222-222222222222","domain":"ops","question":"What survives a crash of the index writer?"}
{"id":"abcdef00-3333-4333-8333-333333333333","domain":"design","question":"Why share one index?","context":{"ticket":"MC-7"},"human":"ann","session_id":"s-42"}
"#;

#[test]
fn ids_can_be_given_by_a_unique_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert!(ingest(&store, THREE).status.success());

    let out = run(&store, &["get", "11111"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("How do readers share the index?"));
    // The eight characters a table prints, in any case, with or without dashes.
    let out = run(&store, &["get", "ABCDEF00", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "abcdef00-3333-4333-8333-333333333333");
    assert!(run(&store, &["get", "abcdef00-33"]).status.success());

    let out = run(&store, &["get", "1111"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("1111 is ambiguous: 2 ids start with it"), "{err}");
    assert!(err.contains("11111111-1111-4111-8111-111111111111"), "{err}");

    let out = run(&store, &["get", "99"]);
    assert!(text(&out.stderr).contains("no memory id starts with 99"), "{}", text(&out.stderr));
    let out = run(&store, &["get", "xyz"]);
    assert!(text(&out.stderr).contains("is not a memory id"), "{}", text(&out.stderr));

    let out = run(&store, &["related", "abcdef", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&store, &["forget", "11112"]);
    assert!(text(&out.stdout).contains("forgot 11112222-2222-4222-8222-222222222222"));
    assert!(run(&store, &["get", "1111"]).status.success(), "unique once the other is gone");
}

#[test]
fn get_and_search_show_what_the_memory_carries() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert!(ingest(&store, THREE).status.success());
    let out = run(&store, &["get", "abcdef00"]);
    let shown = text(&out.stdout);
    for want in ["session:   s-42", "human:     ann", "ticket: MC-7"] {
        assert!(shown.contains(want), "missing {want:?} in\n{shown}");
    }
    let out = run(&store, &["search", "share index", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hit = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "abcdef00-3333-4333-8333-333333333333")
        .expect("the memory is a hit");
    assert_eq!(hit["context"], serde_json::json!({"ticket": "MC-7"}));
}

#[test]
fn ingesting_a_file_without_ids_twice_stores_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let lines = "{\"domain\":\"ops\",\"question\":\"first\"}\n{\"domain\":\"ops\",\"question\":\"second\"}\n";
    let out = ingest(&store, lines);
    assert!(
        text(&out.stdout).starts_with("ingested 2 memories, skipped 0"),
        "{}",
        text(&out.stdout)
    );
    let out = ingest(&store, lines);
    assert!(
        text(&out.stdout).starts_with("ingested 0 memories, skipped 2"),
        "{}",
        text(&out.stdout)
    );
    // A partial run re-run: the new line is stored, the old one skipped; one memory is singular.
    let out = ingest(&store, &format!("{lines}{{\"domain\":\"ops\",\"question\":\"third\"}}\n"));
    assert!(text(&out.stdout).starts_with("ingested 1 memory, skipped 2"), "{}", text(&out.stdout));
    let stats: serde_json::Value =
        serde_json::from_slice(&run(&store, &["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats["memories"], 3);
}

#[test]
fn ingest_help_documents_the_memory_format() {
    let out = mcs().args(["ingest", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    for want in ["domain", "question", "required", "RFC 3339", "derived from the line", "0..=1"] {
        assert!(help.contains(want), "missing {want:?} in\n{help}");
    }
}

#[test]
fn bad_input_gets_an_error_that_says_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    for (line, want) in [
        (
            r#"[{"domain":"d","question":"q"}]"#,
            "line 1: expected a JSON object (one memory per line), found an array",
        ),
        (
            "domain=d question=q",
            "line 1: expected a JSON object (one memory per line), found text that is not JSON",
        ),
        (
            r#"{"domain":"d","question":"q","timestamp":"30/11/2026"}"#,
            "expected an RFC 3339 date-time",
        ),
    ] {
        let out = ingest(&store, &format!("{line}\n"));
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains(want), "{line}: {}", text(&out.stderr));
    }
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a store").unwrap();
    for args in [&["stats"][..], &["add", "--domain", "d", "--question", "q"]] {
        let out = run(&file, args);
        let err = text(&out.stderr);
        assert!(err.contains("is a file, not a store directory"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a store", "the file is untouched");
}

#[test]
fn a_limit_of_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    for args in [&["search", "index", "--limit", "0"][..], &["sacred", "--limit", "0"]] {
        let out = run(&store, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("must be at least 1"), "{}", text(&out.stderr));
    }
}

#[test]
fn the_demo_ignores_mcs_store_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("real-store");
    let out = mcs().env("MCS_STORE", &store).args(["demo"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!store.exists(), "the demo wrote into MCS_STORE");
    assert!(text(&out.stdout).contains("store: "), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("segment(s)"), "{}", text(&out.stdout));
    // An explicit --store is still honoured.
    let out = mcs().arg("--store").arg(&store).arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(store.join("HEAD").exists());
}

/// The `.seg` files in the store's `segments/` directory.
fn segment_files(store: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(store.join("segments"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".seg"))
        .collect()
}

/// The files `HEAD`'s manifest names.
fn live_files(store: &Path) -> std::collections::BTreeSet<String> {
    let reader = shm_reader::Reader::open(store).unwrap();
    let snapshot = reader.snapshot();
    snapshot.segment_files().map(|(name, _)| name.to_owned()).collect()
}

#[test]
fn after_a_rebuild_only_head_says_which_segment_files_are_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert!(ingest(&store, THREE).status.success());
    let before = live_files(&store);
    assert!(run(&store, &["rebuild"]).status.success());
    let (after, on_disk) = (live_files(&store), segment_files(&store));
    assert_eq!(after.len(), 1, "a rebuild publishes one segment");
    assert!(after.is_disjoint(&before));
    // As documented: the previous generation's files stay for readers that are switching.
    assert_eq!(on_disk, after.union(&before).cloned().collect(), "stale files beside live ones");
    let stats: serde_json::Value =
        serde_json::from_slice(&run(&store, &["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats["segments"], 1, "stats counts live segments only");
    // The next publication collects them.
    assert!(run(&store, &["add", "--domain", "d", "--question", "one more"]).status.success());
    assert!(segment_files(&store).is_disjoint(&before), "collected after the next publication");
}

#[test]
fn one_memory_is_counted_in_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = run(&store, &["add", "--domain", "d", "--question", "only one"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = dir.path().join("one.jsonl");
    let out = run(&store, &["export", file.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("exported 1 memory to "), "{}", text(&out.stderr));
    let out = run(&store, &["verify"]);
    let said = text(&out.stdout);
    assert!(said.starts_with("records: 1 memory (commit "), "{said}");
    assert!(said.contains("index: 1 memory (commit "), "{said}");
    let out = run(&store, &["stats"]);
    let said = text(&out.stdout);
    // No model in these tests: the memory waits for its vector.
    assert!(said.contains("vectors:    1 pending of 1 memory\n"), "{said}");
    for wrong in ["1 memories", "(s)"] {
        assert!(!said.contains(wrong), "{wrong:?} in {said}");
    }
    let out = run(&store, &["invite", "--kind", "navigator", "--task", "only one"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&store, &["metrics"]);
    let said = text(&out.stdout);
    assert!(said.starts_with("1 response used 1 memory (1 use)"), "{said}");
    let out = ingest(&store, "{\"domain\":\"d\",\"question\":\"two\"}\n[1]\n");
    let err = text(&out.stderr);
    assert!(err.contains("found an array (each memory goes on a line of its own"), "{err}");
    assert!(err.contains("(1 memory stored before it, 0 skipped)"), "{err}");
}

#[test]
fn output_into_a_pipe_already_closed_ends_mcs_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert!(ingest(&store, THREE).status.success());
    for args in [
        &["metrics", "--prometheus"][..],
        &["metrics"],
        &["stats"],
        &["list"],
        &["export", "-"],
        &["demo"],
    ] {
        // A reader that went away before mcs wrote anything (`mcs … | true`).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = mcs()
            .arg("--store")
            .arg(&store)
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}
