//! Vector search over a mapped vector file at 100k memories (and 10k): the exact scan and the
//! inverted lists (the default probes and others), p50/p90 per query excluding the query's
//! embedding, recall@10 of the lists against the exact scan; hybrid search (`HybridSearch`:
//! BM25F's top 100 fused with the vector top 100) through a published snapshot of one segment
//! of synthetic memories; and the process's private memory (anonymous RSS) beyond the
//! mappings. Deterministic synthetic unit vectors of 384 dimensions in topics (a topic's
//! direction plus noise: cosine about 0.5 within a topic, about 0 across), int8 with a scale as
//! the store writes them; queries are drawn the same way.
//!
//! Usage: `cargo run --release -p shm-reader --example vector_scan -- [--n N]... [--probes
//! P,P...] [--store DIR] [--rounds R] [--vectors F --queries F [--texts F --query-texts F]]`
//! (default 10,000 and 100,000; half, once and twice the default probes; `--store` keeps the
//! built stores in DIR and reuses them; `--rounds`: timed passes over the hybrid queries;
//! `--vectors`/`--queries`: real vectors in place of the synthetic ones, `--texts` and
//! `--query-texts` the texts they embed, see `cargo xtask bench-vectors --real`).

use std::time::Instant;

use index_publisher::Publisher;
use semantic_index::vectors::{encode, vectors_path, VECTORS_DIR};
use semantic_index::{Document, SegmentBuilder};
use shm_reader::vectors::{default_probes, QueryVector, SnapshotVectors, VectorHits};
use shm_reader::{Hits, HybridSearch, Query, Ranking, Reader, SearchOptions};

const DIM: usize = 384;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

/// `n` unit vectors, each a random topic's direction plus as much noise again.
fn topic_vectors(n: usize, topics: &[f32], seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let count = topics.len() / DIM;
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let t = ((rng.next() + 0.5) * count as f32) as usize % count;
        let mut noise: Vec<f32> = (0..DIM).map(|_| rng.next()).collect();
        normalize(&mut noise);
        let mut v: Vec<f32> =
            topics[t * DIM..(t + 1) * DIM].iter().zip(&noise).map(|(a, b)| a + b).collect();
        normalize(&mut v);
        out.extend_from_slice(&v);
    }
    out
}

fn topics(count: usize) -> Vec<f32> {
    let mut rng = Rng(3);
    let mut out = Vec::with_capacity(count * DIM);
    for _ in 0..count {
        let mut v: Vec<f32> = (0..DIM).map(|_| rng.next()).collect();
        normalize(&mut v);
        out.extend_from_slice(&v);
    }
    out
}

/// A synthetic memory: eight words of a 5,000-word vocabulary (Zipf-like: word `k` about as
/// often as `1/(k+1)`), drawn from `i`.
fn words(rng: &mut Rng, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let u = rng.next() + 0.5;
            let k = ((5001f32).powf(u) - 1.0) as usize;
            format!("w{k}")
        })
        .collect()
}

/// The value after `name` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].as_str())
}

