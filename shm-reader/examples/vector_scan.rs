//! Vector search over a mapped vector file at 100k memories (and 10k): the exact scan and the
//! inverted lists (the default probes and others), p50/p90 per query excluding the query's
//! embedding, recall@10 of the lists against the exact scan, and the process's private memory
//! (anonymous RSS) beyond the mapping. Deterministic synthetic unit vectors of 384 dimensions
//! in topics (a topic's direction plus noise: cosine about 0.5 within a topic, about 0 across),
//! int8 with a scale as the store writes them; queries are drawn the same way.
//!
//! Usage: `cargo run --release -p shm-reader --example vector_scan -- [--n N]... [--probes
//! P,P...]` (default 10,000 and 100,000; half, once and twice the default probes).

use std::time::Instant;

use semantic_index::vectors::encode;
use shm_reader::vectors::{default_probes, QueryVector, VectorHits, Vectors};
use shm_reader::DeletedSet;

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
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000];
    }
    let dir = tempfile::tempdir()?;
    println!("| memories | lists | probes | p50 (µs) | p90 (µs) | recall@10 vs exact | private memory beyond the mapping (KiB) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let topics = topics((n / 50).max(10));
        let ids: Vec<[u8; 16]> = (0..n as u32)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_le_bytes());
                id
            })
            .collect();
        let path = dir.path().join(format!("{n}.vec"));
        let built = Instant::now();
        {
            let bytes = encode(&ids, &topic_vectors(n, &topics, 42), DIM, "bench")?;
            std::fs::write(&path, bytes)?;
        }
        eprintln!("{n}: file built in {:.1} s", built.elapsed().as_secs_f64());
        let queries: Vec<QueryVector> =
            topic_vectors(200, &topics, 7).chunks_exact(DIM).map(QueryVector::new).collect();
        let mut hits = VectorHits::with_capacity(100);
        let before = rss_anon_kib();
        // SAFETY: the file is this program's own temporary file, not modified while mapped.
        let vectors = unsafe { Vectors::map(&path) }?;
        let deleted = DeletedSet::empty();
        // Warm: page the file in.
        vectors.scan(&queries[0], &deleted, 0, &mut hits);
        // The exact top 10 of each query.
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
                vectors.search(q, &deleted, 0, Some(probes), &mut hits);
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
