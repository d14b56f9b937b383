//! `stream-bench [STORES]`: memory-stream push latency and delivery, as issue 19 states it.
//!
//! A store with 10,000 memories and a restart-capable `Circle` of four navigator apprentices
//! (the release `apprentice` binary beside this one), each with a standing interest: two watch
//! "zebra", one "zebra" in the savanna domain only, one "lion pride". Then STORES times (default
//! 1,000) `MemoryStore::store` one memory: a zebra in the savanna, a zebra in a zoo or a lion,
//! in turn, and wait until every running watcher that wants it has pushed it. Halfway, the
//! second zebra watcher is SIGKILLed; the circle restarts it and it resumes from what it had
//! delivered, while the stores go on.
//!
//! Prints the latency from a store's return (the memory is acknowledged: durable and
//! published) to each push that carries it, p50, p99 and max in milliseconds; the same from the
//! call to `store` (record fsync and publication included); and what the killed watcher caught
//! up after its restart. Fails unless every watcher delivered exactly the memories it wants:
//! none lost, none pushed twice.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apprentice_core::{Circle, Context, Invitation, RestartPolicy, SpawnOptions};
use benches::stats::percentile;
use memory_store::{Memory, MemoryStore};

const WATCHERS: usize = 4;
/// The watcher SIGKILLed halfway.
const KILLED: usize = 1;

/// Which watchers want memory `n` (see the module comment).
fn wants(n: usize) -> [bool; WATCHERS] {
    [n % 3 != 2, n % 3 != 2, n.is_multiple_of(3), n % 3 == 2]
}