/// A file of raw little-endian `f32` vectors of `DIM` dimensions.
fn read_f32s(path: &str) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if bytes.is_empty() || bytes.len() % (4 * DIM) != 0 {
        return Err(format!(
            "{path}: {} bytes, not a whole number of {DIM}-float vectors",
            bytes.len()
        )
        .into());
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Anonymous resident memory of this process, in KiB (Linux; 0 elsewhere).
fn rss_anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes: Vec<usize> = args
        .windows(2)
        .filter(|w| w[0] == "--n")
        .map(|w| w[1].parse())
        .collect::<Result<_, _>>()?;
    // `--probes 8,16,32`: the probes to measure besides the exact scan (default: half, once
    // and twice the default).
    let probe_list: Option<Vec<usize>> = args
        .windows(2)
        .find(|w| w[0] == "--probes")
        .map(|w| w[1].split(',').map(str::parse).collect())
        .transpose()?;
    // `--store DIR`: build the stores under DIR and keep them; a later run with the same DIR
    // reuses them (same data: the build is deterministic), so alternating binaries compare
    // the searches alone.
    let kept: Option<std::path::PathBuf> =
        args.windows(2).find(|w| w[0] == "--store").map(|w| w[1].clone().into());
    // `--rounds R`: timed passes over the hybrid queries (default 1; more for a profiler).
    let rounds: usize = args
        .windows(2)
        .find(|w| w[0] == "--rounds")
        .map(|w| w[1].parse())
        .transpose()?
        .unwrap_or(1);
    // `--vectors DOCS --queries QUERIES`: real vectors (raw little-endian f32s, 384 a vector,
    // as the embeddings crate's `embed_texts` example writes them) in place of the synthetic
    // topic vectors; one size, the number of DOCS.
    let real: Option<(Vec<f32>, Vec<f32>)> =
        match (flag(&args, "--vectors"), flag(&args, "--queries")) {
            (Some(d), Some(q)) => Some((read_f32s(d)?, read_f32s(q)?)),
            (None, None) => None,
            _ => return Err("--vectors and --queries go together".into()),
        };
    // With real vectors, `--n N` takes the first N (several for a trend), else all of them.
    // `--texts DOCS --query-texts QUERIES` (with `--vectors`): the texts those vectors embed,
    // one a line; the segment's memories are then these texts and the hybrid queries these
    // queries, and the hybrid's top 10 at each probe count is compared with its top 10 over
    // the exact vector scan.
    let texts: Option<(Vec<String>, Vec<String>)> =
        match (flag(&args, "--texts"), flag(&args, "--query-texts")) {
            (Some(d), Some(q)) => {
                let lines = |p: &str| -> Result<Vec<String>, Box<dyn std::error::Error>> {
                    Ok(std::fs::read_to_string(p)
                        .map_err(|e| format!("{p}: {e}"))?
                        .lines()
                        .map(str::to_owned)
                        .collect())
                };
                Some((lines(d)?, lines(q)?))
            }
            (None, None) => None,
            _ => return Err("--texts and --query-texts go together".into()),
        };
    if let Some((docs, _)) = &real {
        let all = docs.len() / DIM;
        sizes =
            if sizes.is_empty() { vec![all] } else { sizes.iter().map(|&n| n.min(all)).collect() };
    }
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000];
    }
    let temp = tempfile::tempdir()?;
    let dir = kept.as_deref().unwrap_or(temp.path());
    println!("| memories | lists | probes | p50 (µs) | p90 (µs) | recall@10 vs exact | private memory beyond the mapping (KiB) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let topics = topics((n / 50).max(10));
        // One published segment of `n` synthetic memories, and its vector file.
        let store = dir.join(if real.is_some() { format!("real-{n}") } else { n.to_string() });
        let built = Instant::now();
        let reuse = kept.is_some() && store.join(VECTORS_DIR).exists();
        if !reuse {
            let mut rng = Rng(11);
            let mut builder = SegmentBuilder::new();
            for i in 0..n as u32 {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_le_bytes());
                let (question, synthesis) = match &texts {
                    Some((docs, _)) => (docs[i as usize].clone(), String::new()),
                    None => (words(&mut rng, 8).join(" "), words(&mut rng, 12).join(" ")),
                };
                let doc = Document {
                    id,
                    domain: format!("d{}", i % 8),
                    question,
                    synthesis,
                    timestamp_micros: i64::from(i),
                    ..Default::default()
                };
                builder.add(&doc)?;
            }
            let mut publisher = Publisher::open(&store)?;
            let entry = publisher.write_segment(&builder)?;
            publisher.publish(1, vec![entry])?;
        }
        let reader = Reader::open(&store)?;
        let snapshot = reader.snapshot();
        if !reuse {
            let count = snapshot.segment_doc_count(0).ok_or("no segment")?;
            let ids: Vec<[u8; 16]> = (0..count)
                .map(|o| snapshot.segment_doc_id(0, o).ok_or("an ordinal without an id"))
                .collect::<Result<_, _>>()?;
            let (file, _) = snapshot.segment_files().next().ok_or("no segment")?;
            std::fs::create_dir_all(store.join(VECTORS_DIR))?;
            let docs = match &real {
                Some((docs, _)) => docs[..n * DIM].to_vec(),
                None => topic_vectors(n, &topics, 42),
            };
            let bytes = encode(&ids, &docs, DIM, "bench")?;
            std::fs::write(vectors_path(&store, file), bytes)?;
        }
        eprintln!("{n}: segment and vector file built in {:.1} s", built.elapsed().as_secs_f64());
        let embeddings = match &real {
            Some((_, queries)) => queries.clone(),
            None => topic_vectors(200, &topics, 7),
        };
        let queries: Vec<QueryVector> =
            embeddings.chunks_exact(DIM).map(QueryVector::new).collect();
        let mut rng = Rng(5);
        let hybrid_queries: Vec<Query> = embeddings
            .chunks_exact(DIM)
            .enumerate()
            .map(|(i, e)| {
                if let Some((_, query_texts)) = &texts {
                    return Query::from_text(&query_texts[i]).with_embedding(e);
                }
                // Two words drawn uniformly from the vocabulary (a user's informative words,
                // not the corpus's most frequent ones).
                let w: Vec<String> = (0..2)
                    .map(|_| format!("w{}", ((rng.next() + 0.5) * 5000.0) as usize))
                    .collect();
                Query::from_keywords(w).with_embedding(e)
            })
            .collect();
        let mut hits = VectorHits::with_capacity(100);
        let mut hybrid = HybridSearch::new(DIM, 100);
        let mut hybrid_hits = Hits::with_capacity(10);
        let before = rss_anon_kib();
        let files = SnapshotVectors::open(&store, &snapshot);
        let vectors = files.segment(0).ok_or("the segment's vector file did not open")?;
        let deleted = snapshot.deleted(0).ok_or("no deleted set")?;
        // Warm: page the file in.
        vectors.scan(&queries[0], deleted, 0, &mut hits);
        let mut exact: Vec<Vec<u32>> = Vec::with_capacity(queries.len());
        let mut rows = Vec::new();
        let d = default_probes(vectors.lists() as usize);
        let mut probe_set = vec![usize::MAX];
        probe_set.extend(probe_list.clone().unwrap_or_else(|| vec![d / 2, d, d * 2]));
        for probes in probe_set {
            let mut times = Vec::with_capacity(queries.len());
            let mut found = 0usize;
            for (i, q) in queries.iter().enumerate() {
                hits.clear();
                let t = Instant::now();
                vectors.search(q, deleted, 0, Some(probes), &mut hits);
                hits.sort();
                times.push(t.elapsed().as_secs_f64());
                let top: Vec<u32> = hits.as_slice().iter().take(10).map(|h| h.ordinal).collect();
                if probes == usize::MAX {
                    exact.push(top);
                } else {
                    found += top.iter().filter(|o| exact[i].contains(o)).count();
                }
            }
            times.sort_by(f64::total_cmp);
            let recall = if probes == usize::MAX {
                "1 (exact)".to_owned()
            } else {
                format!("{:.3}", found as f64 / (10 * queries.len()) as f64)
            };
            let probes = if probes == usize::MAX { "all".to_owned() } else { probes.to_string() };
            rows.push((probes, times[times.len() / 2], times[times.len() * 9 / 10], recall));
        }
        // Hybrid through the snapshot (default probes), after one warm-up pass.
        let options = SearchOptions { ranking: Ranking::Hybrid, limit: 10, ..Default::default() };
        let mut times = Vec::with_capacity(rounds * hybrid_queries.len());
        for pass in 0..=rounds {
            for q in &hybrid_queries {
                let t = Instant::now();
                hybrid.search(&snapshot, &files, q, &options, &mut hybrid_hits);
                if pass > 0 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
        }
        times.sort_by(f64::total_cmp);
        rows.push((
            format!("hybrid, {d} (default)"),
            times[times.len() / 2],
            times[times.len() * 9 / 10],
            String::new(),
        ));
        // The hybrid's top 10 at each probe count against its top 10 over the exact scan.
        if texts.is_some() {
            let mut top10 = |hybrid: &mut HybridSearch, probes: usize| -> Vec<Vec<(u32, u32)>> {
                hybrid.set_probes(probes);
                hybrid_queries
                    .iter()
                    .map(|q| {
                        hybrid.search(&snapshot, &files, q, &options, &mut hybrid_hits);
                        hybrid_hits.iter().map(|h| (h.segment, h.ordinal)).collect()
                    })
                    .collect()
            };
            let exact = top10(&mut hybrid, usize::MAX);
            for &probes in probe_list.as_deref().unwrap_or(&[d / 2, d, d * 2]) {
                let got = top10(&mut hybrid, probes);
                let found: usize = got
                    .iter()
                    .zip(&exact)
                    .map(|(g, e)| g.iter().filter(|h| e.contains(h)).count())
                    .sum();
                let total: usize = exact.iter().map(Vec::len).sum();
                rows.push((
                    format!("hybrid top 10 vs hybrid over exact, {probes}"),
                    0.0,
                    0.0,
                    format!("{:.3}", found as f64 / total.max(1) as f64),
                ));
            }
        }
        // Its lexical side alone: BM25F's top 100 for the same queries.
        let lexical = SearchOptions { limit: 100, ..Default::default() };
        let mut lexical_hits = Hits::with_capacity(100);
        let mut times = Vec::with_capacity(hybrid_queries.len());
        for q in &hybrid_queries {
            let t = Instant::now();
            snapshot.search(q, &lexical, &mut lexical_hits);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        rows.push((
            "bm25f top 100 alone".to_owned(),
            times[times.len() / 2],
            times[times.len() * 9 / 10],
            String::new(),
        ));
        let after = rss_anon_kib();
        for (probes, p50, p90, recall) in rows {
            println!(
                "| {n} | {} | {probes} | {:.0} | {:.0} | {recall} | {} |",
                vectors.lists(),
                p50 * 1e6,
                p90 * 1e6,
                after.saturating_sub(before)
            );
        }
    }
    Ok(())
}
