//! The apprentice rows: spawn to Hello, the invitation round trip of each kind, and an
//! apprentice's own memory after serving; with `--invitations-only`, the same over a fresh
//! index, with and without its content file.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use apprentice_core::{Apprentice, Invitation, SpawnOptions};
use benches::corpus::{self, Corpus};
use index_publisher::Publisher;
use semantic_index::SegmentBuilder;
use shm_reader::{Hits, Query, Reader, SearchOptions};

use crate::report::{median, Report};
use crate::segment::write_content;
use crate::{col, SEED};

/// Private_Dirty + Private_Clean of a process, KiB. This counts page-cache pages of mapped
/// files that no other process maps at the moment (an apprentice alone with the content file),
/// so the target reads the anonymous memory instead.
fn private_kib(pid: u32) -> anyhow::Result<f64> {
    Ok(smaps_field(pid, "Private_Dirty:")? + smaps_field(pid, "Private_Clean:")?)
}

/// A field of `/proc/PID/smaps_rollup`, KiB (0 when absent).
fn smaps_field(pid: u32, name: &str) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
    Ok(text
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

/// Spawns an apprentice of `kind` (the sibling `apprentice` program) over `store`; returns it
/// and the ms until its Hello.
fn spawn(store: &Path, kind: &str) -> anyhow::Result<(Apprentice, f64)> {
    let mut cmd = Command::new(benches::sibling_exe("apprentice")?);
    cmd.arg(kind);
    let t = Instant::now();
    let a = Apprentice::spawn(cmd, store, &SpawnOptions::default())?;
    Ok((a, t.elapsed().as_secs_f64() * 1e3))
}

/// The median round trip (ms) of 300 invitations built from the bench queries, and how many
/// insights the answers quoted from content files. With `embed`, each invitation carries its
/// task's stand-in vector (`benches::word_vectors`) and every search must have been hybrid;
/// without, none.
fn round_trips(a: &Apprentice, corpus: &Corpus, embed: bool) -> anyhow::Result<(f64, usize)> {
    let mut trips = Vec::new();
    let (mut quoted, mut hybrid, mut by_vector) = (0usize, 0usize, 0usize);
    let cpu_before = cpu_ns(a.pid());
    for q in corpus.queries.iter().take(300) {
        let task = q.join(" ");
        let embedding = if embed {
            benches::word_vectors::text_vector(&task, benches::word_vectors::DIM)
        } else {
            Vec::new()
        };
        let invitation = Invitation {
            task,
            specialization: a.specialization().to_owned(),
            embedding,
            ..Invitation::default()
        };
        let t = Instant::now();
        let r = a.invite(&invitation, Duration::from_secs(10))?;
        trips.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(r.accepted, "{} declined: {}", a.kind(), r.reason);
        quoted += r.insights.iter().filter(|i| i.starts_with("  insight: ")).count();
        hybrid += usize::from(r.reason.contains("ranked hybrid"));
        by_vector += usize::from(r.reason.contains("(by their own vectors)"));
    }
    anyhow::ensure!(
        hybrid == if embed { trips.len() } else { 0 },
        "{}: {hybrid} of {} searches hybrid",
        a.kind(),
        trips.len()
    );
    if embed {
        println!("  {}: {hybrid} hybrid searches, {by_vector} related by own vectors", a.kind());
    }
    let count = trips.len();
    let trip = median(trips);
    // The apprentice's own CPU per invitation (all its threads), which the host's load does
    // not inflate the way it inflates the round trip's wake-ups.
    if let (Some(before), Some(after)) = (cpu_before, cpu_ns(a.pid())) {
        println!(
            "  {}{}: {:.3} ms of its CPU per invitation, round trip median {trip:.3} ms",
            a.kind(),
            if embed { " (hybrid)" } else { "" },
            after.saturating_sub(before) as f64 / 1e6 / count as f64,
        );
    }
    Ok((trip, quoted))
}

/// The CPU time in ns that process `pid`'s threads have run so far (`/proc/PID/task/*/schedstat`,
/// first field); `None` where that is not readable.
fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// The apprentice rows over the published `store`.
pub(crate) fn rows(
    store: &Path,
    corpus: &Corpus,
    c: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut hellos = Vec::new();
    for _ in 0..20 {
        let (a, ms) = spawn(store, "navigator")?;
        hellos.push(ms);
        a.terminate()?;
    }
    report.put("apprentice spawn → Hello (ms, median)", c, median(hellos));

    let (navigator, _) = spawn(store, "navigator")?;
    let (trip, quoted) = round_trips(&navigator, corpus, false)?;
    println!("  navigator: {quoted} insights quoted from content files");
    report.put(
        "invitation round trip, navigator (ms, median; search + related + insights)",
        c,
        trip,
    );
    // Let the apprentice finish answering before its memory is read.
    std::thread::sleep(Duration::from_millis(100));
    report.put(
        "apprentice private memory after 300 invitations (MiB; Private_Dirty + Private_Clean)",
        c,
        private_kib(navigator.pid())? / 1024.0,
    );
    report.put(
        "apprentice anonymous memory after 300 invitations (MiB; beyond file mappings)",
        c,
        smaps_field(navigator.pid(), "Anonymous:")? / 1024.0,
    );
    navigator.terminate()?;

    let (witness, _) = spawn(store, "witness")?;
    report.put(
        "invitation round trip, witness (ms, median; one search of 200)",
        c,
        round_trips(&witness, corpus, false)?.0,
    );
    witness.terminate()?;

    for (kind, what) in [("synthesizer", "themes of 10"), ("curator", "pairs of 10")] {
        let (a, _) = spawn(store, kind)?;
        let row = format!("invitation round trip, {kind} (ms, median; {what})");
        report.put(&row, c, round_trips(&a, corpus, false)?.0);
        a.terminate()?;
    }
    Ok(())
}

/// `--invitations-only`: the apprentice rows alone over a fresh index with its content file,
/// then the navigator without the content file (gists only), the cost of quoting measured in
/// the same run.
pub(crate) fn invitation_rows(n: usize, report: &mut Report) -> anyhow::Result<()> {
    println!("\n== N = {n} (invitations only) ==");
    let c = col(n);
    let corpus = corpus::generate(n, SEED);
    let docs: Vec<_> = corpus.memories.iter().map(|m| m.to_document()).collect();
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("index");
    let mut builder = SegmentBuilder::new().generation(1);
    builder.add_batch(&docs)?;
    drop(docs);
    let mut publisher = Publisher::open(&store)?;
    let entry = publisher.write_segment(&builder)?;
    drop(builder);
    let content_bytes = write_content(&mut publisher, &entry, &corpus)?;
    report.put("content file size (MiB; insights, syntheses, questions)", &c, content_bytes);
    let entry_file = entry.file.clone();
    publisher.publish(1, vec![entry])?;
    // Content open: header and table checks, in this process (median of 15).
    let mut opens = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let reader = Reader::open(&store)?;
        anyhow::ensure!(reader.snapshot().segments_without_content() == 0, "no content file");
        opens.push(t.elapsed().as_secs_f64() * 1e3);
    }
    report.put("reader open with content file (ms, median; same process)", &c, median(opens));
    rows(&store, &corpus, &c, report)?;
    apprentice_extra_rows(&store, &entry_file, &corpus, &c, report)?;

    let content = semantic_index::layout::segment_path(
        &store,
        &semantic_index::content::content_file_name(&entry_file),
    );
    std::fs::remove_file(&content)?;
    let (navigator, _) = spawn(&store, "navigator")?;
    let (trip, quoted) = round_trips(&navigator, &corpus, false)?;
    anyhow::ensure!(quoted == 0, "quoted {quoted} insights without a content file");
    report.put(
        "invitation round trip, navigator without content file (ms, median; gists only)",
        &c,
        trip,
    );
    navigator.terminate()?;
    Ok(())
}

