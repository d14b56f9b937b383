//! `mcs mcp` measured through rmcp's client: the `recall` round trip over stdio at 100k
//! memories, beside the same searches made in process through memory-store (what the protocol
//! adds to), and the server's own memory while it serves.
//!
//! `cargo xtask bench-mcp` builds the release `mcs` and runs this; by hand:
//! `cargo build --release -p memory-store --bin mcs && cargo run --release -p benches --bin
//! mcp-bench -- [--n 100000]`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use memory_store::{Memory, MemoryStore, Query, SearchOptions};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::ServiceExt;

/// Rounds over the corpus's 1,000 queries, after one warm-up round.
const ROUNDS: usize = 3;
/// `remember` calls timed after the recalls.
const REMEMBERS: usize = 9;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Fields of /proc/PID/smaps_rollup, KiB.
fn rollup(pid: u32) -> anyhow::Result<impl Fn(&str) -> f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
    Ok(move |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut n = 100_000usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--n" => n = args.next().context("--n needs a number")?.parse()?,
            other => bail!("unknown argument {other:?} (usage: mcp-bench [--n N])"),
        }
    }
    let mcs = benches::sibling_exe("mcs")?;
    let dir = tempfile::tempdir()?;
    let store_dir = dir.path().join("store");
    let corpus = benches::corpus::generate(n, 42);
    let started = Instant::now();
    {
        let memories = corpus
            .memories
            .iter()
            .map(|m| Memory::from_json(&m.to_json_line()))
            .collect::<Result<Vec<_>, _>>()?;
        MemoryStore::open(&store_dir)?.store_batch(memories)?;
    }
    eprintln!("stored {n} memories in {:.1} s", started.elapsed().as_secs_f64());

    // The same recalls in process: search plus the JSON the tool answers with.
    let options = SearchOptions::default();
    let mut local_store = MemoryStore::open_read_only(&store_dir)?;
    let mut local = Vec::new();
    for round in 0..=ROUNDS {
        for q in &corpus.queries {
            let t = Instant::now();
            let results = local_store.search(&Query::from_keywords(q), &options)?;
            let text = serde_json::to_string(&results)?;
            if round > 0 {
                local.push(t.elapsed());
            }
            std::hint::black_box(text);
        }
    }
    drop(local_store);

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (mut remote, memory, remember_ms) = runtime.block_on(async {
        let cmd = tokio::process::Command::new(&mcs).configure(|c| {
            c.arg("--store").arg(&store_dir).arg("mcp");
        });
        let transport = TokioChildProcess::new(cmd)?;
        let pid = transport.id().context("the server's pid")?;
        let client = ().serve(transport).await?;
        let mut times = Vec::new();
        for round in 0..=ROUNDS {
            for q in &corpus.queries {
                let arguments = serde_json::json!({ "keywords": q });
                let serde_json::Value::Object(arguments) = arguments else { unreachable!() };
                let t = Instant::now();
                let r = client
                    .call_tool(CallToolRequestParams::new("recall").with_arguments(arguments))
                    .await?;
                let took = t.elapsed();
                if r.is_error == Some(true) {
                    bail!("recall {q:?} failed: {:?}", r.content);
                }
                if round > 0 {
                    times.push(took);
                }
            }
        }
        let field = rollup(pid)?;
        let memory = [
            field("Rss:"),
            field("Anonymous:"),
            field("Private_Dirty:") + field("Private_Clean:"),
            field("Shared_Clean:") + field("Shared_Dirty:"),
        ];
        // Writes: each opens the writer (loading the records), commits, publishes, lets go.
        let mut writes = Vec::new();
        for i in 0..REMEMBERS {
            let arguments = serde_json::json!({
                "domain": "bench", "question": format!("bench write number {i} through mcp")
            });
            let serde_json::Value::Object(arguments) = arguments else { unreachable!() };
            let t = Instant::now();
            let r = client
                .call_tool(CallToolRequestParams::new("remember").with_arguments(arguments))
                .await?;
            writes.push(t.elapsed());
            if r.is_error == Some(true) {
                bail!("remember failed: {:?}", r.content);
            }
        }
        client.cancel().await?;
        writes.sort_unstable();
        anyhow::Ok((times, memory, percentile(&writes, 0.5)))
    })?;
    local.sort_unstable();
    remote.sort_unstable();
    let (p50, p50_local) = (percentile(&remote, 0.5), percentile(&local, 0.5));
    println!("| mcs mcp, {n} memories, {} recalls after a warm-up round | value |", remote.len());
    println!("|---|---|");
    println!("| recall round trip through rmcp's client, p50 (ms) | {p50:.3} |");
    println!("| recall round trip, p90 (ms) | {:.3} |", percentile(&remote, 0.9));
    println!("| recall round trip, p99 (ms) | {:.3} |", percentile(&remote, 0.99));
    println!("| same search + JSON in process, p50 (ms) | {p50_local:.3} |");
    println!("| ratio round trip / in process (p50) | {:.1} |", p50 / p50_local);
    println!("| remember round trip, p50 of {REMEMBERS} (ms) | {remember_ms:.1} |");
    let mib = |kib: f64| kib / 1024.0;
    println!("| server RSS (MiB) | {:.1} |", mib(memory[0]));
    println!("| server anonymous memory, its own (MiB) | {:.1} |", mib(memory[1]));
    println!(
        "| server private pages incl. segment pages only it maps (MiB) | {:.1} |",
        mib(memory[2])
    );
    println!("| server shared pages (MiB) | {:.1} |", mib(memory[3]));
    Ok(())
}
