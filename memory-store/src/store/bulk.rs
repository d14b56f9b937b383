//! Bulk ingest: durable commits whose documents are published together, in segments of up to
//! [`SEGMENT_DOCS_MAX`] documents, instead of one small segment per commit that tiered merges
//! then rebuild from the records again and again (issue 17: at a million memories, the merges
//! re-read and re-tokenized every memory about three times).

use std::sync::mpsc;
use std::thread::JoinHandle;

use semantic_index::content::ContentBuilder;
use semantic_index::{BuildError, SegmentBuilder};
use uuid::Uuid;

use super::{add_all, BatchReport, MemoryStore, Result, SEGMENT_DOCS_MAX};
use crate::memory::Memory;
use crate::records::Entry;

/// Batches a pending segment's thread may hold before [`MemoryStore::ingest_batch`] waits.
const AHEAD: usize = 2;

/// What a pending segment's thread returns: the tokenized documents and their content.
type Built = std::result::Result<(SegmentBuilder, ContentBuilder), BuildError>;

/// Documents of durable commits that the index does not show yet, tokenized on their own
/// thread while the caller goes on (parsing the next memories, committing them): the records'
/// encoding and fsync, the caller's parsing and the tokenizing overlap on two cores.
pub(crate) struct Pending {
    /// Batches to tokenize; closed to have the thread return what it built.
    tx: Option<mpsc::SyncSender<Vec<Memory>>>,
    worker: Option<JoinHandle<Built>>,
    /// How many documents were sent.
    docs: usize,
    /// The last commit whose documents were sent.
    seq: u64,
    /// Their ids, for [`Error::Unpublished`](crate::Error::Unpublished).
    ids: Vec<Uuid>,
}

impl Pending {
    fn start(generation: u64) -> Pending {
        let (tx, rx) = mpsc::sync_channel::<Vec<Memory>>(AHEAD);
        let worker = std::thread::spawn(move || -> Built {
            let mut builder = SegmentBuilder::new().generation(generation);
            let mut content = ContentBuilder::new();
            for batch in rx {
                add_all(&mut builder, &mut content, batch.into_iter(), Memory::into_document)?;
            }
            Ok((builder, content))
        });
        Pending { tx: Some(tx), worker: Some(worker), docs: 0, seq: 0, ids: Vec::new() }
    }

    /// Hands `batch` to the thread; `false` if it stopped (on an error [`Pending::finish`]
    /// returns).
    fn send(&mut self, batch: Vec<Memory>) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok())
    }

    /// Waits for the thread to tokenize everything sent, and returns the builder and content.
    fn finish(&mut self) -> Built {
        drop(self.tx.take());
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(built)) => built,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok((SegmentBuilder::new(), ContentBuilder::new())),
        }
    }
}

