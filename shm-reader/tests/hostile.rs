//! Hostile files: every bit flipped, truncations, extensions. Open errs, never panics.

use semantic_index::Document;
use shm_reader::{Check, Segment};

fn small_segment() -> Vec<u8> {
    let mut b = semantic_index::SegmentBuilder::new().generation(2);
    for i in 0..4u8 {
        b.add(&Document {
            id: [i; 16],
            domain: format!("dom{}", i % 2),
            question: format!("memory segment number {i} sacred?"),
            insights: vec!["insight about mapping".into()],
            synthesis: "synthesis text".into(),
            score: 0.25 * f32::from(i),
            sacred: i == 1,
            timestamp_micros: i64::from(i),
        })
        .unwrap();
    }
    b.to_bytes().unwrap()
}

/// A default search for `text`: the prepared query and the top 10.
fn search<B: shm_reader::Storage>(
    segment: &Segment<B>,
    text: &str,
) -> (shm_reader::Query, shm_reader::Hits) {
    let q = shm_reader::Query::from_text(text);
    let mut hits = shm_reader::Hits::with_capacity(10);
    let options = shm_reader::SearchOptions::default();
    segment.search(&q, &options, &shm_reader::DeletedSet::empty(), 0, &mut hits);
    (q, hits)
}

#[test]
fn every_flipped_bit_is_refused() {
    let bytes = small_segment();
    assert!(Segment::from_bytes(shm_reader::aligned(&bytes)).is_ok());
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let result =
            std::panic::catch_unwind(|| Segment::from_bytes(shm_reader::aligned(&b)).map(|_| ()));
        match result {
            Ok(Err(_)) => {}
            Ok(Ok(())) => panic!("bit {bit} flipped was accepted"),
            Err(_) => panic!("bit {bit} flipped caused a panic"),
        }
    }
}

#[test]
fn truncations_and_extensions_are_refused() {
    let bytes = small_segment();
    for len in 0..bytes.len() {
        let err = Segment::from_bytes(shm_reader::aligned(&bytes[..len])).unwrap_err();
        assert!(matches!(err.check, Check::Header(_) | Check::Length { .. }), "len {len}: {err}");
    }
    for extra in [1usize, 7, 16, 4096] {
        let mut b = bytes.clone();
        b.extend(std::iter::repeat_n(0u8, extra));
        let err = Segment::from_bytes(shm_reader::aligned(&b)).unwrap_err();
        assert!(matches!(err.check, Check::Length { .. }), "{err}");
    }
}

#[test]
fn forged_checksum_cannot_cause_a_panic() {
    // Corrupt the payload, then recompute the checksum so that only rkyv validation and the
    // table checks stand between the bytes and the search.
    let bytes = small_segment();
    let header_len = semantic_index::format::HEADER_LEN;
    let mut state = 0x1234_5678u64;
    for round in 0..2000 {
        let mut b = bytes.clone();
        for _ in 0..1 + round % 4 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = header_len + (state >> 33) as usize % (b.len() - header_len);
            b[at] ^= 1 << ((state >> 20) % 8);
        }
        let sum = semantic_index::format::checksum(
            &b[..semantic_index::format::CHECKSUMMED_HEADER_LEN],
            &b[header_len..],
        );
        b[40..48].copy_from_slice(&sum.to_le_bytes());
        let run = std::panic::catch_unwind(|| {
            if let Ok(segment) = Segment::from_bytes(shm_reader::aligned(&b)) {
                let (q, hits) = search(&segment, "memory segment sacred insight mapping");
                for h in hits.iter() {
                    let d = segment.doc(h.ordinal).unwrap();
                    let _ = (d.gist(), d.domain(), d.keywords().count());
                    let _ = segment.explain(&q, h.ordinal, &shm_reader::SearchOptions::default());
                }
                let _ = segment.sacred().count();
                let _ = segment.verify();
            }
        });
        assert!(run.is_ok(), "round {round} panicked");
    }
}

#[test]
fn unknown_version_and_misalignment_are_named() {
    let mut bytes = small_segment();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    let err = Segment::from_bytes(shm_reader::aligned(&bytes)).unwrap_err();
    assert!(err.to_string().contains("version 7"), "{err}");

    let good = small_segment();
    let mut one_more = vec![0u8];
    one_more.extend_from_slice(&good);
    let shifted = shm_reader::aligned(&one_more);
    let misaligned: &[u8] = &shifted[1..];
    let err = Segment::from_bytes(misaligned).unwrap_err();
    assert!(matches!(err.check, Check::Misaligned), "{err}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.seg");
    std::fs::write(&path, b"garbage").unwrap();
    let err = Segment::read(&path).unwrap_err();
    assert!(err.to_string().contains("broken.seg"), "{err}");
    // SAFETY: the test owns the file and does not modify it while mapped.
    let err = unsafe { Segment::map(dir.path().join("missing.seg")) }.unwrap_err();
    assert!(matches!(err.check, Check::Io(_)) && err.to_string().contains("missing.seg"), "{err}");
}

