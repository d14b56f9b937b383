//! A child stores memories in a loop, printing each id once `store` returned; the parent
//! SIGKILLs it at random moments. Every printed id must survive.
//!
//! The parent never guesses how fast the child is: it kills only after reading a random number
//! (1 to 8) of acknowledged ids from the child, so the child is ready and has stored memories
//! however busy the machine is, and the kill lands somewhere in the next store (building,
//! committing, publishing, merging or collecting).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use memory_store::{Memory, MemoryStore, Query, SearchOptions};

const CHILD_ENV: &str = "MEMORY_STORE_KILL_CHILD";
/// Kills in `cargo test`; `cargo xtask torture --kills N` sets `MEMORY_STORE_KILLS`.
const KILLS: usize = 100;

fn kills() -> usize {
    std::env::var("MEMORY_STORE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(KILLS)
}

#[test]
fn kill_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let mut store = MemoryStore::open(&dir).unwrap();
    let mut n = 0u64;
    loop {
        let mut m = Memory::new("kill", format!("acknowledged memory {} {n}", std::process::id()));
        m.synthesis = "durable".into();
        let id = store.store(m).unwrap();
        println!("{id}");
        n += 1;
    }
}

#[test]
fn sigkilled_writer_loses_no_acknowledged_memory() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged = Vec::<uuid::Uuid>::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let kills = kills();
    let started = std::time::Instant::now();
    for kill in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", "kill::kill_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (acks, received) = mpsc::channel();
        let collector = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may print "test kill::kill_child ... " before the first id.
                let last = line.split_whitespace().last().unwrap_or("");
                if let Ok(id) = last.parse::<uuid::Uuid>() {
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
        let acks = &acknowledged;
        for id in acks.iter() {
            assert!(store.get(*id).unwrap().is_some(), "kill {kill}: acknowledged {id} lost");
        }
        // Search finds the newest acknowledged memories through the index.
        if let Some(last) = acks.last() {
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
