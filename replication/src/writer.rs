//! The writer's side: pushes what NATS lacks.

use std::collections::HashSet;
use std::path::Path;

use async_nats::jetstream::kv;
use async_nats::HeaderMap;
use semantic_index::layout::{self, manifest_path, read_head, read_store_id, segment_path};

use crate::files::{self, SideFile};
use crate::trace::Marks;
use crate::{
    encode_parts, hex_id, manifest_object, nats, now_ms, segment_object, stream_position,
    CommitLog, Error, Head, Nats, HEAD_KEY, H_LAST, H_PART, H_SEQ, H_STORE, WRITER_KEY,
};

/// The file in a writer's store directory holding its writer token.
pub const TOKEN_FILE: &str = "replication-writer";

/// Generations between two sweeps of the object store.
const GC_EVERY: u64 = 16;

/// What a push sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Commits sent to the stream.
    pub commits: u64,
    /// Segment files uploaded.
    pub segments: usize,
    /// The generation the head names now, if this push moved it.
    pub generation: Option<u64>,
    /// Content and vector files uploaded.
    pub files: usize,
    /// Objects no live manifest names any more, removed.
    pub removed: usize,
}

pub(crate) fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.write_u32(std::process::id());
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(h.finish());
    format!("{:016x}{:016x}", h.finish(), h2.finish())
}

fn read_token(dir: &Path) -> Result<Option<String>, Error> {
    let path = dir.join(TOKEN_FILE);
    match layout::read_file(&path, 128) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { what: "reading", path, source }),
    }
}

/// Writes `token` as this store's writer token.
pub(crate) fn write_token(dir: &Path, token: &str) -> Result<(), Error> {
    let path = dir.join(TOKEN_FILE);
    atomic_write::Options::new().mode(0o600).write(&path, format!("{token}\n").as_bytes()).map_err(
        |e| Error::Io {
            what: "writing",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        },
    )
}

impl Nats {
    /// Pushes what NATS lacks of the store in `dir` (its writer holds the lock): the commits
    /// after the stream's last, then, if `HEAD` names a generation the head does not, its
    /// segments, its manifest and the head (compare-and-set). Safe to repeat: a push that
    /// failed half-way is finished by the next one.
    pub fn push(&self, dir: &Path, log: &dyn CommitLog) -> Result<Pushed, Error> {
        let mut pushed = Pushed::default();
        let mut marks = Marks::new();
        marks.mark("w.push");
        let Some(store_id) = read_store_id(dir)? else { return Ok(pushed) };
        let store = hex_id(store_id);
        let (old_head, pos) = self.rt.block_on(async {
            self.check_writer(dir).await?;
            let old_head = self.head_async().await?;
            if let Some((head, _)) = &old_head {
                if head.store_id != store {
                    return Err(Error::ForeignStore {
                        nats: head.store_id.clone(),
                        local: store.clone(),
                    });
                }
            }
            let pos = stream_position(&self.commits).await?;
            if let Some(s) = &pos.store_id {
                if *s != store {
                    return Err(Error::ForeignStore { nats: s.clone(), local: store.clone() });
                }
            }
            Ok((old_head, pos))
        })?;
        marks.mark("w.checked");
        // Commits first: the head never names a commit the stream lacks.
        let local = log.commit_seq().map_err(Error::Local)?;
        if pos.complete() > local {
            return Err(Error::Diverged { nats: pos.complete(), local });
        }
        if pos.complete() < local {
            pushed.commits = self.push_commits(&store, pos, log)?;
        }
        marks.mark("w.commits");
        self.rt.block_on(self.push_index(dir, &store, old_head, pushed, marks))
    }

