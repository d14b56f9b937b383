//! `bench-suite`: the measurements behind `cargo xtask bench`, run in one process (plus the
//! fresh child processes some metrics need). Build it in release; `cargo xtask bench` does.
//!
//! Usage: `bench-suite [--peers] [--large] [--quick] [--size N] [--records-only]
//! [--invitations-only] [--out DIR]`.
//!
//! One module per job: [`segment`] (build, publish, open), [`search`] (ours against the
//! peers), [`apprentices`] (spawn, round trips, memory), [`store`] (ingest, single store,
//! visibility, live segments against merged), the records rows (`benches::records_rows`), the
//! child modes ([`probes`]), and the [`report`] with its targets table.

mod alloc;
mod apprentices;
mod probes;
mod report;
mod search;
mod segment;
mod store;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use benches::corpus;

use crate::report::{targets_table, write_report, Report};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// The corpus's seed: every run measures the same memories and queries.
const SEED: u64 = 42;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i).map(String::as_str).with_context(|| format!("{} needs more arguments", args[0]))
    };
    match args.first().map(String::as_str) {
        Some("probe-open") => return probes::open(Path::new(arg(1)?)),
        Some("probe-floor") => return probes::floor(Path::new(arg(1)?)),
        Some("probe-search") => return probes::search(Path::new(arg(1)?), arg(2)?),
        Some("probe-visible") => return probes::visible(Path::new(arg(1)?)),
        Some("probe-records") => return benches::records_rows::probe(&args[1..]),
        Some("targets") => {
            // `bench-suite targets REPORT.json`: the targets table of a saved run.
            let path = arg(1)?;
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
            let rows = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
            print!("{}", targets_table(&Report { rows, order: Vec::new() }));
            return Ok(());
        }
        _ => {}
    }
    let flag = |name: &str| args.iter().any(|a| a == name);
    let peers = flag("--peers");
    let quick = flag("--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench"));
    if peers && !cfg!(feature = "peers") {
        bail!("--peers needs the `peers` feature: cargo run --release -p benches --features peers --bin bench-suite");
    }
    let mut sizes = vec![10_000usize, 100_000];
    if flag("--large") {
        sizes.push(1_000_000);
    }
    if quick {
        sizes = vec![10_000];
    }
    // `--size N`: that size alone.
    if let Some(n) = args.iter().position(|a| a == "--size").and_then(|i| args.get(i + 1)) {
        sizes = vec![n.parse().with_context(|| format!("--size {n}: expected a count"))?];
    }
    let mut report = Report::default();
    if flag("--records-only") {
        // Only the records rows (issue 17), at 100k and (with --large) 1M.
        for &n in sizes.iter().filter(|&&n| n >= 100_000) {
            records_rows(n, &mut report)?;
        }
    } else if flag("--invitations-only") {
        // Only the apprentice rows (issue 19: invitations with content reading).
        for &n in &sizes {
            apprentices::invitation_rows(n, &mut report)?;
        }
    } else {
        for &n in &sizes {
            run_size(n, peers, quick, &mut report)?;
        }
    }
    write_report(&out, &report, peers)
}

/// A report column: `10k`, `100k`, `1M`.
fn col(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else {
        format!("{}k", n / 1000)
    }
}

/// Every row at `n` memories.
fn run_size(n: usize, peers: bool, quick: bool, report: &mut Report) -> anyhow::Result<()> {
    println!("\n== N = {n} ==");
    let c = col(n);
    let corpus = corpus::generate(n, SEED);
    let dir = tempfile::tempdir()?;
    let index = segment::build_and_publish(&corpus, dir.path(), &c, report)?;
    segment::open_rows(&index.segment, &c, report)?;
    search::rows(&corpus, &index.store, dir.path(), &c, peers, quick, report)?;
    search::rss_rows(&corpus, &index.store, dir.path(), &c, report)?;
    apprentices::rows(&index.store, &corpus, &c, report)?;
    if n <= 100_000 {
        store::rows(&corpus, dir.path(), &c, report)?;
    }
    drop(corpus);
    if n >= 100_000 {
        records_rows(n, report)?;
    }
    Ok(())
}

/// The records rows (ingest, single store, open, get, rebuild, verify), each in a child process.
fn records_rows(n: usize, report: &mut Report) -> anyhow::Result<()> {
    println!("\n== records, N = {n} ==");
    let corpus = corpus::generate(n, SEED);
    let exe = std::env::current_exe()?;
    for (metric, value) in benches::records_rows::run(&corpus, &exe)? {
        println!("{metric}: {value:.3}");
        report.put(metric, &col(n), value);
    }
    Ok(())
}
