//! Embedding throughput and query latency on this machine.
//!
//! `cargo run --release -p embeddings --example embed_bench -- [--docs FILE] [--n N]`
//!
//! Documents: the lines of FILE (default: a deterministic mix of Cranfield-like sentences),
//! embedded in batches; queries: 200 texts of about 20 tokens, one at a time. FLOP counts are
//! the model's matrix products: 2 × 1.77 M multiply-adds per token per layer, 6 layers (about
//! 21.2 MFLOP per token), plus attention's 4 × len × 384 per token per layer.

use std::time::Instant;

use embeddings::{default_model_dir, Embedder};

const LAYER_MACS_PER_TOKEN: f64 = (4.0 * 384.0 * 384.0) + (2.0 * 384.0 * 1536.0);

fn flops(tokens_per_text: &[usize]) -> f64 {
    tokens_per_text
        .iter()
        .map(|&n| {
            let n = n as f64;
            6.0 * 2.0 * (n * LAYER_MACS_PER_TOKEN + 2.0 * n * n * 384.0)
        })
        .sum()
}

fn synthetic(n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "boundary",
        "layer",
        "flow",
        "pressure",
        "supersonic",
        "wing",
        "heat",
        "transfer",
        "shock",
        "wave",
        "laminar",
        "turbulent",
        "experimental",
        "theory",
        "solution",
        "plate",
        "body",
        "number",
        "reynolds",
        "mach",
        "effects",
        "method",
        "results",
        "investigation",
        "the",
        "of",
        "and",
        "in",
        "a",
        "for",
        "on",
        "with",
        "at",
        "is",
        "are",
        "by",
    ];
    let mut state = 42u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 60 + next() % 180;
            (0..len).map(|_| WORDS[next() % WORDS.len()]).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let n: usize = arg("--n").map(|s| s.parse()).transpose()?.unwrap_or(400);
    let docs: Vec<String> = match arg("--docs") {
        Some(path) => std::fs::read_to_string(path)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(n)
            .map(str::to_owned)
            .collect(),
        None => synthetic(n),
    };
    let started = Instant::now();
    let e = Embedder::load(&default_model_dir()?)?;
    println!("model loaded in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("threads available: {threads}");

    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let lens: Vec<usize> = refs.iter().map(|t| e.count_tokens(t)).collect::<Result<_, _>>()?;
    // Warm up (page in the weights, size the thread pool).
    e.embed_documents(&refs[..refs.len().min(16)], &mut |_| {})?;
    let started = Instant::now();
    let (_, stats) = e.embed_documents(&refs, &mut |_| {})?;
    let secs = started.elapsed().as_secs_f64();
    let gflop = flops(&lens) / 1e9;
    println!(
        "documents: {} texts, {} tokens ({:.0} per text), {} padded, {} batches",
        stats.texts,
        stats.tokens,
        stats.tokens as f64 / stats.texts as f64,
        stats.padded_tokens,
        stats.batches
    );
    println!(
        "documents: {:.2} s, {:.0} tokens/s, {:.1} texts/s, {:.1} GFLOP/s",
        secs,
        stats.tokens as f64 / secs,
        stats.texts as f64 / secs,
        gflop / secs
    );

    let queries: Vec<String> = synthetic(200)
        .into_iter()
        .map(|t| t.split(' ').take(16).collect::<Vec<_>>().join(" "))
        .collect();
    let qlens: Vec<usize> = queries.iter().map(|q| e.count_tokens(q)).collect::<Result<_, _>>()?;
    let mut out = vec![0.0; embeddings::DIM];
    let mut times = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        e.embed_into(q, &mut out)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let p50 = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    let mean_len = qlens.iter().sum::<usize>() as f64 / qlens.len() as f64;
    let q_gflop = flops(&[mean_len.round() as usize]) / 1e9;
    println!(
        "queries: {} of {:.1} tokens on average: p50 {:.2} ms, p90 {:.2} ms, {:.1} GFLOP/s at p50",
        queries.len(),
        mean_len,
        p50 * 1e3,
        p90 * 1e3,
        q_gflop / p50
    );
    Ok(())
}
