//! A replica's side: applies commits, downloads and verifies segments, publishes locally.

use std::path::Path;

use index_publisher::Publisher;
use semantic_index::layout::{Manifest, SegmentEntry};
use tokio::io::AsyncReadExt;

use crate::files::{self, SideFile};
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
        let mut object =
            self.objects.get(name).await.map_err(nats(format!("downloading {name}")))?;
        let mut bytes = Vec::with_capacity(object.info().size);
        object.read_to_end(&mut bytes).await.map_err(|e| Error::Bad {
            name: name.to_owned(),
            problem: format!("download failed or its digest is wrong: {e}"),
        })?;
        Ok(bytes)
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
        let mut publisher = Publisher::open_replica(dir, store_id)?;
        let upto = match target {
            Target::Head => Some(head.commit_seq),
            Target::Everything => None,
        };
        if upto.is_none_or(|u| sink.seq() < u) {
            done.commits = self.apply_commits(sink, upto)?;
        }
        done.commit_seq = sink.seq();
        let installed = self.rt.block_on(self.install_head(&mut publisher, &head))?;
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
        Ok(done)
    }

    async fn install_head(
        &self,
        publisher: &mut Publisher,
        head: &Head,
    ) -> Result<Installed, Error> {
        let manifest = self.read_manifest_async(&head.manifest).await?;
        if hex_id(manifest.store_id) != head.store_id || manifest.generation != head.generation {
            return Err(Error::Bad {
                name: head.manifest.clone(),
                problem: "its store or generation is not the head's".into(),
            });
        }
        let dir = publisher.dir().to_owned();
        // The content and vector files of the manifest's segments that are not here yet.
        let wanted: Vec<(&SideFile, &SegmentEntry)> = head
            .files
            .iter()
            .filter_map(|f| manifest.segments.iter().find(|s| s.file == f.segment).map(|s| (f, s)))
            .filter(|(f, _)| !f.is_present(&dir))
            .collect();
        let unchanged = publisher.current().is_some_and(|current| {
            current.segments == manifest.segments && current.commit_seq == manifest.commit_seq
        });
        if unchanged && wanted.is_empty() {
            return Ok(Installed::default());
        }
        let mut done = Installed::default();
        for s in &manifest.segments {
            if publisher.has_segment(&s.file, s.checksum) {
                continue;
            }
            let bytes = self.get_object_async(&segment_object(s.checksum, &s.file)).await?;
            // Verified whole before it is written where a reader looks.
            publisher.install_segment(&s.file, &bytes, s.checksum)?;
            done.segments += 1;
        }
        for (f, s) in wanted {
            let name = f.object();
            // Derived data: one that cannot be had or fails its check is refused, never
            // written, and the segments are published without it (gists, lexical search).
            let checked = match self.get_object_async(&name).await {
                Ok(bytes) => f.verify(&bytes, s).map(|()| bytes),
                Err(e) => Err(e.to_string()),
            };
            match checked {
                Ok(bytes) => {
                    files::install(&dir, f, &bytes)?;
                    done.files += 1;
                }
                Err(problem) => done.refused.push(format!("{name} refused: {problem}")),
            }
        }
        if unchanged && done.files == 0 {
            return Ok(done);
        }
        let before = publisher.current().cloned();
        let generation = publisher.publish_at_least(
            manifest.generation,
            manifest.commit_seq,
            manifest.segments.clone(),
        )?;
        done.published = Some(generation);
        // Best effort: a file left behind goes at the next collection.
        let _ = publisher.collect_garbage();
        let live: Vec<&Manifest> = publisher.current().into_iter().chain(before.as_ref()).collect();
        files::collect_vectors(&dir, &live);
        Ok(done)
    }

    /// Applies the stream's commits after `sink.seq()`, up to `upto` (all if `None`).
    fn apply_commits(&self, sink: &mut dyn CommitSink, upto: Option<u64>) -> Result<u64, Error> {
        let pos = self.stream_position()?;
        let target = upto.map_or(pos.complete(), |u| u.min(pos.complete()));
        if sink.seq() >= target {
            return Ok(0);
        }
        let mut at = self.rt.block_on(self.first_after(sink.seq(), pos.stream_seq))?;
        let mut applied = 0;
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut expected_part = 0u32;
        while sink.seq() < target && at <= pos.stream_seq {
            let name = format!("{} message {at}", crate::COMMITS_STREAM);
            let msg = self
                .rt
                .block_on(self.commits.get_raw_message(at))
                .map_err(nats(format!("reading {name}")))?;
            let h = parse_part(&msg.headers, &name)?;
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
            decode_part(&msg.payload, &name, &mut parts)?;
            expected_part += 1;
            if h.last {
                sink.apply(h.commit, std::mem::take(&mut parts)).map_err(Error::Local)?;
                applied += 1;
                expected_part = 0;
            }
        }
        Ok(applied)
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