fn memory(n: usize) -> Memory {
    match n % 3 {
        0 => Memory::new("savanna", format!("zebra herd number {n} crossed the river")),
        1 => Memory::new("zoo", format!("zebra foal number {n} was born")),
        _ => Memory::new("savanna", format!("lion pride number {n} rested")),
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

fn watcher(i: usize) -> String {
    format!("watcher-{i}")
}

struct Stored {
    called: Instant,
    acknowledged: Instant,
}

fn main() -> anyhow::Result<()> {
    let stores: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("STORES must be a whole number")?,
        None => 1000,
    };
    anyhow::ensure!(stores >= 2, "STORES must be at least 2");
    let dir = tempfile::tempdir()?;
    let mut store = MemoryStore::open(dir.path())?;
    let filler: Vec<Memory> = (0..10_000)
        .map(|i| Memory::new("filler", format!("background memory {i} about storage and search")))
        .collect();
    store.store_batch(filler)?;

    let exe = benches::sibling_exe("apprentice")?;
    let policy =
        RestartPolicy { initial_backoff: Duration::from_millis(1), ..RestartPolicy::default() };
    let mut circle = Circle::new(dir.path(), SpawnOptions::default(), policy);
    let interests = [
        interest("zebra", None),
        interest("zebra", None),
        interest("zebra", Some("savanna")),
        interest("lion pride", None),
    ];
    let after = chrono::Utc::now().timestamp_micros();
    for (i, inv) in interests.iter().enumerate() {
        let exe = exe.clone();
        circle.add(watcher(i), move || {
            let mut c = Command::new(&exe);
            c.arg("navigator");
            c
        })?;
        circle.watch(&watcher(i), inv, after, Duration::from_secs(30))?;
    }

    let mut stored: HashMap<String, (usize, Stored)> = HashMap::with_capacity(stores);
    let mut expected: [BTreeSet<String>; WATCHERS] = Default::default();
    let mut got: [BTreeSet<String>; WATCHERS] = Default::default();
    let mut from_ack = Vec::with_capacity(stores * 2);
    let mut from_call = Vec::with_capacity(stores * 2);
    let mut catch_up = Vec::new();
    // The killed watcher's pid and the store count at the kill, until it is back.
    let mut down: Option<(u32, usize)> = None;
    let mut restarted_after: Option<Duration> = None;
    let mut killed_at: Option<Instant> = None;

    let mut receive = |circle: &mut Circle,
                       got: &mut [BTreeSet<String>; WATCHERS],
                       stored: &HashMap<String, (usize, Stored)>,
                       down: Option<(u32, usize)>|
     -> anyhow::Result<bool> {
        let Some((name, push)) = circle.next_push(Duration::from_millis(100)) else {
            circle.heal();
            return Ok(false);
        };
        let received = Instant::now();
        let i: usize = name.strip_prefix("watcher-").context("a member of the circle")?.parse()?;
        for m in &push.memories {
            let (n, s) = stored.get(&m.id).with_context(|| format!("{name} pushed {}", m.id))?;
            anyhow::ensure!(wants(*n)[i], "{name} pushed memory {n}, which it does not watch");
            anyhow::ensure!(got[i].insert(m.id.clone()), "{name} pushed memory {n} twice");
            let ack = received.saturating_duration_since(s.acknowledged).as_secs_f64() * 1e3;
            let call = received.duration_since(s.called).as_secs_f64() * 1e3;
            // A memory stored while its watcher was down is caught up, not streamed.
            if i == KILLED && down.is_some_and(|(_, at)| *n >= at) {
                catch_up.push(ack);
            } else {
                from_ack.push(ack);
                from_call.push(call);
            }
        }
        Ok(true)
    };

    let deadline = |what: &str| {
        let until = Instant::now() + Duration::from_secs(60);
        let what = what.to_owned();
        move || -> anyhow::Result<()> {
            anyhow::ensure!(Instant::now() < until, "{what}: nothing within 60 s");
            Ok(())
        }
    };

    for n in 0..stores {
        if n == stores / 2 {
            let pid = circle.pid(&watcher(KILLED)).context("the watcher to kill runs")?;
            let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status()?;
            anyhow::ensure!(status.success(), "kill -KILL {pid} failed");
            down = Some((pid, n));
            killed_at = Some(Instant::now());
        }
        let memory = memory(n);
        let id = memory.id.to_string();
        let called = Instant::now();
        store.store(memory)?;
        let acknowledged = Instant::now();
        stored.insert(id.clone(), (n, Stored { called, acknowledged }));
        for (i, w) in wants(n).into_iter().enumerate() {
            if w {
                expected[i].insert(id.clone());
            }
        }
        // Wait for every running watcher that wants it; the killed one catches up later.
        let check = deadline(&format!("memory {n}"));
        loop {
            let waiting = (0..WATCHERS)
                .any(|i| wants(n)[i] && !got[i].contains(&id) && !(i == KILLED && down.is_some()));
            if !waiting {
                break;
            }
            check()?;
            receive(&mut circle, &mut got, &stored, down)?;
        }
        circle.heal();
        if let Some((pid, _)) = down {
            let back = circle.pid(&watcher(KILLED)).is_some_and(|p| p != pid);
            if back && restarted_after.is_none() {
                restarted_after = killed_at.map(|t| t.elapsed());
            }
            // Back and caught up with everything stored while it was down: streaming again.
            if back && expected[KILLED].iter().all(|id| got[KILLED].contains(id)) {
                down = None;
            }
        }
    }
    // Whatever the restarted watcher still owes.
    let check = deadline("the end");
    while got != expected {
        check()?;
        receive(&mut circle, &mut got, &stored, down)?;
    }
    let killed_pid = down.map(|(pid, _)| pid);
    anyhow::ensure!(
        killed_pid.is_none() || circle.pid(&watcher(KILLED)) != killed_pid,
        "the killed watcher was never restarted"
    );
    let duplicates = circle.duplicates();
    anyhow::ensure!(duplicates == 0, "{duplicates} memories pushed twice");
    for i in 0..WATCHERS {
        let lost = expected[i].difference(&got[i]).count();
        anyhow::ensure!(lost == 0, "{}: {lost} memories lost", watcher(i));
    }
    circle.terminate();

    from_ack.sort_by(f64::total_cmp);
    from_call.sort_by(f64::total_cmp);
    catch_up.sort_by(f64::total_cmp);
    let wanted: usize = expected.iter().map(BTreeSet::len).sum();
    println!(
        "stream push: {stores} stores on 10k memories, {WATCHERS} watchers, {} SIGKILLed at store {} \
         and running again within {:.1} ms",
        watcher(KILLED),
        stores / 2,
        restarted_after.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
    );
    println!("  {wanted} pushes wanted, {wanted} delivered, 0 lost, 0 duplicated");
    let row = |label: &str, v: &[f64]| {
        println!(
            "  {label}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} pushes)",
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN),
            v.len()
        );
    };
    row("store acknowledged → push received", &from_ack);
    row("store called → push received      ", &from_call);
    if !catch_up.is_empty() {
        row("caught up after the restart (from ack)", &catch_up);
    }
    Ok(())
}
