//! A child rewrites one file in a loop; the parent SIGKILLs it at random moments. After every
//! kill the file is absent or one complete version, and at most one temp file is left.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Rewrites a file in a loop until killed (tests/bin/crash_child.rs).
const CHILD: &str = env!("CARGO_BIN_EXE_atomic-write-test-crash-child");
const KILLS: usize = 200;

/// FNV-1a, as the child computes it, to tell a complete version from a torn one.
fn fnv(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn valid(bytes: &[u8]) -> bool {
    if bytes.len() < 16 {
        return false;
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    if bytes.len() != len + 16 {
        return false;
    }
    let body = &bytes[8..8 + len];
    fnv(body) == u64::from_le_bytes(bytes[8 + len..].try_into().unwrap())
}

fn temps(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        .count()
}

#[test]
fn sigkill_never_leaves_a_torn_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("victim.bin");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut seen_present = 0;
    for kill in 0..KILLS {
        let mut child = Command::new(CHILD)
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill at a random point once the child runs its write loop.
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready, "ready\n", "kill {kill}: the child did not start");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 30_000));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        match fs::read(&path) {
            Ok(bytes) => {
                seen_present += 1;
                assert!(valid(&bytes), "torn file after kill {kill}: {} bytes", bytes.len());
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        }
        assert!(temps(dir.path()) <= 1, "more than one temp file after kill {kill}");
    }
    // The loop must have really written: most kills happen after the first complete write.
    assert!(seen_present > KILLS / 2, "file present after only {seen_present} kills");
}
