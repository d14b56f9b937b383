//! The store rows: durable ingest, single store latency, publish → visible in another
//! process, and search through the live segments against one merged segment.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use benches::corpus::Corpus;
use benches::stats::stats;
use memory_store::{Memory, MemoryStore};
use shm_reader::{Hits, Query, Reader, SearchOptions};

use crate::probes::now_micros;
use crate::report::{median, Report};

/// The store rows, over a store made in `dir` from the corpus.
pub(crate) fn rows(
    corpus: &Corpus,
    dir: &Path,
    c: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let store_dir = dir.join("store");
    let mut store = ingest(corpus, &store_dir, c, report)?;

    // Single durable store latency (each publishes a generation; merges included). These
    // also leave the store with several live segments for the comparison below.
    let mut singles = Vec::new();
    for i in 0..50 {
        let mut m = Memory::new("bench", format!("single store probe {i}"));
        m.synthesis = corpus.memories[i].synthesis.clone();
        let t = Instant::now();
        store.store(m)?;
        singles.push(t.elapsed().as_secs_f64() * 1e3);
    }
    report.put("single store latency (ms, median, durable)", c, median(singles));

    let visible = visible_in_another_process(&mut store, &store_dir)?;
    report.put("store → visible in another process (ms, median; incl. fsyncs)", c, visible);
    live_against_merged(store, &store_dir, corpus, c, report)
}

/// Ingests the corpus durably, 20,000 memories a batch.
fn ingest(
    corpus: &Corpus,
    store_dir: &Path,
    c: &str,
    report: &mut Report,
) -> anyhow::Result<MemoryStore> {
    let lines: Vec<String> = corpus.memories.iter().map(|m| m.to_json_line()).collect();
    let t = Instant::now();
    let mut store = MemoryStore::open(store_dir)?;
    for chunk in lines.chunks(20_000) {
        let memories = chunk.iter().map(|l| Memory::from_json(l)).collect::<Result<Vec<_>, _>>()?;
        store.store_batch(memories)?;
    }
    let secs = t.elapsed().as_secs_f64();
    report.put("store ingest, durable (s; parse + commit + publish)", c, secs);
    report.put("store ingest throughput (memories/s)", c, lines.len() as f64 / secs);
    Ok(store)
}

/// The median ms from a store's start until another process (`bench-suite probe-visible`,
/// printing each generation it sees with the time) sees its generation. A store may publish
/// twice (append, then merge), so it waits for the generation the store reports after it
/// returned.
fn visible_in_another_process(store: &mut MemoryStore, store_dir: &Path) -> anyhow::Result<f64> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("probe-visible")
        .arg(store_dir)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let ready = lines.next().context("probe-visible did not start")??;
    anyhow::ensure!(ready.trim() == "ready", "probe-visible said {ready}");
    let mut visible = Vec::new();
    for i in 0..20 {
        // Spaced out, so that each store starts with the probe idle.
        std::thread::sleep(Duration::from_millis(20));
        let mut m = Memory::new("bench", format!("visibility probe {i}"));
        m.question = format!("visibility probe {i}");
        let before = now_micros();
        store.store(m)?;
        let target = store.generation();
        loop {
            let line = lines.next().context("probe-visible ended")??;
            let (generation, seen) = line
                .split_once(' ')
                .and_then(|(g, t)| Some((g.parse::<u64>().ok()?, t.parse::<u128>().ok()?)))
                .with_context(|| format!("probe-visible said {line:?}"))?;
            if generation >= target {
                visible.push(seen.saturating_sub(before) as f64 / 1e3);
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(median(visible))
}

/// Search through the store's live segments against one merged segment: keeps a snapshot of
/// the live generation, rebuilds, and interleaves the two per query.
fn live_against_merged(
    mut store: MemoryStore,
    store_dir: &Path,
    corpus: &Corpus,
    c: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let queries: Vec<Query> = corpus.queries.iter().map(Query::from_keywords).collect();
    let options = SearchOptions::default();
    let segments = store.stats()?.segments;
    let live = Reader::open(store_dir)?.snapshot();
    drop(store);
    let mut store = MemoryStore::open(store_dir)?;
    store.rebuild()?;
    let merged = Reader::open(store_dir)?.snapshot();
    let mut hits = Hits::with_capacity(10);
    let (mut t_live, mut t_merged) = (Vec::new(), Vec::new());
    for round in 0..4 {
        for q in &queries {
            let t = Instant::now();
            live.search(q, &options, &mut hits);
            let a = t.elapsed().as_secs_f64() * 1e6;
            let t = Instant::now();
            merged.search(q, &options, &mut hits);
            let b = t.elapsed().as_secs_f64() * 1e6;
            if round > 0 {
                t_live.push(a);
                t_merged.push(b);
            }
        }
    }
    let (multi, merged) = (stats(t_live).0, stats(t_merged).0);
    report.put("store's live segments before the rebuild (count)", c, segments as f64);
    report.put("search p50 through the store, live segments (µs)", c, multi);
    report.put("search p50 through the store, one merged segment (µs)", c, merged);
    report.put("ratio live segments / merged", c, multi / merged);
    Ok(())
}
