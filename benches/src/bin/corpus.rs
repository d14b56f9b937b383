//! `corpus --n N --seed S --out DIR`: writes `memories.jsonl` (`mcs ingest`'s memory format) and
//! `queries.txt` (one query per line, keywords separated by spaces). The same seed gives the
//! same bytes on every machine. `cargo xtask corpus` runs it.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let (Some(n), Some(seed), Some(out)) = (value("--n"), value("--seed"), value("--out")) else {
        bail!("usage: corpus --n N --seed S --out DIR");
    };
    let n: usize = n.parse().with_context(|| format!("--n {n:?} is not a count"))?;
    let seed: u64 = seed.parse().with_context(|| format!("--seed {seed:?} is not a number"))?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let corpus = benches::corpus::generate(n, seed);
    let write = |name: &str, f: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        let path = out.join(name);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(file);
        f(&mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        anyhow::Ok(path)
    };
    let memories = write("memories.jsonl", &|w| corpus.write_jsonl(w))?;
    let queries = write("queries.txt", &|w| corpus.write_queries(w))?;
    println!(
        "wrote {} memories to {} and {} queries to {}",
        corpus.memories.len(),
        memories.display(),
        corpus.queries.len(),
        queries.display()
    );
    Ok(())
}
