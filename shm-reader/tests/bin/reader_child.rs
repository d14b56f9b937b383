//! `shm-reader-test-reader-child STORE`: the other process of shm-reader's generation test.
//! Opens the store (which has a first generation), prints `ready`, then searches "memory" in a
//! loop, printing `GENERATION HITS` whenever a search's pair differs from the last, until it has seen generation 20.

use std::io::Write;

use shm_reader::{Hits, Query, Reader, SearchOptions};

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: shm-reader-test-reader-child STORE");
        std::process::exit(2);
    };
    let mut reader = Reader::open(&dir).expect("opening the store");
    let q = Query::from_text("memory");
    let mut hits = Hits::with_capacity(1000);
    let options = SearchOptions { limit: 1000, ..Default::default() };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).expect("stdout");
    let mut last = (0, 0);
    loop {
        reader.search(&q, &options, &mut hits).expect("searching");
        let g = reader.generation();
        if (g, hits.len()) != last {
            last = (g, hits.len());
            writeln!(out, "{g} {}", hits.len()).and_then(|()| out.flush()).expect("stdout");
        }
        if g >= 20 {
            break;
        }
        std::thread::yield_now();
    }
}
