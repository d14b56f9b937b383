//! The segment rows: build (batched and one `add` at a time), publication with its content
//! file, and opening in fresh processes against the bandwidth floor.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use benches::corpus::Corpus;
use index_publisher::Publisher;
use semantic_index::SegmentBuilder;

use crate::report::{median, Report};

/// A store directory with one published segment.
pub(crate) struct Published {
    /// The store directory (what `Reader::open` takes).
    pub(crate) store: PathBuf,
    /// The segment file.
    pub(crate) segment: PathBuf,
}

/// Builds the corpus's segment (a batch tokenized on every core, and one `add` per document
/// on one core, which must give the same bytes), then publishes it with its content file as a
/// store in `dir`.
pub(crate) fn build_and_publish(
    corpus: &Corpus,
    dir: &Path,
    c: &str,
    report: &mut Report,
) -> anyhow::Result<Published> {
    let docs: Vec<_> = corpus.memories.iter().map(|m| m.to_document()).collect();
    let mut builds = Vec::new();
    let mut singles = Vec::new();
    let mut bytes = Vec::new();
    let mut batched = SegmentBuilder::new();
    for _ in 0..if docs.len() > 200_000 { 1 } else { 3 } {
        let t = Instant::now();
        batched = SegmentBuilder::new().generation(1);
        batched.add_batch(&docs)?;
        bytes = batched.to_bytes()?;
        builds.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let mut b = SegmentBuilder::new().generation(1);
        for d in &docs {
            b.add(d)?;
        }
        let single = b.to_bytes()?;
        singles.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(single == bytes, "add_batch and add built different segments");
    }
    report.put("segment build (ms, median)", c, median(builds));
    report.put("segment build, one add per document (ms, median)", c, median(singles));
    report.put("segment size (MiB)", c, bytes.len() as f64 / (1024.0 * 1024.0));

    // Publish as a store directory so that Reader and child processes can open it.
    let store = dir.join("index");
    let mut publisher = Publisher::open(&store)?;
    let entry = publisher.write_segment(&batched)?;
    let content_bytes = write_content(&mut publisher, &entry, corpus)?;
    report.put("content file size (MiB; insights, syntheses, questions)", c, content_bytes);
    publisher.publish(1, vec![entry.clone()])?;
    let segment = semantic_index::layout::segment_path(&store, &entry.file);
    Ok(Published { store, segment })
}

/// Writes the content file of `entry` from the corpus (what the writer does for a store);
/// returns its size in MiB.
pub(crate) fn write_content(
    publisher: &mut Publisher,
    entry: &semantic_index::layout::SegmentEntry,
    corpus: &Corpus,
) -> anyhow::Result<f64> {
    use semantic_index::content::{content_file_name, ContentBuilder, ContentFields};
    let mut content = ContentBuilder::new();
    for m in &corpus.memories {
        let fields = ContentFields {
            question: &m.question,
            synthesis: &m.synthesis,
            insights: &m.insights,
            ..ContentFields::default()
        };
        content.add(m.id, &fields);
    }
    publisher.write_content(entry, &content)?;
    let path =
        semantic_index::layout::segment_path(publisher.dir(), &content_file_name(&entry.file));
    Ok(std::fs::metadata(path)?.len() as f64 / (1024.0 * 1024.0))
}

/// Opens `segment` in fresh processes (`bench-suite probe-open`, each printing its ms): 15
/// opens, each followed by a process that only reads every byte of the same file (the floor
/// any full checksum pays), so that the ratio of the two medians holds still while the host's
/// load moves both; then the same after the page cache was dropped.
pub(crate) fn open_rows(segment: &Path, c: &str, report: &mut Report) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let probe = |what: &str| -> anyhow::Result<f64> {
        let out = Command::new(&exe).arg(what).arg(segment).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse::<f64>().with_context(|| format!("{what} said {text:?}"))
    };
    let (mut opens, mut floors) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        opens.push(probe("probe-open")?);
        floors.push(probe("probe-floor")?);
    }
    let (open_ms, floor_ms) = (median(opens), median(floors));
    report.put("open in a fresh process (ms, median; map + full validation)", c, open_ms);
    report.put("read every byte in a fresh process (ms, median; bandwidth floor)", c, floor_ms);
    report.put("ratio open / read every byte", c, open_ms / floor_ms);

    // As after a reboot: the first open reads the file from disk, the next ones find it in
    // whatever pages that read left (`Segment::map` asks for huge pages, so the kernel reads it
    // back in 2 MiB folios where it can).
    benches::os::drop_page_cache(&std::fs::File::open(segment)?)?;
    let mut reopens = (0..8).map(|_| probe("probe-open")).collect::<anyhow::Result<Vec<_>>>()?;
    report.put("open, first after the page cache was dropped (ms)", c, reopens[0]);
    report.put(
        "open in a fresh process, cache read back from disk (ms, median)",
        c,
        median(reopens.split_off(1)),
    );
    Ok(())
}
