//! `--nats`: replication through NATS JetStream (the replication crate). The writer's commands
//! push after their work is durable locally; `mcs replica` follows; `mcs promote` takes over.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use memory_store::{CommitLogOf as Log, CommitSinkOf as Sink, Follower, MemoryStore};
use replication::{Nats, Target};

/// How long connecting and each JetStream request may take.
const TIMEOUT: Duration = Duration::from_secs(3);
/// How long `mcs replica` waits for a new head before looking again anyway.
const WAIT: Duration = Duration::from_secs(5);

/// Pushes what NATS lacks after a write. NATS unreachable is a warning (the work is durable
/// locally and the next push catches up); a refusal (another writer, a promoted replica) is an
/// error.
pub(crate) fn push(store: &MemoryStore, url: Option<&str>) -> anyhow::Result<()> {
    let Some(url) = url else { return Ok(()) };
    let pushed = Nats::connect(url, TIMEOUT).and_then(|n| n.push(store.dir(), &Log(store)));
    match pushed {
        Ok(_) => Ok(()),
        Err(e) if e.is_unavailable() => {
            eprintln!(
                "mcs: warning: stored locally, not replicated yet: {e}; the next command with \
                 --nats (or `mcs sync`) catches up"
            );
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context("stored locally, but replication refused it")),
    }
}

/// `mcs sync`: pushes what NATS lacks, without writing.
pub(crate) fn sync(store: &MemoryStore, url: &str) -> anyhow::Result<()> {
    let nats = Nats::connect(url, TIMEOUT)?;
    let pushed = nats.push(store.dir(), &Log(store))?;
    println!(
        "synced: {} commits, {} segments, {} content and vector files{}",
        pushed.commits,
        pushed.segments,
        pushed.files,
        pushed.generation.map(|g| format!(", generation {g}")).unwrap_or_default()
    );
    Ok(())
}

/// `mcs replica`: follows the head into `dir`; with `once`, catches up and returns.
pub(crate) fn replica(
    dir: &Path,
    url: &str,
    once: bool,
    name: Option<&str>,
    lock_wait: Duration,
) -> anyhow::Result<()> {
    let mut follower = Follower::open(dir, lock_wait)
        .with_context(|| format!("opening replica store {}", dir.display()))?;
    let mut nats: Option<Nats> = None;
    loop {
        let connected = match nats.take() {
            Some(n) => Ok(n),
            None => Nats::connect(url, TIMEOUT),
        };
        let n = match connected {
            Ok(n) => n,
            Err(e) if once => return Err(e.into()),
            Err(e) => {
                eprintln!("mcs: warning: {e}; retrying");
                // A daemon's retry interval, not a test's wait.
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        match n.catch_up(dir, &mut Sink(&mut follower), Target::Head, name) {
            Ok(done) => {
                for problem in &done.refused {
                    eprintln!("mcs: warning: {problem}; published without it");
                }
                if done.commits > 0 || done.published.is_some() {
                    println!(
                        "replica: commit {}, {} segments and {} content and vector files \
                         downloaded{}",
                        done.commit_seq,
                        done.segments,
                        done.files,
                        done.published.map(|g| format!(", generation {g}")).unwrap_or_default()
                    );
                }
                if once {
                    return Ok(());
                }
                match n.wait_for_head(done.head_revision, WAIT) {
                    Ok(_) => nats = Some(n),
                    Err(e) => eprintln!("mcs: warning: {e}; reconnecting"),
                }
            }
            Err(e) if once => return Err(e.into()),
            Err(e) if e.is_unavailable() => {
                eprintln!("mcs: warning: {e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                // A corrupt object or a refused segment: said, never published; the writer's
                // next generation may fix it, so look again later.
                eprintln!("mcs: error: {e}; nothing of it was published, retrying");
                std::thread::sleep(Duration::from_secs(1));
                nats = Some(n);
            }
        }
    }
}

/// `mcs promote`: applies every acknowledged commit, fences the old writer, opens `dir` as the
/// writer and pushes.
pub(crate) fn promote(dir: &Path, url: &str, lock_wait: Duration) -> anyhow::Result<MemoryStore> {
    let nats = Nats::connect(url, TIMEOUT)
        .context("promotion needs NATS: only the stream knows every acknowledged commit")?;
    {
        let mut follower = Follower::open(dir, lock_wait)
            .with_context(|| format!("opening replica store {}", dir.display()))?;
        nats.catch_up(dir, &mut Sink(&mut follower), Target::Everything, None)?;
    }
    nats.take_over(dir)?;
    let store = MemoryStore::open_waiting(dir, lock_wait)
        .with_context(|| format!("opening store {} as the writer", dir.display()))?;
    nats.push(dir, &Log(&store))?;
    Ok(store)
}

/// `mcs stats --nats`: each replica's lag behind the head.
pub(crate) fn print_replicas(url: &str, json: bool) -> anyhow::Result<()> {
    let nats = Nats::connect(url, TIMEOUT)?;
    let Some((head, _)) = nats.head()? else { bail!("NATS at {url} holds no store yet") };
    let replicas = nats.replicas()?;
    if json {
        let rows: Vec<serde_json::Value> = replicas
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "commit_seq": r.commit_seq,
                    "lag_commits": head.commit_seq.saturating_sub(r.commit_seq),
                    "reported_ms": r.at_ms,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "head_commit": head.commit_seq, "replicas": rows }));
    } else {
        println!("replication head: commit {}, generation {}", head.commit_seq, head.generation);
        for r in &replicas {
            println!(
                "  replica {}: commit {} (lag {} commits)",
                r.name,
                r.commit_seq,
                head.commit_seq.saturating_sub(r.commit_seq)
            );
        }
    }
    Ok(())
}
