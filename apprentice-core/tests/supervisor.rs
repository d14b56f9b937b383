//! Real apprentice processes (the test worker binary) over real sockets.

use std::io::BufRead;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apprentice_core::{
    Apprentice, Circle, Error, Invitation, RestartPolicy, SpawnOptions, BUSY_REASON,
};

const WORKER: &str = env!("CARGO_BIN_EXE_apprentice-core-test-worker");

fn worker(mode: &str) -> Command {
    let mut c = Command::new(WORKER);
    c.env("TEST_WORKER_MODE", mode);
    c
}

/// A store for the test worker: its state file says how many memories it holds.
struct Store(std::path::PathBuf);

fn store_with(dir: &Path, n: u8) -> Store {
    let mut p = Store(dir.to_owned());
    publish(&mut p, n);
    p
}

/// Replaces the state the test worker reads (its next generation).
fn publish(p: &mut Store, n: u8) {
    std::fs::write(p.0.join("state"), format!("{n} memories")).unwrap();
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

/// Polls `done` (a condition another process makes true) until it holds, for at most a minute.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

#[test]
fn a_busy_apprentice_declines() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let a = Arc::new(Apprentice::spawn(worker("gate"), dir.path(), &quick()).unwrap());
    let first = std::thread::spawn({
        let a = a.clone();
        move || a.invite(&invitation("long"), Duration::from_secs(120))
    });
    // The worker has the first invitation once it creates `entered`.
    assert!(wait_until(|| dir.path().join("entered").exists()), "first invitation arrived");
    let second = a.invite(&invitation("short"), Duration::from_secs(10)).unwrap();
    assert!(!second.accepted);
    assert_eq!(second.reason, BUSY_REASON);
    std::fs::write(dir.path().join("release"), b"").unwrap();
    let first = first.join().unwrap().unwrap();
    assert!(first.accepted);
    assert_eq!(first.reason, "echo of long");
}

#[test]
fn a_child_killed_mid_invitation_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let a = Apprentice::spawn(worker("crash"), dir.path(), &quick()).unwrap();
    let pid = a.pid();
    // Lost, not TimedOut: the supervisor noticed the death instead of waiting out the 30 s.
    let err = a.invite(&invitation("boom"), Duration::from_secs(30)).unwrap_err();
    assert!(matches!(err, Error::Lost { .. }), "{err}");
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
fn a_worker_of_another_protocol_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let err = Apprentice::spawn(worker("v1"), dir.path(), &quick()).unwrap_err();
    assert!(matches!(err, Error::Protocol { expected: 3, got: 1 }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "apprentice speaks protocol 1, this supervisor speaks 3: run an apprentice built with this supervisor"
    );
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
        circle
            .add(format!("echo-{i}"), || {
                let mut c = worker("barrier");
                c.env("TEST_WORKER_BARRIER", "8");
                c
            })
            .unwrap();
    }
    let pids: Vec<u32> = circle.members().iter().filter_map(|m| m.1).collect();
    assert_eq!(pids.len(), 8);
    // Each member answers only once all eight hold an invitation at the same time.
    let results = circle.invite_all(&invitation("together"), Duration::from_secs(180));
    assert_eq!(results.len(), 8);
    for (name, r) in &results {
        let r = r.as_ref().unwrap();
        assert_eq!(r.reason, "echo of together", "{name} was not invited concurrently");
    }
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

#[test]
fn only_the_spawned_child_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    // The worker first starts an impostor (same user) that connects to the socket before it,
    // claims the worker's pid in a forged Hello, and answers any invitation with "forged".
    let a = Apprentice::spawn(worker("impostor-first"), dir.path(), &quick()).unwrap();
    assert_eq!(a.kind(), "echo");
    let r = a.invite(&invitation("who"), Duration::from_secs(10)).unwrap();
    assert_eq!(r.reason, "echo of who; the impostor was refused");
}

