//! Real apprentice processes (the test worker binary) over real sockets.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apprentice_core::{
    Apprentice, Circle, Error, Invitation, RestartPolicy, SpawnOptions, BUSY_REASON,
};
use index_publisher::Publisher;
use semantic_index::{Document, SegmentBuilder};

const WORKER: &str = env!("CARGO_BIN_EXE_apprentice-core-test-worker");

fn worker(mode: &str) -> Command {
    let mut c = Command::new(WORKER);
    c.env("TEST_WORKER_MODE", mode);
    c
}

fn store_with(dir: &Path, n: u8) -> Publisher {
    let mut p = Publisher::open(dir).unwrap();
    publish(&mut p, n);
    p
}

fn publish(p: &mut Publisher, n: u8) {
    let mut b = SegmentBuilder::new();
    for i in 0..n {
        b.add(&Document {
            id: [i; 16],
            domain: "d".into(),
            question: format!("memory {i}"),
            ..Default::default()
        })
        .unwrap();
    }
    let e = p.write_segment(&b).unwrap();
    p.publish(u64::from(n), vec![e]).unwrap();
}

fn invitation(task: &str) -> Invitation {
    Invitation {
        task: task.into(),
        specialization: "testing echoes".into(),
        ..Invitation::default()
    }
}

fn quick() -> SpawnOptions {
    SpawnOptions {
        hello_timeout: Duration::from_secs(10),
        grace: Duration::from_millis(500),
        socket_base: None,
    }
}

/// Gone: no /proc entry, or a zombie awaiting a reaper that is not us.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    gone(pid)
}

#[test]
fn invite_round_trip_and_new_generations_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = store_with(dir.path(), 3);
    let a = Apprentice::spawn(worker("echo"), dir.path(), &quick()).unwrap();
    assert_eq!(a.kind(), "echo");
    assert_eq!(a.specialization(), "testing echoes");
    let r = a.invite(&invitation("first"), Duration::from_secs(10)).unwrap();
    assert!(r.accepted);
    assert_eq!(r.reason, "echo of first");
    assert_eq!(r.insights, ["generation 1 with 3 memories"]);
    publish(&mut p, 7);
    let r = a.invite(&invitation("second"), Duration::from_secs(10)).unwrap();
    assert_eq!(
        r.insights,
        ["generation 2 with 7 memories"],
        "a generation published after start is seen"
    );
    a.ping(Duration::from_secs(5)).unwrap();
    let pid = a.pid();
    let status = a.terminate().unwrap();
    assert!(status.success(), "{status}");
    assert!(gone(pid));
}

#[test]
fn mismatched_specialization_declines_with_the_expertise_named() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let a = Apprentice::spawn(worker("echo"), dir.path(), &quick()).unwrap();
    let inv = Invitation { specialization: "database optimization".into(), ..invitation("tune") };
    let r = a.invite(&inv, Duration::from_secs(10)).unwrap();
    assert!(!r.accepted);
    assert_eq!(
        r.reason,
        "task requires database optimization expertise; I specialize in testing echoes"
    );
    assert_eq!(r.confidence, 0.0);
}

#[test]
fn a_busy_apprentice_declines() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let a = Arc::new(Apprentice::spawn(worker("slow"), dir.path(), &quick()).unwrap());
    let first = std::thread::spawn({
        let a = a.clone();
        move || a.invite(&invitation("long"), Duration::from_secs(10))
    });
    std::thread::sleep(Duration::from_millis(100));
    let second = a.invite(&invitation("short"), Duration::from_secs(10)).unwrap();
    assert!(!second.accepted);
    assert_eq!(second.reason, BUSY_REASON);
    assert!(first.join().unwrap().unwrap().accepted);
}

#[test]
fn a_child_killed_mid_invitation_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let a = Apprentice::spawn(worker("crash"), dir.path(), &quick()).unwrap();
    let pid = a.pid();
    let t = Instant::now();
    let err = a.invite(&invitation("boom"), Duration::from_secs(30)).unwrap_err();
    assert!(matches!(err, Error::Lost { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(30), "returned before the timeout");
    assert!(err.to_string().contains("outcome is unknown"), "{err}");
    drop(a);
    assert!(gone(pid), "reaped");
}

#[test]
fn a_hanging_child_times_out_and_drop_reaps_it() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let a = Apprentice::spawn(worker("hang"), dir.path(), &quick()).unwrap();
    let pid = a.pid();
    let err = a.invite(&invitation("wait"), Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    drop(a);
    assert!(gone(pid), "Drop kills and reaps");
}

#[test]
fn a_child_that_never_says_hello_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let opts = SpawnOptions { hello_timeout: Duration::from_millis(400), ..quick() };
    let err = Apprentice::spawn(worker("silent"), dir.path(), &opts).unwrap_err();
    assert!(matches!(err, Error::HelloTimeout { .. }), "{err}");
}

