//! `atomic-write-test-crash-child PATH`: the child of atomic-write's crash test. Removes the
//! temp files a killed predecessor left, prints `ready`, then rewrites PATH in a loop, each
//! version `[len: u64][body][fnv(body): u64]` with a length that varies, until it is killed.

use std::io::Write;
use std::path::PathBuf;

/// FNV-1a, enough to tell a complete version from a torn one.
fn fnv(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn version(n: u64) -> Vec<u8> {
    let len = 1000 + (n * 7919 % 200_000) as usize;
    let body: Vec<u8> = (0..len).map(|i| (i as u64 ^ n) as u8).collect();
    let mut out = (len as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&fnv(&body).to_le_bytes());
    out
}

fn main() {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: atomic-write-test-crash-child PATH");
        std::process::exit(2);
    };
    // The next writer cleans up what a killed one left.
    atomic_write::remove_stale_temps(&path).expect("removing stale temps");
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let mut n = u64::from(std::process::id()) * 1000;
    loop {
        atomic_write::write(&path, &version(n)).expect("writing");
        n += 1;
    }
}