#[test]
fn an_oversized_answer_is_cut_to_fit_and_the_worker_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let a = Apprentice::spawn(worker("huge"), dir.path(), &quick()).unwrap();
    let r = a.invite(&invitation("big"), Duration::from_secs(60)).unwrap();
    assert!(r.accepted);
    assert!(
        r.reason.starts_with(
            "echo of big (reply cut to fit the 8388608-byte frame cap: 9 insights, 0 memories)"
        ),
        "{}",
        r.reason
    );
    assert_eq!(r.insights.len(), 9);
    assert!(r.insights.iter().all(|i| i.chars().count() == 4097 && i.ends_with('…')));
    a.ping(Duration::from_secs(10)).unwrap();
    assert!(a.is_alive());
}

/// The `mcs-apprentice-*` directories in `base`.
fn socket_dirs(base: &Path) -> Vec<String> {
    std::fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mcs-apprentice-"))
        .collect()
}

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_apprentice-core-test-supervisor");

/// Starts the test supervisor (two echo apprentices up, a third in its handshake), kills it
/// with `signal`, and checks what it leaves: no process, and only the half-made socket
/// directory, which the next spawn in the same place removes.
fn kill_supervisor_with(signal: rustix::process::Signal) {
    let dir = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let _p = store_with(dir.path(), 1);
    let mut sup = Command::new(SUPERVISOR);
    // A test run started in the background (`cmd &`, `nohup`) inherits SIGINT and SIGHUP
    // ignored, and exec keeps an ignored signal ignored: the supervisor would then outlive the
    // signal this test sends. It gets the dispositions an interactive shell gives a program.
    // SAFETY: the closure runs in the forked child before exec and only calls `signal`, which
    // is async-signal-safe, with valid signal numbers and `SIG_DFL`; it touches no memory of
    // the parent.
    unsafe {
        sup.pre_exec(|| {
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                if libc::signal(s, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut sup =
        sup.arg(WORKER).arg(dir.path()).arg(base.path()).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(sup.stdout.take().unwrap()).lines();
    let mut pids: Vec<u32> = Vec::new();
    let mut silent: Option<u32> = None;
    while pids.is_empty() || silent.is_none() {
        let line = lines.next().expect("the supervisor and its silent worker report").unwrap();
        if let Some(rest) = line.strip_prefix("pids ") {
            pids = rest.split_whitespace().map(|p| p.parse().unwrap()).collect();
        } else if let Some(pid) = line.strip_prefix("silent ") {
            silent = Some(pid.parse().unwrap());
        }
    }
    assert_eq!(pids.len(), 2);
    pids.extend(silent);
    assert!(pids.iter().all(|&p| !gone(p)), "apprentices running before the kill");
    // Two handshakes done (their directories are gone already), one in progress.
    assert_eq!(socket_dirs(base.path()).len(), 1, "{:?}", socket_dirs(base.path()));

    let pid = rustix::process::Pid::from_raw(sup.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let status = sup.wait().unwrap();
    assert!(!status.success(), "{status}");
    for p in pids {
        assert!(wait_gone(p, Duration::from_secs(60)), "apprentice {p} outlived its supervisor");
    }

    let options = SpawnOptions { socket_base: Some(base.path().to_owned()), ..quick() };
    let a = Apprentice::spawn(worker("echo"), dir.path(), &options).unwrap();
    assert_eq!(socket_dirs(base.path()), Vec::<String>::new(), "the dead supervisor's directory");
    assert!(a.terminate().unwrap().success());
}

#[test]
fn a_sigkilled_supervisor_leaves_no_process_and_no_directory() {
    kill_supervisor_with(rustix::process::Signal::KILL);
}

#[test]
fn a_sigtermed_supervisor_leaves_no_process_and_no_directory() {
    kill_supervisor_with(rustix::process::Signal::TERM);
}

#[test]
fn a_siginted_supervisor_leaves_no_process_and_no_directory() {
    kill_supervisor_with(rustix::process::Signal::INT);
}
