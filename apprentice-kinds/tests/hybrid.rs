//! Apprentices search hybrid when the invitation carries its task's embedding and the store has
//! vectors, and the navigator follows related memories by their own stored vectors (no model:
//! the vectors here are given, written with `semantic_index::vectors::encode` beside the
//! segment, as the store's writer does with the model's).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apprentice_core::{answer, Apprentice, Context, Invitation, Response, SpawnOptions};
use apprentice_kinds::{BuiltIn, MappedStore, MemoryNavigator, Synthesizer};
use index_publisher::Publisher;
use semantic_index::vectors::{encode, vectors_path, VECTORS_DIR};
use semantic_index::{Document, SegmentBuilder};

const DIM: usize = 4;
const NAV: &str = "semantic memory navigation";
/// A task that shares no word with any memory: only the vectors can find anything.
const NO_SHARED_WORD: &str = "helpers turning down assignments";

fn unit(v: [f32; DIM]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Memory `n`: its domain, question and vector. Cosine similarities with `e3` (the query
/// below): 5 → 1.0, 6 → 0.894, 4 → 0.707, 2 → 0.282, 1 → 0.100, 3 → 0.050.
fn corpus() -> Vec<(u8, &'static str, &'static str, Vec<f32>)> {
    vec![
        (
            1,
            "storage",
            "crash safety of the record log after power loss",
            unit([1.0, 0.0, 0.0, 0.1]),
        ),
        (
            2,
            "storage",
            "fsync ordering keeps the record log crash safe",
            unit([1.0, 0.2, 0.0, 0.3]),
        ),
        (3, "search", "jaccard ranking of memory keywords", unit([0.0, 0.0, 1.0, 0.05])),
        (4, "storage", "the night the crash test found a torn record", unit([1.0, 0.0, 0.0, 1.0])),
        (
            5,
            "agents",
            "apprentices decline tasks outside their specialization",
            unit([0.0, 0.0, 0.0, 1.0]),
        ),
        (6, "agents", "workers refuse jobs beyond their expertise", unit([0.0, 0.0, 0.5, 1.0])),
    ]
}

const E3: [f32; DIM] = [0.0, 0.0, 0.0, 1.0];

/// Publishes the corpus; with `vectors`, writes the segment's vector file too.
fn store(dir: &Path, vectors: bool) {
    let mut p = Publisher::open(dir).unwrap();
    let mut b = SegmentBuilder::new();
    for (n, domain, question, _) in corpus() {
        b.add(&Document {
            id: [n; 16],
            domain: domain.into(),
            question: question.into(),
            score: 0.5,
            timestamp_micros: 1_700_000_000_000_000 + i64::from(n),
            ..Document::default()
        })
        .unwrap();
    }
    let entry = p.write_segment(&b).unwrap();
    let file = entry.file.clone();
    p.publish(1, vec![entry]).unwrap();
    if !vectors {
        return;
    }
    // The vectors in the segment's ordinal order (the builder orders documents its own way).
    let reader = shm_reader::Reader::open(dir).unwrap();
    let snapshot = reader.snapshot();
    let count = snapshot.segment_doc_count(0).unwrap();
    let ids: Vec<[u8; 16]> = (0..count).map(|o| snapshot.segment_doc_id(0, o).unwrap()).collect();
    let all = corpus();
    let flat: Vec<f32> =
        ids.iter().flat_map(|id| all.iter().find(|m| m.0 == id[0]).unwrap().3.clone()).collect();
    std::fs::create_dir_all(dir.join(VECTORS_DIR)).unwrap();
    std::fs::write(vectors_path(dir, &file), encode(&ids, &flat, DIM, "test").unwrap()).unwrap();
}

fn id(n: u8) -> String {
    uuid::Uuid::from_bytes([n; 16]).to_string()
}

fn ids(r: &Response) -> Vec<String> {
    r.memories.iter().map(|m| m.id.clone()).collect()
}

fn invitation(task: &str, spec: &str, embedding: &[f32], context: Context) -> Invitation {
    Invitation {
        task: task.into(),
        specialization: spec.into(),
        context,
        embedding: embedding.to_vec(),
        ..Invitation::default()
    }
}

fn limit(n: u32) -> Context {
    Context { limit: Some(n), ..Context::default() }
}

#[test]
fn the_navigator_finds_by_meaning_and_follows_memories_own_vectors() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), true);
    let mut memory = MappedStore::open(dir.path()).unwrap();

    // No word in common and no embedding: nothing.
    let inv = invitation(NO_SHARED_WORD, NAV, &[], limit(3));
    let r = answer(&mut MemoryNavigator::new(), &inv, &mut memory);
    assert!(r.accepted, "{r:?}");
    assert!(r.memories.is_empty(), "{r:?}");
    assert!(r.insights[0].starts_with("No memory mentions any of"), "{:?}", r.insights);

    // With the task's embedding: the vector side alone ranks 5, 6, 4 (fused scores 1/61, 1/62,
    // 1/63). Then each one's related memories by its own vector, itself and those already
    // used left out: 5's nearest are 6, 4, 2 (2 is new); 6's are 5, 4, 3 (3 is new); 4's are
    // 2, 1, 5 (1 is new).
    let inv = invitation(NO_SHARED_WORD, NAV, &E3, limit(3));
    let r = answer(&mut MemoryNavigator::new(), &inv, &mut memory);
    assert!(r.accepted, "{r:?}");
    assert_eq!(ids(&r), [id(5), id(6), id(4), id(2), id(3), id(1)], "{r:#?}");
    for (m, rank) in r.memories.iter().zip(0..3) {
        assert!((m.score - 1.0 / (61.0 + f64::from(rank))).abs() < 1e-12, "{r:#?}");
    }
    assert!(
        r.reason.contains(
            "among 6 (generation 1); ranked hybrid (keywords fused with the query's embedding)"
        ),
        "{}",
        r.reason
    );
    assert!(r.reason.contains("and 3 memories related (by their own vectors)"), "{}", r.reason);
    assert!(
        r.insights[0].starts_with(
            "[agents] apprentices decline tasks outside their specialization (score 0.016; no \
             keyword matched, near in meaning) ["
        ),
        "{:#?}",
        r.insights
    );
    let related: Vec<&String> = r.insights.iter().filter(|i| i.starts_with("Related")).collect();
    assert_eq!(related.len(), 3, "{:#?}", r.insights);
    assert!(
        related[0].starts_with(
            "Related to \"apprentices decline tasks outside their specialization\": [storage] \
             fsync ordering keeps the record log crash safe (similarity 0.2"
        ),
        "{related:#?}"
    );
    assert!(related[1].contains("[search] jaccard ranking of memory keywords (similarity"));
    assert!(related[2].starts_with("Related to \"the night the crash test found a torn record\""));
    assert!(related[2].contains("crash safety of the record log after power loss (similarity 0.7"));

    // A domain in the context bounds the related memories too: within "agents" only 5 and 6.
    let agents = Context { domain: Some("agents".into()), ..limit(3) };
    let r = answer(
        &mut MemoryNavigator::new(),
        &invitation(NO_SHARED_WORD, NAV, &E3, agents),
        &mut memory,
    );
    assert_eq!(ids(&r), [id(5), id(6)], "{r:#?}");
}

