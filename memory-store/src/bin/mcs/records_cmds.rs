//! `mcs verify`, `mcs repair`, `mcs list` and `mcs export`: the commands that read every record,
//! streaming, with a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use memory_store::{Memory, MemoryStore, RecordsCheck};

use crate::output;

/// A byte progress bar on standard error when it is a terminal.
pub(crate) fn progress(
    store: &mut MemoryStore,
    what: &'static str,
) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what);
    let shown = bar.clone();
    store.set_progress(move |done, total| {
        shown.set_length(total);
        shown.set_position(done);
    });
    Some(bar)
}

fn describe(check: &RecordsCheck) -> String {
    let mut parts = Vec::new();
    if !check.lost.is_empty() {
        let ids: Vec<String> = check.lost.iter().take(10).map(ToString::to_string).collect();
        let more = check.lost.len().saturating_sub(10);
        parts.push(format!(
            "{} lost (damaged or missing records): {}{}",
            output::count(check.lost.len(), "memory", "memories"),
            ids.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ));
    }
    for d in check.damaged.iter().take(10) {
        parts.push(format!(
            "damaged: records/{} bytes {}..{}{}",
            d.file,
            d.offset,
            d.offset + d.len,
            d.id.map(|id| format!(" (memory {id}, commit {})", d.seq.unwrap_or(0)))
                .unwrap_or_else(|| " (header unreadable)".into())
        ));
    }
    if check.damaged.len() > 10 {
        parts.push(format!("and {} more damaged stretches", check.damaged.len() - 10));
    }
    for (a, b) in &check.missing_commits {
        parts.push(if a == b {
            format!("commit {a} is missing")
        } else {
            format!("commits {a}..={b} are missing")
        });
    }
    parts.join("\n")
}

pub(crate) fn verify(dir: &Path, mut store: MemoryStore) -> anyhow::Result<ExitCode> {
    let bar = progress(&mut store, "verifying");
    let report = store.verify()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!(
        "records: {} (commit {}), {} intact; index: {} (commit {})",
        output::count(report.records, "memory", "memories"),
        report.records_seq,
        report.records_check.intact,
        output::count(report.indexed as usize, "memory", "memories"),
        report.index_seq
    );
    if let Some((at, len)) = report.records_check.unacknowledged_tail {
        println!("note: {len} bytes at byte {at} of the log are an append a crash cut short (never acknowledged); the next write discards them");
    }
    if !report.records_check.is_clean() {
        eprintln!("{}", describe(&report.records_check));
        eprintln!("mcs: the records of {} are damaged; `mcs repair` keeps every intact record and quarantines the rest", dir.display());
        return Ok(ExitCode::from(1));
    }
    if !report.is_ok() {
        bail!(
            "index does not match records: {} missing from index, {} unknown in index{}",
            report.missing_from_index.len(),
            report.unknown_in_index.len(),
            report.damaged_segment.map(|d| format!(", damaged segment: {d}")).unwrap_or_default()
        );
    }
    println!("ok: every record is intact and the index covers exactly the records");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn repair(dir: &Path) -> anyhow::Result<ExitCode> {
    let (report, store) =
        MemoryStore::repair(dir).with_context(|| format!("repairing store {}", dir.display()))?;
    let check = RecordsCheck {
        lost: report.lost.clone(),
        damaged: report.damaged.clone(),
        missing_commits: report.missing_commits.clone(),
        ..RecordsCheck::default()
    };
    if !check.is_clean() {
        println!("{}", describe(&check));
        println!(
            "repaired: kept {}, lost {}{}; index rebuilt (generation {})",
            output::count(report.kept as usize, "memory", "memories"),
            report.lost.len(),
            report
                .quarantine
                .as_ref()
                .map(|q| format!("; what was dropped is in {} (and .bin beside it)", q.display()))
                .unwrap_or_default(),
            store.generation()
        );
    } else {
        println!(
            "repaired: kept all {} memories, nothing was damaged; index rebuilt (generation {})",
            report.kept,
            store.generation()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Filters of `mcs list`.
#[derive(clap::Args)]
pub(crate) struct ListArgs {
    /// Only this domain.
    #[arg(long)]
    domain: Option<String>,
    /// Only sacred memories.
    #[arg(long)]
    sacred: bool,
    /// Only memories made at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only memories made before this time (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// At most this many (in the order they were stored).
    #[arg(long)]
    limit: Option<u64>,
    /// One JSON object per line (the memory as stored) instead of a table.
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    fn keeps(&self, m: &Memory) -> bool {
        self.domain.as_ref().is_none_or(|d| *d == m.domain)
            && (!self.sacred || m.sacred)
            && self.since.is_none_or(|t| m.timestamp >= t)
            && self.until.is_none_or(|t| m.timestamp < t)
    }
}

/// Writes lines, ending quietly when the reader closed the pipe.
fn emit(out: &mut impl Write, line: &str, closed: &mut bool) -> bool {
    if writeln!(out, "{line}").is_err() {
        *closed = true;
        return false;
    }
    true
}

pub(crate) fn list(dir: &Path, store: &mut MemoryStore, args: &ListArgs) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut shown, mut closed) = (0u64, false);
    let limit = args.limit.unwrap_or(u64::MAX);
    let damaged = store.for_each_memory(|m| {
        if shown >= limit {
            return false;
        }
        if !args.keeps(&m) {
            return true;
        }
        shown += 1;
        let line = if args.json {
            serde_json::to_string(&m).unwrap_or_default()
        } else {
            format!(
                "{}  {:<14}  {}  {}{}",
                m.id,
                m.domain,
                m.timestamp.format("%Y-%m-%d"),
                if m.sacred { "✦ " } else { "" },
                m.question.chars().take(70).collect::<String>()
            )
        };
        emit(&mut out, &line, &mut closed)
    })?;
    if !closed && out.flush().is_err() {
        closed = true;
    }
    if damaged > 0 {
        eprintln!(
            "mcs: {damaged} damaged records of {} were skipped (`mcs verify` names them)",
            dir.display()
        );
    }
    let _ = closed;
    Ok(())
}

pub(crate) fn export(dir: &Path, mut store: MemoryStore, file: &str) -> anyhow::Result<()> {
    let bar = progress(&mut store, "exporting");
    let (mut written, mut closed) = (0u64, false);
    let mut failure = None;
    let damaged = if file == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let d = store.for_each_memory(|m| {
            written += 1;
            emit(&mut out, &serde_json::to_string(&m).unwrap_or_default(), &mut closed)
        })?;
        let _ = out.flush();
        d
    } else {
        let path = Path::new(file);
        let mut out = atomic_write::Options::new()
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {file}"))?;
        let mut buf = std::io::BufWriter::new(&mut out);
        let d = store.for_each_memory(|m| {
            written += 1;
            match writeln!(buf, "{}", serde_json::to_string(&m).unwrap_or_default()) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failure.take() {
            return Err(anyhow::Error::new(e).context(format!("writing {file}")));
        }
        buf.flush().with_context(|| format!("writing {file}"))?;
        drop(buf);
        out.commit().with_context(|| format!("writing {file}"))?;
        d
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if file != "-" {
        eprintln!("exported {} to {file}", output::count(written as usize, "memory", "memories"));
    }
    if damaged > 0 {
        bail!("{damaged} damaged records of {} were not exported (`mcs verify` names them, `mcs repair` quarantines them)", dir.display());
    }
    Ok(())
}