/// Segment bytes for `data` as a writer would frame them: header, checksum, archive.
fn framed(data: &semantic_index::format::SegmentData) -> Vec<u8> {
    use semantic_index::format::{self, Header, HEADER_LEN};
    let payload = rkyv::to_bytes::<rkyv::rancor::Error>(data).unwrap();
    let mut header = Header {
        version: format::VERSION,
        generation: 1,
        doc_count: u64::from(data.doc_count),
        payload_len: payload.len() as u64,
        checksum: 0,
    };
    header.checksum =
        format::checksum(&header.encode()[..format::CHECKSUMMED_HEADER_LEN], &payload);
    let mut bytes = header.encode().to_vec();
    assert_eq!(bytes.len(), HEADER_LEN);
    bytes.extend_from_slice(&payload);
    bytes
}

fn small_data() -> semantic_index::format::SegmentData {
    let mut b = semantic_index::SegmentBuilder::new();
    for i in 0..6u8 {
        b.add(&Document {
            id: [i; 16],
            question: format!(
                "shared memory segment {}",
                ["alpha", "beta", "gamma"][i as usize % 3]
            ),
            ..Default::default()
        })
        .unwrap();
    }
    b.data().unwrap()
}

#[test]
fn inconsistent_term_tables_are_caught_by_open_or_verify() {
    let good = small_data();
    let open = |d: &semantic_index::format::SegmentData| {
        Segment::from_bytes(shm_reader::aligned(&framed(d)))
    };
    open(&good).unwrap().verify().unwrap();

    // Checked at open, in constant time: the table's size, the forward lists' width.
    let mut d = good.clone();
    d.term_slots.push(0);
    let err = open(&d).unwrap_err();
    assert!(err.to_string().contains("hashed term table size"), "{err}");
    let mut d = good.clone();
    d.forward_wide = d.forward_narrow.iter().map(|&t| u32::from(t)).collect();
    d.forward_narrow.clear();
    let err = open(&d).unwrap_err();
    assert!(err.to_string().contains("forward lists of the wrong width"), "{err}");

    // A table that loses a term (or names one out of range) opens, searches stay in bounds,
    // and the deep check names it.
    for broken in [0u32, 999] {
        let mut d = good.clone();
        let slot = d.term_slots.iter().position(|&s| s != 0).unwrap();
        d.term_slots[slot] = broken;
        let segment = open(&d).unwrap();
        search(&segment, "shared memory segment alpha beta gamma");
        let err = segment.verify().unwrap_err();
        assert!(err.to_string().contains("hashed term table"), "{err}");
    }
    // A full table (no empty slot): lookups of absent terms still end.
    let mut d = good.clone();
    let n = d.term_slots.len() as u32;
    d.term_slots = (0..n).map(|i| i % 2 + 1).collect();
    let segment = open(&d).unwrap();
    assert!(search(&segment, "absent words only").1.is_empty());
    assert!(segment.verify().is_err());
}

#[test]
fn inconsistent_frequency_tables_are_caught_by_open_or_verify() {
    let good = small_data();
    let open = |d: &semantic_index::format::SegmentData| {
        Segment::from_bytes(shm_reader::aligned(&framed(d)))
    };
    assert!(good.frequencies.is_empty(), "small_data repeats no keyword: sparse form");
    // Every posting, the frequent terms' documents included.
    let n = good.postings.len() + *good.frequent_offsets.last().unwrap() as usize;
    // Checked at open, in constant time: the arrays' lengths and which form is used.
    let sparse = |at: Vec<u32>, values: Vec<u8>| {
        let mut d = good.clone();
        d.frequency_exceptions = at;
        d.frequency_values = values;
        d
    };
    for (d, what) in [
        (sparse(vec![0, 1], vec![2]), "values shorter than exceptions"),
        (sparse((0..=n as u32).collect(), vec![2; n + 1]), "more exceptions than postings"),
        (
            {
                let mut d = sparse(vec![0], vec![2]);
                d.frequencies = vec![1; n];
                d
            },
            "both forms at once",
        ),
        (
            {
                let mut d = good.clone();
                d.frequencies = vec![1; n - 1];
                d
            },
            "dense form of the wrong length",
        ),
    ] {
        let err = open(&d).unwrap_err();
        assert!(err.to_string().contains("frequencies do not match the postings"), "{what}: {err}");
    }
    // Unsorted or out-of-range exceptions open (lookups stay in bounds) and verify names them.
    for at in [vec![3, 1], vec![n as u32]] {
        let d = sparse(at.clone(), vec![7; at.len()]);
        let segment = open(&d).unwrap();
        let doc = segment.doc(0).unwrap();
        for kw in ["shared", "memory", "segment", "alpha", "absent"] {
            assert!(doc.term_frequency(kw) <= 7);
        }
        let err = segment.verify().unwrap_err();
        assert!(err.to_string().contains("frequency exceptions"), "{at:?}: {err}");
    }
    let segment = open(&sparse(vec![0, 4], vec![9, 9])).unwrap();
    segment.verify().unwrap();
}