#[test]
fn hybrid_fuses_both_sides_and_semantic_rankings_need_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), true);
    let mut memory = MappedStore::open(dir.path()).unwrap();

    // "torn record": lexically 4 (both words) leads 1 and 2 ("record"); by vector 5, 6, 4, 2,
    // 1, 3. Fused, 4 (first and third) leads, then 1 and 2 (second or third, and fifth or
    // fourth: about 1/62 + 1/65 each), then 5, which only the vector side ranks (1/61).
    let inv = invitation("torn record", NAV, &E3, limit(4));
    let r = answer(&mut MemoryNavigator::new(), &inv, &mut memory);
    let found = ids(&r);
    assert_eq!((&found[0], &found[3]), (&id(4), &id(5)), "{r:#?}");
    let mut middle = found[1..3].to_vec();
    middle.sort();
    assert_eq!(middle, [id(1), id(2)], "{r:#?}");
    assert!((r.memories[3].score - 1.0 / 61.0).abs() < 1e-12, "{r:#?}");

    // By keywords alone: three memories, and 5 is not among them.
    let bm25f = Context { ranking: Some("bm25f".into()), ..limit(4) };
    let r = answer(
        &mut MemoryNavigator::new(),
        &invitation("torn record", NAV, &E3, bm25f),
        &mut memory,
    );
    assert_eq!(ids(&r)[0], id(4), "{r:#?}");
    assert!(r.reason.starts_with("found 3 memories"), "{}", r.reason);
    assert!(!ids(&r)[..3].contains(&id(5)), "{r:#?}");
    assert!(!r.reason.contains("ranked hybrid"), "{}", r.reason);

    // Vector alone: the similarity order, whatever the words.
    let vector = Context { ranking: Some("vector".into()), ..limit(4) };
    let r = answer(
        &mut Synthesizer::new(),
        &invitation("torn record crash", "insight synthesis across memories", &E3, vector.clone()),
        &mut memory,
    );
    assert_eq!(ids(&r), [id(5), id(6), id(4), id(2)], "{r:#?}");
    assert!(r.reason.contains("ranked by the query's embedding alone"), "{}", r.reason);

    // A semantic ranking without an embedding, or with one of other dimensions, is declined.
    let r = answer(
        &mut MemoryNavigator::new(),
        &invitation("torn record", NAV, &[], vector.clone()),
        &mut memory,
    );
    assert!(!r.accepted);
    assert_eq!(
        r.reason,
        "the context asks for ranking vector, which needs the task's embedding: the invitation \
         carries none (the supervisor embeds it when the model is installed)"
    );
    let r = answer(
        &mut MemoryNavigator::new(),
        &invitation("torn record", NAV, &[1.0, 0.0], vector),
        &mut memory,
    );
    assert!(!r.accepted);
    assert!(
        r.reason.ends_with(
            "no memory of this store has a vector of 2 dimensions yet (`mcs embed` computes them)"
        ),
        "{}",
        r.reason
    );
}

