//! Whole-store index builds as a pipeline: one thread reads and decodes the records, another
//! tokenizes them and serializes segments, a third writes and syncs each segment (issue 17).
//! One thread did all of it before, so the JSON decoding, each segment's sorting and
//! serialization and its writes left the second core idle.

use std::sync::mpsc;

use index_publisher::{Publisher, SegmentFiles};
use semantic_index::content::ContentBuilder;
use semantic_index::layout::SegmentEntry;
use semantic_index::SegmentBuilder;

use super::{add_all, Result, SEGMENT_DOCS_MAX};
use crate::memory::Memory;
use crate::records::{self, Records};

/// Memories per batch handed from the reading thread to the building one.
const BATCH: usize = 16_384;
/// Batches the reading thread may run ahead of the building one: about 4 × 16k memories of
/// memory (tens of MiB), enough to keep both busy while a segment is serialized.
const AHEAD: usize = 4;

/// Writes segments of at most [`SEGMENT_DOCS_MAX`] documents, at `generation`, from every live
/// record, and returns their manifest entries (not published). The records are read and decoded
/// on this thread; a scoped thread tokenizes them and writes the segments.
pub(super) fn build_all(
    publisher: &mut Publisher,
    records: &Records,
    generation: u64,
    progress: Option<records::Progress<'_>>,
) -> Result<Vec<SegmentEntry>> {
    let size = BATCH.min(SEGMENT_DOCS_MAX);
    let (tx, rx) = mpsc::sync_channel::<Vec<Memory>>(AHEAD);
    std::thread::scope(|s| {
        let builder = s.spawn(move || build_segments(publisher, generation, rx));
        let mut batch = Vec::with_capacity(size);
        let mut sent = true;
        let read = records.for_each_live(progress, &mut |m| {
            batch.push(m);
            if batch.len() == size {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(size));
                // A closed channel: the builder stopped on an error, which it returns.
                sent = tx.send(full).is_ok();
            }
            Ok(sent)
        });
        if read.is_ok() && sent && !batch.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        let built = match builder.join() {
            Ok(built) => built,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        read?;
        built
    })
}

/// Tokenizes the batches `rx` delivers into segments of at most [`SEGMENT_DOCS_MAX`] documents.
/// Each full segment is serialized here, then written (with its content file) and synced on a
/// scoped thread while this one tokenizes the next: the write's kernel copies and `fsync`s no
/// longer stop the tokenizing (issue 17). The next segment is serialized only once the previous
/// one is written, so at most one segment's bytes are alive beside the builder's peak.
fn build_segments(
    publisher: &mut Publisher,
    generation: u64,
    rx: mpsc::Receiver<Vec<Memory>>,
) -> Result<Vec<SegmentEntry>> {
    let (tx, to_write) = mpsc::channel::<SegmentFiles>();
    let (done_tx, done) = mpsc::channel::<Result<SegmentEntry>>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            for files in to_write {
                if done_tx.send(files.write().map_err(Into::into)).is_err() {
                    return;
                }
            }
        });
        let mut segments = Vec::new();
        let mut writing = false;
        let mut wait = |writing: &mut bool| -> Result<()> {
            if std::mem::take(writing) {
                // No answer only if the writer panicked: its join below resumes the panic.
                if let Ok(written) = done.recv() {
                    segments.push(written?);
                }
            }
            Ok(())
        };
        let built = (|| -> Result<()> {
            let mut builder = SegmentBuilder::new().generation(generation);
            let mut content = ContentBuilder::new();
            for batch in rx {
                if !builder.is_empty() && builder.len() + batch.len() > SEGMENT_DOCS_MAX {
                    wait(&mut writing)?;
                    let full = std::mem::replace(
                        &mut builder,
                        SegmentBuilder::new().generation(generation),
                    );
                    let text = std::mem::replace(&mut content, ContentBuilder::new());
                    writing = tx.send(publisher.segment_files(full, text)?).is_ok();
                }
                add_all(&mut builder, &mut content, batch.into_iter(), Memory::into_document)?;
            }
            wait(&mut writing)?;
            if !builder.is_empty() {
                writing = tx.send(publisher.segment_files(builder, content)?).is_ok();
            }
            wait(&mut writing)
        })();
        drop(tx);
        if let Err(panic) = writer.join() {
            std::panic::resume_unwind(panic);
        }
        built.map(|()| segments)
    })
}
