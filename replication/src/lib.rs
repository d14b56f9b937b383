//! Replicates a store through NATS JetStream: one writer, replicas on many hosts, apprentices
//! reading locally on each.
//!
//! # Overview
//!
//! - [`Nats`] is a connection to a NATS server with JetStream (`nats-server -js`). It holds a
//!   small runtime of its own, so that its callers stay synchronous and a program that never
//!   replicates never starts one.
//! - The writer calls [`Nats::push`] after its work is durable locally: the commits the stream
//!   lacks go to the stream `MCS_COMMITS` (each message expects the stream's last sequence, so a
//!   second writer is refused instead of forking history), then the live segment files to the
//!   object store `mcs-index` under content names (their checksums), then the manifest, then
//!   the current generation to the key `head` of the KV bucket `mcs` with compare-and-set on its
//!   previous revision. The content and vector files beside the segments travel the same way
//!   (the head lists them, [`SideFile`]).
//! - A replica calls [`Nats::catch_up`]: it applies the commits up to the head's commit to
//!   its own records (a [`CommitSink`]), downloads the segments it lacks, verifies each whole
//!   against the manifest's checksum, and only then publishes the manifest locally with
//!   `index_publisher` (segments, manifest, `HEAD`, beacon), so local readers never see a partial
//!   or unverified file, and it removes what no live manifest names. Content and vector files
//!   are verified whole the same way before they are written. [`Nats::wait_for_head`]
//!   waits for the next head.
//! - Promotion: [`Nats::catch_up`] with [`Target::Everything`] applies every acknowledged
//!   commit, then [`Nats::take_over`] fences the old writer (the `writer` key) before the
//!   replica opens its store as a writer and pushes.
//!
//! The store's records and index are reached through [`CommitLog`] (the writer's) and
//! [`CommitSink`] (a replica's), whose changes are opaque bytes here, so that this crate does not
//! depend on `memory-store` (whose `mcs` program depends on this crate).
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod files;
mod replica;
pub mod trace;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};
use serde::{Deserialize, Serialize};

pub use crate::files::{SideFile, SideKind};
pub use crate::replica::{CatchUp, Target};
pub use crate::writer::{Pushed, TOKEN_FILE};

/// The stream of commits.
pub const COMMITS_STREAM: &str = "MCS_COMMITS";
/// The subject of the stream of commits.
pub const COMMITS_SUBJECT: &str = "mcs.commits";
/// The KV bucket: `head` (the current generation), `writer` (the writer's token),
/// `replica.<name>` (where each replica is).
pub const KV_BUCKET: &str = "mcs";
/// The object store bucket of segment files and manifests.
pub const OBJECT_BUCKET: &str = "mcs-index";
/// The KV key of the current generation.
pub const HEAD_KEY: &str = "head";
/// The KV key of the current writer's token.
pub const WRITER_KEY: &str = "writer";
/// Between two looks at the head while waiting for it to move, besides the KV watch.
pub const HEAD_POLL: Duration = Duration::from_millis(500);
/// Commit message bytes above which a commit is split into parts (the server's default maximum
/// payload is 1 MiB).
pub const PART_BYTES: usize = 512 << 10;

/// A boxed error from the store side ([`CommitLog`], [`CommitSink`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong replicating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached.
    #[error("NATS at {url} is unreachable ({source})")]
    Unreachable {
        /// The server.
        url: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// A JetStream operation failed (the server went away, a timeout).
    #[error("NATS: {what} failed ({source})")]
    Nats {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The server replicates another store.
    #[error(
        "NATS replicates store {nats}, not this store {local}: one NATS account (or server) per \
         replicated store"
    )]
    ForeignStore {
        /// The store NATS replicates.
        nats: String,
        /// This store.
        local: String,
    },
    /// NATS holds commits this store does not have: another writer went ahead.
    #[error(
        "NATS holds commit {nats} but this store ends at commit {local}: another writer went \
         ahead (a promoted replica?); this store must not write on top of it"
    )]
    Diverged {
        /// The last commit NATS holds.
        nats: u64,
        /// This store's last commit.
        local: u64,
    },
    /// Another writer moved the head or the stream between our read and our write.
    #[error("another writer published at the same time ({0}); this writer is refused")]
    Conflict(String),
    /// Another host was promoted: this store is no longer the writer.
    #[error(
        "this store is no longer the writer: another host took over (writer token {nats}, ours \
         {local})"
    )]
    Fenced {
        /// The token in NATS.
        nats: String,
        /// Ours.
        local: String,
    },
    /// Something in NATS is not what this program writes.
    #[error("NATS object or message {name} refused: {problem}")]
    Bad {
        /// What.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The local store failed.
    #[error("the local store: {0}")]
    Local(#[source] BoxError),
    /// The local index failed.
    #[error(transparent)]
    Publish(#[from] index_publisher::PublishError),
    /// Reading the local index failed.
    #[error(transparent)]
    Layout(#[from] semantic_index::layout::LayoutError),
    /// A local file failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the failure is NATS being unreachable or going away (the work is safe locally
    /// and a later push catches up), rather than a refusal.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Nats { .. })
    }
}

fn nats<E: std::error::Error + Send + Sync + 'static>(
    what: impl Into<String>,
) -> impl FnOnce(E) -> Error {
    let what = what.into();
    move |e| Error::Nats { what, source: Box::new(e) }
}

/// The writer's side of a store: its commits, in order.
pub trait CommitLog {
    /// The last commit (0: none).
    fn commit_seq(&self) -> Result<u64, BoxError>;
    /// Visits every commit after `after`, in order, each as its changes (opaque bytes), until
    /// `visit` returns `false`.
    fn commits_since(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, Vec<Vec<u8>>) -> Result<bool, BoxError>,
    ) -> Result<(), BoxError>;
}

