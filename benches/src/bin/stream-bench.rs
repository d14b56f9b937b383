//! `stream-bench [STORES]`: memory-stream push latency. A store with 10,000 memories and a
//! navigator apprentice (the release `apprentice` binary beside this one) watching "zebra";
//! then STORES times (default 1,000): `MemoryStore::store` a matching memory, and measure from
//! its return (the memory is acknowledged: durable and published) to the apprentice's Push
//! arriving at the supervisor, and from the call to `store` (record fsync and publication
//! included). Prints p50, p99 and max in milliseconds, and checks every memory was pushed
//! exactly once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apprentice_core::{Apprentice, Invitation, SpawnOptions};
use benches::stats::percentile;
use memory_store::{Memory, MemoryStore};

fn main() -> anyhow::Result<()> {
    let stores: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("STORES must be a whole number")?,
        None => 1000,
    };
    let dir = tempfile::tempdir()?;
    let mut store = MemoryStore::open(dir.path())?;
    let filler: Vec<Memory> = (0..10_000)
        .map(|i| Memory::new("filler", format!("background memory {i} about storage and search")))
        .collect();
    store.store_batch(filler)?;

    let mut cmd = std::process::Command::new(benches::sibling_exe("apprentice")?);
    cmd.arg("navigator");
    let a = Apprentice::spawn(cmd, dir.path(), &SpawnOptions::default())?;
    let interest = Invitation {
        task: "zebra".into(),
        specialization: "semantic memory navigation".into(),
        ..Invitation::default()
    };
    let after = chrono::Utc::now().timestamp_micros();
    a.watch(&interest, after, &[], Duration::from_secs(30))?;

    let mut latencies = Vec::with_capacity(stores);
    let mut from_call = Vec::with_capacity(stores);
    let mut pushed = BTreeSet::new();
    for i in 0..stores {
        let called = Instant::now();
        let id = store.store(Memory::new("bench", format!("zebra sighting {i}")))?;
        let acknowledged = Instant::now();
        let push =
            a.pushes().recv_timeout(Duration::from_secs(30)).context("no push within 30 s")?;
        // The push often arrives before store() returns (it publishes before its own cleanup),
        // so this is 0 then; from the call it includes the record's fsync and the publication.
        latencies.push(acknowledged.elapsed().as_secs_f64() * 1e3);
        from_call.push(called.elapsed().as_secs_f64() * 1e3);
        for m in &push.memories {
            anyhow::ensure!(pushed.insert(m.id.clone()), "{} pushed twice", m.id);
        }
        anyhow::ensure!(pushed.contains(&id.to_string()), "memory {i} ({id}) not in its push");
    }
    latencies.sort_by(f64::total_cmp);
    from_call.sort_by(f64::total_cmp);
    println!(
        "stream push ({stores} stores, 10k memories; {} pushed, 0 duplicated):\n  store acknowledged → push received: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\n  store called → push received:       p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        pushed.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        percentile(&from_call, 0.5),
        percentile(&from_call, 0.99),
        from_call[from_call.len() - 1],
    );
    a.terminate()?;
    Ok(())
}
