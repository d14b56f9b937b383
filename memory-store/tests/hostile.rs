//! Hostile neighbours (issue 15): concurrent writers, full disks, lost or stale indexes,
//! impostor segments, garbage collection racing readers, links, FIFOs, permissions, runaway
//! input. Real `mcs` processes and real files throughout.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use memory_store::{Error, Memory, MemoryStore, Query, SearchOptions};

fn mcs_command(store: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcs"));
    c.env("MCS_MODEL_DIR", crate::NO_MODEL);
    c.arg("--store").arg(store).args(args);
    c
}

fn mcs(store: &Path, args: &[&str]) -> Output {
    mcs_command(store, args).output().unwrap()
}

/// Runs `sh -c SCRIPT` with `$MCS` and `$STORE` set: for umask and file-size limits.
fn sh(store: &Path, script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("MCS", env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", crate::NO_MODEL)
        .env("STORE", store)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn add(store: &Path, question: &str) -> String {
    let out = mcs(store, &["add", "--domain", "d", "--question", question]);
    assert!(out.status.success(), "add {question}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// Waits for a child that must not hang; a child still running after a minute is a hang.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("mcs hung (still running after 60 s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(store: &Path, args: &[&str]) -> Child {
    mcs_command(store, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn manifests(store: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> =
        fs::read_dir(store.join("manifests")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names
}

fn segments(store: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    names.sort();
    names
}

/// Item 1: concurrent `mcs add`s take turns; every acknowledged id is indexed and searchable.
#[test]
fn concurrent_adds_are_all_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    for (round, writers) in [(0, 5), (1, 12), (2, 20)] {
        let children: Vec<(String, Child)> = (0..writers)
            .map(|i| {
                let word = format!("concurrent{round}x{i}");
                let child = spawn(&store, &["add", "--domain", "d", "--question", &word]);
                (word, child)
            })
            .collect();
        let mut acknowledged = Vec::new();
        for (word, child) in children {
            let out = finish(child);
            if out.status.success() {
                acknowledged.push((word, text(&out.stdout).trim().to_owned()));
            } else {
                // Only a writer that waited longer than mcs waits for the lock may fail, and
                // it says so (on a very busy machine); nothing else.
                assert!(
                    text(&out.stderr).contains("is locked by"),
                    "{word}: {}",
                    text(&out.stderr)
                );
            }
        }
        assert!(!acknowledged.is_empty(), "round {round}: no writer got the lock");
        let out = mcs(&store, &["verify"]);
        assert!(out.status.success(), "round {round}: {}{}", text(&out.stdout), text(&out.stderr));
        for (word, id) in &acknowledged {
            let out = mcs(&store, &["search", word, "--json"]);
            assert!(out.status.success(), "{word}: {}", text(&out.stderr));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["hits"][0]["id"], id.as_str(), "round {round}: {word} not found");
        }
    }
}

/// Item 2: a full disk after the commit (the segment write fails: the file-size limit lets
/// the record through but not the segment). The memory is stored, said so with its id, not
/// duplicated, and the index catches up at the next write.
#[cfg(unix)]
#[test]
fn a_full_disk_after_the_commit_reports_the_stored_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    add(&store, "first memory here");
    // 400 distinct keywords: a 3.4 KB record, a 12 KB segment; the limit is 8 KB.
    let words: Vec<String> = (0..400).map(|i| format!("w{i:05}q")).collect();
    let script = format!(
        "trap '' XFSZ; ulimit -f 16; exec \"$MCS\" --store \"$STORE\" add --domain d \
         --question big --synthesis '{}'",
        words.join(" ")
    );
    let out = sh(&store, &script);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "a durable memory is acknowledged: {stderr}");
    let id = text(&out.stdout).trim().to_owned();
    assert!(id.parse::<uuid::Uuid>().is_ok(), "the id is printed: {}", text(&out.stdout));
    assert!(stderr.contains(&format!("stored memory {id} durably")), "{stderr}");
    assert!(stderr.contains("catches up"), "{stderr}");
    // The index is behind and readers say so rather than answer from it.
    let out = mcs(&store, &["search", "w00007q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing or stale"), "{}", text(&out.stderr));
    // The next write catches the index up; nothing stored twice.
    add(&store, "third memory here");
    let out = mcs(&store, &["search", "w00007q", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["id"], id.as_str());
    let out = mcs(&store, &["stats", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["memories"], 3);
    assert!(mcs(&store, &["verify"]).status.success());
}

/// Item 2, in the library: a publication that fails after the commit is `Unpublished` with the
/// ids, and the same writer's next publication (or read) catches the index up.
#[test]
fn a_failed_publication_is_unpublished_and_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    store.store(Memory::new("d", "alpha memory")).unwrap();
    // The segments directory replaced by a file: the record commits, the segment cannot.
    let segments = dir.path().join("segments");
    let aside = dir.path().join("segments.aside");
    fs::rename(&segments, &aside).unwrap();
    fs::write(&segments, b"not a directory").unwrap();
    let m = Memory::new("d", "bravo memory");
    let id = m.id;
    match store.store(m) {
        Err(Error::Unpublished { ids, forgotten: false, .. }) => assert_eq!(ids, vec![id]),
        other => panic!("expected Unpublished, got {other:?}"),
    }
    assert!(store.get(id).unwrap().is_some(), "the record is durable");
    fs::remove_file(&segments).unwrap();
    fs::rename(&aside, &segments).unwrap();
    let hits = store.search(&Query::from_text("bravo"), &SearchOptions::default()).unwrap();
    assert_eq!(hits.hits.first().map(|h| h.id), Some(id), "the index caught up");
    assert!(store.verify().unwrap().is_ok());
}

/// Item 3: a deleted HEAD, or one naming an older manifest, is detected by reads.
#[test]
fn reads_detect_a_missing_or_stale_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let kept = add(&store, "kept memory");
    let forgotten = add(&store, "forgotten memory");
    // The manifest that still has the forgotten memory, and its segments, kept aside.
    let before: Vec<(PathBuf, Vec<u8>)> = manifests(&store)
        .into_iter()
        .chain(segments(&store))
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    let previous = manifests(&store).pop().unwrap();
    let out = mcs(&store, &["forget", &forgotten]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // HEAD back at that older manifest: the index is older than the records.
    for (path, bytes) in &before {
        if !path.exists() {
            fs::write(path, bytes).unwrap();
        }
    }
    let name = previous.file_name().unwrap().to_str().unwrap();
    fs::write(store.join("HEAD"), format!("{name}\n")).unwrap();
    let out = mcs(&store, &["search", "forgotten memory"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains(&forgotten[..8]), "a forgotten memory was returned");
    assert!(text(&out.stderr).contains("missing or stale"), "{}", text(&out.stderr));

    fs::remove_file(store.join("HEAD")).unwrap();
    for args in [&["search", "kept memory"][..], &["stats"], &["sacred"]] {
        let out = mcs(&store, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("covers commit 0") && stderr.contains("rebuild"), "{stderr}");
    }
    assert!(mcs(&store, &["rebuild"]).status.success());
    let out = mcs(&store, &["search", "kept memory", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["id"], kept.as_str());
    assert_eq!(v["hits"].as_array().unwrap().len(), 1);
}

/// Item 4: a valid segment of another store copied over one of ours (same document count),
/// and a whole index copied from another store, are refused by readers and repaired by the
/// next write.
#[test]
fn segments_and_manifests_of_another_store_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    let our_id = add(&ours, "harbour lighthouse");
    let their_id = add(&theirs, "impostor lighthouse");
    let (our_segs, their_segs) = (segments(&ours), segments(&theirs));
    assert_eq!(our_segs.len(), 1);
    assert_eq!(our_segs[0].file_name(), their_segs[0].file_name(), "same name, same count");
    fs::remove_file(&our_segs[0]).unwrap();
    fs::copy(&their_segs[0], &our_segs[0]).unwrap();
    let out = mcs(&ours, &["search", "lighthouse"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stdout).contains(&their_id[..8]), "another store's memory returned");
    assert!(text(&out.stderr).contains("checksum"), "{}", text(&out.stderr));
    // The next add repairs it.
    let out = mcs(&ours, &["add", "--domain", "d", "--question", "second lighthouse"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("rebuilt the index"), "{}", text(&out.stderr));
    let out = mcs(&ours, &["search", "lighthouse", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> =
        v["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&our_id.as_str()) && !ids.contains(&their_id.as_str()), "{ids:?}");

    // Their whole index (HEAD, manifests, segments) over ours: a foreign manifest.
    for sub in ["segments", "manifests"] {
        fs::remove_dir_all(ours.join(sub)).unwrap();
        fs::create_dir(ours.join(sub)).unwrap();
        for e in fs::read_dir(theirs.join(sub)).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), ours.join(sub).join(e.file_name())).unwrap();
        }
    }
    fs::copy(theirs.join("HEAD"), ours.join("HEAD")).unwrap();
    let out = mcs(&ours, &["search", "lighthouse"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("store identities differ"), "{}", text(&out.stderr));
    assert!(mcs(&ours, &["rebuild"]).status.success());
    assert!(mcs(&ours, &["verify"]).status.success());
}

/// Item 5: readers in other threads follow a writer that publishes, merges and collects as
/// fast as it can (and compacts its records once): no read ever fails.
#[test]
fn readers_racing_garbage_collection_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = MemoryStore::open(dir.path()).unwrap();
    writer.store(Memory::new("d", "seed memory race")).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (dir, done) = (dir.path().to_owned(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                let mut store = MemoryStore::open_read_only(&dir).unwrap();
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    if r == 0 {
                        let q = Query::from_text("memory race");
                        store.search(&q, &SearchOptions::default()).unwrap();
                    } else {
                        // A fresh reader each time: reads HEAD, maps, loads the records.
                        let fresh = MemoryStore::open_read_only(&dir).unwrap();
                        assert!(fresh.get(uuid::Uuid::nil()).unwrap().is_none());
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 0..300 {
        writer.store(Memory::new("d", format!("memory race {i}"))).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        assert!(r.join().expect("a reader failed") > 0);
    }
}

/// Item 5: garbage collection is best effort: a file it cannot remove does not fail a store.
#[test]
fn a_failed_collection_does_not_fail_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MemoryStore::open(dir.path()).unwrap();
    store.store(Memory::new("d", "before the obstacle")).unwrap();
    // A directory where collection expects an unnamed segment file: removing it fails.
    let obstacle = dir.path().join("segments").join("0000000000000099-000001.seg");
    fs::create_dir(&obstacle).unwrap();
    fs::write(obstacle.join("inside"), b"x").unwrap();
    let id = store.store(Memory::new("d", "after the obstacle")).unwrap();
    let hits = store.search(&Query::from_text("after obstacle"), &SearchOptions::default());
    assert_eq!(hits.unwrap().hits[0].id, id);
}

/// Item 7: LOCK and beacon replaced by links: their targets are never written.
#[cfg(unix)]
#[test]
fn links_in_place_of_store_files_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    add(&store, "linked memory");
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious content that must stay").unwrap();

    fs::remove_file(store.join("beacon")).unwrap();
    std::os::unix::fs::symlink(&victim, store.join("beacon")).unwrap();
    let out = mcs(&store, &["add", "--domain", "d", "--question", "after beacon link"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(&victim).unwrap(), b"precious content that must stay");
    assert!(fs::symlink_metadata(store.join("beacon")).unwrap().is_file(), "beacon replaced");

    fs::remove_file(store.join("LOCK")).unwrap();
    std::os::unix::fs::symlink(&victim, store.join("LOCK")).unwrap();
    let out = mcs(&store, &["add", "--domain", "d", "--question", "after lock link"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("symbolic link"), "{}", text(&out.stderr));
    assert_eq!(fs::read(&victim).unwrap(), b"precious content that must stay");

    // HEAD linked to a secret: no read follows it and no error quotes it.
    fs::remove_file(store.join("LOCK")).unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, b"TOPSECRET-PASSWORD-LINE\nsecond line\n").unwrap();
    fs::remove_file(store.join("HEAD")).unwrap();
    std::os::unix::fs::symlink(&secret, store.join("HEAD")).unwrap();
    for args in [&["search", "linked memory"][..], &["stats"]] {
        let out = mcs(&store, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("TOPSECRET"), "{args:?} echoed the secret: {all}");
        assert!(all.contains("symbolic link"), "{all}");
    }
    // A writer replaces the link itself, never its target.
    let out = mcs(&store, &["rebuild"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(&secret).unwrap(), b"TOPSECRET-PASSWORD-LINE\nsecond line\n");
    assert!(mcs(&store, &["verify"]).status.success());
}

/// Item 7: a HEAD with junk content is quoted as a short escaped excerpt at most.
#[test]
fn junk_in_head_is_never_echoed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    add(&store, "junk memory");
    let junk = format!("root:x:0:0:root:/root:/bin/bash\n{}", "LATERLINE ".repeat(50));
    fs::write(store.join("HEAD"), &junk).unwrap();
    let out = mcs(&store, &["search", "junk memory"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("LATERLINE") && !stderr.contains("/bin/bash"), "{stderr}");
}

/// Item 7: HEAD or a records file replaced by a FIFO: a clear error, never a hang.
#[cfg(unix)]
#[test]
fn fifos_in_place_of_store_files_are_errors_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let id = add(&store, "fifo memory");
    let mkfifo = |path: &Path| {
        let _ = fs::remove_file(path);
        let status = Command::new("mkfifo").arg(path).status().unwrap();
        assert!(status.success());
    };
    mkfifo(&store.join("HEAD"));
    for args in [&["stats"][..], &["search", "fifo memory"]] {
        let out = finish(spawn(&store, args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains("not a regular file"), "{}", text(&out.stderr));
    }
    // The writer replaces the FIFO with a real HEAD.
    let out = finish(spawn(&store, &["add", "--domain", "d", "--question", "after fifo"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(fs::symlink_metadata(store.join("HEAD")).unwrap().is_file());

    let record = fs::read_dir(store.join("records")).unwrap().next().unwrap().unwrap().path();
    mkfifo(&record);
    for args in [&["get", &id][..], &["add", "--domain", "d", "--question", "more"]] {
        let out = finish(spawn(&store, args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains("not a regular file"), "{}", text(&out.stderr));
    }
}

/// Item 8: owner-only whatever the umask; an existing 0755 store is tightened; a store others
/// may write is refused with the fix in the message.
#[cfg(unix)]
#[test]
fn the_store_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = sh(&store, "umask 000; exec \"$MCS\" --store \"$STORE\" add --domain d --question q");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&store), 0o700);
    for sub in ["records", "segments", "manifests"] {
        assert_eq!(mode(&store.join(sub)), 0o700, "{sub}");
        for e in fs::read_dir(store.join(sub)).unwrap() {
            let path = e.unwrap().path();
            assert_eq!(mode(&path) & 0o077, 0, "{} is not owner-only", path.display());
        }
    }
    for file in ["LOCK", "HEAD", "beacon", "store-id"] {
        assert_eq!(mode(&store.join(file)) & 0o077, 0, "{file} is not owner-only");
    }

    let existing = dir.path().join("existing");
    fs::create_dir(&existing).unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
    add(&existing, "in an existing directory");
    assert_eq!(mode(&existing), 0o700);
    assert_eq!(mode(&existing.join("records")), 0o700);

    fs::set_permissions(&existing, fs::Permissions::from_mode(0o777)).unwrap();
    for args in [&["add", "--domain", "d", "--question", "refused"][..], &["search", "existing"]] {
        let out = mcs(&existing, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("writable by other users") && stderr.contains("chmod 700"),
            "{stderr}"
        );
    }
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(existing.join("records"), fs::Permissions::from_mode(0o777)).unwrap();
    let out = mcs(&existing, &["add", "--domain", "d", "--question", "refused again"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("records"), "{}", text(&out.stderr));

    // The store directory itself may be a link the user chose (its subdirectories may not).
    fs::set_permissions(existing.join("records"), fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&existing, &link).unwrap();
    assert!(mcs(&link, &["search", "existing"]).status.success());
    add(&link, "through a linked store");
    let segments = existing.join("segments");
    fs::rename(&segments, existing.join("segments.real")).unwrap();
    std::os::unix::fs::symlink(existing.join("segments.real"), &segments).unwrap();
    let out = mcs(&existing, &["search", "existing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a directory"), "{}", text(&out.stderr));
}

/// Item 9: an endless line is refused at the cap, naming the line, without growing unbounded.
#[cfg(unix)]
#[test]
fn an_endless_line_is_refused_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = finish(spawn(&store, &["ingest", "/dev/zero"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 1") && stderr.contains("16 MiB"), "{stderr}");
}

/// Item 10: non-finite weights are refused, by mcs and by the library.
#[test]
fn non_finite_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    add(&store, "weighted memory");
    for arg in ["--w-score=NaN", "--w-sacred=inf", "--w-score=-inf"] {
        let out = mcs(&store, &["search", "weighted", arg]);
        assert_eq!(out.status.code(), Some(2), "{arg}");
        assert!(text(&out.stderr).contains("finite"), "{}", text(&out.stderr));
    }
    let mut s = MemoryStore::open_read_only(&store).unwrap();
    let options = SearchOptions { w_score: f64::NAN, ..SearchOptions::default() };
    let err = s.search(&Query::from_text("weighted"), &options).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { name: "w_score", .. }), "{err}");
}
