//! The search rows: ours interleaved per query with the peers (tantivy, SQLite FTS5) and a
//! naive scan, then each back to back; allocations per search; a searching process's memory.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use benches::corpus::Corpus;
use benches::stats::stats;
use shm_reader::{Hits, Query, Ranking, Reader, SearchOptions};

use crate::alloc::allocations;
use crate::report::Report;

/// The peers, built over the same corpus.
#[cfg(feature = "peers")]
struct Peers {
    tantivy: benches::peers::Tantivy,
    sqlite: benches::peers::Sqlite,
}

#[cfg(feature = "peers")]
impl Peers {
    fn build(corpus: &Corpus, dir: &Path, c: &str, report: &mut Report) -> anyhow::Result<Peers> {
        let tdir = dir.join("tantivy");
        std::fs::create_dir_all(&tdir)?;
        let t = Instant::now();
        let tantivy = benches::peers::Tantivy::build(&corpus.memories, &tdir)?;
        report.put("build (ms), tantivy", c, t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let sqlite = benches::peers::Sqlite::build(&corpus.memories, &dir.join("fts.db"))?;
        report.put("build (ms), sqlite fts5", c, t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let reopened = benches::peers::Tantivy::open(&tdir)?;
        report.put(
            "open (ms), tantivy (same process, unchecked)",
            c,
            t.elapsed().as_secs_f64() * 1e3,
        );
        drop(reopened);
        Ok(Peers { tantivy, sqlite })
    }
}

/// What one interleaved run measured (µs per search; the first round is a warm-up).
#[derive(Default)]
struct Interleaved {
    ours: Vec<f64>,
    allocations: u64,
    searches: u64,
    naive: Vec<f64>,
    #[cfg(feature = "peers")]
    tantivy: Vec<f64>,
    #[cfg(feature = "peers")]
    sqlite: Vec<f64>,
}

/// The search rows over the published `store`; peers (if asked) are built in `dir`, and
/// dropped with what they wrote flushed before this returns.
pub(crate) fn rows(
    corpus: &Corpus,
    store: &Path,
    dir: &Path,
    c: &str,
    peers: bool,
    quick: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let queries: Vec<Query> = corpus.queries.iter().map(Query::from_keywords).collect();
    let mut reader = Reader::open(store)?;
    #[cfg(feature = "peers")]
    let peer_set = if peers { Some(Peers::build(corpus, dir, c, report)?) } else { None };
    #[cfg(not(feature = "peers"))]
    let _ = (peers, dir);
    let naive = (corpus.memories.len() <= 100_000)
        .then(|| benches::naive::NaiveScan::new(&corpus.memories));
    let rounds = if quick { 2 } else { 5 };
    let run = interleaved(
        &mut reader,
        &queries,
        corpus,
        naive.as_ref(),
        #[cfg(feature = "peers")]
        peer_set.as_ref(),
        rounds,
    )?;
    // Back to back, without peers in between: what a process that only searches sees.
    let alone = stats(back_to_back(&mut reader, &queries, &SearchOptions::default(), rounds)?);
    // Pure Jaccard (weights 0: relevance alone, no boost to stop early on), back to back.
    let jaccard = SearchOptions {
        ranking: Ranking::Jaccard,
        w_score: 0.0,
        w_sacred: 0.0,
        ..SearchOptions::default()
    };
    let (j50, j99, _) = stats(back_to_back(&mut reader, &queries, &jaccard, rounds)?);
    report.put("search p50 (µs), ours, pure Jaccard (weights 0), back to back", c, j50);
    report.put("search p99 (µs), ours, pure Jaccard (weights 0), back to back", c, j99);
    #[cfg(feature = "peers")]
    if peer_set.is_some() && corpus.memories.len() <= 100_000 {
        let overlap = benches::peers::single_field_overlap(corpus, dir)?;
        report.put("top-10 overlap with tantivy BM25, single-field corpus (%)", c, overlap);
    }
    report.put("search p50 (µs), ours, back to back", c, alone.0);
    report.put("search p99 (µs), ours, back to back", c, alone.1);
    #[cfg(feature = "peers")]
    if let Some(p) = &peer_set {
        let (t50, t99, _) = stats(tantivy_back_to_back(p, corpus, rounds)?);
        report.put("search p50 (µs), tantivy, back to back", c, t50);
        report.put("search p99 (µs), tantivy, back to back", c, t99);
        report.put("ratio p50 tantivy / ours, back to back", c, t50 / alone.0);
        report.put("ratio p99 tantivy / ours, back to back", c, t99 / alone.1);
    }
    report_interleaved(run, c, report);

    // The peers are done: drop them and flush what they wrote, so that the rows after these
    // (the apprentices' round trips, the store's fsyncs) do not run beside the kernel writing
    // back the peers' indexes (seen: those rows twice as slow with --peers as without).
    #[cfg(feature = "peers")]
    drop(peer_set);
    benches::os::sync_all();
    Ok(())
}

/// Each query through ours, then through each peer, round after round.
fn interleaved(
    reader: &mut Reader,
    queries: &[Query],
    corpus: &Corpus,
    naive: Option<&benches::naive::NaiveScan>,
    #[cfg(feature = "peers")] peers: Option<&Peers>,
    rounds: usize,
) -> anyhow::Result<Interleaved> {
    let options = SearchOptions::default();
    let mut hits = Hits::with_capacity(10);
    let mut run = Interleaved::default();
    for round in 0..=rounds {
        for (qi, q) in queries.iter().enumerate() {
            let a0 = allocations();
            let t = Instant::now();
            reader.search(q, &options, &mut hits)?;
            let dt = t.elapsed().as_secs_f64() * 1e6;
            let a1 = allocations();
            std::hint::black_box(hits.len());
            if round > 0 {
                run.ours.push(dt);
                run.allocations += a1 - a0;
                run.searches += 1;
            }
            #[cfg(feature = "peers")]
            if let Some(p) = peers {
                let t = Instant::now();
                std::hint::black_box(p.tantivy.search(&corpus.queries[qi], 10)?);
                let dt_t = t.elapsed().as_secs_f64() * 1e6;
                let t = Instant::now();
                std::hint::black_box(p.sqlite.search(&corpus.queries[qi], 10)?);
                let dt_s = t.elapsed().as_secs_f64() * 1e6;
                if round > 0 {
                    run.tantivy.push(dt_t);
                    run.sqlite.push(dt_s);
                }
            }
            if let (Some(nv), 1) = (naive, round) {
                let t = Instant::now();
                std::hint::black_box(nv.search(&corpus.queries[qi], 10));
                run.naive.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    Ok(run)
}

/// Every query through ours, `rounds` times, nothing in between (µs per search).
fn back_to_back(
    reader: &mut Reader,
    queries: &[Query],
    options: &SearchOptions,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut hits = Hits::with_capacity(10);
    let mut times = Vec::with_capacity(rounds * queries.len());
    for _ in 0..rounds {
        for q in queries {
            let t = Instant::now();
            reader.search(q, options, &mut hits)?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(hits.len());
        }
    }
    Ok(times)
}

#[cfg(feature = "peers")]
fn tantivy_back_to_back(p: &Peers, corpus: &Corpus, rounds: usize) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for _ in 0..rounds {
        for q in &corpus.queries {
            let t = Instant::now();
            std::hint::black_box(p.tantivy.search(q, 10)?);
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(times)
}

fn report_interleaved(run: Interleaved, c: &str, report: &mut Report) {
    let searches = run.searches.max(1) as f64;
    let (p50, p99, mean) = stats(run.ours);
    report.put("search p50 (µs), ours, interleaved with peers", c, p50);
    report.put("search p99 (µs), ours, interleaved with peers", c, p99);
    report.put("search mean (µs), ours, interleaved with peers", c, mean);
    report.put("allocations per search, ours", c, run.allocations as f64 / searches);
    if !run.naive.is_empty() {
        let (np50, np99, nmean) = stats(run.naive);
        report.put("search p50 (µs), naive linear scan", c, np50);
        report.put("search p99 (µs), naive linear scan", c, np99);
        report.put("search mean (µs), naive linear scan", c, nmean);
        report.put("ratio p50 naive / ours", c, np50 / p50);
    }
    #[cfg(feature = "peers")]
    if !run.tantivy.is_empty() {
        let (tp50, tp99, tmean) = stats(run.tantivy);
        let (sp50, sp99, smean) = stats(run.sqlite);
        report.put("search p50 (µs), tantivy, interleaved", c, tp50);
        report.put("search p99 (µs), tantivy, interleaved", c, tp99);
        report.put("search mean (µs), tantivy, interleaved", c, tmean);
        report.put("search p50 (µs), sqlite fts5, interleaved", c, sp50);
        report.put("search p99 (µs), sqlite fts5, interleaved", c, sp99);
        report.put("search mean (µs), sqlite fts5, interleaved", c, smean);
        report.put("ratio p50 tantivy / ours, interleaved", c, tp50 / p50);
        report.put("ratio p99 tantivy / ours, interleaved", c, tp99 / p99);
        report.put("ratio p50 sqlite / ours, interleaved", c, sp50 / p50);
    }
}

/// The memory of a fresh process that ran every query once (`bench-suite probe-search`).
pub(crate) fn rss_rows(
    corpus: &Corpus,
    store: &Path,
    dir: &Path,
    c: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let qfile = dir.join("queries.txt");
    corpus.write_queries(std::fs::File::create(&qfile)?)?;
    let exe = std::env::current_exe()?;
    let out = Command::new(&exe).arg("probe-search").arg(store).arg(&qfile).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let nums: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    if let [rss, anon, file] = nums[..] {
        report.put("searching process RSS (MiB)", c, rss / 1024.0);
        report.put("searching process anonymous RSS (MiB)", c, anon / 1024.0);
        report.put("searching process file-backed RSS (MiB, shared)", c, file / 1024.0);
    }
    Ok(())
}