    async fn push_index(
        &self,
        dir: &Path,
        store: &str,
        old_head: Option<(Head, u64)>,
        mut pushed: Pushed,
        mut marks: Marks,
    ) -> Result<Pushed, Error> {
        let store = store.to_owned();
        // Then the index.
        let Some((_, manifest)) = read_head(dir)? else { return Ok(pushed) };
        if old_head.as_ref().is_some_and(|(h, _)| h.generation == manifest.generation) {
            return Ok(pushed);
        }
        for s in &manifest.segments {
            let name = segment_object(s.checksum, &s.file);
            if self.objects.info(&name).await.is_ok() {
                continue;
            }
            let path = segment_path(dir, &s.file);
            let bytes = layout::read_file(&path, u64::MAX).map_err(|source| Error::Io {
                what: "reading",
                path: path.clone(),
                source,
            })?;
            self.objects
                .put(name.as_str(), &mut bytes.as_slice())
                .await
                .map_err(nats(format!("uploading {name}")))?;
            pushed.segments += 1;
        }
        marks.mark("w.segments");
        // The content and vector files beside them: those the previous head lists are there.
        let known: HashSet<String> =
            old_head.iter().flat_map(|(h, _)| h.files.iter().map(SideFile::object)).collect();
        let mut files = Vec::new();
        for f in files::local_side_files(dir, &manifest) {
            let name = f.object();
            if known.contains(&name) || self.objects.info(&name).await.is_ok() {
                files.push(f);
                continue;
            }
            let Some(segment) = manifest.segments.iter().find(|s| s.file == f.segment) else {
                continue;
            };
            // A file that fails its check is not sent: the replica goes without it, as this
            // store does until its writer makes it again.
            let Some(bytes) = files::read_local(dir, &f, segment)? else { continue };
            self.objects
                .put(name.as_str(), &mut bytes.as_slice())
                .await
                .map_err(nats(format!("uploading {name}")))?;
            pushed.files += 1;
            files.push(f);
        }
        marks.mark("w.files");
        let man_name = manifest_object(&store, manifest.generation);
        let man_path = manifest_path(dir, &layout::manifest_file_name(manifest.generation));
        let man_bytes = layout::read_file(&man_path, 1 << 30).map_err(|source| Error::Io {
            what: "reading",
            path: man_path.clone(),
            source,
        })?;
        self.objects
            .put(man_name.as_str(), &mut man_bytes.as_slice())
            .await
            .map_err(nats(format!("uploading {man_name}")))?;
        marks.mark("w.manifest");
        let head = Head {
            store_id: store.clone(),
            generation: manifest.generation,
            commit_seq: manifest.commit_seq,
            manifest: man_name,
            files,
        };
        let value = bytes::Bytes::from(serde_json::to_vec(&head).unwrap_or_default());
        match &old_head {
            Some((_, revision)) => {
                self.kv.update(HEAD_KEY, value, *revision).await.map_err(|e| {
                    if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                        Error::Conflict(format!("the head moved from revision {revision}"))
                    } else {
                        nats("setting the head")(e)
                    }
                })?;
            }
            None => {
                self.kv.create(HEAD_KEY, value).await.map_err(|e| {
                    if e.kind() == kv::CreateErrorKind::AlreadyExists {
                        Error::Conflict("the head was created by another writer".into())
                    } else {
                        nats("creating the head")(e)
                    }
                })?;
            }
        }
        pushed.generation = Some(manifest.generation);
        marks.mark("w.head");
        marks.flush(manifest.generation);
        // Best effort, every few generations (listing the bucket costs more than a push): what
        // neither the new nor the previous head's manifest names goes.
        if manifest.generation % GC_EVERY == 0 {
            pushed.removed =
                self.collect_objects(&manifest, &head, old_head.as_ref().map(|(h, _)| h)).await;
        }
        Ok(pushed)
    }

    /// Refuses a writer another host was promoted over; the first writer claims the key.
    async fn check_writer(&self, dir: &Path) -> Result<(), Error> {
        let local = read_token(dir)?;
        let entry = self.kv.entry(WRITER_KEY).await.map_err(nats("reading the writer"))?;
        let nats_token = entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).trim().to_owned());
        match (local, nats_token) {
            (Some(l), Some(n)) if l == n => Ok(()),
            (local, Some(n)) => {
                Err(Error::Fenced { nats: n, local: local.unwrap_or_else(|| "none".into()) })
            }
            (local, None) => {
                let token = match local {
                    Some(t) => t,
                    None => {
                        let t = new_token();
                        write_token(dir, &t)?;
                        t
                    }
                };
                self.kv.create(WRITER_KEY, token.clone().into_bytes().into()).await.map_err(
                    |e| {
                        if e.kind() == kv::CreateErrorKind::AlreadyExists {
                            Error::Conflict("another writer claimed the store".into())
                        } else {
                            nats("claiming the writer key")(e)
                        }
                    },
                )?;
                Ok(())
            }
        }
    }

    fn push_commits(
        &self,
        store: &str,
        pos: crate::StreamPosition,
        log: &dyn CommitLog,
    ) -> Result<u64, Error> {
        let mut stream_seq = pos.stream_seq;
        // A commit cut between parts is finished from the next part on.
        let (after, skip_parts) = if pos.last || pos.commit == 0 {
            (pos.commit, None)
        } else {
            (pos.commit - 1, Some((pos.commit, pos.part)))
        };
        let mut sent = 0u64;
        let mut failure: Option<Error> = None;
        let js = &self.js;
        log.commits_since(after, &mut |seq, changes| {
            let parts = encode_parts(&changes);
            let n = parts.len();
            for (i, payload) in parts.into_iter().enumerate() {
                if skip_parts.is_some_and(|(c, p)| c == seq && i as u32 <= p) {
                    continue;
                }
                let mut h = HeaderMap::new();
                h.insert(H_STORE, store);
                h.insert(H_SEQ, seq.to_string().as_str());
                h.insert(H_PART, i.to_string().as_str());
                if i + 1 == n {
                    h.insert(H_LAST, "1");
                }
                h.insert("Nats-Msg-Id", format!("{store}-{seq}-{i}").as_str());
                h.insert("Nats-Expected-Last-Sequence", stream_seq.to_string().as_str());
                let ack = self.rt.block_on(async {
                    js.publish_with_headers(crate::COMMITS_SUBJECT, h, payload.into())
                        .await
                        .map_err(nats(format!("sending commit {seq}")))?
                        .await
                        .map_err(|e| {
                            let text = e.to_string();
                            if text.contains("wrong last sequence") {
                                Error::Conflict(format!("the stream moved past {stream_seq}"))
                            } else {
                                nats(format!("sending commit {seq}"))(e)
                            }
                        })
                });
                match ack {
                    Ok(ack) => stream_seq = ack.sequence,
                    Err(e) => {
                        failure = Some(e);
                        return Ok(false);
                    }
                }
            }
            sent += 1;
            Ok(true)
        })
        .map_err(Error::Local)?;
        match failure {
            Some(e) => Err(e),
            None => Ok(sent),
        }
    }

    /// Removes objects that neither the current head (`current`, its manifest `manifest`) nor
    /// the previous one names.
    async fn collect_objects(
        &self,
        manifest: &semantic_index::layout::Manifest,
        current: &Head,
        previous: Option<&Head>,
    ) -> usize {
        use futures_util::StreamExt;
        let mut keep: Vec<String> =
            manifest.segments.iter().map(|s| segment_object(s.checksum, &s.file)).collect();
        keep.push(current.manifest.clone());
        keep.extend(current.files.iter().map(SideFile::object));
        if let Some(prev) = previous {
            keep.push(prev.manifest.clone());
            keep.extend(prev.files.iter().map(SideFile::object));
            if let Ok(m) = self.read_manifest_async(&prev.manifest).await {
                keep.extend(m.segments.iter().map(|s| segment_object(s.checksum, &s.file)));
            }
        }
        let Ok(mut list) = self.objects.list().await else { return 0 };
        let mut stale = Vec::new();
        while let Some(Ok(info)) = list.next().await {
            if !keep.contains(&info.name) {
                stale.push(info.name);
            }
        }
        let mut removed = 0;
        for name in stale {
            if self.objects.delete(&name).await.is_ok() {
                removed += 1;
            }
        }
        removed
    }
}
