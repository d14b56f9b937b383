use super::*;

fn memory(i: usize) -> Memory {
    let mut m = Memory::new("d", format!("question {i}"));
    m.synthesis = format!("synthesis number {i} with some words");
    m
}

fn put_all(r: &mut Records, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let m = memory(i);
        ids.push(m.id);
        r.commit(vec![Entry::Put(Box::new(m))]).unwrap();
    }
    ids
}

fn log_path(store: &Path) -> PathBuf {
    let dir = store.join(RECORDS_DIR);
    let g = *log_generations(&dir).unwrap().last().unwrap();
    dir.join(log_name(g))
}

/// Rewrites a file with one byte changed (files are owner-only, not read-only).
fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x10;
    fs::write(path, &bytes).unwrap();
}

/// Cuts a file to `len` bytes.
fn cut_at(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

#[test]
fn commits_survive_reopen_checkpoint_and_forget() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Records::open(dir.path(), true).unwrap();
    let ids = put_all(&mut r, 10);
    r.commit(vec![Entry::Forget(ids[3])]).unwrap();
    let again = Records::open(dir.path(), false).unwrap();
    assert_eq!((again.seq(), again.len()), (11, 9));
    assert_eq!(again.get(&ids[5]).unwrap().unwrap().question, "question 5");
    assert!(again.get(&ids[3]).unwrap().is_none());
    r.checkpoint().unwrap();
    let more = put_all(&mut r, 2);
    r.commit(vec![Entry::Forget(ids[0])]).unwrap();
    let again = Records::open(dir.path(), false).unwrap();
    assert_eq!((again.seq(), again.len()), (14, 10));
    assert!(again.get(&ids[0]).unwrap().is_none());
    assert_eq!(again.get(&more[1]).unwrap().unwrap().question, "question 1");
    assert_eq!(last_seq(dir.path()).unwrap(), 14);
    let check = again.check(None).unwrap();
    assert!(check.is_clean(), "{check:?}");
    assert_eq!(check.intact, 10);
    let mut seen = 0;
    again
        .for_each_live(None, &mut |_| {
            seen += 1;
            Ok(true)
        })
        .unwrap();
    assert_eq!(seen, 10);
}

#[test]
fn forgotten_records_are_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Records::open(dir.path(), true).unwrap();
    let ids = put_all(&mut r, 60);
    let before = fs::metadata(log_path(dir.path())).unwrap().len();
    for id in &ids[..45] {
        r.commit(vec![Entry::Forget(*id)]).unwrap();
    }
    // At 33 dead records against 27 live, the log was compacted into the next generation.
    assert_eq!(r.generation, 2);
    let after = fs::metadata(log_path(dir.path())).unwrap().len();
    assert!(after * 3 < before * 2, "{after} of {before} bytes");
    assert_eq!(log_generations(&dir.path().join(RECORDS_DIR)).unwrap(), vec![2]);
    assert_eq!((r.len(), r.seq()), (15, 105));
    let more = put_all(&mut r, 1);
    let r = Records::open(dir.path(), false).unwrap();
    assert_eq!((r.len(), r.seq()), (16, 106));
    assert!(r.get(&ids[0]).unwrap().is_none());
    assert_eq!(r.get(&ids[59]).unwrap().unwrap().id, ids[59]);
    assert_eq!(r.get(&more[0]).unwrap().unwrap().id, more[0]);
    assert!(r.check(None).unwrap().is_clean());
}

