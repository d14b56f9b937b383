//! The report: rows as they are measured, the markdown and JSON files, and the targets table.

use std::collections::BTreeMap;
use std::path::Path;

use crate::SEED;

#[derive(Default)]
pub(crate) struct Report {
    /// metric -> column -> value
    pub(crate) rows: BTreeMap<String, BTreeMap<String, f64>>,
    pub(crate) order: Vec<String>,
}

impl Report {
    /// Records one value (and prints it as it comes).
    pub(crate) fn put(&mut self, metric: &str, column: &str, value: f64) {
        if !self.rows.contains_key(metric) {
            self.order.push(metric.to_owned());
        }
        self.rows.entry(metric.to_owned()).or_default().insert(column.to_owned(), value);
        println!("  {metric:<52} {column:<18} {value:>12.3}");
    }
}

pub(crate) fn median(v: Vec<f64>) -> f64 {
    benches::stats::stats(v).0
}

/// Writes `report.md` (the rows, the machine, the targets) and `report.json` into `out`.
pub(crate) fn write_report(out: &Path, report: &Report, peers: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let cols: Vec<String> = {
        let mut c: Vec<String> = report.rows.values().flat_map(|m| m.keys().cloned()).collect();
        c.sort_by_key(|s| {
            (s.ends_with('M'), s.trim_end_matches(['k', 'M']).parse::<u64>().unwrap_or(0))
        });
        c.dedup();
        c
    };
    let mut md = String::new();
    md.push_str(&format!(
        "| metric | {} |\n|---|{}\n",
        cols.join(" | "),
        "---:|".repeat(cols.len())
    ));
    for metric in &report.order {
        let row = &report.rows[metric];
        let cells: Vec<String> =
            cols.iter().map(|c| row.get(c).map_or("".into(), |v| fmt(*v))).collect();
        md.push_str(&format!("| {metric} | {} |\n", cells.join(" | ")));
    }
    md.push_str(&format!(
        "\nMachine: {} ({} cores), seed {SEED}, top 10, default weights{}.\n",
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if peers { ", peers interleaved per query" } else { "" }
    ));
    md.push('\n');
    md.push_str(&targets_table(report));
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&report.rows)?)?;
    println!("\n{md}");
    println!("wrote {} and report.json", out.join("report.md").display());
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// How a target compares the measured value with its bound.
#[derive(Clone, Copy)]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

/// The targets the issues set, at 100,000 memories: (name, bound, metric). Ratios (metrics
/// named `ratio …`) are shown with an `x`.
const TARGETS: &[(&str, Bound, &str)] = &[
    ("search p50 (µs), back to back", Bound::AtMost(15.0), "search p50 (µs), ours, back to back"),
    (
        "search p50 (µs), interleaved with peers",
        Bound::AtMost(15.0),
        "search p50 (µs), ours, interleaved with peers",
    ),
    ("search p99 (µs), back to back", Bound::AtMost(200.0), "search p99 (µs), ours, back to back"),
    (
        "search p99 (µs), interleaved with peers",
        Bound::AtMost(200.0),
        "search p99 (µs), ours, interleaved with peers",
    ),
    ("p50 vs tantivy, back to back", Bound::AtLeast(3.0), "ratio p50 tantivy / ours, back to back"),
    ("p50 vs tantivy, interleaved", Bound::AtLeast(3.0), "ratio p50 tantivy / ours, interleaved"),
    ("p99 vs tantivy, back to back", Bound::AtLeast(2.0), "ratio p99 tantivy / ours, back to back"),
    ("p99 vs tantivy, interleaved", Bound::AtLeast(2.0), "ratio p99 tantivy / ours, interleaved"),
    ("p50 vs SQLite FTS5", Bound::AtLeast(50.0), "ratio p50 sqlite / ours, interleaved"),
    ("allocations per search", Bound::AtMost(0.0), "allocations per search, ours"),
    (
        "open, fresh process (ms)",
        Bound::AtMost(2.0),
        "open in a fresh process (ms, median; map + full validation)",
    ),
    ("segment build (ms)", Bound::AtMost(500.0), "segment build (ms, median)"),
    (
        "durable ingest of 100k (s)",
        Bound::AtMost(3.0),
        "store ingest, durable (s; parse + commit + publish)",
    ),
    ("live segments / merged", Bound::AtMost(1.5), "ratio live segments / merged"),
    ("apprentice spawn → Hello (ms)", Bound::AtMost(10.0), "apprentice spawn → Hello (ms, median)"),
    (
        "invitation round trip, witness (ms)",
        Bound::AtMost(1.0),
        "invitation round trip, witness (ms, median; one search of 200)",
    ),
    (
        "invitation round trip, navigator (ms)",
        Bound::AtMost(1.0),
        "invitation round trip, navigator (ms, median; search + related + insights)",
    ),
    (
        "apprentice private memory beyond shared mappings (MiB)",
        Bound::AtMost(4.0),
        "apprentice anonymous memory after 300 invitations (MiB; beyond file mappings)",
    ),
];

