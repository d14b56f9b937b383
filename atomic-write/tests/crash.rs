//! A child rewrites one file in a loop; the parent SIGKILLs it at random moments. After every
//! kill the file is absent or one complete version, and at most one temp file is left.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "ATOMIC_WRITE_CRASH_CHILD";
const KILLS: usize = 200;

/// FNV-1a, enough to tell a complete version from a torn one.
fn fnv(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// `[len: u64][body][fnv(body): u64]`, body length varying with the version.
fn version(n: u64) -> Vec<u8> {
    let len = 1000 + (n * 7919 % 200_000) as usize;
    let body: Vec<u8> = (0..len).map(|i| (i as u64 ^ n) as u8).collect();
    let mut out = (len as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&fnv(&body).to_le_bytes());
    out
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

/// The child's body: runs only when the parent re-executes this test binary.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let path = Path::new(&path);
    // The next writer cleans up what a killed one left.
    atomic_write::remove_stale_temps(path).unwrap();
    let mut n = std::process::id() as u64 * 1000;
    loop {
        atomic_write::write(path, &version(n)).unwrap();
        n += 1;
    }
}

#[test]
fn sigkill_never_leaves_a_torn_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("victim.bin");
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut seen_present = 0;
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash::crash_child", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
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
