//! Standard output that ends the program quietly when its reader goes away.
//!
//! `mcs search … | head -2` closes the pipe after two lines; std's `println!` then panics
//! ("failed printing to stdout: Broken pipe", exit 101). mcs's `println!` (the macro in main.rs,
//! which shadows std's in every module) writes through [`print_line`] instead: on a broken pipe
//! the program exits at once with status 0, as ripgrep does, after removing the demo's temporary
//! store. Everything mcs prints comes after the work it reports is durable, so stopping there
//! loses nothing.

use std::fmt;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Mutex;

/// A directory to remove before a quiet exit (the demo's temporary store).
static CLEANUP: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Removes `dir` if the program has to stop early because of a closed pipe.
pub(crate) fn remove_on_quiet_exit(dir: PathBuf) {
    if let Ok(mut slot) = CLEANUP.lock() {
        *slot = Some(dir);
    }
}

/// Writes one line to standard output. A closed pipe ends the program quietly (status 0);
/// another write error is reported on stderr and ends it with status 1.
pub(crate) fn print_line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = result {
        drop(out);
        quiet_exit_or_report(&e);
    }
}

fn quiet_exit_or_report(e: &io::Error) -> ! {
    if let Some(dir) = CLEANUP.lock().ok().and_then(|mut slot| slot.take()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("mcs: error: writing to standard output: {e}");
    std::process::exit(1);
}