#[test]
fn a_flipped_byte_costs_exactly_its_record() {
    for (checkpoint, in_header) in [(true, false), (true, true), (false, false), (false, true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Records::open(dir.path(), true).unwrap();
        let ids = put_all(&mut r, 20);
        if checkpoint {
            r.checkpoint().unwrap();
        }
        let victim = r.lookup(ids[7].as_bytes()).unwrap().unwrap();
        drop(r);
        let at = victim.offset + if in_header { 30 } else { frame::HEADER as u64 + 20 };
        flip(&log_path(dir.path()), at);
        let r = Records::open(dir.path(), true).unwrap();
        if !checkpoint && in_header {
            // Replayed at open, the frame's id is gone with its header: the loss shows as
            // the missing commit.
            assert_eq!(r.len(), 19);
            assert!(r.get(&ids[7]).unwrap().is_none());
            let check = r.check(None).unwrap();
            assert_eq!((check.missing_commits, check.damaged.len()), (vec![(8, 8)], 1));
            assert_eq!(check.intact, 19);
            continue;
        }
        assert_eq!(r.len(), 20);
        let err = r.get(&ids[7]).unwrap_err();
        assert!(matches!(err, RecordsError::Damaged { id, .. } if id == ids[7]), "{err}");
        assert_eq!(r.get(&ids[8]).unwrap().unwrap().id, ids[8]);
        let check = r.check(None).unwrap();
        assert_eq!(check.lost, vec![ids[7]], "checkpoint {checkpoint} header {in_header}");
        assert_eq!(check.intact, 19);
        assert_eq!(check.damaged.len(), 1);
        assert_eq!(check.damaged[0].offset, victim.offset);
        drop(r);
        let report = salvage(dir.path(), 0, None).unwrap();
        assert_eq!(report.lost, vec![ids[7]]);
        assert_eq!(report.kept, 19);
        let q = report.quarantine.unwrap();
        assert!(q.is_file() && q.with_extension("bin").is_file());
        let r = Records::open(dir.path(), true).unwrap();
        assert_eq!((r.len(), r.seq()), (19, 20));
        assert!(r.check(None).unwrap().is_clean());
        assert_eq!(r.get(&ids[19]).unwrap().unwrap().id, ids[19]);
    }
}

/// A bulk commit larger than the scan's read chunk, damaged past its first chunk, then later
/// commits: the torn-tail probe seeks through a clone of the scanned file, and once moved the
/// scan's next chunk came from the probe's offset (every record after the damage was then
/// reported as a torn append, and a repair dropped them all).
#[test]
fn a_flipped_byte_past_the_first_read_chunk_costs_exactly_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Records::open(dir.path(), true).unwrap();
    let words = "a long synthesis to fill the log ".repeat(20);
    let batch: Vec<Memory> = (0..4000)
        .map(|i| {
            let mut m = memory(i);
            m.synthesis = format!("{words}{i}");
            m
        })
        .collect();
    let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
    r.commit(batch.into_iter().map(|m| Entry::Put(Box::new(m))).collect()).unwrap();
    let later = put_all(&mut r, 3);
    let victim = r.lookup(ids[3000].as_bytes()).unwrap().unwrap();
    assert!(victim.offset > 2 * (1 << 20), "past the first chunks: {}", victim.offset);
    drop(r);
    flip(&log_path(dir.path()), victim.offset + frame::HEADER as u64 + 20);

    let r = Records::open(dir.path(), true).unwrap();
    assert_eq!(r.len(), 4003);
    let check = r.check(None).unwrap();
    assert_eq!(check.lost, vec![ids[3000]]);
    assert_eq!((check.intact, check.damaged.len()), (4002, 1));
    assert_eq!(r.get(&later[2]).unwrap().unwrap().id, later[2]);
    drop(r);
    let report = salvage(dir.path(), 0, None).unwrap();
    assert_eq!((report.lost.clone(), report.kept), (vec![ids[3000]], 4002));
    let r = Records::open(dir.path(), true).unwrap();
    assert_eq!(r.len(), 4002);
    assert!(r.check(None).unwrap().is_clean());
    for id in [ids[0], ids[2999], ids[3001], later[0], later[2]] {
        assert_eq!(r.get(&id).unwrap().unwrap().id, id);
    }
}

