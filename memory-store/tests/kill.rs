//! A child (tests/bin/kill_child.rs) stores memories in a loop, printing each id once `store`
//! returned; the parent SIGKILLs it at random moments. Every printed id must survive.
//!
//! The parent never guesses how fast the child is: it waits for the child's `ready`, then kills
//! only after reading a random number (1 to 8) of acknowledged ids from it, so the child has
//! stored memories however busy the machine is, and the kill lands somewhere in the next store
//! (building, committing, publishing, merging or collecting).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use memory_store::{MemoryStore, Query, SearchOptions};

/// Stores memories in a loop until killed (tests/bin/kill_child.rs).
const CHILD: &str = env!("CARGO_BIN_EXE_memory-store-test-kill-child");
/// Kills in `cargo test`; `cargo xtask torture --kills N` sets `MEMORY_STORE_KILLS`.
const KILLS: usize = 100;

fn kills() -> usize {
    std::env::var("MEMORY_STORE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(KILLS)
}

#[test]
fn sigkilled_writer_loses_no_acknowledged_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::<uuid::Uuid>::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let kills = kills();
    let started = std::time::Instant::now();
    for kill in 0..kills {
        let mut child = Command::new(CHILD)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().and_then(Result::ok);
        assert_eq!(
            ready.as_deref(),
            Some("ready"),
            "kill {kill}: the child did not open the store"
        );
        let (acks, received) = mpsc::channel();
        let collector = std::thread::spawn(move || {
            // A line cut by the kill is not an acknowledgement; every whole line is one id.
            for line in lines.map_while(Result::ok) {
                if let Ok(id) = line.parse::<uuid::Uuid>() {
                    if acks.send(id).is_err() {
                        break;
                    }
                }
            }
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Readiness: the child acknowledged at least one memory. Then a random point.
        let wait_for = 1 + seed % 8;
        for _ in 0..wait_for {
            let id = received.recv().expect("the child exited before acknowledging a memory");
            acknowledged.push(id);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever the child printed before it died was acknowledged too.
        collector.join().unwrap();
        acknowledged.extend(received.try_iter());

        let mut store = MemoryStore::open(dir.path()).unwrap();
        let report = store.verify().unwrap();
        assert!(report.is_ok(), "kill {kill}: {report:?}");
        for id in &acknowledged {
            assert!(store.get(*id).unwrap().is_some(), "kill {kill}: acknowledged {id} lost");
        }
        // Search finds the newest acknowledged memories through the index.
        if let Some(last) = acknowledged.last() {
            let gist = store.get(*last).unwrap().unwrap().question;
            let r = store
                .search(&Query::from_text(&gist), &SearchOptions { limit: 3, ..Default::default() })
                .unwrap();
            assert!(
                r.hits.iter().any(|h| h.id == *last),
                "kill {kill}: {last} not found by search"
            );
        }
    }
    let total = acknowledged.len();
    assert!(total >= kills, "every child acknowledged at least one memory: {total}");
    println!(
        "kill test: {kills} SIGKILLs of the writer, {total} acknowledged memories, all found by get \
         and verify after every kill, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