/// The targets at 100,000 memories and where this run stands (what the README shows).
pub(crate) fn targets_table(report: &Report) -> String {
    let mut md = String::from("| target | wanted | this run | |\n|---|---|---:|---|\n");
    for &(name, bound, metric) in TARGETS {
        let unit = if metric.starts_with("ratio ") { "x" } else { "" };
        let wanted = match bound {
            Bound::AtMost(b) => format!("≤ {}{unit}", fmt(b)),
            Bound::AtLeast(b) => format!("≥ {}{unit}", fmt(b)),
        };
        let (value, verdict) = match report.rows.get(metric).and_then(|r| r.get("100k")) {
            Some(&v) => {
                let met = match bound {
                    Bound::AtMost(b) => v <= b,
                    Bound::AtLeast(b) => v >= b,
                };
                (format!("{}{unit}", fmt(v)), if met { "met" } else { "missed" })
            }
            None => ("-".to_owned(), "not measured"),
        };
        md.push_str(&format!("| {name} | {wanted} | {value} | {verdict} |\n"));
    }
    md
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_say_met_missed_or_not_measured() {
        let mut report = Report::default();
        report.put("segment build (ms, median)", "100k", 480.0);
        report.put("open in a fresh process (ms, median; map + full validation)", "100k", 2.5);
        report.put("ratio p50 tantivy / ours, back to back", "100k", 3.0);
        report.put("allocations per search, ours", "100k", 0.0);
        report.put("search p50 (µs), ours, back to back", "10k", 1.0);
        let table = targets_table(&report);
        let line = |name: &str| {
            table.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or("").to_owned()
        };
        assert_eq!(line("segment build (ms)"), "| segment build (ms) | ≤ 500 | 480 | met |");
        assert_eq!(
            line("open, fresh process (ms)"),
            "| open, fresh process (ms) | ≤ 2.00 | 2.50 | missed |"
        );
        assert_eq!(
            line("p50 vs tantivy, back to back"),
            "| p50 vs tantivy, back to back | ≥ 3.00x | 3.00x | met |"
        );
        assert_eq!(
            line("allocations per search"),
            "| allocations per search | ≤ 0.000 | 0.000 | met |"
        );
        // Only the 100k column counts.
        assert!(line("search p50 (µs), back to back").ends_with("| - | not measured |"));
        assert_eq!(table.lines().count(), 2 + TARGETS.len());
    }

    #[test]
    fn every_target_names_a_metric_the_suite_reports() {
        // The suite's code that measures (this file only names the targets).
        let sources = [
            include_str!("main.rs"),
            include_str!("segment.rs"),
            include_str!("search.rs"),
            include_str!("apprentices.rs"),
            include_str!("store.rs"),
        ];
        for &(name, _, metric) in TARGETS {
            let quoted = format!("\"{metric}\"");
            assert!(
                sources.iter().any(|s| s.contains(&quoted)),
                "{name}: the suite never reports {metric:?}"
            );
        }
    }
}
