//! A supervisor for apprentice-core's tests, to be killed by them:
//! `apprentice-core-test-supervisor WORKER STORE SOCKET_BASE` spawns two `echo` workers, prints
//! `pids A B`, then starts a `silent` one (which prints `silent PID` and never says Hello, so
//! this supervisor stays in the middle of its handshake) and waits to be killed.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use apprentice_core::{Apprentice, SpawnOptions};

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [worker, store, base] = &args[..] else {
        eprintln!("usage: apprentice-core-test-supervisor WORKER STORE SOCKET_BASE");
        std::process::exit(2);
    };
    let options = SpawnOptions {
        hello_timeout: Duration::from_secs(3600),
        socket_base: Some(base.clone()),
        ..SpawnOptions::default()
    };
    let command = |mode: &str| {
        let mut c = Command::new(worker);
        c.env("TEST_WORKER_MODE", mode);
        c
    };
    let apprentices: Vec<Apprentice> = (0..2)
        .map(|_| Apprentice::spawn(command("echo"), store, &options).expect("spawning echo"))
        .collect();
    let pids: Vec<String> = apprentices.iter().map(|a| a.pid().to_string()).collect();
    println!("pids {}", pids.join(" "));
    let _ = std::io::stdout().flush();
    // Blocks for the hello timeout: the silent worker never connects.
    let _ = Apprentice::spawn(command("silent"), store, &options);
    std::process::exit(3);
}
