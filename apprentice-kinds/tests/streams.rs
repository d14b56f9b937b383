//! Memory streams with real processes: navigators watching a store through the restart-capable
//! `Circle`, one of them SIGKILLed midway.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use apprentice_core::{Circle, Context, Invitation, RestartPolicy, SpawnOptions};
use index_publisher::Publisher;
use semantic_index::{Document, SegmentBuilder};

/// Watches start here; memories stamped earlier are not new.
const T0: i64 = 1_800_000_000_000_000;

fn doc(n: u32, domain: &str, question: &str, timestamp_micros: i64) -> Document {
    let mut id = [0x5a; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    Document {
        id,
        domain: domain.into(),
        question: question.into(),
        timestamp_micros,
        ..Default::default()
    }
}

fn id(n: u32) -> String {
    let mut id = [0x5a; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    uuid::Uuid::from_bytes(id).to_string()
}

/// Publishes `docs` as one more segment: a new generation.
fn publish(p: &mut Publisher, docs: &[Document]) {
    let mut b = SegmentBuilder::new().generation(p.generation() + 1);
    for d in docs {
        b.add(d).unwrap();
    }
    let entry = p.write_segment(&b).unwrap();
    let mut segments = p.current().map(|m| m.segments.clone()).unwrap_or_default();
    segments.push(entry);
    let seq = p.generation() + 1;
    p.publish(seq, segments).unwrap();
}

/// Memory n: a zebra in the savanna (n % 3 == 0), a zebra in a zoo (1), a lion (2).
fn memory(n: u32) -> Document {
    let t = T0 + i64::from(n);
    match n % 3 {
        0 => doc(n, "savanna", &format!("zebra herd number {n} crossed the river"), t),
        1 => doc(n, "zoo", &format!("zebra foal number {n} was born"), t),
        _ => doc(n, "savanna", &format!("lion pride number {n} rested"), t),
    }
}

fn interest(task: &str, domain: Option<&str>) -> Invitation {
    Invitation {
        task: task.into(),
        specialization: "semantic memory navigation".into(),
        context: Context { domain: domain.map(Into::into), ..Context::default() },
        ..Invitation::default()
    }
}

/// Receives pushes until every member has delivered what `expected` says (or a minute passes).
fn drain(circle: &mut Circle, got: &mut [BTreeSet<String>; 4], expected: &[BTreeSet<String>; 4]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while got != expected && Instant::now() < deadline {
        let Some((name, push)) = circle.next_push(Duration::from_secs(1)) else {
            circle.heal();
            continue;
        };
        let i: usize = name.strip_prefix("watcher-").unwrap().parse().unwrap();
        for m in push.memories {
            assert!(got[i].insert(m.id.clone()), "{name} delivered {} twice", m.id);
        }
    }
}

#[test]
fn watching_navigators_push_every_new_match_once_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    // Before the watch: a zebra memory that is not new and must never be pushed.
    publish(&mut p, &[doc(100_000, "savanna", "an old zebra sighting", T0 - 1)]);

    let apprentice = env!("CARGO_BIN_EXE_apprentice");
    let policy =
        RestartPolicy { initial_backoff: Duration::from_millis(1), ..RestartPolicy::default() };
    let mut circle = Circle::new(dir.path(), SpawnOptions::default(), policy);
    let interests = [
        interest("zebra", None),
        interest("zebra", None),
        interest("zebra", Some("savanna")),
        interest("lion pride", None),
    ];
    for (i, inv) in interests.iter().enumerate() {
        circle
            .add(format!("watcher-{i}"), move || {
                let mut c = Command::new(apprentice);
                c.arg("navigator");
                c
            })
            .unwrap();
        circle.watch(&format!("watcher-{i}"), inv, T0, Duration::from_secs(30)).unwrap();
    }
    let wants = |n: u32| -> [bool; 4] { [n % 3 != 2, n % 3 != 2, n.is_multiple_of(3), n % 3 == 2] };
    let mut expected: [BTreeSet<String>; 4] = Default::default();
    let mut got: [BTreeSet<String>; 4] = Default::default();
    const STORES: u32 = 300;
    for n in 0..STORES {
        publish(&mut p, &[memory(n)]);
        for (i, w) in wants(n).into_iter().enumerate() {
            if w {
                expected[i].insert(id(n));
            }
        }
        if n == STORES / 2 {
            // Everything so far delivered, then watcher-1 dies mid-stream.
            drain(&mut circle, &mut got, &expected);
            assert_eq!(got, expected, "delivered before the kill");
            let pid = circle.pid("watcher-1").unwrap();
            let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
            assert!(killed.success());
            // heal() restarts it once it is gone; it resumes from what it delivered.
            let deadline = Instant::now() + Duration::from_secs(60);
            while circle.pid("watcher-1") == Some(pid) && Instant::now() < deadline {
                circle.heal();
                std::thread::sleep(Duration::from_millis(1));
            }
            let restarted = circle.pid("watcher-1");
            assert!(restarted.is_some_and(|r| r != pid), "restarted as a new process");
        }
    }
    drain(&mut circle, &mut got, &expected);
    for i in 0..4 {
        assert_eq!(got[i].len(), expected[i].len(), "watcher-{i}: count");
        assert_eq!(got[i], expected[i], "watcher-{i}: 0 lost");
    }
    assert_eq!(circle.duplicates(), 0, "no memory was pushed twice");
    assert!(!got[0].contains(&id(100_000)), "an old memory is not new");
    circle.terminate();
}

#[test]
fn a_kind_that_does_not_watch_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::open(dir.path()).unwrap();
    publish(&mut p, &[memory(0)]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apprentice"));
    cmd.arg("witness");
    let a =
        apprentice_core::Apprentice::spawn(cmd, Path::new(dir.path()), &SpawnOptions::default())
            .unwrap();
    let err = a.watch(&interest("zebra", None), T0, &[], Duration::from_secs(30)).unwrap_err();
    assert_eq!(err.to_string(), "apprentice reported: the witness kind does not watch");
}