#[test]
fn a_cut_log_is_reported_with_the_exact_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Records::open(dir.path(), true).unwrap();
    let ids = put_all(&mut r, 30);
    r.checkpoint().unwrap();
    let cut = r.lookup(ids[25].as_bytes()).unwrap().unwrap().offset + 10;
    drop(r);
    cut_at(&log_path(dir.path()), cut);
    let err = Records::open(dir.path(), true).unwrap_err();
    assert!(matches!(err, RecordsError::Lost { count: 5, .. }), "{err}");
    let report = salvage(dir.path(), 0, None).unwrap();
    assert_eq!(report.lost, {
        let mut l = ids[25..].to_vec();
        l.sort_unstable();
        l
    });
    assert_eq!(report.kept, 25);
    let r = Records::open(dir.path(), true).unwrap();
    assert_eq!((r.len(), r.seq()), (25, 30));
}

/// One commit of many memories, cut in its middle: a cut log or a torn append? The id index
/// (a checkpoint) or the published index (`min_seq`, what `mcs repair` passes) covering the
/// commit says it was acknowledged, so repair keeps the intact part; with neither, the commit
/// is an append a crash cut short and goes whole.
#[test]
fn a_cut_inside_an_acknowledged_commit_keeps_its_intact_records() {
    for (checkpoint, min_seq, kept) in [(true, 0, 27), (false, 3, 27), (false, 0, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Records::open(dir.path(), true).unwrap();
        let first = put_all(&mut r, 2);
        let batch: Vec<Memory> = (0..40).map(memory).collect();
        let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
        r.commit(batch.into_iter().map(|m| Entry::Put(Box::new(m))).collect()).unwrap();
        if checkpoint {
            r.checkpoint().unwrap();
        }
        let cut = r.lookup(ids[25].as_bytes()).unwrap().unwrap().offset + 10;
        drop(r);
        cut_at(&log_path(dir.path()), cut);
        let report = salvage(dir.path(), min_seq, None).unwrap();
        assert_eq!(report.kept, kept, "checkpoint {checkpoint}, min_seq {min_seq}");
        let r = Records::open(dir.path(), true).unwrap();
        assert_eq!(r.len(), kept);
        assert_eq!(r.get(&first[1]).unwrap().unwrap().id, first[1]);
        if kept > 2 {
            assert_eq!(r.get(&ids[24]).unwrap().unwrap().id, ids[24]);
        }
        if checkpoint {
            // The id index names what the cut took (without it, `MemoryStore::repair` names
            // them from the published index).
            let mut lost = ids[25..].to_vec();
            lost.sort_unstable();
            assert_eq!(report.lost, lost);
        }
        if kept == 2 {
            assert!(r.get(&ids[0]).unwrap().is_none());
        }
        assert!(r.get(&ids[25]).unwrap().is_none());
        assert!(r.check(None).unwrap().is_clean());
    }
}

#[test]
fn a_missing_log_is_reported_with_the_exact_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Records::open(dir.path(), true).unwrap();
    put_all(&mut r, 12);
    r.checkpoint().unwrap();
    drop(r);
    fs::remove_file(log_path(dir.path())).unwrap();
    let err = Records::open(dir.path(), true).unwrap_err();
    assert!(matches!(err, RecordsError::Lost { count: 12, .. }), "{err}");
    let report = salvage(dir.path(), 0, None).unwrap();
    assert_eq!((report.kept, report.lost.len()), (0, 12));
    let r = Records::open(dir.path(), true).unwrap();
    assert_eq!((r.len(), r.seq()), (0, 12));
}

#[test]
fn a_torn_append_is_not_a_commit_and_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Records::open(dir.path(), true).unwrap();
    let ids = put_all(&mut r, 3);
    let end = r.end;
    drop(r);
    let mut torn = Vec::new();
    frame::encode(&mut torn, Kind::Put, LAST, 4, [9; 16], b"{\"never\":\"acknowledged\"}");
    let log = fs::OpenOptions::new().append(true).open(log_path(dir.path())).unwrap();
    write_at(&log, &torn[..40], end).unwrap();
    drop(log);
    let mut r = Records::open(dir.path(), true).unwrap();
    assert_eq!((r.seq(), r.len(), r.torn_tail()), (3, 3, Some((end, 40))));
    let check = r.check(None).unwrap();
    assert!(check.is_clean() && check.unacknowledged_tail == Some((end, 40)), "{check:?}");
    let more = put_all(&mut r, 1);
    let r = Records::open(dir.path(), true).unwrap();
    assert_eq!((r.seq(), r.len(), r.torn_tail()), (4, 4, None));
    assert!(r.get(&more[0]).unwrap().is_some() && r.get(&ids[0]).unwrap().is_some());
}