/// A replica's records: where replicated commits go.
pub trait CommitSink {
    /// The last commit applied (0: none).
    fn seq(&self) -> u64;
    /// Applies commit `seq` (the next one) durably.
    fn apply(&mut self, seq: u64, changes: Vec<Vec<u8>>) -> Result<(), BoxError>;
}

/// The value of the `head` key: the current generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The store identity (32 hex digits).
    pub store_id: String,
    /// The writer's generation.
    pub generation: u64,
    /// The commit it covers.
    pub commit_seq: u64,
    /// The manifest's object name.
    pub manifest: String,
    /// The files beside the manifest's segments that the manifest does not list (content and
    /// vector files), each in the object store under [`SideFile::object`]. Absent in heads of
    /// writers before them: none.
    #[serde(default)]
    pub files: Vec<SideFile>,
}

/// Where a replica is, as it reports itself under `replica.<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// The replica's name.
    pub name: String,
    /// The commit its index covers.
    pub commit_seq: u64,
    /// The writer's generation it published.
    pub generation: u64,
    /// When it reported (milliseconds since the Unix epoch).
    pub at_ms: u64,
}

/// The object name of a segment: its content (checksum), then its file name.
pub fn segment_object(checksum: u64, file: &str) -> String {
    format!("seg-{checksum:016x}-{file}")
}

/// The object name of a manifest.
pub fn manifest_object(store_id: &str, generation: u64) -> String {
    format!("man-{store_id}-{generation:016}")
}

fn hex_id(id: [u8; 16]) -> String {
    format!("{:032x}", u128::from_be_bytes(id))
}