impl Drop for Pending {
    /// Discarded (a rebuild covers its documents, or a commit failed): the thread stops after
    /// at most [`AHEAD`] batches; waiting for it bounds the memory it holds.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl MemoryStore {
    /// Stores memories as one durable commit, like [`MemoryStore::store_batch`], but publishes
    /// them later: their documents join a pending segment, published once it holds 2^18 (262,144)
    /// documents, by [`MemoryStore::publish_pending`], or before the next
    /// search, store, forget or verify of this store (and, best effort, when it is dropped).
    /// `mcs ingest` stores through it. The pending documents are tokenized on a thread of their
    /// own while this returns.
    ///
    /// The memories are acknowledged (durable) when this returns: a crash before the pending
    /// segment is published costs no memory, only a rebuild of the index at the next writer
    /// open. Readers in other processes see the memories once they are published. A memory the
    /// segment builder refuses (only a size limit of the format can) leaves the index behind
    /// the records: the next publication rebuilds it.
    pub fn ingest_batch(&mut self, memories: Vec<Memory>) -> Result<BatchReport> {
        for m in &memories {
            m.validate()?;
        }
        let writer = self.writer()?;
        let (report, fresh) = writer.fresh(memories)?;
        if fresh.is_empty() {
            return Ok(report);
        }
        let waiting = writer.pending.as_ref().map_or(0, |p| p.docs);
        if waiting > 0 && waiting + fresh.len() > SEGMENT_DOCS_MAX {
            // A failure leaves the index behind; the next publication rebuilds it.
            let _ = self.publish_pending();
        }
        let writer = self.writer()?;
        let generation = writer.publisher.generation() + 1;
        let pending = writer.pending.get_or_insert_with(|| Pending::start(generation));
        // Tokenized while the commit is encoded and made durable.
        let entries: Vec<Entry> = fresh.iter().map(|m| Entry::Put(Box::new(m.clone()))).collect();
        let n = fresh.len();
        if !pending.send(fresh) {
            // The thread stopped on a document it refused (of this batch or an earlier one):
            // the index is rebuilt from the records at the next publication, and this batch is
            // not stored.
            let refused = pending.finish();
            writer.pending = None;
            writer.index_behind = true;
            refused?;
        }
        let seq = match writer.records.commit(entries) {
            Ok(seq) => seq,
            Err(e) => {
                // The thread holds documents that were not stored.
                writer.pending = None;
                writer.index_behind = true;
                return Err(e.into());
            }
        };
        // Durable from here on.
        if let Some(p) = writer.pending.as_mut() {
            p.seq = seq;
            p.docs += n;
            p.ids.extend_from_slice(&report.stored);
            if p.docs >= SEGMENT_DOCS_MAX {
                self.publish_pending()?;
            }
        }
        Ok(report)
    }

    /// Publishes the documents [`MemoryStore::ingest_batch`] left pending, if any. A failure is
    /// [`Error::Unpublished`](crate::Error::Unpublished): the memories are stored, and the index catches up at the next
    /// publication.
    pub fn publish_pending(&mut self) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        let Some(mut pending) = writer.pending.take() else { return Ok(()) };
        if pending.docs == 0 {
            return Ok(());
        }
        let published = match pending.finish() {
            Ok((builder, content)) => self.publish_batch(pending.seq, &builder, &content),
            Err(refused) => Err(refused.into()),
        };
        self.after_commit(published, &pending.ids, false)
    }
}

impl Drop for MemoryStore {
    fn drop(&mut self) {
        // Best effort: what is not published here is rebuilt at the next writer open.
        let _ = self.publish_pending();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_reader::Query;

    fn memories(range: std::ops::Range<usize>) -> Vec<Memory> {
        range
            .map(|i| {
                let mut m = Memory::new("bulk", format!("bulk memory number w{i}"));
                m.synthesis = format!("shared words and tag{}", i % 7);
                m
            })
            .collect()
    }

    fn segment_sizes(store: &MemoryStore) -> Vec<u32> {
        let w = store.writer.as_ref().unwrap();
        w.publisher.current().map_or(Vec::new(), |m| m.segments.iter().map(|s| s.live()).collect())
    }

    fn hits(store: &mut MemoryStore, word: &str) -> usize {
        let q = Query::from_text(word);
        store
            .search(&q, &shm_reader::SearchOptions { limit: 10, ..Default::default() })
            .unwrap()
            .hits
            .len()
    }

    #[test]
    fn ingest_publishes_full_segments_then_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MemoryStore::open(dir.path()).unwrap();
        let first = memories(0..1000);
        store.ingest_batch(first.clone()).unwrap();
        for chunk in (1000..5000).step_by(1000) {
            let report = store.ingest_batch(memories(chunk..chunk + 1000)).unwrap();
            assert_eq!(report.stored.len(), 1000);
        }
        // 2000 pending and 1000 more would pass SEGMENT_DOCS_MAX (2048 in unit tests).
        assert_eq!(segment_sizes(&store), [2000, 2000]);
        // A repeated id is skipped, as by store_batch.
        let again = store.ingest_batch(first[10..11].to_vec()).unwrap();
        assert_eq!(again.skipped.len(), 1);
        // A search publishes what is pending first.
        assert_eq!(hits(&mut store, "w4999"), 1);
        assert_eq!(segment_sizes(&store), [2000, 2000, 1000]);
        assert!(store.verify().unwrap().is_ok());
        // Dropped with documents pending: published at drop, so the next open needs no rebuild.
        store.ingest_batch(memories(5000..5100)).unwrap();
        drop(store);
        let mut store = MemoryStore::open(dir.path()).unwrap();
        assert_eq!(store.repaired(), None);
        assert_eq!(hits(&mut store, "w5050"), 1);
        assert_eq!(store.stats().unwrap().memories, 5100);
    }