#[test]
fn a_missing_commit_is_a_reported_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Records::open(dir.path(), true).unwrap();
    let ids = put_all(&mut r, 5);
    let (from, to) = {
        let a = r.lookup(ids[2].as_bytes()).unwrap().unwrap();
        (a.offset, a.offset + u64::from(a.len))
    };
    drop(r);
    // Cut commit 3 out of the middle, as a lost block of the file would.
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes.drain(from as usize..to as usize);
    fs::write(&path, &bytes).unwrap();
    let r = Records::open(dir.path(), true).unwrap();
    let check = r.check(None).unwrap();
    assert_eq!(check.missing_commits, vec![(3, 3)]);
    assert!(!check.is_clean());
}

#[test]
fn the_old_format_is_migrated_by_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join(RECORDS_DIR);
    fs::create_dir_all(&records).unwrap();
    let (a, b) = (memory(1), memory(2));
    let first = legacy::encode(
        1,
        &[legacy::Entry::Put(Box::new(a.clone())), legacy::Entry::Put(Box::new(b.clone()))],
    );
    fs::write(records.join(legacy::file_name(1, false)), first).unwrap();
    let second = legacy::encode(2, &[legacy::Entry::Forget(a.id)]);
    fs::write(records.join(legacy::file_name(2, false)), second).unwrap();
    assert!(matches!(Records::open(dir.path(), false), Err(RecordsError::OldFormat(_))));
    let r = Records::open(dir.path(), true).unwrap();
    assert_eq!((r.seq(), r.len()), (2, 1));
    assert_eq!(r.get(&b.id).unwrap(), Some(b));
    assert!(r.get(&a.id).unwrap().is_none());
    assert!(!legacy::load_exists(&records));
}

#[test]
fn a_repair_of_an_old_format_store_migrates_first() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join(RECORDS_DIR);
    fs::create_dir_all(&records).unwrap();
    let a = memory(1);
    let first = legacy::encode(1, &[legacy::Entry::Put(Box::new(a.clone()))]);
    fs::write(records.join(legacy::file_name(1, false)), first).unwrap();
    let report = salvage(dir.path(), 0, None).unwrap();
    assert_eq!((report.kept, report.lost.len()), (1, 0));
    assert_eq!(Records::open(dir.path(), false).unwrap().get(&a.id).unwrap(), Some(a));
}

#[cfg(unix)]
#[test]
fn records_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join(RECORDS_DIR);
    fs::create_dir(&records).unwrap();
    fs::set_permissions(&records, fs::Permissions::from_mode(0o777)).unwrap();
    let mut r = Records::open(dir.path(), true).unwrap();
    put_all(&mut r, 2);
    r.checkpoint().unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&records), 0o700);
    for entry in fs::read_dir(&records).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600);
    }
}

