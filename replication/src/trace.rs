//! Stage timestamps for profiling the pipeline (writer ack → replica searchable).
//!
//! Off unless the environment variable [`TRACE_ENV`] names a file (or [`trace_to`] is called):
//! then every stage appends one line `<unix microseconds> <pid> <stage> <generation>` to it.
//! Lines are short single `write`s to a file opened for appending, so the writer's process and
//! a replica's can share one file. `cargo xtask bench-replication` reads them back to say where
//! the time goes.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The environment variable naming the trace file.
pub const TRACE_ENV: &str = "MCS_REPLICATION_TRACE";

fn sink() -> &'static Mutex<Option<File>> {
    static SINK: OnceLock<Mutex<Option<File>>> = OnceLock::new();
    SINK.get_or_init(|| {
        let file = std::env::var_os(TRACE_ENV).and_then(|p| open(Path::new(&p)).ok());
        Mutex::new(file)
    })
}

fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Sends this process's stage lines to `path` (appending), or nowhere with `None`.
pub fn trace_to(path: Option<&Path>) -> std::io::Result<()> {
    let file = path.map(open).transpose()?;
    *sink().lock().unwrap_or_else(|e| e.into_inner()) = file;
    Ok(())
}

fn now_us() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros())
}

fn enabled() -> bool {
    sink().lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Records that `stage` of `generation` happened now (nothing when tracing is off).
pub fn stage(stage: &'static str, generation: u64) {
    let mut marks = Marks::new();
    marks.mark(stage);
    marks.flush(generation);
}

/// Stages whose generation is known only later: marked as they happen, written by
/// [`Marks::flush`].
#[derive(Debug, Default)]
pub struct Marks {
    on: bool,
    marks: Vec<(&'static str, u128)>,
}

impl Marks {
    /// Empty; records nothing when tracing is off.
    pub fn new() -> Marks {
        Marks { on: enabled(), marks: Vec::new() }
    }

    /// Marks `stage` now.
    pub fn mark(&mut self, stage: &'static str) {
        if self.on {
            self.marks.push((stage, now_us()));
        }
    }

    /// Writes the marks so far as stages of `generation`, and forgets them.
    pub fn flush(&mut self, generation: u64) {
        if self.marks.is_empty() {
            return;
        }
        let pid = std::process::id();
        let mut text = String::new();
        for (stage, us) in self.marks.drain(..) {
            text.push_str(&format!("{us} {pid} {stage} {generation}\n"));
        }
        let mut guard = sink().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = guard.as_mut() {
            // Best effort: a trace that cannot be written is no reason to fail the work.
            let _ = file.write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_go_to_the_trace_file_with_their_generation() {
        let path = std::env::temp_dir().join(format!("mcs-trace-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        trace_to(Some(&path)).unwrap();
        let mut marks = Marks::new();
        marks.mark("t.first");
        marks.mark("t.second");
        marks.flush(7);
        stage("t.third", 8);
        trace_to(None).unwrap();
        stage("t.after", 9);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        let stages: Vec<(&str, &str)> = lines.iter().map(|f| (f[2], f[3])).collect();
        assert_eq!(stages, [("t.first", "7"), ("t.second", "7"), ("t.third", "8")]);
        let pid = std::process::id().to_string();
        assert!(lines.iter().all(|f| f.len() == 4 && f[1] == pid), "{text}");
        let times: Vec<u128> = lines.iter().map(|f| f[0].parse().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
}
