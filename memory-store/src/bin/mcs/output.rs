//! Human and JSON output of `mcs`.

use memory_store::{Found, Memory, MemoryStore, SearchResults, Stats};

/// `n` and the noun, singular for one: "1 memory", "2 memories".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Search results as JSON, each hit with its memory's `context` (the index keeps only what
/// search needs; the context comes from the records).
pub(crate) fn results_json(
    store: &MemoryStore,
    results: &SearchResults,
) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(results)?;
    if let Some(hits) = value.get_mut("hits").and_then(serde_json::Value::as_array_mut) {
        for (hit, found) in hits.iter_mut().zip(&results.hits) {
            let context = store.get(found.id)?.map(|m| m.context).unwrap_or_default();
            if let Some(obj) = hit.as_object_mut() {
                obj.insert("context".into(), serde_json::to_value(context)?);
            }
        }
    }
    Ok(value)
}

fn short(id: &uuid::Uuid) -> String {
    id.to_string()[..8].to_owned()
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

pub(crate) fn print_results(results: &SearchResults, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(results)?);
        return Ok(());
    }
    println!("query keywords: {} (generation {})", results.keywords.join(", "), results.generation);
    if results.hits.is_empty() {
        println!("no memory matches");
        return Ok(());
    }
    println!("{:>6}  {:<8}  {:<14}  {:<10}  matched / question", "score", "id", "domain", "date");
    for h in &results.hits {
        let mut matched = h.why.as_ref().map(|w| w.matched.join(",")).unwrap_or_default();
        if let Some(hy) = h.why.as_ref().and_then(|w| w.hybrid.as_ref()) {
            // What each side contributed: its rank (- when outside its top) and share.
            let rank = |r: Option<usize>| r.map_or("-".to_owned(), |r| format!("#{r}"));
            matched = format!(
                "lex {} {:.4} + vec {} {:.4} cos {:.2}{}{}",
                rank(hy.lexical_rank),
                hy.lexical_part,
                rank(hy.vector_rank),
                hy.vector_part,
                hy.similarity.unwrap_or(0.0),
                if matched.is_empty() { "" } else { "; " },
                matched
            );
        }
        println!(
            "{:>6.3}  {}  {:<14}  {}  {}[{}] {}",
            h.score,
            short(&h.id),
            cut(&h.domain, 14),
            h.timestamp.format("%Y-%m-%d"),
            if h.sacred { "✦ " } else { "" },
            matched,
            cut(&h.gist, 70)
        );
    }
    Ok(())
}

pub(crate) fn print_found(found: &[Found], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(found)?);
        return Ok(());
    }
    if found.is_empty() {
        println!("no sacred memory");
    }
    for f in found {
        println!(
            "{}  {}  {:<14}  {}",
            short(&f.id),
            f.timestamp.format("%Y-%m-%d %H:%M"),
            cut(&f.domain, 14),
            cut(&f.gist, 80)
        );
    }
    Ok(())
}

pub(crate) fn print_memory(m: &Memory) {
    println!("id:        {}", m.id);
    println!("domain:    {}", m.domain);
    println!("timestamp: {}", m.timestamp.to_rfc3339());
    if let Some(t) = &m.memory_type {
        println!("type:      {t}");
    }
    if let Some(s) = &m.session_id {
        println!("session:   {s}");
    }
    if let Some(h) = &m.human {
        println!("human:     {h}");
    }
    println!("score:     {}", m.score);
    if m.sacred {
        println!(
            "sacred:    yes{}",
            m.sacred_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        );
    }
    println!("question:  {}", m.question);
    for i in &m.insights {
        println!("  - {i}");
    }
    if !m.synthesis.is_empty() {
        println!("synthesis: {}", m.synthesis);
    }
    if !m.context.is_empty() {
        println!("context:");
        for (k, v) in &m.context {
            println!("  {k}: {v}");
        }
    }
    for p in m.perspectives.iter().flatten() {
        println!("perspective: {} ({}): {}", p.voice, p.role, p.summary);
        for i in &p.insights {
            println!("  - {i}");
        }
    }
}

pub(crate) fn print_stats(s: &Stats) {
    println!("memories:   {} ({} sacred)", s.memories, s.sacred);
    println!("generation: {} (commit {})", s.generation, s.commit_seq);
    println!("segments:   {} ({})", s.segments, count(s.index_bytes as usize, "byte", "bytes"));
    println!("domains:");
    for (d, n) in &s.domains {
        println!("  {d:<20} {n}");
    }
}

/// A rate for people: "1,200/s", whole memories per second with thousands separated.
pub(crate) fn rate(n: usize, elapsed: std::time::Duration) -> String {
    let per_sec = n as f64 / elapsed.as_secs_f64().max(1e-3);
    let digits = format!("{:.0}", per_sec);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out + "/s"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates_read_as_words() {
        assert_eq!(count(1, "memory", "memories"), "1 memory");
        assert_eq!(count(0, "memory", "memories"), "0 memories");
        assert_eq!(count(2, "segment", "segments"), "2 segments");
        assert_eq!(rate(1_199, std::time::Duration::from_secs(1)), "1,199/s");
        assert_eq!(rate(1_234_567, std::time::Duration::from_secs(1)), "1,234,567/s");
        assert_eq!(rate(999, std::time::Duration::from_secs(1)), "999/s");
    }
}