/// Power loss, for the records: every state a file system may leave when the power fails
/// during a commit, recovered, with every acknowledged memory still there.
///
/// A commit is one append and one `fdatasync`, then (sometimes) the id index replaced through
/// atomic-write. Until the `fdatasync` returns, any prefix of the append may be on disk, the
/// file may already be longer with zeros where the data did not land, or a later sector may
/// have landed while an earlier one did not; until the rename is synced, the old id index may
/// be the one found. Each state is built as files, opened by a writer, checked for every
/// acknowledged memory, written to once more and reopened.
#[test]
fn power_loss_states_lose_no_acknowledged_memory() {
    struct Point {
        log: Vec<u8>,
        ids: Vec<u8>,
        live: Vec<Uuid>,
        seq: u64,
    }
    let source = tempfile::tempdir().unwrap();
    let mut r = Records::open(source.path(), true).unwrap();
    let snapshot = |r: &Records, live: &[Uuid]| Point {
        log: fs::read(log_path(source.path())).unwrap(),
        ids: fs::read(source.path().join(RECORDS_DIR).join(IDS_FILE)).unwrap_or_default(),
        live: live.to_vec(),
        seq: r.seq(),
    };
    let mut live: Vec<Uuid> = Vec::new();
    let mut history = vec![snapshot(&r, &live)];
    for step in 0..36usize {
        if step % 5 == 4 {
            let gone = live.remove(step % live.len());
            r.commit(vec![Entry::Forget(gone)]).unwrap();
        } else {
            let batch: Vec<Memory> = (0..1 + step % 3).map(|i| memory(step * 10 + i)).collect();
            live.extend(batch.iter().map(|m| m.id));
            r.commit(batch.into_iter().map(|m| Entry::Put(Box::new(m))).collect()).unwrap();
        }
        if step % 6 == 5 {
            r.checkpoint().unwrap();
        }
        history.push(snapshot(&r, &live));
    }
    drop(r);

    let mut states = 0usize;
    let mut seen = HashSet::new();
    for k in 1..history.len() {
        let (before, after) = (&history[k - 1], &history[k]);
        let appended = &after.log[before.log.len()..];
        let mut candidates: Vec<(Vec<u8>, &Vec<u8>)> = Vec::new();
        // Before the fdatasync returned: parts of the append, the old id index.
        let step = (appended.len() / 14).max(1);
        for cut in (0..appended.len()).step_by(step).chain([appended.len() - 1]) {
            let mut prefix = before.log.clone();
            prefix.extend_from_slice(&appended[..cut]);
            candidates.push((prefix.clone(), &before.ids));
            // The size landed, the data after the cut did not.
            let mut zeros = prefix.clone();
            zeros.resize(after.log.len(), 0);
            candidates.push((zeros, &before.ids));
            // A later part landed, an earlier one did not.
            let mut hole = after.log.clone();
            let from = before.log.len() + cut;
            let to = (from + 512).min(after.log.len());
            hole[from..to].fill(0);
            candidates.push((hole, &before.ids));
        }
        // After it returned: the whole commit, with the old or the new id index.
        candidates.push((after.log.clone(), &before.ids));
        candidates.push((after.log.clone(), &after.ids));
        for (log, ids) in candidates {
            if !seen.insert((log.clone(), ids.clone())) {
                continue;
            }
            let acknowledged = if log == after.log { after } else { before };
            let dir = tempfile::tempdir().unwrap();
            let records = dir.path().join(RECORDS_DIR);
            fs::create_dir(&records).unwrap();
            fs::write(records.join(log_name(1)), &log).unwrap();
            if !ids.is_empty() {
                fs::write(records.join(IDS_FILE), ids).unwrap();
            }
            let mut r = Records::open(dir.path(), true)
                .unwrap_or_else(|e| panic!("state {states} after commit {k}: {e}"));
            assert!(r.seq() >= acknowledged.seq, "state {states}: commit lost");
            for id in &acknowledged.live {
                assert!(r.get(id).unwrap().is_some(), "state {states}: acknowledged {id} lost");
            }
            let lost = r.check(None).unwrap().lost;
            assert!(lost.iter().all(|id| !acknowledged.live.contains(id)), "state {states}");
            let next = memory(9999);
            r.commit(vec![Entry::Put(Box::new(next.clone()))]).unwrap();
            drop(r);
            let r = Records::open(dir.path(), true).unwrap();
            assert!(r.get(&next.id).unwrap().is_some(), "state {states}: write after recovery");
            for id in &acknowledged.live {
                assert!(r.get(id).unwrap().is_some(), "state {states}: {id} lost after recovery");
            }
            states += 1;
        }
    }
    assert!(states >= 1000, "only {states} distinct crash states");
    println!("power loss: {states} distinct crash states of the records, 0 acknowledged lost");
}