#[test]
fn inconsistent_frequent_term_tables_are_caught_by_open_or_verify() {
    let good = small_data();
    let open = |d: &semantic_index::format::SegmentData| {
        Segment::from_bytes(shm_reader::aligned(&framed(d)))
    };
    // "shared", "memory" and "segment" are in all six memories: bitmaps, not postings.
    assert_eq!(good.frequent_terms.len(), 3, "{:?}", good.frequent_terms);
    assert_eq!(good.frequent_offsets, vec![0, 6, 12, 18]);
    open(&good).unwrap().verify().unwrap();

    // Checked at open, in time linear in the (at most 255) frequent terms: their order and
    // range, the lengths of the bitmaps, counts and offsets, the offsets' order.
    let broken = |change: &dyn Fn(&mut semantic_index::format::SegmentData)| {
        let mut d = good.clone();
        change(&mut d);
        d
    };
    for (d, named) in [
        (broken(&|d| d.frequent_terms.swap(0, 1)), "frequent terms not ascending"),
        (broken(&|d| d.frequent_terms[2] = 999), "frequent terms not ascending, unknown"),
        (broken(&|d| d.frequent_terms.extend(1000..1300)), "or too many"),
        (broken(&|d| d.frequent_bits.truncate(2)), "bitmaps or counts of the wrong length"),
        (broken(&|d| d.frequent_counts.truncate(5)), "bitmaps or counts of the wrong length"),
        (broken(&|d| d.frequent_offsets[1] = 13), "frequent term offsets"),
        (broken(&|d| d.frequent_offsets.truncate(3)), "frequent term offsets"),
    ] {
        let err = open(&d).unwrap_err();
        assert!(err.to_string().contains(named), "{named}: {err}");
    }

    // Contents that disagree open (searches and reads stay in bounds) and verify names them.
    let bit_past_end = broken(&|d| d.frequent_bits[0] |= 1 << 63);
    let bit_cleared = broken(&|d| d.frequent_bits[1] &= !1);
    let count_wrong = broken(&|d| d.frequent_counts[0] = 200);
    let forward_names_frequent = broken(&|d| d.forward_narrow[0] = d.frequent_terms[0] as u16);
    // "alpha" declared frequent too, with a bitmap of its documents: it keeps its postings.
    let with_postings = broken(&|d| {
        let alpha = d.term_bytes.windows(5).position(|w| w == b"alpha").unwrap();
        let t = d.term_offsets.iter().position(|&o| o as usize == alpha).unwrap() as u32;
        let at = d.frequent_terms.partition_point(|&f| f < t);
        d.frequent_terms.insert(at, t);
        d.frequent_bits.insert(at, 0b1001);
        for o in [0, 3] {
            d.frequent_counts[o] += 1;
        }
        let base = d.frequent_offsets[at];
        d.frequent_offsets.insert(at + 1, base + 2);
        for o in &mut d.frequent_offsets[at + 2..] {
            *o += 2;
        }
    });
    for (d, named) in [
        (bit_past_end, "bitmap disagrees"),
        (bit_cleared, "bitmap disagrees"),
        (count_wrong, "frequent term counts disagree"),
        (forward_names_frequent, "forward list names an unknown or a frequent term"),
        (with_postings, "a frequent term has postings"),
    ] {
        let segment = open(&d).unwrap();
        let (_, hits) = search(&segment, "shared memory segment alpha beta gamma absent");
        assert!(hits.len() <= 6, "{named}");
        for o in 0..6 {
            let doc = segment.doc(o).unwrap();
            assert!(doc.keywords().count() <= 6, "{named}");
            assert!(doc.term_frequency("shared") <= 1 && doc.term_frequency("alpha") <= 1);
        }
        let err = segment.verify().unwrap_err();
        assert!(err.to_string().contains(named), "{named}: {err}");
    }
}
