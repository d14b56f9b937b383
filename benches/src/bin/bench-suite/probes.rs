//! The child modes: `bench-suite probe-…` runs in a fresh process for the metrics that need
//! one (a cold open, a searching process's memory, another process seeing a publication) and
//! prints what it measured on standard output.

use std::io::Write;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shm_reader::{Hits, Query, Reader, SearchOptions};

/// Microseconds since the epoch: a clock two processes share.
pub(crate) fn now_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

/// A `/proc/self/status` field, KiB.
fn proc_status(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// Maps and fully validates the segment, printing the ms.
pub(crate) fn open(path: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    // SAFETY: the bench owns the file; nothing modifies it while mapped.
    let segment = unsafe { shm_reader::Segment::map(path) }?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(segment.len());
    println!("{ms}");
    Ok(())
}

/// Maps the segment as `Segment::map` does (`shm_reader::map_file`) and reads every byte (a
/// sum of its 8-byte words, which the compiler vectorizes), printing the ms: what reading the
/// file costs before any checking.
pub(crate) fn floor(path: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    // SAFETY: the bench owns the file; nothing modifies or truncates it while mapped.
    let map = unsafe { shm_reader::map_file(path) }?;
    let words = map.chunks_exact(8);
    let tail: u64 = words.remainder().iter().map(|&b| u64::from(b)).sum();
    let sum = words.fold(tail, |acc, w| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        acc.wrapping_add(u64::from_le_bytes(word))
    });
    let ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(sum);
    println!("{ms}");
    Ok(())
}

/// Runs every query of the file once, then prints VmRSS, RssAnon and RssFile (KiB).
pub(crate) fn search(store: &Path, queries: &str) -> anyhow::Result<()> {
    let mut reader = Reader::open(store)?;
    let text = std::fs::read_to_string(queries)?;
    let queries: Vec<Query> =
        text.lines().map(|l| Query::from_keywords(l.split_whitespace())).collect();
    let mut hits = Hits::with_capacity(10);
    for q in &queries {
        reader.search(q, &SearchOptions::default(), &mut hits)?;
    }
    println!("{} {} {}", proc_status("VmRSS:"), proc_status("RssAnon:"), proc_status("RssFile:"));
    Ok(())
}

/// Prints `ready`, then `GENERATION MICROS` for each new generation it sees, spinning.
pub(crate) fn visible(store: &Path) -> anyhow::Result<()> {
    let mut reader = Reader::open(store)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut generation = reader.generation();
    loop {
        if reader.refresh()? && reader.generation() != generation {
            generation = reader.generation();
            writeln!(out, "{generation} {}", now_micros())?;
            out.flush()?;
        }
        std::hint::spin_loop();
    }
}