#[test]
fn garbage_and_oversized_frames_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    for which in ["oversized", "garbage"] {
        let mut cmd = worker("garbage");
        cmd.env("TEST_WORKER_GARBAGE", which);
        let err = Apprentice::spawn(cmd, dir.path(), &quick()).unwrap_err();
        match (which, &err) {
            ("oversized", Error::Frame(apprentice_core::FrameError::TooLarge { .. })) => {}
            ("garbage", Error::Frame(apprentice_core::FrameError::Malformed(_))) => {}
            _ => panic!("{which}: {err:?}"),
        }
    }
}

#[test]
fn a_missing_store_is_reported_by_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let err = Apprentice::spawn(worker("echo"), &dir.path().join("nowhere"), &quick()).unwrap_err();
    assert!(matches!(err, Error::Worker(ref m) if m.contains("opening store")), "{err}");
}

#[test]
fn a_circle_of_eight_answers_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 2);
    let mut circle = Circle::new(dir.path(), quick(), RestartPolicy::default());
    for i in 0..8 {
        circle.add(format!("echo-{i}"), || worker("slow")).unwrap();
    }
    let pids: Vec<u32> = circle.members().iter().filter_map(|m| m.1).collect();
    assert_eq!(pids.len(), 8);
    let t = Instant::now();
    let results = circle.invite_all(&invitation("together"), Duration::from_secs(20));
    let took = t.elapsed();
    assert_eq!(results.len(), 8);
    assert!(results.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.accepted)));
    // Eight 400 ms answers in parallel take far less than eight in a row (3.2 s).
    assert!(took < Duration::from_millis(3000), "not concurrent: {took:?}");
    circle.terminate();
    assert!(pids.iter().all(|&p| gone(p)));
}

#[test]
fn crashing_members_restart_with_backoff_then_fail() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let policy = RestartPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..RestartPolicy::default()
    };
    let mut circle = Circle::new(dir.path(), quick(), policy);
    circle.add("crasher", || worker("crash")).unwrap();
    let first = circle.members()[0].1.unwrap();
    let results = circle.invite_all(&invitation("boom"), Duration::from_secs(10));
    assert!(matches!(results[0].1, Err(Error::Lost { .. })));
    let second = circle.members()[0].1.unwrap();
    assert_ne!(first, second, "restarted as a new process");
    for _ in 0..6 {
        let _ = circle.invite_all(&invitation("boom"), Duration::from_secs(10));
    }
    let why = circle.failure("crasher").expect("marked failed");
    assert!(why.contains("restarted 5 times"), "{why}");
    let results = circle.invite_all(&invitation("boom"), Duration::from_secs(10));
    assert!(matches!(results[0].1, Err(Error::Failed(_))));
}

const SUPERVISOR_ENV: &str = "APPRENTICE_CORE_TEST_SUPERVISOR";

/// Child: a supervisor that spawns three apprentices, prints their pids, and waits to be killed.
#[test]
fn supervisor_child() {
    let Ok(store) = std::env::var(SUPERVISOR_ENV) else { return };
    let apprentices: Vec<Apprentice> = (0..3)
        .map(|_| Apprentice::spawn(worker("echo"), Path::new(&store), &quick()).unwrap())
        .collect();
    let pids: Vec<String> = apprentices.iter().map(|a| a.pid().to_string()).collect();
    println!("pids {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(3600));
}

#[test]
fn no_apprentice_outlives_a_sigkilled_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let mut sup = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "supervisor::supervisor_child", "--nocapture", "--test-threads=1"])
        .env(SUPERVISOR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(sup.stdout.take().unwrap()).lines();
    let pids: Vec<u32> = loop {
        let line = lines.next().expect("supervisor printed pids").unwrap();
        // libtest prints "test name ... " on the same line before the test's own output.
        if let Some((_, rest)) = line.split_once("pids ") {
            break rest.split_whitespace().map(|p| p.parse().unwrap()).collect();
        }
    };
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| !gone(p)), "apprentices running before the kill");
    sup.kill().unwrap(); // SIGKILL: no Drop runs in the supervisor
    sup.wait().unwrap();
    for p in pids {
        assert!(wait_gone(p, Duration::from_secs(2)), "apprentice {p} outlived its supervisor");
    }
}
