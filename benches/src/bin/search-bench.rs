//! `search-bench`: ranked search alone, ours against tantivy's BM25, on the bench corpus; the
//! quick loop for work on the search path (`cargo xtask bench` runs the whole suite).
//!
//! Usage: `search-bench [--n N] [--rounds R] [--dir DIR] [--slowest K] [--inter-only]`. The
//! segment and tantivy's index are built once into `DIR/N` (default `target/search-bench`) and
//! reused. `--inter-only` skips the back-to-back rounds, for profiles of the interleaved mode.

#[cfg(not(feature = "peers"))]
fn main() {
    eprintln!(
        "search-bench needs the `peers` feature: cargo run --release -p benches --features peers --bin search-bench"
    );
    std::process::exit(2);
}

#[cfg(feature = "peers")]
fn main() -> anyhow::Result<()> {
    peers::main()
}

#[cfg(feature = "peers")]
mod peers {
    use std::path::PathBuf;
    use std::time::Instant;

    use anyhow::Context;
    use benches::corpus;
    use benches::peers::Tantivy;
    use index_publisher::Publisher;
    use semantic_index::SegmentBuilder;
    use shm_reader::{Hits, Query, Ranking, Reader, SearchOptions};

    const SEED: u64 = 42;

    fn arg(args: &[String], name: &str) -> Option<String> {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
    }

    /// p50 and p99.
    fn stats(v: Vec<f64>) -> (f64, f64) {
        let (p50, p99, _) = benches::stats::stats(v);
        (p50, p99)
    }

    pub(crate) fn main() -> anyhow::Result<()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let n: usize = arg(&args, "--n").map_or(Ok(100_000), |s| s.parse())?;
        let rounds: usize = arg(&args, "--rounds").map_or(Ok(5), |s| s.parse())?;
        let slowest: usize = arg(&args, "--slowest").map_or(Ok(0), |s| s.parse())?;
        let base = arg(&args, "--dir").map_or(PathBuf::from("target/search-bench"), PathBuf::from);
        let dir = base.join(n.to_string());
        let mut corpus = corpus::generate(n, SEED);
        let store = dir.join("index");
        // A cached index this build cannot open (an older segment format, a cut build) is
        // built again rather than failing the bench.
        if !store.join("HEAD").exists() || Reader::open(&store).is_err() {
            if store.exists() {
                std::fs::remove_dir_all(&store)
                    .with_context(|| format!("removing the stale index {}", store.display()))?;
            }
            let t = Instant::now();
            let docs: Vec<_> = corpus.memories.iter().map(|m| m.to_document()).collect();
            let mut b = SegmentBuilder::new().generation(1);
            b.add_batch(&docs)?;
            let mut publisher = Publisher::open(&store)?;
            let entry = publisher.write_segment(&b)?;
            publisher.publish(1, vec![entry])?;
            println!("built our segment in {:.1} s", t.elapsed().as_secs_f64());
        }
        let tdir = dir.join("tantivy");
        let tantivy = if tdir.join("meta.json").exists() {
            Tantivy::open(&tdir)?
        } else {
            let t = Instant::now();
            std::fs::create_dir_all(&tdir)?;
            let tv = Tantivy::build(&corpus.memories, &tdir)?;
            println!("built tantivy in {:.1} s", t.elapsed().as_secs_f64());
            tv
        };
        if let Some(only) = arg(&args, "--only") {
            // Only this query (words separated by spaces): for profiles.
            corpus.queries = vec![only.split(' ').map(str::to_owned).collect(); 1000];
        }
        let mut reader = Reader::open(&store).context("open our index")?;
        let queries: Vec<Query> = corpus.queries.iter().map(Query::from_keywords).collect();
        let mut hits = Hits::with_capacity(10);
        let bm25f = SearchOptions::default();
        let jaccard = SearchOptions {
            ranking: Ranking::Jaccard,
            w_score: 0.0,
            w_sacred: 0.0,
            ..SearchOptions::default()
        };
        // Warm both.
        for (q, words) in queries.iter().zip(&corpus.queries) {
            reader.search(q, &bm25f, &mut hits)?;
            std::hint::black_box(tantivy.search(words, 10)?);
        }
        let mut ours = Vec::new();
        let mut per_query = vec![0f64; queries.len()];
        // For profiles of the interleaved mode alone: no back-to-back rounds.
        let inter_only = args.iter().any(|a| a == "--inter-only");
        for _ in 0..if inter_only { 0 } else { rounds } {
            for (i, q) in queries.iter().enumerate() {
                let t = Instant::now();
                reader.search(q, &bm25f, &mut hits)?;
                let dt = t.elapsed().as_secs_f64() * 1e6;
                std::hint::black_box(hits.len());
                per_query[i] += dt / rounds as f64;
                ours.push(dt);
            }
        }
        if args.iter().any(|a| a == "--ours-only") {
            // For profiles: our default ranking alone.
            let (o50, o99) = stats(ours);
            println!("ours BM25F b2b      {o50:9.1} {o99:9.1}");
            return Ok(());
        }
        let mut theirs = Vec::new();
        for _ in 0..if inter_only { 0 } else { rounds } {
            for words in &corpus.queries {
                let t = Instant::now();
                std::hint::black_box(tantivy.search(words, 10)?);
                theirs.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        let (mut oi, mut ti) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (q, words) in queries.iter().zip(&corpus.queries) {
                let t = Instant::now();
                reader.search(q, &bm25f, &mut hits)?;
                oi.push(t.elapsed().as_secs_f64() * 1e6);
                let t = Instant::now();
                std::hint::black_box(tantivy.search(words, 10)?);
                ti.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        let mut jac = Vec::new();
        for _ in 0..rounds {
            for q in &queries {
                let t = Instant::now();
                reader.search(q, &jaccard, &mut hits)?;
                jac.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        let (o50, o99) = stats(ours);
        let (t50, t99) = stats(theirs);
        let (oi50, oi99) = stats(oi);
        let (ti50, ti99) = stats(ti);
        let (j50, j99) = stats(jac);
        println!("N = {n}, {} queries x {rounds} rounds", queries.len());
        println!("                      p50 µs    p99 µs");
        println!("ours BM25F b2b      {o50:9.1} {o99:9.1}");
        println!(
            "tantivy b2b         {t50:9.1} {t99:9.1}   ratio p50 {:.2}x p99 {:.2}x",
            t50 / o50,
            t99 / o99
        );
        println!("ours BM25F inter    {oi50:9.1} {oi99:9.1}");
        println!(
            "tantivy inter       {ti50:9.1} {ti99:9.1}   ratio p50 {:.2}x p99 {:.2}x",
            ti50 / oi50,
            ti99 / oi99
        );
        println!("ours Jaccard (w 0)  {j50:9.1} {j99:9.1}");
        if args.iter().any(|a| a == "--overlap") {
            let overlap = benches::peers::single_field_overlap(&corpus, &dir)?;
            println!("top-10 overlap with tantivy BM25, single-field corpus: {overlap:.1} %");
        }
        if slowest > 0 {
            let mut idx: Vec<usize> = (0..queries.len()).collect();
            idx.sort_by(|&a, &b| per_query[b].total_cmp(&per_query[a]));
            for &i in idx.iter().take(slowest).chain(idx.iter().skip(495).take(8)) {
                println!("{:9.1} µs  {:?}", per_query[i], corpus.queries[i]);
            }
        }
        Ok(())
    }
}
