use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

fn temps_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn round_trips_empty_small_and_multi_mib() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..5 * 1024 * 1024 + 17).map(|i| (i * 31 % 251) as u8).collect();
    for (name, content) in [("empty", &b""[..]), ("small", &b"hello"[..]), ("big", &big[..])] {
        let path = dir.path().join(name);
        atomic_write::write(&path, content).unwrap();
        assert_eq!(fs::read(&path).unwrap(), content, "{name}");
    }
    assert!(temps_in(dir.path()).is_empty());
}

#[test]
fn unicode_names_overwrite_and_deep_parents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ünï/cödé/日本/файл 📝.json");
    atomic_write::write(&path, b"one").unwrap();
    atomic_write::write(&path, b"two, longer").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two, longer");
    assert!(temps_in(path.parent().unwrap()).is_empty());
}

#[test]
fn missing_parent_without_create_parents_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/file");
    let err = atomic_write::Options::new().create_parents(false).write(&path, b"x").unwrap_err();
    assert_eq!(err.step, atomic_write::Step::CreateTemp);
    assert!(err.to_string().contains("missing/file"), "{err}");
}

#[test]
fn permissions_kept_given_and_private_until_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    atomic_write::write(&path, b"a").unwrap();
    assert_eq!(mode(&path), atomic_write::DEFAULT_MODE);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    atomic_write::write(&path, b"b").unwrap();
    assert_eq!(mode(&path), 0o640, "old mode kept");
    atomic_write::Options::new().mode(0o444).write(&path, b"c").unwrap();
    assert_eq!(mode(&path), 0o444, "caller's mode applied");

    let mut f = atomic_write::Options::new().mode(0o644).open(dir.path().join("g")).unwrap();
    f.write_all(b"pending").unwrap();
    let temps = temps_in(dir.path());
    assert_eq!(temps.len(), 1);
    assert_eq!(mode(&dir.path().join(&temps[0])), 0o600, "temp file private");
    f.commit().unwrap();
    assert_eq!(mode(&dir.path().join("g")), 0o644);
}

#[test]
fn dropped_writer_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"old").unwrap();
    {
        let mut f = atomic_write::Options::new().open(&path).unwrap();
        f.write_all(b"half of the new").unwrap();
    }
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert!(temps_in(dir.path()).is_empty());
    let fresh = dir.path().join("never");
    drop(atomic_write::Options::new().open(&fresh).unwrap());
    assert!(!fresh.exists());
}

#[test]
fn failing_write_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    // A parent that is a regular file fails for every user, root included.
    let blocker = dir.path().join("blocker");
    fs::write(&blocker, b"not a directory").unwrap();
    let err = atomic_write::write(blocker.join("f"), b"x").unwrap_err();
    assert!(matches!(err.step, atomic_write::Step::CreateTemp | atomic_write::Step::CreateParent));
    assert_eq!(fs::read(&blocker).unwrap(), b"not a directory");
    assert!(temps_in(dir.path()).is_empty());

    // A read-only directory stops non-root users at temp creation.
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("target"), b"kept").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    let result = atomic_write::write(ro.join("target"), b"new");
    let is_root = fs::write(ro.join("probe"), b"").is_ok();
    if !is_root {
        let err = result.unwrap_err();
        assert_eq!(err.step, atomic_write::Step::CreateTemp);
        assert_eq!(fs::read(ro.join("target")).unwrap(), b"kept");
    }
    assert!(temps_in(&ro).is_empty());
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn concurrent_writers_distinct_and_same_file() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let same = dir.path().join("same");
    let contents: Vec<Vec<u8>> =
        (0..8u8).map(|i| std::iter::repeat_n(i, 64 * 1024 + usize::from(i)).collect()).collect();
    let contents = Arc::new(contents);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (dir, contents, same) = (dir.clone(), contents.clone(), same.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    atomic_write::write(dir.path().join(format!("own-{i}")), &contents[i]).unwrap();
                    atomic_write::write(&same, &contents[i]).unwrap();
                    let now = fs::read(&same).unwrap();
                    assert!(contents.contains(&now), "torn content of length {}", now.len());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for (i, c) in contents.iter().enumerate() {
        assert_eq!(&fs::read(dir.path().join(format!("own-{i}"))).unwrap(), c);
    }
    assert!(contents.contains(&fs::read(&same).unwrap()));
    assert!(temps_in(dir.path()).is_empty());
}

#[test]
fn remove_stale_temps_only_touches_the_targets_temps() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    fs::write(dir.path().join(".data.abc123.tmp"), b"stale").unwrap();
    fs::write(dir.path().join(".other.abc123.tmp"), b"someone else's").unwrap();
    assert_eq!(atomic_write::remove_stale_temps(&target).unwrap(), 1);
    assert!(dir.path().join(".other.abc123.tmp").exists());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn streaming_chunks_round_trip(
        content in proptest::collection::vec(any::<u8>(), 0..20_000),
        cuts in proptest::collection::vec(0usize..20_000, 0..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(content.len())).collect();
        cuts.sort_unstable();
        let mut f = atomic_write::Options::new().open(&path).unwrap();
        let mut at = 0;
        for c in cuts.into_iter().chain(std::iter::once(content.len())) {
            f.write_all(&content[at..c]).unwrap();
            at = c;
        }
        f.commit().unwrap();
        prop_assert_eq!(fs::read(&path).unwrap(), content);
        prop_assert!(temps_in(dir.path()).is_empty());
    }
}
