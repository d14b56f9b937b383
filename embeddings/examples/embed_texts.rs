//! Embeds the lines of a text file (one text a line) and writes their vectors as raw
//! little-endian `f32`s, `DIM` per line in input order: real MiniLM vectors for measurements
//! (`cargo xtask bench-vectors --real` feeds them to shm-reader's `vector_scan`).
//!
//! `cargo run --release -p embeddings --example embed_texts -- --in TEXTS --out VECTORS`
//!
//! When VECTORS already holds as many vectors as TEXTS has lines and is newer than TEXTS, it is
//! kept (embedding 10,000 texts takes minutes).

use std::time::Instant;

use embeddings::{default_model_dir, Embedder, DIM};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .ok_or_else(|| format!("missing {name} (usage: --in TEXTS --out VECTORS)"))
    };
    let (input, output) = (arg("--in")?, arg("--out")?);
    let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
    let texts: Vec<&str> = text.lines().collect();
    let fresh = |out: &std::fs::Metadata, inp: &std::fs::Metadata| {
        out.len() == (texts.len() * DIM * 4) as u64
            && matches!((out.modified(), inp.modified()), (Ok(o), Ok(i)) if o >= i)
    };
    if let (Ok(out), Ok(inp)) = (std::fs::metadata(output), std::fs::metadata(input)) {
        if fresh(&out, &inp) {
            eprintln!("{output}: {} vectors already embedded, kept", texts.len());
            return Ok(());
        }
    }
    let e = Embedder::load(&default_model_dir()?)?;
    let started = Instant::now();
    let mut last = Instant::now();
    let (vectors, stats) = e.embed_documents(&texts, &mut |done| {
        if last.elapsed().as_secs() >= 10 {
            last = Instant::now();
            eprintln!("{done} of {} texts", texts.len());
        }
    })?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{input}: {} texts, {} tokens in {secs:.1} s ({:.0} tokens/s)",
        stats.texts,
        stats.tokens,
        stats.tokens as f64 / secs
    );
    let bytes: Vec<u8> = vectors.iter().flat_map(|x| x.to_le_bytes()).collect();
    let partial = format!("{output}.partial");
    std::fs::write(&partial, bytes).map_err(|e| format!("{partial}: {e}"))?;
    std::fs::rename(&partial, output).map_err(|e| format!("{output}: {e}"))?;
    Ok(())
}