    #[test]
    fn rebuild_cuts_segments_at_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MemoryStore::open(dir.path()).unwrap();
        store.store_batch(memories(0..5000)).unwrap();
        store.rebuild().unwrap();
        let sizes = segment_sizes(&store);
        assert_eq!(sizes.iter().sum::<u32>(), 5000);
        assert!(sizes.iter().all(|&n| n as usize <= SEGMENT_DOCS_MAX), "{sizes:?}");
        assert_eq!(sizes.len(), 5000usize.div_ceil(SEGMENT_DOCS_MAX));
        assert_eq!(hits(&mut store, "w0"), 1);
        assert_eq!(hits(&mut store, "w4321"), 1);
        assert!(store.verify().unwrap().is_ok());
    }

    #[test]
    fn merges_never_pass_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MemoryStore::open(dir.path()).unwrap();
        // Batches of 500: four of them are one tier, merged into 2000; more than
        // SEGMENT_DOCS_MAX / MERGE_FACTOR (512) live documents is full size, never merged again.
        for chunk in (0..8000).step_by(500) {
            store.store_batch(memories(chunk..chunk + 500)).unwrap();
        }
        let sizes = segment_sizes(&store);
        assert!(sizes.iter().all(|&n| n as usize <= SEGMENT_DOCS_MAX), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<u32>(), 8000);
        assert_eq!(hits(&mut store, "w7777"), 1);
    }

    #[test]
    fn a_writer_that_only_stores_never_opens_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MemoryStore::open(dir.path()).unwrap();
        store.ingest_batch(memories(0..3000)).unwrap();
        store.publish_pending().unwrap();
        drop(store);
        let mut store = MemoryStore::open(dir.path()).unwrap();
        // Single stores: tiered merges of their small segments every fourth store, taken from
        // the members' own files.
        for i in 0..40 {
            store.store(Memory::new("single", format!("single store s{i}"))).unwrap();
        }
        assert!(store.reader.get().is_none(), "a store opened the whole index");
        let sizes = segment_sizes(&store);
        assert_eq!(sizes.iter().sum::<u32>(), 3040);
        assert!(sizes.len() < 2 + 40 / 2, "small segments were merged: {sizes:?}");
        // A forget needs the index (where the memory is); a merge of a segment mostly deleted
        // still finds the members' ids.
        assert_eq!(hits(&mut store, "s39"), 1);
        assert_eq!(hits(&mut store, "s0"), 1);
        assert!(store.verify().unwrap().is_ok());
    }

    #[test]
    fn a_damaged_member_of_a_small_merge_is_rebuilt_from_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MemoryStore::open(dir.path()).unwrap();
        for i in 0..3 {
            store.store(Memory::new("single", format!("single store s{i}"))).unwrap();
        }
        let first = store.writer.as_ref().unwrap().publisher.current().unwrap().segments[0].clone();
        let path = semantic_index::layout::segment_path(dir.path(), &first.file);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, bytes).unwrap();
        // The fourth store merges the four: the damaged member is not read as the manifest
        // says, so the whole index is opened, found damaged and rebuilt from the records.
        store.store(Memory::new("single", "single store s3".to_string())).unwrap();
        assert!(store.repaired().is_some_and(|r| r.contains("could not be read")));
        for i in 0..4 {
            assert_eq!(hits(&mut store, &format!("s{i}")), 1, "s{i}");
        }
        assert!(store.verify().unwrap().is_ok());
    }
}
