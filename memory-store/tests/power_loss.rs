//! Power loss (issue 15 item 6): the store's writes, syncs, renames, removals and directory
//! creations are recorded through `atomic_write::seam` while a writer stores, ingests, forgets,
//! publishes, merges and collects garbage; every crash state a POSIX file system may leave at
//! every point of that trace (the model is in `crash/mod.rs` and benches/NOTES.md) is built as real
//! files, opened by a reader and by a writer (which recovers), and checked: every acknowledged
//! memory is there, no acknowledged forget is undone, and the index agrees with the records.
//!
//! Its own test binary: the seam's hook is process-wide.
#![cfg(unix)]

mod crash;

use std::collections::BTreeMap;
use std::path::Path;

use crash::{Event, Recorder};
use memory_store::{Memory, MemoryStore, Query, SearchOptions, Uuid};

static RECORDER: Recorder = Recorder::new();

/// A word no other memory of the trace holds, so a search for it names one memory.
fn word(n: usize) -> String {
    let mut w = String::from("zq");
    let mut n = n + 1;
    while n > 0 {
        w.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    w.push('v');
    w
}

fn memory(n: usize) -> Memory {
    Memory::new("power", format!("what does {} hold after a power cut", word(n)))
}

/// Marks a store's acknowledgement in the trace.
fn acked(id: Uuid, m: &Memory) {
    RECORDER.mark(Event::Acked(id, m.question.clone()));
}

/// Stores, ingests, forgets, merges and reopens a store in `dir` while the recorder records;
/// returns the trace (operations, with acknowledgements between them).
fn record(dir: &Path) -> Vec<Event> {
    RECORDER.start(dir.parent().unwrap());
    let mut n = 0;
    let mut next = || {
        n += 1;
        memory(n)
    };
    RECORDER.mark(Event::Phase("open"));
    let mut store = MemoryStore::open(dir).unwrap();
    let mut kept = Vec::new();
    // Single stores: a commit and a publication each; every fourth makes a tier merge.
    RECORDER.mark(Event::Phase("store"));
    for _ in 0..4 {
        let m = next();
        let id = store.store(m.clone()).unwrap();
        acked(id, &m);
        kept.push(id);
    }
    RECORDER.mark(Event::Phase("batch"));
    let batch: Vec<Memory> = (0..3).map(|_| next()).collect();
    let report = store.store_batch(batch.clone()).unwrap();
    assert_eq!(report.stored.len(), 3);
    for m in &batch {
        acked(m.id, m);
    }
    // Forgets: tombstones in the manifest.
    RECORDER.mark(Event::Phase("forget"));
    for id in [kept[0], kept[3], batch[0].id] {
        RECORDER.mark(Event::Forgetting(id));
        assert!(store.forget(id).unwrap());
        RECORDER.mark(Event::Forgot(id));
    }
    // Ingest: durable at once, published later.
    RECORDER.mark(Event::Phase("ingest"));
    let batch: Vec<Memory> = (0..3).map(|_| next()).collect();
    store.ingest_batch(batch.clone()).unwrap();
    for m in &batch {
        acked(m.id, m);
    }
    store.publish_pending().unwrap();
    drop(store);
    RECORDER.mark(Event::Phase("reopen"));
    let mut store = MemoryStore::open(dir).unwrap();
    RECORDER.mark(Event::Phase("rebuild"));
    store.rebuild().unwrap();
    RECORDER.mark(Event::Phase("store"));
    let m = next();
    let id = store.store(m.clone()).unwrap();
    acked(id, &m);
    drop(store);
    RECORDER.stop()
}

/// A query every memory of the trace matches.
fn everything() -> Query {
    Query::from_text("power cut")
}

fn all() -> SearchOptions {
    SearchOptions { limit: 1000, ..SearchOptions::default() }
}

/// Whether a search for [`everything`] finds every acknowledged memory and no forgotten one.
fn search_agrees(hits: &[memory_store::Found], state: &crash::State) -> Result<(), String> {
    for (id, _) in &state.live {
        if !hits.iter().any(|h| h.id == *id) {
            return Err(format!("a search misses acknowledged {id}"));
        }
    }
    for id in &state.forgotten {
        if hits.iter().any(|h| h.id == *id) {
            return Err(format!("a search finds forgotten {id}"));
        }
    }
    Ok(())
}

/// Opens the crash state in `dir` as a reader, then as a writer (which recovers), and checks
/// it. Returns the first problem found.
fn check(dir: &Path, state: &crash::State) -> Result<(), String> {
    // A reader before any writer recovered may refuse (an index older than the records, a
    // damaged index) but what it answers must be right.
    if let Ok(mut reader) = MemoryStore::open_read_only(dir) {
        for (id, question) in &state.live {
            match reader.get(*id) {
                Ok(Some(found)) if found.question == *question => {}
                other => return Err(format!("reader: get {id}: {other:?}")),
            }
        }
        for id in &state.forgotten {
            if !matches!(reader.get(*id), Ok(None)) {
                return Err(format!("reader: forgotten {id} is back"));
            }
        }
        if let Ok(hits) = reader.search(&everything(), &all()) {
            search_agrees(&hits.hits, state).map_err(|e| format!("reader: {e}"))?;
        }
    }
    let mut store = MemoryStore::open(dir).map_err(|e| format!("writer open: {e}"))?;
    for (id, question) in &state.live {
        match store.get(*id) {
            Ok(Some(found)) if found.question == *question => {}
            other => return Err(format!("acknowledged {id} lost: {other:?}")),
        }
    }
    for id in &state.forgotten {
        if !matches!(store.get(*id), Ok(None)) {
            return Err(format!("forgotten {id} is back"));
        }
    }
    let hits = store.search(&everything(), &all()).map_err(|e| format!("search: {e}"))?;
    search_agrees(&hits.hits, state)?;
    // The recovered index agrees with the records, which hold no damage: a torn last commit
    // is an unacknowledged tail (the next commit cuts it), never damage or a lost memory.
    let report = store.verify().map_err(|e| format!("verify: {e}"))?;
    if !report.is_ok() {
        return Err(format!("verify after recovery: {report:?}"));
    }
    Ok(())
}

#[test]
fn every_power_loss_state_recovers_every_acknowledged_memory() {
    let root = tempfile::tempdir().unwrap();
    let trace = record(&root.path().join("store"));
    let ops = trace.iter().filter(|e| matches!(e, Event::Op(_))).count();
    let work = tempfile::tempdir().unwrap();
    let mut checked = 0usize;
    let mut failures = Vec::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let started = std::time::Instant::now();
    let generated = crash::states(&trace, |state| {
        let at = work.path().join(checked.to_string());
        state.files.materialize(&at).unwrap();
        if let Err(problem) = check(&at.join("store"), &state) {
            let class = problem.split(':').next().unwrap_or_default().to_owned();
            *classes.entry(format!("{}/{} {class}", state.phase, state.kind)).or_default() += 1;
            failures.push(format!(
                "state {checked} at event {} ({} {}; {}): {problem}",
                state.point, state.phase, state.kind, state.variant
            ));
        }
        *by_kind.entry(format!("{}/{}", state.phase, state.kind)).or_default() += 1;
        std::fs::remove_dir_all(&at).unwrap();
        checked += 1;
    });
    println!(
        "power loss: {ops} operations recorded, {generated} crash states generated, {checked} \
         distinct checked in {:.1} s, {} failed; by phase/operation: {by_kind:?}; failures: {classes:?}",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} crash states failed:\n{}",
        failures.len(),
        failures.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    for kind in ["store/commit", "store/publish", "store/merge", "store/gc", "forget/commit"] {
        assert!(by_kind.get(kind).is_some_and(|&n| n > 0), "no crash state during {kind}");
    }
    assert!(checked >= 1_000, "only {checked} distinct crash states");
}
