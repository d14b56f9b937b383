//! A replica's side: applies commits, downloads and verifies segments, publishes locally.

use std::path::Path;

use async_nats::jetstream::object_store::ObjectStore;
use index_publisher::{has_segment_in, install_segment_in, Prepared, Publisher};
use semantic_index::layout::{Manifest, SegmentEntry};
use tokio::io::AsyncReadExt;

use crate::files::{self, SideFile};
use crate::trace::Marks;
use crate::{
    decode_part, hex_id, nats, now_ms, parse_hex_id, parse_part, segment_object, CommitSink, Error,
    Head, Nats, ReplicaState,
};

/// What [`Nats::install_head`] did.
#[derive(Default)]
struct Installed {
    segments: usize,
    files: usize,
    refused: Vec<String>,
    published: Option<u64>,
}

/// How far [`Nats::catch_up`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The head: commits up to the commit the head's index covers, and that index.
    Head,
    /// Every commit the stream holds (every acknowledged one), and the head's index: what a
    /// promotion needs.
    Everything,
}

/// What a catch-up did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Commits applied.
    pub commits: u64,
    /// Segments downloaded (and verified).
    pub segments: usize,
    /// Content and vector files downloaded (and verified).
    pub files: usize,
    /// Content and vector files refused (unreadable in NATS or failing their check), each
    /// with why: never written here, the segments published without them.
    pub refused: Vec<String>,
    /// The writer's generation published locally, if this catch-up published one.
    pub published: Option<u64>,
    /// The head followed (its KV revision), if there is one.
    pub head_revision: Option<u64>,
    /// The last commit applied locally.
    pub commit_seq: u64,
}

impl Nats {
    /// Reads and parses a manifest object.
    pub fn read_manifest(&self, name: &str) -> Result<Manifest, Error> {
        self.rt.block_on(self.read_manifest_async(name))
    }

    pub(crate) async fn read_manifest_async(&self, name: &str) -> Result<Manifest, Error> {
        let bytes = self.get_object_async(name).await?;
        Manifest::from_bytes(&bytes)
            .map_err(|e| Error::Bad { name: name.to_owned(), problem: e.to_string() })
    }

    /// Reads a whole object (its SHA-256 digest is checked at the end by the client).
    pub fn get_object(&self, name: &str) -> Result<Vec<u8>, Error> {
        self.rt.block_on(self.get_object_async(name))
    }

