//! The records rows of the bench suite (issue 17): ingest, single durable store, store open,
//! get by id in a fresh process, rebuild. Each operation runs in its own child process
//! (`bench-suite probe-records OP ...`) so that its peak RSS (`VmHWM`) is its own.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use memory_store::{Memory, MemoryStore};

use crate::corpus::Corpus;

/// Memories per commit during ingest, as `mcs ingest` does.
const INGEST_BATCH: usize = 20_000;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Resident anonymous and file-backed memory now (MiB): what is the process's own and what is
/// the mapped index.
fn rss_split_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `exe probe-records ARGS` and parses the numbers it prints on one line.
fn child(exe: &Path, args: &[&str]) -> anyhow::Result<Vec<f64>> {
    let out = Command::new(exe).arg("probe-records").args(args).output()?;
    if !out.status.success() {
        bail!("probe-records {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .map(|w| w.parse::<f64>().with_context(|| format!("probe-records said {text:?}")))
        .collect()
}

/// The records rows for `corpus`, as (metric, value).
pub fn run(corpus: &Corpus, exe: &Path) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("memories.jsonl");
    {
        let mut w = BufWriter::new(std::fs::File::create(&file)?);
        for m in &corpus.memories {
            writeln!(w, "{}", m.to_json_line())?;
        }
        w.flush()?;
    }
    let store = dir.path().join("store");
    let (file_s, store_s) = (file.to_string_lossy(), store.to_string_lossy());
    let mut rows = Vec::new();
    let ingest = child(exe, &["ingest", &store_s, &file_s])?;
    rows.push(("records: ingest, durable (s)", ingest[0]));
    rows.push(("records: ingest peak RSS (MiB)", ingest[1]));
    let opens: Vec<f64> =
        (0..5).map(|_| child(exe, &["open", &store_s]).map(|v| v[0])).collect::<Result<_, _>>()?;
    rows.push(("records: store open, writer, fresh process (ms, median)", median(opens)));
    let id = corpus.memories[corpus.memories.len() / 2].id_string();
    let gets =
        (0..5).map(|_| child(exe, &["get", &store_s, &id])).collect::<Result<Vec<_>, _>>()?;
    rows.push((
        "records: get by id, fresh process, records only (ms, median)",
        median(gets.iter().map(|v| v[0]).collect()),
    ));
    rows.push((
        "records: get by id, fresh process, with the index open (ms, median)",
        median(gets.iter().map(|v| v[1]).collect()),
    ));
    let single = child(exe, &["single", &store_s])?;
    rows.push(("records: single durable store p50 (ms)", single[0]));
    rows.push(("records: single store process peak RSS (MiB)", single[1]));
    rows.push(("records: fsync floor, 512 B append + fdatasync (ms, median)", single[2]));
    rows.push(("records: single store process, anonymous RSS at the end (MiB)", single[3]));
    rows.push((
        "records: single store process, file-backed RSS at the end (MiB; the mapped index)",
        single[4],
    ));
    let rebuild = child(exe, &["rebuild", &store_s])?;
    rows.push(("records: rebuild (s)", rebuild[0]));
    rows.push(("records: rebuild peak RSS (MiB)", rebuild[1]));
    rows.push(("records: rebuild, anonymous RSS at the end (MiB)", rebuild[2]));
    rows.push(("records: rebuild, file-backed RSS at the end (MiB; the mapped index)", rebuild[3]));
    let verify = child(exe, &["verify", &store_s])?;
    rows.push(("records: verify, records and index (s)", verify[0]));
    rows.push(("records: verify peak RSS (MiB)", verify[1]));
    Ok(rows)
}

/// `probe-records OP STORE [ARG]`, run in a child by [`run`]; prints its figures on one line.
pub fn probe(args: &[String]) -> anyhow::Result<()> {
    let arg =
        |i: usize| args.get(i).map(String::as_str).context("probe-records needs more arguments");
    let store = Path::new(arg(1)?);
    match arg(0)? {
        "ingest" => {
            let t = Instant::now();
            let mut s = MemoryStore::open(store)?;
            let input = BufReader::with_capacity(1 << 20, std::fs::File::open(arg(2)?)?);
            let mut batch = Vec::with_capacity(INGEST_BATCH);
            for line in input.lines() {
                batch.push(Memory::from_json(&line?)?);
                if batch.len() == INGEST_BATCH {
                    s.ingest_batch(std::mem::take(&mut batch))?;
                }
            }
            s.ingest_batch(batch)?;
            s.publish_pending()?;
            println!("{} {}", t.elapsed().as_secs_f64(), peak_rss_mib());
        }
        "open" => {
            let t = Instant::now();
            let mut s = MemoryStore::open(store)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            // Waits for the index the open checks on its own thread: a damaged one fails here.
            anyhow::ensure!(s.repaired().is_none(), "open rebuilt the index: {:?}", s.repaired());
            println!("{ms}");
        }
        "get" => {
            let id: uuid::Uuid = arg(2)?.parse()?;
            let t = Instant::now();
            let found = memory_store::get_from_records(store, id)?;
            let records_only = t.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(found.is_some(), "{id} not found");
            let t = Instant::now();
            let s = MemoryStore::open_read_only(store)?;
            anyhow::ensure!(s.get(id)?.is_some(), "{id} not found");
            println!("{records_only} {}", t.elapsed().as_secs_f64() * 1e3);
        }
        "single" => {
            // The disk's floor in the same run: what one durable append costs here.
            let mut floor = Vec::new();
            {
                use std::io::Write as _;
                let path = store.join("fsync-floor.tmp");
                let mut f = std::fs::File::create(&path)?;
                for _ in 0..20 {
                    let t = Instant::now();
                    f.write_all(&[7u8; 512])?;
                    f.sync_data()?;
                    floor.push(t.elapsed().as_secs_f64() * 1e3);
                }
                drop(f);
                std::fs::remove_file(&path)?;
            }
            let mut s = MemoryStore::open(store)?;
            let mut times = Vec::new();
            for i in 0..50 {
                let mut m = Memory::new("bench", format!("single durable store probe {i}"));
                m.synthesis = "one memory, one commit, one published generation".into();
                let t = Instant::now();
                s.store(m)?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let (anon, file) = rss_split_mib();
            println!("{} {} {} {anon} {file}", median(times), peak_rss_mib(), median(floor));
        }
        "rebuild" => {
            let t = Instant::now();
            let mut s = MemoryStore::open(store)?;
            s.rebuild()?;
            let (anon, file) = rss_split_mib();
            println!("{} {} {anon} {file}", t.elapsed().as_secs_f64(), peak_rss_mib());
        }
        "verify" => {
            let t = Instant::now();
            let mut s = MemoryStore::open(store)?;
            let report = s.verify()?;
            anyhow::ensure!(report.is_ok(), "verify: {report:?}");
            println!("{} {}", t.elapsed().as_secs_f64(), peak_rss_mib());
        }
        other => bail!("probe-records: unknown operation {other}"),
    }
    Ok(())
}
