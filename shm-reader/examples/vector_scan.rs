//! Exact vector search over a mapped vector file at 100k memories (and 10k):
//! p50/p90 per query excluding the query's embedding, and the process's private memory
//! (anonymous RSS) beyond the mapping. Deterministic pseudo-random unit vectors, 384
//! dimensions, int8 with a scale as the store writes them.
//!
//! Usage: `cargo run --release -p shm-reader --example vector_scan -- [--n N]...` (default
//! 10,000 and 100,000).

use std::time::Instant;

use semantic_index::vectors::encode;
use shm_reader::vectors::{QueryVector, VectorHits, Vectors};
use shm_reader::DeletedSet;

const DIM: usize = 384;

fn unit_vectors(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let v: Vec<f32> = (0..DIM).map(|_| next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        out.extend(v.iter().map(|x| x / norm));
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
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000];
    }
    let dir = tempfile::tempdir()?;
    println!("| memories | file (MiB) | p50 (µs) | p90 (µs) | GB/s at p50 | private memory beyond the mapping (KiB) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let ids: Vec<[u8; 16]> = (0..n as u32)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_le_bytes());
                id
            })
            .collect();
        let path = dir.path().join(format!("{n}.vec"));
        {
            let bytes = encode(&ids, &unit_vectors(n, 42), DIM, "bench")?;
            std::fs::write(&path, bytes)?;
        }
        let queries: Vec<QueryVector> =
            unit_vectors(200, 7).chunks_exact(DIM).map(QueryVector::new).collect();
        let mut hits = VectorHits::with_capacity(100);
        let before = rss_anon_kib();
        // SAFETY: the file is this program's own temporary file, not modified while mapped.
        let vectors = unsafe { Vectors::map(&path) }?;
        let deleted = DeletedSet::empty();
        // Warm: page the file in.
        vectors.scan(&queries[0], &deleted, 0, &mut hits);
        let mut times = Vec::with_capacity(queries.len());
        for q in &queries {
            hits.clear();
            let t = Instant::now();
            vectors.scan(q, &deleted, 0, &mut hits);
            hits.sort();
            times.push(t.elapsed().as_secs_f64());
        }
        let after = rss_anon_kib();
        times.sort_by(f64::total_cmp);
        let (p50, p90) = (times[times.len() / 2], times[times.len() * 9 / 10]);
        println!(
            "| {n} | {:.1} | {:.0} | {:.0} | {:.1} | {} |",
            vectors.size_bytes() as f64 / (1 << 20) as f64,
            p50 * 1e6,
            p90 * 1e6,
            vectors.size_bytes() as f64 / p50 / 1e9,
            after.saturating_sub(before)
        );
    }
    Ok(())
}
