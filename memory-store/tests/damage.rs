//! Damage to the records through the real `mcs`: a flipped byte, a cut log, a deleted log.
//! Each reports the exact number of memories lost; intact stores lose none; `mcs repair` keeps
//! every intact record and quarantines the rest.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mcs(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", crate::NO_MODEL)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A store of `n` memories ingested one commit per line batch, and their ids in order.
fn store_with(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
    let store = dir.join("s");
    let mut lines = String::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{i:08x}-0000-4000-8000-{:012x}", i + 1);
        lines.push_str(&format!(
            "{{\"id\":\"{id}\",\"domain\":\"d{}\",\"question\":\"damage probe number {i}\",\"synthesis\":\"words for memory {i}\",\"sacred\":{}}}\n",
            i % 3,
            i % 4 == 0
        ));
        ids.push(id);
    }
    let file = dir.join("in.jsonl");
    std::fs::write(&file, lines).unwrap();
    let out = mcs(&store, &["ingest", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (store, ids)
}

fn log_of(store: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(store.join("records"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

fn offset_of(log: &Path, needle: &str) -> usize {
    let bytes = std::fs::read(log).unwrap();
    bytes.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap()
}

#[test]
fn an_intact_store_verifies_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = store_with(dir.path(), 40);
    let out = mcs(&store, &["verify"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("40 intact"), "{}", text(&out.stdout));
    for id in &ids {
        assert!(mcs(&store, &["get", id]).status.success(), "{id}");
    }
}

#[test]
fn a_flipped_byte_loses_exactly_one_memory_and_repair_quarantines_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = store_with(dir.path(), 40);
    let log = log_of(&store);
    let mut bytes = std::fs::read(&log).unwrap();
    let at = offset_of(&log, "damage probe number 17\"");
    bytes[at + 3] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();

    let out = mcs(&store, &["get", &ids[17]]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("is damaged"),
        "{}",
        text(&out.stderr)
    );
    assert!(mcs(&store, &["get", &ids[18]]).status.success());
    let out = mcs(&store, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("1 memory lost") && err.contains(&ids[17]), "{err}");
    // Writes go on.
    let out = mcs(&store, &["add", "--domain", "d", "--question", "written after the damage"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = mcs(&store, &["repair"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kept 40 memories, lost 1"), "{}", text(&out.stdout));
    let quarantine: Vec<_> = std::fs::read_dir(store.join("quarantine")).unwrap().collect();
    assert_eq!(quarantine.len(), 2, "a report and the damaged bytes");
    let out = mcs(&store, &["verify"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("40 intact"), "{}", text(&out.stdout));
}

#[test]
fn a_cut_log_reports_the_lost_memories_never_rebuilt_ok() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _ids) = store_with(dir.path(), 30);
    // Make the id index cover the whole log (repair rewrites both), then cut the last 5 records.
    assert!(mcs(&store, &["repair"]).status.success());
    let log = log_of(&store);
    let cut = offset_of(&log, "damage probe number 25\"");
    let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.set_len(cut as u64).unwrap();
    drop(file);
    for args in [&["add", "--domain", "d", "--question", "q"][..], &["rebuild"][..]] {
        let out = mcs(&store, args);
        assert!(!out.status.success(), "{args:?} succeeded on a cut log");
        assert!(
            text(&out.stderr).contains("records of 5 memories are lost"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = mcs(&store, &["repair"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kept 25 memories, lost 5"), "{}", text(&out.stdout));
    assert!(mcs(&store, &["verify"]).status.success());
}

#[test]
fn a_cut_log_counts_the_memories_stored_after_the_id_index() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _ids) = store_with(dir.path(), 30);
    // The id index covers the 30 (repair rewrites it); the two stored next are only in the log
    // and in the published index until the id index's next checkpoint.
    assert!(mcs(&store, &["repair"]).status.success());
    for q in ["stored after the checkpoint", "stored after it too"] {
        let out = mcs(&store, &["add", "--domain", "d", "--question", q]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let log = log_of(&store);
    let cut = offset_of(&log, "damage probe number 25\"");
    let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.set_len(cut as u64).unwrap();
    drop(file);
    let out = mcs(&store, &["verify"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("records of 7 memories are lost"), "{}", text(&out.stderr));
    let out = mcs(&store, &["repair"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kept 25 memories, lost 7"), "{}", text(&out.stdout));
    assert!(mcs(&store, &["verify"]).status.success());
}

#[test]
fn a_deleted_log_reports_every_memory_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _ids) = store_with(dir.path(), 12);
    assert!(mcs(&store, &["repair"]).status.success());
    std::fs::remove_file(log_of(&store)).unwrap();
    let out = mcs(&store, &["add", "--domain", "d", "--question", "q"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("records of 12 memories are lost"), "{}", text(&out.stderr));
    let out = mcs(&store, &["repair"]);
    assert!(text(&out.stdout).contains("kept 0 memories, lost 12"), "{}", text(&out.stdout));
}

#[test]
fn a_deleted_records_directory_reports_every_memory_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = store_with(dir.path(), 9);
    std::fs::remove_dir_all(store.join("records")).unwrap();
    let out = mcs(&store, &["add", "--domain", "d", "--question", "q"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("records of 9 memories are lost"), "{}", text(&out.stderr));
    let out = mcs(&store, &["repair"]);
    assert!(text(&out.stdout).contains("kept 0 memories, lost 9"), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(&ids[4]), "{}", text(&out.stdout));
    assert!(mcs(&store, &["verify"]).status.success());
}

#[test]
fn a_cut_tail_after_publication_is_loss_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _ids) = store_with(dir.path(), 10);
    let out = mcs(&store, &["add", "--domain", "d", "--question", "the last acknowledged memory"]);
    assert!(out.status.success());
    let log = log_of(&store);
    let cut = offset_of(&log, "the last acknowledged memory");
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(cut as u64).unwrap();
    let out = mcs(&store, &["add", "--domain", "d", "--question", "q"]);
    assert!(!out.status.success(), "a write went on over a lost commit");
    assert!(text(&out.stderr).contains("records of 1 memories are lost"), "{}", text(&out.stderr));
}

#[test]
fn export_then_ingest_reads_back_identically_and_list_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = store_with(dir.path(), 25);
    let out = mcs(&store, &["export"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = text(&out.stdout);
    assert_eq!(exported.lines().count(), 25);
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let copy = dir.path().join("copy");
    let out = mcs(&copy, &["ingest", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = mcs(&copy, &["export"]);
    assert_eq!(text(&again.stdout), exported);

    let out = mcs(&store, &["list", "--domain", "d1", "--json"]);
    let listed: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(listed.len(), 8);
    assert!(listed.iter().all(|m| m["domain"] == "d1"));
    let out = mcs(&store, &["list", "--sacred", "--limit", "18446744073709551615"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 7);
    assert!(text(&out.stdout).lines().next().unwrap().starts_with(&ids[0]));
    let out = mcs(&store, &["search", "damage probe", "--limit", "18446744073709551615", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"].as_array().unwrap().len(), 25);
}
