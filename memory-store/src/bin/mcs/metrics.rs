//! `mcs metrics` (access patterns from the access log) and the recording of what apprentices
//! used after `mcs invite`/`mcs circle`.

use std::fmt::Write as _;
use std::path::PathBuf;

use memory_store::{AccessMetrics, MemoryStore};

use crate::apprentices::Outcome;
use crate::output::count;

/// Hands the memories each accepted response used to the writer, which records them durably.
/// A store whose lock cannot be had is reported on stderr and skipped: metrics are derived
/// data, never a reason to fail an invitation that was answered.
pub(crate) fn record(dir: &PathBuf, outcomes: &[Outcome]) {
    let used: Vec<(&str, Vec<uuid::Uuid>)> = outcomes
        .iter()
        .filter_map(|o| {
            let r = o.result.as_ref().ok().filter(|r| r.accepted)?;
            let ids: Vec<uuid::Uuid> =
                r.memories.iter().filter_map(|m| m.id.parse().ok()).collect();
            (!ids.is_empty()).then_some((o.kind.name(), ids))
        })
        .collect();
    if used.is_empty() {
        return;
    }
    let recorded = crate::open_writer(dir).and_then(|mut store| {
        for (kind, ids) in &used {
            store.record_access(kind, ids)?;
        }
        Ok(())
    });
    if let Err(e) = recorded {
        eprintln!("mcs: warning: the memories used were not recorded in the access log: {e:#}");
    }
}

/// Output of `mcs metrics`.
pub(crate) enum Format {
    Table,
    Json,
    Prometheus,
}

pub(crate) fn run(store: &mut MemoryStore, top: usize, format: Format) -> anyhow::Result<()> {
    let m = store.access_metrics(top)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&m)?),
        // Through mcs's `println!`, so that a closed pipe ends mcs quietly (std's `print!`
        // panics).
        Format::Prometheus => println!("{}", prometheus(&m).trim_end_matches('\n')),
        Format::Table => println!("{}", table(&m).trim_end_matches('\n')),
    }
    Ok(())
}

fn short(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

fn table(m: &AccessMetrics) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} used {} ({}){}",
        count(m.events as usize, "response", "responses"),
        count(m.memories as usize, "memory", "memories"),
        count(m.accesses as usize, "use", "uses"),
        if m.skipped_bytes > 0 {
            format!("; {} damaged bytes of the log skipped", m.skipped_bytes)
        } else {
            String::new()
        }
    );
    if m.events == 0 {
        let _ = writeln!(
            out,
            "no access recorded yet: `mcs invite` and `mcs circle` record what apprentices use"
        );
        return out;
    }
    let kinds: Vec<String> = m.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(out, "by kind: {}", kinds.join(", "));
    let _ = writeln!(
        out,
        "\nmost used\n  {:<8}  {:>5}  {:>5}  {:>5}  {:<12}  gist",
        "id", "uses", "older", "newer", "domain"
    );
    for a in &m.top {
        let _ = writeln!(
            out,
            "  {:<8}  {:>5}  {:>5}  {:>5}  {:<12}  {}",
            short(&a.id),
            a.count,
            a.older,
            a.newer,
            a.domain,
            a.gist
        );
    }
    let _ =
        writeln!(out, "\nused together\n  {:<8}  {:<8}  {:>5}  cross-domain", "a", "b", "times");
    for p in &m.pairs {
        let _ = writeln!(
            out,
            "  {:<8}  {:<8}  {:>5}  {}",
            short(&p.a),
            short(&p.b),
            p.count,
            if p.cross_domain { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        out,
        "\ncross-domain links per day\n  {:<10}  {:>5}  {:>5}",
        "day", "cross", "pairs"
    );
    for d in &m.days {
        let _ = writeln!(out, "  {:<10}  {:>5}  {:>5}", d.day, d.cross_domain, d.pairs);
    }
    for (title, list) in [("rising", &m.rising), ("fading", &m.fading)] {
        let split = chrono::DateTime::from_timestamp_micros(m.split_micros)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "\n{title} (uses before / after {split} UTC)");
        if list.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for a in list {
            let _ = writeln!(out, "  {:<8}  {} → {}  {}", short(&a.id), a.older, a.newer, a.gist);
        }
    }
    out
}

/// The Prometheus text exposition format (version 0.0.4).
fn prometheus(m: &AccessMetrics) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    metric(
        "mcs_access_events_total",
        "counter",
        "Apprentice responses recorded.",
        vec![(String::new(), m.events)],
    );
    metric(
        "mcs_access_uses_total",
        "counter",
        "Memory uses over all responses.",
        vec![(String::new(), m.accesses)],
    );
    metric(
        "mcs_access_memories",
        "gauge",
        "Distinct memories ever used.",
        vec![(String::new(), m.memories)],
    );
    metric(
        "mcs_access_events_by_kind_total",
        "counter",
        "Responses recorded per apprentice kind.",
        m.by_kind.iter().map(|(k, n)| (format!("{{kind=\"{}\"}}", esc(k)), *n)).collect(),
    );
    metric(
        "mcs_memory_uses_total",
        "counter",
        "Responses that used a memory (the most used).",
        m.top
            .iter()
            .map(|a| (format!("{{id=\"{}\",domain=\"{}\"}}", a.id, esc(&a.domain)), a.count))
            .collect(),
    );
    metric(
        "mcs_coaccess_total",
        "counter",
        "Responses that used both memories (the most frequent pairs).",
        m.pairs
            .iter()
            .map(|p| {
                (
                    format!("{{a=\"{}\",b=\"{}\",cross_domain=\"{}\"}}", p.a, p.b, p.cross_domain),
                    p.count,
                )
            })
            .collect(),
    );
    metric(
        "mcs_cross_domain_links",
        "gauge",
        "Co-accessed pairs of different domains per day.",
        m.days.iter().map(|d| (format!("{{day=\"{}\"}}", d.day), d.cross_domain)).collect(),
    );
    metric(
        "mcs_access_log_skipped_bytes",
        "gauge",
        "Damaged bytes of the access log skipped.",
        vec![(String::new(), m.skipped_bytes)],
    );
    out
}