    /// Writes a whole object under `name` (replacing any): an operator's tool.
    pub fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.rt.block_on(async {
            let mut data = bytes;
            self.objects.put(name, &mut data).await.map_err(nats(format!("uploading {name}")))?;
            Ok(())
        })
    }

    async fn get_object_async(&self, name: &str) -> Result<Vec<u8>, Error> {
        get_object(&self.objects, name).await
    }

    /// Catches the replica in `dir` up: applies the commits `sink` lacks (up to `target`),
    /// then downloads the segments of the head's manifest it lacks, verifies each whole, and
    /// publishes the manifest locally, removing the files no live manifest names. The caller
    /// holds the store's writer lock (the sink). `name`, if any, is reported under
    /// `replica.<name>` for `mcs stats`.
    pub fn catch_up(
        &self,
        dir: &Path,
        sink: &mut dyn CommitSink,
        target: Target,
        name: Option<&str>,
    ) -> Result<CatchUp, Error> {
        let mut done = CatchUp { commit_seq: sink.seq(), ..CatchUp::default() };
        let mut marks = Marks::new();
        marks.mark("r.start");
        let Some((head, revision)) = self.head()? else {
            if target == Target::Everything {
                done.commits = self.apply_commits(sink, None)?;
                done.commit_seq = sink.seq();
            }
            return Ok(done);
        };
        done.head_revision = Some(revision);
        let store_id = parse_hex_id(&head.store_id)
            .ok_or_else(|| Error::Bad { name: "head".into(), problem: "bad store id".into() })?;
        marks.mark("r.head");
        let publisher = Publisher::open_replica(dir, store_id)?;
        marks.mark("r.opened");
        // The index's files download and are written (not yet named) on the runtime's threads
        // while this one applies the commits; `HEAD` moves only after both.
        let downloads =
            Aborting(self.rt.spawn(download_head(self.objects.clone(), publisher, head.clone())));
        let upto = match target {
            Target::Head => Some(head.commit_seq),
            Target::Everything => None,
        };
        if upto.is_none_or(|u| sink.seq() < u) {
            done.commits = self.apply_commits(sink, upto)?;
        }
        done.commit_seq = sink.seq();
        marks.mark("r.commits");
        let (mut publisher, fetched) = self.rt.block_on(&mut { downloads }.0).map_err(|e| {
            Error::Nats { what: "downloading the index".into(), source: Box::new(e) }
        })??;
        marks.mark("r.downloaded");
        let installed = install_head(&mut publisher, fetched, &mut marks)?;
        done.segments = installed.segments;
        done.files = installed.files;
        done.refused = installed.refused;
        done.published = installed.published;
        if let Some(name) = name {
            let state = ReplicaState {
                name: name.to_owned(),
                commit_seq: publisher.current().map_or(0, |m| m.commit_seq),
                generation: head.generation,
                at_ms: now_ms(),
            };
            let value = serde_json::to_vec(&state).unwrap_or_default();
            // Best effort: a report is information, never a reason to fail.
            let _ = self.rt.block_on(self.kv.put(format!("replica.{name}"), value.into()));
        }
        marks.mark("r.reported");
        marks.flush(head.generation);
        Ok(done)
    }

    /// Applies the stream's commits after `sink.seq()`, up to `upto` (all if `None`).
    fn apply_commits(&self, sink: &mut dyn CommitSink, upto: Option<u64>) -> Result<u64, Error> {
        // Taken, and put back only after success: a failure (a stream that was reset, say)
        // falls back to reading where the stream ends and searching it.
        let hint = self.applied.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (target, end, mut at) = match (upto, hint) {
            // The head names commits the stream holds (the writer sends them first): read on
            // from the last one applied, without asking where the stream ends.
            (Some(upto), Some((commit, stream_seq))) if commit == sink.seq() => {
                (upto, u64::MAX, stream_seq + 1)
            }
            _ => {
                let pos = self.stream_position()?;
                let target = upto.map_or(pos.complete(), |u| u.min(pos.complete()));
                if sink.seq() >= target {
                    return Ok(0);
                }
                let at = self.rt.block_on(self.first_after(sink.seq(), pos.stream_seq))?;
                (target, pos.stream_seq, at)
            }
        };
        if sink.seq() >= target {
            *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = hint;
            return Ok(0);
        }
        let mut applied = 0;
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut expected_part = 0u32;
        // Many messages (a replica catching up from far behind): an ordered consumer streams
        // them on the runtime's thread, a few ahead, while this thread applies them; each one
        // asked for alone would cost a round trip and come base64 in JSON. A few (a replica
        // following): asked for one by one.
        let mut feed = (end != u64::MAX && end.saturating_sub(at) >= STREAM_FROM)
            .then(|| self.feed_commits(at, end));
        while sink.seq() < target && at <= end {
            let name = format!("{} message {at}", crate::COMMITS_STREAM);
            let (headers, payload) = match feed.as_mut() {
                Some(feed) => {
                    let (seq, headers, payload) = feed.1.blocking_recv().unwrap_or_else(|| {
                        Err(Error::Nats {
                            what: format!("reading {name}"),
                            source: "the stream of commits ended".into(),
                        })
                    })?;
                    if seq != at {
                        return Err(Error::Bad {
                            name,
                            problem: format!("message {seq} came instead"),
                        });
                    }
                    (headers, payload)
                }
                None => {
                    let msg = self
                        .rt
                        .block_on(self.commits.get_raw_message(at))
                        .map_err(nats(format!("reading {name}")))?;
                    (msg.headers, msg.payload)
                }
            };
            let h = parse_part(&headers, &name)?;
            at += 1;
            if h.commit <= sink.seq() {
                continue;
            }
            if h.commit != sink.seq() + 1 || h.part != expected_part {
                return Err(Error::Bad {
                    name,
                    problem: format!(
                        "commit {} part {}, expected commit {} part {expected_part}",
                        h.commit,
                        h.part,
                        sink.seq() + 1
                    ),
                });
            }
            decode_part(&payload, &name, &mut parts)?;
            expected_part += 1;
            if h.last {
                sink.apply(h.commit, std::mem::take(&mut parts)).map_err(Error::Local)?;
                applied += 1;
                expected_part = 0;
                *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = Some((h.commit, at - 1));
            }
        }
        Ok(applied)
    }

    /// Streams the messages `at..=end` of the stream of commits through an ordered consumer on
    /// the runtime, [`FEED_AHEAD`] at most waiting: each as its stream sequence, headers and
    /// payload, or the error that ended the feed. The task stops when the receiver is dropped.
    fn feed_commits(&self, at: u64, end: u64) -> (Aborting<()>, Feed) {
        use futures_util::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel(FEED_AHEAD);
        let stream = self.commits.clone();
        let inbox = self.js.client().new_inbox();
        let task = self.rt.spawn(async move {
            let what = || format!("reading the stream of commits from message {at}");
            let fed = async {
                let consumer = stream
                    .create_consumer(async_nats::jetstream::consumer::push::OrderedConfig {
                        deliver_subject: inbox,
                        filter_subject: crate::COMMITS_SUBJECT.into(),
                        deliver_policy:
                            async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence {
                                start_sequence: at,
                            },
                        ..Default::default()
                    })
                    .await
                    .map_err(nats(what()))?;
                let mut messages = consumer.messages().await.map_err(nats(what()))?;
                loop {
                    let next = tokio::time::timeout(FEED_IDLE, messages.next()).await;
                    let msg = match next {
                        Ok(Some(Ok(msg))) => msg,
                        Ok(Some(Err(e))) => return Err(nats(what())(e)),
                        Ok(None) => return Err(nats(what())(std::io::Error::other("ended"))),
                        Err(e) => return Err(nats(what())(e)),
                    };
                    let seq = msg
                        .info()
                        .map_err(|e| Error::Nats { what: what(), source: e })?
                        .stream_sequence;
                    let message = msg.message;
                    let item = (seq, message.headers.unwrap_or_default(), message.payload);
                    if tx.send(Ok(item)).await.is_err() || seq >= end {
                        return Ok(());
                    }
                }
            };
            if let Err(e) = fed.await {
                let _ = tx.send(Err(e)).await;
            }
        });
        (Aborting(task), rx)
    }

    /// The stream sequence of the first message of a commit after `seq` (binary search: the
    /// commit numbers grow with the stream sequence).
    async fn first_after(&self, seq: u64, last: u64) -> Result<u64, Error> {
        let info = self.commits.get_info().await.map_err(nats("reading the stream of commits"))?;
        let (mut lo, mut hi) = (info.state.first_sequence.max(1), last + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let name = format!("{} message {mid}", crate::COMMITS_STREAM);
            let msg =
                self.commits.get_raw_message(mid).await.map_err(nats(format!("reading {name}")))?;
            if parse_part(&msg.headers, &name)?.commit <= seq {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Claims the writer key for the store in `dir` (a promotion): from now on only this store's
    /// pushes are accepted, and the old writer's are refused ([`Error::Fenced`]).
    pub fn take_over(&self, dir: &Path) -> Result<(), Error> {
        let token = crate::writer::new_token();
        crate::writer::write_token(dir, &token)?;
        self.rt.block_on(async {
            self.kv
                .put(crate::WRITER_KEY, token.into_bytes().into())
                .await
                .map_err(nats("claiming the writer key"))?;
            Ok(())
        })
    }
}

/// Messages between the first and the last to read above which they are streamed
/// ([`Nats::feed_commits`]) rather than asked for one by one.
const STREAM_FROM: u64 = 4;
/// Messages of the stream of commits fetched ahead of the one being applied (512 KiB each at
/// most).
const FEED_AHEAD: usize = 8;
/// How long the feed of commits waits for the next message before giving up.
const FEED_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// What [`Nats::feed_commits`] sends: a message's stream sequence, headers and payload.
type Feed = tokio::sync::mpsc::Receiver<Result<(u64, async_nats::HeaderMap, bytes::Bytes), Error>>;

/// A spawned task aborted when dropped (a catch-up that failed half-way leaves no download
/// running).
struct Aborting<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads a whole object (its SHA-256 digest is checked at the end by the client).
async fn get_object(objects: &ObjectStore, name: &str) -> Result<Vec<u8>, Error> {
    let mut object = objects.get(name).await.map_err(nats(format!("downloading {name}")))?;
    let mut bytes = Vec::with_capacity(object.info().size);
    object.read_to_end(&mut bytes).await.map_err(|e| Error::Bad {
        name: name.to_owned(),
        problem: format!("download failed or its digest is wrong: {e}"),
    })?;
    Ok(bytes)
}

/// A head's manifest, with what the replica lacked of it downloaded, verified and written,
/// and its manifest written as the next local generation (`prepared`, none if nothing changed):
/// nothing names any of it until [`install_head`] points `HEAD` at it.
struct Fetched {
    unchanged: bool,
    prepared: Option<Prepared>,
    installed: Installed,
}

/// Downloads the manifest the head names, then every segment, content and vector file of it
/// that `dir` lacks, all at once (each download is a few round trips: the object's info, an
/// ordered consumer, then its chunks, which overlap), then verifies and writes them off the
/// runtime's threads, segments beside side files (their fsyncs overlap).
async fn download_head(
    objects: ObjectStore,
    mut publisher: Publisher,
    head: Head,
) -> Result<(Publisher, Fetched), Error> {
    let dir = publisher.dir().to_owned();
    let bytes = get_object(&objects, &head.manifest).await?;
    crate::trace::stage("r.manifest", head.generation);
    let manifest = Manifest::from_bytes(&bytes)
        .map_err(|e| Error::Bad { name: head.manifest.clone(), problem: e.to_string() })?;
    if hex_id(manifest.store_id) != head.store_id || manifest.generation != head.generation {
        return Err(Error::Bad {
            name: head.manifest.clone(),
            problem: "its store or generation is not the head's".into(),
        });
    }
    let segments: Vec<SegmentEntry> = manifest
        .segments
        .iter()
        .filter(|s| !has_segment_in(&dir, &s.file, s.checksum))
        .cloned()
        .collect();
    // The content and vector files of the manifest's segments that are not here yet.
    let wanted: Vec<(SideFile, SegmentEntry)> = head
        .files
        .iter()
        .filter_map(|f| {
            manifest.segments.iter().find(|s| s.file == f.segment).map(|s| (f.clone(), s.clone()))
        })
        .filter(|(f, _)| !f.is_present(&dir))
        .collect();
    let unchanged = publisher.current().is_some_and(|current| {
        current.segments == manifest.segments && current.commit_seq == manifest.commit_seq
    });
    if unchanged && wanted.is_empty() {
        let fetched = Fetched { unchanged, prepared: None, installed: Installed::default() };
        return Ok((publisher, fetched));
    }
    let segment_names: Vec<String> =
        segments.iter().map(|s| segment_object(s.checksum, &s.file)).collect();
    let file_names: Vec<String> = wanted.iter().map(|(f, _)| f.object()).collect();
    let (segment_bytes, file_bytes) = tokio::join!(
        futures_util::future::try_join_all(segment_names.iter().map(|n| get_object(&objects, n))),
        futures_util::future::join_all(file_names.iter().map(|n| get_object(&objects, n))),
    );
    let segment_bytes = segment_bytes?;
    crate::trace::stage("r.fetched", head.generation);
    let generation = head.generation;
    let written = tokio::task::spawn_blocking(move || {
        let written = std::thread::scope(|scope| {
            let side = scope.spawn(|| {
                let (mut written, mut refused) = (0, Vec::new());
                for ((f, s), got) in wanted.iter().zip(file_bytes) {
                    let name = f.object();
                    // Derived data: one that cannot be had or fails its check is refused,
                    // never written, and the segments are published without it (gists,
                    // lexical search).
                    let checked = got
                        .map_err(|e| e.to_string())
                        .and_then(|bytes| f.verify(&bytes, s).map(|()| bytes));
                    match checked {
                        Ok(bytes) => {
                            files::install(&dir, f, &bytes)?;
                            written += 1;
                        }
                        Err(problem) => refused.push(format!("{name} refused: {problem}")),
                    }
                }
                Ok::<_, Error>((written, refused))
            });
            let segments_written = scope.spawn(|| {
                for (s, bytes) in segments.iter().zip(&segment_bytes) {
                    // Verified whole before it is written where a reader looks.
                    install_segment_in(&dir, &s.file, bytes, s.checksum)?;
                }
                Ok::<_, Error>(segments.len())
            });
            // The manifest too: it names the segments, but nothing names it until `HEAD`
            // does, after all of them are written.
            let prepared = publisher.prepare_at_least(
                manifest.generation,
                manifest.commit_seq,
                manifest.segments,
            );
            let segments = segments_written.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            let side = side.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            let (files, refused) = side?;
            let installed = Installed { segments: segments?, files, refused, published: None };
            Ok::<_, Error>((prepared?, installed))
        });
        crate::trace::stage("r.written", generation);
        written.map(|(prepared, installed)| {
            (publisher, Fetched { unchanged, prepared: Some(prepared), installed })
        })
    })
    .await
    .map_err(|e| Error::Nats { what: "writing the index".into(), source: Box::new(e) })??;
    Ok(written)
}

/// Publishes the manifest [`download_head`] wrote (its files are written and verified):
/// `HEAD` and the beacon, then removes what no live manifest names.
fn install_head(
    publisher: &mut Publisher,
    fetched: Fetched,
    marks: &mut Marks,
) -> Result<Installed, Error> {
    let Fetched { unchanged, prepared, installed: mut done } = fetched;
    let Some(prepared) = prepared else { return Ok(done) };
    if unchanged && done.files == 0 {
        // Every side file it lacked was refused: nothing new to publish (the prepared
        // manifest, named by nothing, goes at the next collection).
        return Ok(done);
    }
    let before = publisher.current().cloned();
    let generation = publisher.point_head_at(prepared)?;
    done.published = Some(generation);
    marks.mark("r.published");
    // Best effort: a file left behind goes at the next collection.
    let _ = publisher.collect_garbage();
    let live: Vec<&Manifest> = publisher.current().into_iter().chain(before.as_ref()).collect();
    files::collect_vectors(publisher.dir(), &live);
    marks.mark("r.collected");
    Ok(done)
}