/// Issue 19's further rows: the witness over an access log of 5,000 responses (the log read
/// incrementally), then every kind with vectors beside the segment (stand-in word vectors,
/// `benches::word_vectors`) and invitations that carry their task's vector: hybrid search, and
/// the navigator's related memories by their own vectors. The vectors are removed afterwards.
fn apprentice_extra_rows(
    store: &Path,
    segment_file: &str,
    corpus: &Corpus,
    c: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    use semantic_index::access::{access_log_path, encode_frame, AccessFrame};
    let exe = benches::sibling_exe("apprentice")?;
    let spawn = |kind: &str| -> anyhow::Result<Apprentice> {
        let mut cmd = Command::new(&exe);
        cmd.arg(kind);
        Ok(Apprentice::spawn(cmd, store, &SpawnOptions::default())?)
    };

    // An access log as navigators would have written it: each response's ten best memories.
    let reader = Reader::open(store)?;
    let snapshot = reader.snapshot();
    let mut hits = Hits::with_capacity(10);
    let mut log = Vec::new();
    for k in 0..5000usize {
        let q = &corpus.queries[k % corpus.queries.len()];
        snapshot.search(&Query::from_keywords(q), &SearchOptions::default(), &mut hits);
        log.extend(encode_frame(&AccessFrame {
            time_micros: 1_700_000_000_000_000 + k as i64 * 600_000_000,
            kind: "navigator".into(),
            ids: hits.iter().map(|h| h.id).collect(),
        }));
    }
    drop(snapshot);
    drop(reader);
    let path = access_log_path(store);
    std::fs::create_dir_all(path.parent().context("access log directory")?)?;
    std::fs::write(&path, &log)?;
    let witness = spawn("witness")?;
    report.put(
        "invitation round trip, witness, 5,000-response access log (ms, median)",
        c,
        round_trips(&witness, corpus, false)?.0,
    );
    std::thread::sleep(Duration::from_millis(100));
    report.put(
        "witness anonymous memory after 300 invitations, with the log (MiB)",
        c,
        smaps_field(witness.pid(), "Anonymous:")? / 1024.0,
    );
    witness.terminate()?;
    std::fs::remove_file(&path)?;

    let t = Instant::now();
    let mib = benches::word_vectors::write_vectors(store, segment_file, corpus)?;
    println!("  stand-in vectors: {mib:.1} MiB in {:.1} s", t.elapsed().as_secs_f64());
    let navigator = spawn("navigator")?;
    report.put(
        "invitation round trip, navigator, hybrid (ms, median; related by own vectors)",
        c,
        round_trips(&navigator, corpus, true)?.0,
    );
    std::thread::sleep(Duration::from_millis(100));
    report.put(
        "apprentice anonymous memory, hybrid navigator (MiB; beyond file mappings)",
        c,
        smaps_field(navigator.pid(), "Anonymous:")? / 1024.0,
    );
    navigator.terminate()?;
    for kind in ["witness", "synthesizer", "curator"] {
        let a = spawn(kind)?;
        let row = format!("invitation round trip, {kind}, hybrid (ms, median)");
        report.put(&row, c, round_trips(&a, corpus, true)?.0);
        a.terminate()?;
    }
    std::fs::remove_dir_all(store.join(semantic_index::vectors::VECTORS_DIR))?;
    Ok(())
}
