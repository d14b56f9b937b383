//! `mcs mcp`: the store served to agents over the Model Context Protocol (stdio), the
//! memory-mcp crate's server over this backend.
//!
//! Reads go through read-only stores that follow the published generations; every write opens
//! the writer (taking the store's lock), commits, and drops it, so `mcs` and other writers keep
//! working beside a long-lived server.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context;
use memory_mcp::{
    ApprenticeKind, Backend, InviteArgs, Listed, RecallArgs, RelatedArgs, RememberArgs,
    ServeOptions, ToolError,
};
use memory_store::{Memory, MemoryStore, Query, SearchOptions};
use uuid::Uuid;

use crate::apprentices;
use crate::semantic::MiniLm;

/// The store as the MCP tools see it.
struct StoreBackend {
    dir: PathBuf,
    /// Searches, related, sacred and stats (each refreshes to the newest generation first).
    search: Mutex<MemoryStore>,
    /// Follows generations for the notifications, the resource listing and `contains`.
    watch: Mutex<shm_reader::Reader>,
    /// A read-only store whose records answer `get`; reopened when asked for a memory newer
    /// than its records.
    records: Mutex<Option<MemoryStore>>,
    /// One write at a time from this server (each takes the store's lock).
    writes: Mutex<()>,
    /// The embedding model, loaded by the first search that needs it (`None`: not installed).
    model: OnceLock<Option<Arc<MiniLm>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn failed(e: impl Into<anyhow::Error>) -> ToolError {
    let e: anyhow::Error = e.into();
    match e.downcast_ref::<memory_store::Error>() {
        Some(memory_store::Error::Invalid(_)) => ToolError::Invalid(format!("{e:#}")),
        _ => ToolError::Failed(format!("{e:#}")),
    }
}

fn parse_id(tool: &str, id: &str) -> Result<Uuid, ToolError> {
    id.trim().parse().map_err(|e| {
        ToolError::Invalid(format!("{tool}: `id` {id:?} is not a memory id (a UUID): {e}"))
    })
}

impl StoreBackend {
    fn open(dir: &Path) -> anyhow::Result<StoreBackend> {
        if !dir.join("HEAD").exists() {
            // A new store: create it (the writer publishes an empty generation), then let go.
            drop(crate::open_writer(&dir.to_path_buf())?);
        }
        let search = crate::open_reader(&dir.to_path_buf())?;
        let watch = shm_reader::Reader::open(dir)
            .with_context(|| format!("opening the index of {}", dir.display()))?;
        Ok(StoreBackend {
            dir: dir.to_owned(),
            search: Mutex::new(search),
            watch: Mutex::new(watch),
            records: Mutex::new(None),
            writes: Mutex::new(()),
            model: OnceLock::new(),
        })
    }

    /// Runs `f` on the writer, opened for this write only.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut MemoryStore) -> memory_store::Result<T>,
    ) -> Result<T, ToolError> {
        let _one = lock(&self.writes);
        let mut store = MemoryStore::open(&self.dir).map_err(failed)?;
        f(&mut store).map_err(failed)
    }

    fn options(limit: Option<u32>) -> SearchOptions {
        SearchOptions { limit: limit.map_or(10, |l| l as usize), ..SearchOptions::default() }
    }
}

impl Backend for StoreBackend {
    fn remember(&self, a: RememberArgs) -> Result<String, ToolError> {
        let mut m = Memory::new(a.domain, a.question);
        m.insights = a.insights;
        m.synthesis = a.synthesis;
        m.score = a.score.unwrap_or(0.0);
        m.sacred = a.sacred;
        m.sacred_reason = a.sacred_reason;
        m.memory_type = a.memory_type;
        m.session_id = a.session_id;
        m.context = a.context;
        let id = self.write(|s| s.store(m))?;
        Ok(id.to_string())
    }

    fn recall(&self, a: RecallArgs) -> Result<serde_json::Value, ToolError> {
        let asked = match a.ranking.as_deref() {
            None => None,
            Some(name) => Some(memory_store::Ranking::from_name(name).ok_or_else(|| {
                ToolError::Invalid(format!(
                    "recall: unknown `ranking` {name:?}; this server ranks by \"bm25f\", \
                     \"jaccard\", \"vector\" or \"hybrid\" (the default when the store has \
                     vectors and the embedding model is installed; else \"bm25f\")"
                ))
            })?),
        };
        let mut words: Vec<String> = a.text.into_iter().collect();
        words.extend(a.keywords);
        let mut store = lock(&self.search);
        let model = || -> anyhow::Result<Option<Arc<MiniLm>>> {
            if let Some(m) = self.model.get() {
                return Ok(m.clone());
            }
            let loaded = crate::semantic::load_model()?.map(Arc::new);
            Ok(self.model.get_or_init(|| loaded).clone())
        };
        let (ranking, query) = crate::semantic::plan_with(
            &mut store,
            asked,
            Query::from_keywords(&words),
            &words.join(" "),
            &model,
        )
        .map_err(|e| ToolError::Invalid(format!("recall: {e:#}")))?;
        let options = SearchOptions {
            domain: a.domain,
            sacred_only: a.sacred_only,
            ranking,
            ..Self::options(a.limit)
        };
        if query.is_empty_for(ranking) {
            if options.sacred_only {
                let found =
                    store.sacred(options.domain.as_deref(), options.limit).map_err(failed)?;
                return Ok(serde_json::json!({ "keywords": [], "hits": found }));
            }
            return Err(ToolError::Invalid(
                "recall: the query has no keywords (give `text` or `keywords`: words of at least \
                 3 letters, not stop words; or `sacred_only` alone to list sacred memories)"
                    .into(),
            ));
        }
        let results = store.search(&query, &options).map_err(failed)?;
        serde_json::to_value(results).map_err(failed)
    }