#[test]
fn without_vectors_related_memories_share_the_most_discriminative_terms() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), false);
    let mut memory = MappedStore::open(dir.path()).unwrap();
    // An embedding without vectors in the store: lexical, as if there were none.
    let inv = invitation("torn", NAV, &E3, limit(1));
    let r = answer(&mut MemoryNavigator::new(), &inv, &mut memory);
    assert!(r.accepted, "{r:?}");
    assert!(!r.reason.contains("ranked hybrid"), "{}", r.reason);
    assert!(!r.reason.contains("by their own vectors"), "{}", r.reason);
    // 4 is the only memory with "torn"; its terms that other memories share are "crash" and
    // "record", which 1 and 2 (and no other) hold.
    let found = ids(&r);
    assert_eq!(found[0], id(4), "{r:#?}");
    let mut related = found[1..].to_vec();
    related.sort();
    assert_eq!(related, [id(1), id(2)], "{r:#?}");
    assert!(r.insights.iter().all(|i| !i.contains("(similarity")), "{:#?}", r.insights);
}

#[test]
fn the_apprentice_process_searches_hybrid_with_the_embedding_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), true);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apprentice"));
    cmd.arg(BuiltIn::from_name("navigator").unwrap().name());
    let a = Apprentice::spawn(cmd, dir.path(), &SpawnOptions::default()).unwrap();
    let r =
        a.invite(&invitation(NO_SHARED_WORD, NAV, &E3, limit(3)), Duration::from_secs(30)).unwrap();
    assert_eq!(ids(&r), [id(5), id(6), id(4), id(2), id(3), id(1)], "{r:#?}");
    a.terminate().unwrap();
}
