//! The real `mcs` binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn mcs(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", crate::NO_MODEL)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

fn mcs_stdin(store: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", crate::NO_MODEL)
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const GOOD: &str = r#"{"id":"11111111-1111-4111-8111-111111111111","domain":"design","question":"How do readers share the index?","insights":["they map it"],"synthesis":"one mapped segment","score":0.9,"sacred":true}
{"id":"22222222-2222-4222-8222-222222222222","domain":"ops","question":"What survives a crash?","insights":["acknowledged memories"],"synthesis":"records are the truth","score":0.4}
{"id":"33333333-3333-4333-8333-333333333333","domain":"design","question":"Why share one index between readers?","synthesis":"memory is scarce","score":0.2}
"#;

#[test]
fn ingest_search_related_get_forget_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = mcs_stdin(&store, &["ingest", "-"], GOOD);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ingested 3 memories, skipped 0"), "{}", text(&out.stdout));
    // Idempotent: the same file again skips every id.
    let file = dir.path().join("m.jsonl");
    std::fs::write(&file, GOOD).unwrap();
    let out = mcs(&store, &["ingest", file.to_str().unwrap()]);
    assert!(text(&out.stdout).contains("ingested 0 memories, skipped 3"), "{}", text(&out.stdout));

    let out = mcs(&store, &["search", "share the index", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keywords"], serde_json::json!(["share", "index"]));
    assert!(v["generation"].as_u64().unwrap() >= 1);
    let hits = v["hits"].as_array().unwrap();
    assert_eq!(hits[0]["id"], "11111111-1111-4111-8111-111111111111");
    assert_eq!(hits[1]["id"], "33333333-3333-4333-8333-333333333333");
    for key in ["id", "score", "domain", "sacred", "timestamp", "gist", "why"] {
        assert!(hits[0].get(key).is_some(), "missing {key}");
    }
    for key in ["ranking", "matched", "relevance", "terms", "score_boost", "sacred_boost"] {
        assert!(hits[0]["why"].get(key).is_some(), "missing why.{key}");
    }
    // BM25F explains each term: its field frequencies, idf and part of the relevance.
    let share = &hits[0]["why"]["terms"][0];
    assert_eq!(share["term"], "share");
    assert_eq!(share["tf"], serde_json::json!({"question": 1, "insights": 0, "synthesis": 0}));
    assert!(share["idf"].as_f64().unwrap() > 0.0 && share["contribution"].as_f64().unwrap() > 0.0);

    let out = mcs(&store, &["search", "share the index", "--ranking", "jaccard", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["why"]["ranking"], "jaccard");
    assert!(v["hits"][0]["why"].get("terms").is_none(), "Jaccard has no per-term parts");
    let out = mcs(&store, &["search", "share", "--ranking", "tfidf"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown ranking"), "{}", text(&out.stderr));

    let out = mcs(&store, &["search", "--keywords", "crash,truth", "--domain", "ops"]);
    assert!(text(&out.stdout).contains("What survives a crash?"), "{}", text(&out.stdout));

    let out = mcs(&store, &["related", "11111111-1111-4111-8111-111111111111", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["id"], "33333333-3333-4333-8333-333333333333");

    let out = mcs(&store, &["get", "22222222-2222-4222-8222-222222222222", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["synthesis"], "records are the truth");

    let out = mcs(&store, &["forget", "22222222-2222-4222-8222-222222222222"]);
    assert!(out.status.success());
    let out = mcs(&store, &["get", "22222222-2222-4222-8222-222222222222"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).lines().count(), 1, "one-line error");

    let out = mcs(&store, &["verify"]);
    assert!(out.status.success() && text(&out.stdout).contains("ok"), "{}", text(&out.stdout));
    let out = mcs(&store, &["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["memories"], 2);
    let out = mcs(&store, &["sacred", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[test]
fn an_index_this_build_cannot_read_is_named_and_rebuilt_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert!(mcs_stdin(&store, &["ingest", "-"], GOOD).status.success());
    // What a store written by a build with another segment format looks like to this one.
    for entry in std::fs::read_dir(store.join("segments")).unwrap() {
        let path = entry.unwrap().path();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&77u32.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
    }
    let out = mcs(&store, &["search", "share the index"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("unsupported segment format version 77"), "{err}");
    assert!(err.contains("mcs rebuild"), "the error says what to do: {err}");

    let out = mcs(&store, &["rebuild"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("rebuilt the index") && err.contains("version 77"), "{err}");
    let out = mcs(&store, &["search", "share the index", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["id"], "11111111-1111-4111-8111-111111111111");
    let out = mcs(&store, &["verify"]);
    assert!(out.status.success() && text(&out.stdout).contains("ok"), "{}", text(&out.stdout));
}

#[test]
fn bad_input_names_line_and_field_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let cases = [
        ("{not json", "line 2", ""),
        (r#"{"domain":"d","question":"q","colour":"red"}"#, "line 2", "unknown field `colour`"),
        (r#"{"domain":"d","question":"q","score":"high"}"#, "line 2", "field `score`"),
        (
            r#"{"domain":"d","question":"q","score":1.5}"#,
            "line 2",
            "field `score`: 1.5 is outside 0..=1",
        ),
        (r#"{"domain":"","question":"q"}"#, "line 2", "field `domain`"),
        (r#"{"id":"nope","domain":"d","question":"q"}"#, "line 2", "field `id`"),
        (r#"{"domain":"d","question":"q","insights":"not a list"}"#, "line 2", "field `insights`"),
    ];
    let mut stored = 0;
    for (n, (bad, line, field)) in cases.into_iter().enumerate() {
        // A line without an id gets one derived from its text: each case's good line differs.
        let ok = format!(r#"{{"domain":"d","question":"good memory {n}"}}"#);
        let out = mcs_stdin(&store, &["ingest", "-"], &format!("{ok}\n{bad}\n{ok}\n"));
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(line) && err.contains(field), "{bad}: {err}");
        assert!(err.contains("1 memory stored before it"), "{err}");
        stored += 1;
        let out = mcs(&store, &["stats", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["memories"], stored, "what came before the bad line stays");
    }
    assert!(mcs(&store, &["verify"]).status.success());
}

#[test]
fn usage_errors_exit_2_and_locked_store_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert_eq!(mcs(&store, &["search", "--limit", "many"]).status.code(), Some(2));
    assert_eq!(mcs(&store, &["no-such-command"]).status.code(), Some(2));
    let out = mcs(&store, &["search", "anything"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no store at"), "{}", text(&out.stderr));

    let _writer = memory_store::MemoryStore::open(&store).unwrap();
    let out = mcs(&store, &["--lock-wait", "0", "add", "--domain", "d", "--question", "q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("locked by pid {}", std::process::id())),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn add_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = mcs(
        &store,
        &[
            "add",
            "--domain",
            "ops",
            "--question",
            "Who holds the lock?",
            "--insight",
            "the writer",
            "--sacred",
            "--score",
            "0.5",
            "--context",
            "k=v",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    let out = mcs(&store, &["get", &id, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["question"], "Who holds the lock?");
    assert_eq!(v["sacred"], true);
    assert_eq!(v["context"]["k"], "v");
    assert_eq!(
        mcs(&store, &["add", "--domain", "ops", "--question", "q", "--score", "2"]).status.code(),
        Some(1)
    );
}

#[test]
fn a_reader_process_sees_complete_generations_while_the_writer_ingests() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    // Batches of 100 identical-keyword memories; a reader must always see a multiple of 100.
    let mut batches = Vec::new();
    for b in 0..6 {
        let lines: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"domain":"d","question":"generation probe {b} {i}"}}"#))
            .collect();
        batches.push(lines.join("\n"));
    }
    let out = mcs_stdin(&store, &["ingest", "-"], &batches[0]);
    assert!(out.status.success());
    let reader = std::thread::spawn({
        let store = store.clone();
        move || {
            let mut counts = Vec::new();
            for _ in 0..30 {
                let out = mcs(&store, &["search", "probe", "--limit", "1000", "--json"]);
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                counts.push(v["hits"].as_array().unwrap().len());
            }
            counts
        }
    });
    for batch in &batches[1..] {
        let out = mcs_stdin(&store, &["ingest", "-"], batch);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let counts = reader.join().unwrap();
    assert!(counts.iter().all(|c| c % 100 == 0 && *c >= 100), "{counts:?}");
}

#[test]
fn demo_runs_on_a_temporary_store() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcs"))
        .arg("demo")
        .env("MCS_MODEL_DIR", crate::NO_MODEL)
        .env_remove("MCS_STORE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("Stored 37 sample memories"), "{s}");
    assert!(s.contains("Should apprentices copy the memory index or map it?"), "{s}");
    // The first search's first hit (the line after the table header) is the memory that
    // answers "how do apprentices share memory without copying it": map, never copy.
    let first_search = &s[s.find("2. Search").unwrap()..];
    let first_hit = first_search.lines().skip_while(|l| !l.contains("matched / question")).nth(1);
    assert!(
        first_hit
            .is_some_and(|l| l.contains("Should apprentices copy the memory index or map it?")),
        "{first_search}"
    );
    assert!(s.contains("Sacred memories, newest first"), "{s}");
    assert!(s.contains("navigator (pid "), "{s}");
    assert!(s.contains("witness (pid "), "{s}");
    assert!(s.contains("Why did fsync of the file alone not make writes durable?"), "{s}");
    assert!(s.contains("task requires database optimization expertise"), "{s}");
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pid_gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

#[test]
fn invite_and_circle_run_real_apprentice_processes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert!(mcs_stdin(&store, &["ingest", "-"], GOOD).status.success());

    let v = json(&mcs(
        &store,
        &["invite", "--kind", "navigator", "--task", "crash survives", "--json"],
    ));
    assert_eq!(v["accepted"], true, "{v}");
    assert_eq!(v["apprentice"]["kind"], "navigator");
    assert_eq!(v["memories"][0]["id"], "22222222-2222-4222-8222-222222222222", "{v}");
    assert!(v["insights"][0].as_str().unwrap().contains("What survives a crash?"), "{v}");
    assert!(v["took_ms"].as_f64().unwrap() > 0.0);
    let pid = v["apprentice"]["pid"].as_u64().unwrap();
    assert_ne!(pid, u64::from(std::process::id()));
    assert!(pid_gone(pid), "apprentice {pid} outlived mcs invite");

    // A specialization the kind lacks: declined, with the expertise named.
    let v = json(&mcs(
        &store,
        &[
            "invite",
            "--kind",
            "witness",
            "--task",
            "index",
            "--specialization",
            "database optimization",
            "--json",
        ],
    ));
    assert_eq!(v["accepted"], false);
    assert_eq!(
        v["reason"],
        "task requires database optimization expertise; I specialize in consciousness emergence patterns"
    );

    let v =
        json(&mcs(&store, &["circle", "--task", "share index", "--keywords", "readers", "--json"]));
    let all = v.as_array().unwrap();
    let kinds: Vec<&str> = all.iter().map(|r| r["apprentice"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["navigator", "witness", "synthesizer", "curator"]);
    assert!(all.iter().all(|r| r["accepted"] == true), "{v}");
    assert!(
        all[1]["insights"][0].as_str().unwrap().contains("across 1 domain; design 2 (100%)"),
        "{v}"
    );

    let human = mcs(&store, &["circle", "--task", "share index"]);
    assert!(human.status.success());
    assert!(text(&human.stdout).contains("witness (pid"), "{}", text(&human.stdout));

    // A structured context: same task, other answer.
    let v = json(&mcs(
        &store,
        &[
            "invite",
            "--kind",
            "navigator",
            "--task",
            "share index readers",
            "--context",
            "domain=ops",
            "--context",
            "team=crash",
            "--json",
        ],
    ));
    assert_eq!(v["memories"][0]["id"], "22222222-2222-4222-8222-222222222222", "{v}");
    assert_eq!(v["memories"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["reason"].as_str().unwrap().ends_with("; context: domain ops, team=crash"), "{v}");
    let out = mcs(
        &store,
        &["invite", "--kind", "navigator", "--task", "x", "--context", "since=yesterday"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("--context since=yesterday: expected an RFC 3339 time or YYYY-MM-DD"),
        "{}",
        text(&out.stderr)
    );

    // No store: a clear error, not a hanging apprentice.
    let out = mcs(&dir.path().join("none"), &["invite", "--kind", "navigator", "--task", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no store at"), "{}", text(&out.stderr));
}

#[test]
fn circle_watch_pushes_new_matching_memories_as_they_are_stored() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert!(mcs_stdin(&store, &["ingest", "-"], GOOD).status.success());
    let mut watch = Command::new(env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", crate::NO_MODEL)
        .arg("--store")
        .arg(&store)
        .args(["circle", "--watch", "--task", "zebra migration"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("watching for [zebra migration]: navigator (pid "), "{first}");
    assert!(!first.contains("witness"), "the witness does not watch: {first}");
    for (domain, question) in
        [("ops", "What survives a disk fill?"), ("wild", "Where does the zebra herd go?")]
    {
        let out = mcs(&store, &["add", "--domain", domain, "--question", question]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Only the matching memory is pushed.
    let pushed = lines.next().unwrap().unwrap();
    assert!(pushed.starts_with("navigator (generation "), "{pushed}");
    assert!(pushed.contains("[wild] Where does the zebra herd go?"), "{pushed}");
    watch.kill().unwrap();
    watch.wait().unwrap();
}

/// Item 4: `mcs invite` and `mcs circle` hand the memories apprentices used to the writer,
/// which appends them to the access log; `mcs metrics` shows counts, pairs and links from it
/// (table, JSON, Prometheus); the navigator quotes the memories' own insights with their ids.
#[test]
fn invitations_record_access_and_metrics_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert!(mcs_stdin(&store, &["ingest", "-"], GOOD).status.success());
    let out = mcs(&store, &["metrics"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("0 responses used 0 memories"), "{}", text(&out.stdout));

    let out =
        mcs(&store, &["invite", "--kind", "navigator", "--task", "share the index", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let insights: Vec<&str> =
        v["insights"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert!(insights.contains(&"  insight: \"they map it\" (11111111)"), "{insights:?}");
    assert!(insights.contains(&"  synthesis: \"one mapped segment\" (11111111)"), "{insights:?}");
    assert!(insights.contains(&"  synthesis: \"memory is scarce\" (33333333)"), "{insights:?}");
    let used = v["memories"].as_array().unwrap().len() as u64;
    assert!(used >= 2, "{v}");
    assert!(mcs(&store, &["invite", "--kind", "navigator", "--task", "share the index"])
        .status
        .success());

    let out = mcs(&store, &["metrics", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["events"], 2);
    assert_eq!(m["accesses"], 2 * used);
    assert_eq!(m["by_kind"]["navigator"], 2);
    assert_eq!(m["top"][0]["id"], "11111111-1111-4111-8111-111111111111");
    assert_eq!(m["top"][0]["count"], 2);
    assert_eq!(m["top"][0]["domain"], "design");
    let pair = m["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["a"] == "11111111-1111-4111-8111-111111111111"
                && p["b"] == "33333333-3333-4333-8333-333333333333"
        })
        .unwrap_or_else(|| panic!("{m}"));
    assert_eq!((pair["count"].as_u64(), pair["cross_domain"].as_bool()), (Some(2), Some(false)));

    let out = mcs(&store, &["metrics", "--prometheus"]);
    let p = text(&out.stdout);
    assert!(
        p.contains("# TYPE mcs_access_events_total counter\nmcs_access_events_total 2\n"),
        "{p}"
    );
    assert!(
        p.contains(
            "mcs_memory_uses_total{id=\"11111111-1111-4111-8111-111111111111\",domain=\"design\"} 2"
        ),
        "{p}"
    );
    let out = mcs(&store, &["metrics"]);
    let t = text(&out.stdout);
    assert!(t.starts_with(&format!("2 responses used {used} memories")), "{t}");
    assert!(t.contains("by kind: navigator 2"), "{t}");

    // The log is checksummed frames: a torn tail costs only itself.
    let log = store.join("access").join("events.log");
    let bytes = std::fs::read(&log).unwrap();
    std::fs::write(&log, &bytes[..bytes.len() - 5]).unwrap();
    let out = mcs(&store, &["metrics", "--json"]);
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["events"], 1);
    assert!(m["skipped_bytes"].as_u64().unwrap() > 0);
}