    fn related(&self, a: RelatedArgs) -> Result<serde_json::Value, ToolError> {
        let id = parse_id("related", &a.id)?;
        let results = lock(&self.search).related(id, &Self::options(a.limit)).map_err(failed)?;
        let results = results.ok_or_else(|| ToolError::NotFound(id.to_string()))?;
        serde_json::to_value(results).map_err(failed)
    }

    fn get(&self, id: &str) -> Result<serde_json::Value, ToolError> {
        let id = parse_id("get", id)?;
        // The index says whether it exists (forgotten memories included); the records hold it.
        let _ = self.refresh();
        if !self.contains(&id.to_string()) {
            return Err(ToolError::NotFound(id.to_string()));
        }
        let mut records = lock(&self.records);
        if let Some(store) = records.as_ref() {
            if let Some(m) = store.get(id).map_err(failed)? {
                return serde_json::to_value(m).map_err(failed);
            }
        }
        let store = MemoryStore::open_read_only(&self.dir).map_err(failed)?;
        let found = store.get(id).map_err(failed)?;
        *records = Some(store);
        let m = found.ok_or_else(|| ToolError::NotFound(id.to_string()))?;
        serde_json::to_value(m).map_err(failed)
    }

    fn forget(&self, id: &str) -> Result<(), ToolError> {
        let id = parse_id("forget", id)?;
        if self.write(|s| s.forget(id))? {
            Ok(())
        } else {
            Err(ToolError::NotFound(id.to_string()))
        }
    }

    fn stats(&self) -> Result<serde_json::Value, ToolError> {
        let stats = lock(&self.search).stats().map_err(failed)?;
        serde_json::to_value(stats).map_err(failed)
    }

    fn invite(&self, a: InviteArgs) -> Result<serde_json::Value, ToolError> {
        let name = match a.kind {
            ApprenticeKind::Navigator => "navigator",
            ApprenticeKind::Witness => "witness",
            ApprenticeKind::Synthesizer => "synthesizer",
            ApprenticeKind::Curator => "curator",
        };
        let kind = apprentice_kinds::BuiltIn::from_name(name)
            .ok_or_else(|| ToolError::Failed(format!("invite: no apprentice kind {name}")))?;
        let mut context = apprentice_core::Context {
            sacred_only: a.sacred_only,
            limit: Some(a.limit.unwrap_or(10)),
            ..Default::default()
        };
        if !a.context.is_empty() {
            context.entries.insert("context".into(), a.context);
        }
        let ask = apprentices::Ask {
            task: a.task,
            specialization: None,
            keywords: a.keywords,
            context,
            timeout: Duration::from_millis(a.timeout_ms.unwrap_or(5000)),
            embedding: Vec::new(),
        };
        let outcomes = apprentices::invite(&[kind], &self.dir, &ask);
        let Some(outcome) = outcomes.first() else {
            return Err(ToolError::Failed("invite: no apprentice was started".into()));
        };
        if let Err(e) = &outcome.result {
            return Err(ToolError::Failed(format!("invite: the {kind} apprentice: {e}")));
        }
        Ok(apprentices::to_json(outcome))
    }

    fn list(&self, offset: usize, limit: usize) -> Result<(Vec<Listed>, bool), ToolError> {
        let snapshot = lock(&self.watch).snapshot();
        let mut docs = snapshot.docs().skip(offset);
        let items: Vec<Listed> = docs
            .by_ref()
            .take(limit)
            .map(|d| Listed {
                id: Uuid::from_bytes(d.id()).to_string(),
                domain: d.domain().to_owned(),
                gist: d.gist().to_owned(),
            })
            .collect();
        let more = docs.next().is_some();
        Ok((items, more))
    }

    fn contains(&self, id: &str) -> bool {
        let Ok(id) = id.trim().parse::<Uuid>() else { return false };
        lock(&self.watch).snapshot().get(id.as_bytes()).is_some()
    }

    fn refresh(&self) -> Result<u64, ToolError> {
        let mut watch = lock(&self.watch);
        watch.refresh().map_err(failed)?;
        Ok(watch.generation())
    }
}

/// `mcs mcp`'s options.
#[derive(clap::Args)]
pub(crate) struct McpArgs {
    /// Serve MCP's streamable HTTP transport on this address (endpoint http://ADDR/mcp; port 0
    /// picks a free one) instead of standard input/output.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Let --http listen on an address that is not loopback. The server has no
    /// authentication: anyone who reaches the port can call every tool, forget included.
    #[arg(long, requires = "http")]
    allow_remote: bool,
}

/// Serves the store in `dir` until the client closes standard input (or, over HTTP, until
/// the process is ended).
pub(crate) fn run(dir: &Path, args: &McpArgs) -> anyhow::Result<()> {
    let mut options = ServeOptions::default();
    options.allow_remote = args.allow_remote;
    if let Some(addr) = args.http {
        if !addr.ip().is_loopback() && !args.allow_remote {
            let refused = memory_mcp::ServeError::NotLoopback(addr);
            anyhow::bail!("{refused} (mcs mcp --allow-remote)");
        }
        let backend = StoreBackend::open(dir)?;
        memory_mcp::serve_http(Arc::new(backend), addr, options, |bound| {
            eprintln!("mcs mcp: listening on http://{bound}{}", memory_mcp::HTTP_PATH);
        })?;
        return Ok(());
    }
    let backend = StoreBackend::open(dir)?;
    memory_mcp::serve_stdio(Arc::new(backend), options)?;
    Ok(())
}