fn parse_hex_id(s: &str) -> Option<[u8; 16]> {
    (s.len() == 32).then(|| u128::from_str_radix(s, 16).ok()).flatten().map(u128::to_be_bytes)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A connection to NATS with JetStream, and the buckets and stream replication uses.
pub struct Nats {
    rt: tokio::runtime::Runtime,
    url: String,
    js: jetstream::Context,
    kv: kv::Store,
    objects: object_store::ObjectStore,
    commits: stream::Stream,
    /// The last commit applied from the stream and the stream sequence of its last part: where
    /// the next catch-up reads on, instead of searching the stream for it (about a dozen
    /// requests at a thousand commits). A fact about the stream, whichever sink applied it.
    applied: std::sync::Mutex<Option<(u64, u64)>>,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Nats {
    /// Connects to `url` (waiting at most `timeout`) and creates the stream and buckets if
    /// they do not exist yet.
    pub fn connect(url: &str, timeout: Duration) -> Result<Nats, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                what: "starting a runtime for",
                path: url.into(),
                source,
            })?;
        let unreachable = |source: BoxError| Error::Unreachable { url: url.to_owned(), source };
        let (js, kv, objects, commits) = rt.block_on(async {
            let client = tokio::time::timeout(
                timeout,
                async_nats::ConnectOptions::new()
                    .connection_timeout(timeout)
                    .max_reconnects(Some(3))
                    .connect(url),
            )
            .await
            .map_err(|e| unreachable(Box::new(e)))?
            .map_err(|e| unreachable(Box::new(e)))?;
            let mut js = jetstream::new(client);
            js.set_timeout(timeout.max(Duration::from_secs(2)));
            let commits = js
                .get_or_create_stream(stream::Config {
                    name: COMMITS_STREAM.into(),
                    subjects: vec![COMMITS_SUBJECT.into()],
                    storage: stream::StorageType::File,
                    duplicate_window: Duration::from_secs(120),
                    ..Default::default()
                })
                .await
                .map_err(|e| unreachable(Box::new(e)))?;
            // The KV bucket's stream as the client would make it: made here because the
            // client's own `create_key_value` first reads account fields that nats-server 2.9
            // does not send.
            js.get_or_create_stream(stream::Config {
                name: format!("KV_{KV_BUCKET}"),
                subjects: vec![format!("$KV.{KV_BUCKET}.>")],
                max_messages_per_subject: 1,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                num_replicas: 1,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(nats("creating the KV bucket"))?;
            let kv = js.get_key_value(KV_BUCKET).await.map_err(nats("opening the KV bucket"))?;
            let objects = match js.get_object_store(OBJECT_BUCKET).await {
                Ok(o) => o,
                Err(_) => js
                    .create_object_store(object_store::Config {
                        bucket: OBJECT_BUCKET.into(),
                        storage: stream::StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .map_err(nats("creating the object store"))?,
            };
            Ok::<_, Error>((js, kv, objects, commits))
        })?;
        Ok(Nats {
            rt,
            url: url.to_owned(),
            js,
            kv,
            objects,
            commits,
            applied: std::sync::Mutex::new(None),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The current head, with its KV revision.
    pub fn head(&self) -> Result<Option<(Head, u64)>, Error> {
        self.rt.block_on(self.head_async())
    }

    async fn head_async(&self) -> Result<Option<(Head, u64)>, Error> {
        let Some(entry) = self.kv.entry(HEAD_KEY).await.map_err(nats("reading the head"))? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let head: Head = serde_json::from_slice(&entry.value)
            .map_err(|e| Error::Bad { name: HEAD_KEY.into(), problem: e.to_string() })?;
        Ok(Some((head, entry.revision)))
    }

    /// Every replica's last report.
    pub fn replicas(&self) -> Result<Vec<ReplicaState>, Error> {
        self.rt.block_on(async {
            use futures_util::StreamExt;
            let mut keys = self.kv.keys().await.map_err(nats("listing replicas"))?;
            let mut out = Vec::new();
            while let Some(key) = keys.next().await {
                let key = key.map_err(nats("listing replicas"))?;
                if !key.starts_with("replica.") {
                    continue;
                }
                if let Some(v) =
                    self.kv.get(key.as_str()).await.map_err(nats("reading a replica"))?
                {
                    if let Ok(state) = serde_json::from_slice::<ReplicaState>(&v) {
                        out.push(state);
                    }
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    /// Waits until the head's revision differs from `revision` (or a head appears), at most
    /// `timeout`. Returns whether it changed.
    ///
    /// The watch starts from the head's current value (deliver last per subject), so a head
    /// that moved between the caller's read of it and this call wakes it at once. (A watch of
    /// new values only, as `kv::Store::watch` makes, missed exactly that move: a replica then
    /// slept until its timeout, the 5 s outlier of the first bench.) A look at the head every
    /// [`HEAD_POLL`] besides is the fallback should the watch's consumer stall or be lost.
    pub fn wait_for_head(&self, revision: Option<u64>, timeout: Duration) -> Result<bool, Error> {
        self.rt.block_on(async {
            use futures_util::StreamExt;
            let moved = |r: u64| Some(r) != revision;
            let mut watch =
                self.kv.watch_with_history(HEAD_KEY).await.map_err(nats("watching the head"))?;
            let deadline = tokio::time::Instant::now() + timeout;
            let mut poll = tokio::time::interval(HEAD_POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            poll.tick().await;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => return Ok(false),
                    next = watch.next() => match next {
                        // The watch ended: the caller looks at the head anyway.
                        None => return Ok(false),
                        Some(Err(e)) => return Err(nats("watching the head")(e)),
                        Some(Ok(entry)) => {
                            if entry.operation == kv::Operation::Put && moved(entry.revision) {
                                let generation = serde_json::from_slice::<Head>(&entry.value)
                                    .map_or(0, |h| h.generation);
                                trace::stage("r.watch", generation);
                                return Ok(true);
                            }
                        }
                    },
                    _ = poll.tick() => {
                        if let Some((h, r)) = self.head_async().await? {
                            if moved(r) {
                                trace::stage("r.poll", h.generation);
                                return Ok(true);
                            }
                        }
                    }
                }
            }
        })
    }

    /// The last commit the stream holds completely, and the stream sequence of its last part.
    fn stream_position(&self) -> Result<StreamPosition, Error> {
        self.rt.block_on(stream_position(&self.commits))
    }
}

/// Where the stream of commits ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct StreamPosition {
    /// The stream's last sequence (0: empty).
    stream_seq: u64,
    /// The commit of its last message (0: none).
    commit: u64,
    /// The part of that commit.
    part: u32,
    /// Whether that message is the commit's last part.
    last: bool,
    /// The store identity the messages carry.
    store_id: Option<String>,
}

impl StreamPosition {
    /// The last commit complete in the stream.
    fn complete(&self) -> u64 {
        if self.last {
            self.commit
        } else {
            self.commit.saturating_sub(1)
        }
    }
}

const H_STORE: &str = "Mcs-Store";
const H_SEQ: &str = "Mcs-Seq";
const H_PART: &str = "Mcs-Part";
const H_LAST: &str = "Mcs-Last";

/// A commit message's headers.
#[derive(Clone, Debug)]
struct PartHeader {
    store_id: String,
    commit: u64,
    part: u32,
    last: bool,
}

fn parse_part(headers: &async_nats::HeaderMap, name: &str) -> Result<PartHeader, Error> {
    let get = |h: &str| headers.get(h).map(|v| v.as_str().to_owned());
    let bad = |problem: &str| Error::Bad { name: name.to_owned(), problem: problem.to_owned() };
    let store_id = get(H_STORE).ok_or_else(|| bad("no store header"))?;
    let commit = get(H_SEQ).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no commit header"))?;
    let part = get(H_PART).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no part header"))?;
    let last = get(H_LAST).as_deref() == Some("1");
    Ok(PartHeader { store_id, commit, part, last })
}

async fn stream_position(commits: &stream::Stream) -> Result<StreamPosition, Error> {
    let info = commits.get_info().await.map_err(nats("reading the stream of commits"))?;
    let last = info.state.last_sequence;
    if last == 0 {
        return Ok(StreamPosition::default());
    }
    let msg = commits
        .get_raw_message(last)
        .await
        .map_err(nats(format!("reading message {last} of the stream of commits")))?;
    let h = parse_part(&msg.headers, &format!("{COMMITS_STREAM} message {last}"))?;
    Ok(StreamPosition {
        stream_seq: last,
        commit: h.commit,
        part: h.part,
        last: h.last,
        store_id: Some(h.store_id),
    })
}

/// Splits a commit's changes into message payloads of about [`PART_BYTES`] (each change at
/// least alone): every change as a 4-byte little-endian length and its bytes.
fn encode_parts(changes: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut parts = vec![Vec::new()];
    for c in changes {
        let cur = parts.last_mut().expect("parts is never empty");
        if !cur.is_empty() && cur.len() + 4 + c.len() > PART_BYTES {
            parts.push(Vec::new());
        }
        let cur = parts.last_mut().expect("parts is never empty");
        cur.extend_from_slice(&(c.len() as u32).to_le_bytes());
        cur.extend_from_slice(c);
    }
    parts
}

fn decode_part(payload: &[u8], name: &str, out: &mut Vec<Vec<u8>>) -> Result<(), Error> {
    let mut rest = payload;
    while !rest.is_empty() {
        let bad = || Error::Bad { name: name.to_owned(), problem: "truncated change".into() };
        let len = rest.get(..4).ok_or_else(bad)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let body = rest.get(4..4 + len).ok_or_else(bad)?;
        out.push(body.to_vec());
        rest = &rest[4 + len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_and_split_large_commits() {
        let changes: Vec<Vec<u8>> =
            (0..3000u32).map(|i| vec![(i % 251) as u8; 300 + i as usize % 7]).collect();
        let parts = encode_parts(&changes);
        assert!(parts.len() > 1, "{} parts", parts.len());
        assert!(parts.iter().all(|p| p.len() <= PART_BYTES));
        let mut back = Vec::new();
        for p in &parts {
            decode_part(p, "test", &mut back).unwrap();
        }
        assert_eq!(back, changes);
        let mut out = Vec::new();
        assert!(decode_part(&[5, 0, 0, 0, 1], "test", &mut out).is_err());
    }

    #[test]
    fn ids_round_trip() {
        let id = [7u8; 16];
        assert_eq!(parse_hex_id(&hex_id(id)), Some(id));
        assert_eq!(parse_hex_id("xyz"), None);
    }
}
