//! Fault injection: every step fails in turn with EIO, ENOSPC and EACCES.

use std::fs;
use std::path::Path;

use crate::fault::seam;
use crate::{Options, Step};

const EIO: i32 = 5;
const EACCES: i32 = 13;
const ENOSPC: i32 = 28;

fn temps_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn steps_run_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/file");
    seam::arm(None, 0);
    Options::new().write(&path, b"content").unwrap();
    assert_eq!(
        seam::seen(),
        [
            Step::CreateParent,
            Step::CreateTemp,
            Step::Write,
            Step::SyncFile,
            Step::SetPermissions,
            Step::Rename,
            Step::SyncDirectory,
        ]
    );
    // Existing parent: no CreateParent step.
    seam::arm(None, 0);
    Options::new().write(&path, b"again").unwrap();
    assert_eq!(seam::seen()[0], Step::CreateTemp);
}

#[test]
fn every_failing_step_leaves_the_old_target_and_no_temp() {
    for errno in [EIO, ENOSPC, EACCES] {
        // The write of a fresh parent has one more step; the old target lives in an existing dir.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target.bin");
        fs::write(&path, b"old content").unwrap();
        seam::arm(None, 0);
        Options::new().write(&path, b"probe").unwrap();
        let steps = seam::seen().len();
        fs::write(&path, b"old content").unwrap();
        for k in 0..steps {
            seam::arm(Some(k), errno);
            let err = Options::new().write(&path, b"new content that must not appear").unwrap_err();
            let seen = seam::seen();
            let failed = seen[k];
            assert_eq!(err.step, failed, "errno {errno} step {k}");
            assert_eq!(err.source.raw_os_error(), Some(errno));
            assert_eq!(err.path, path);
            // Nothing ran after the failing step, so no fsync was retried.
            assert_eq!(seen.len(), k + 1, "steps after a failure: {seen:?}");
            assert!(seen.iter().filter(|s| **s == Step::SyncFile).count() <= 1);
            if failed == Step::SyncDirectory {
                // The rename happened; only durability is in doubt, and the caller is told.
                assert_eq!(fs::read(&path).unwrap(), b"new content that must not appear");
                fs::write(&path, b"old content").unwrap();
            } else {
                assert_eq!(
                    fs::read(&path).unwrap(),
                    b"old content",
                    "errno {errno} step {failed:?}"
                );
            }
            assert!(temps_in(dir.path()).is_empty(), "temp left after {failed:?}");
        }
    }
}

#[test]
fn failing_parent_creation_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/file");
    seam::arm(Some(1), EACCES);
    let err = Options::new().write(&path, b"x").unwrap_err();
    assert_eq!(err.step, Step::CreateParent);
    assert_eq!(err.path, dir.path().join("a/b"));
    assert!(!path.exists());
}

#[test]
fn failed_write_poisons_the_streaming_file() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"old").unwrap();
    let mut f = Options::new().open(&path).unwrap();
    f.write_all(b"part one").unwrap();
    seam::arm(Some(0), EIO);
    assert!(f.write_all(b"part two").is_err());
    let err = f.commit().unwrap_err();
    assert_eq!(err.step, Step::Write);
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert!(temps_in(dir.path()).is_empty());
}
