//! `memory-store-test-kill-child STORE`: the writer memory-store's kill test SIGKILLs. Opens the
//! store, prints `ready`, then stores memories in a loop, printing each id once `store`
//! returned (acknowledged), until it is killed.

use std::io::Write;

use memory_store::{Memory, MemoryStore};

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: memory-store-test-kill-child STORE");
        std::process::exit(2);
    };
    let mut store = MemoryStore::open(&dir).expect("opening the store");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).expect("stdout");
    let mut n = 0u64;
    loop {
        let mut m = Memory::new("kill", format!("acknowledged memory {} {n}", std::process::id()));
        m.synthesis = "durable".into();
        let id = store.store(m).expect("storing");
        writeln!(out, "{id}").and_then(|()| out.flush()).expect("stdout");
        n += 1;
    }
}
