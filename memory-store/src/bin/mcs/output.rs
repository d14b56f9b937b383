//! Human and JSON output of `mcs`.

use memory_store::{Found, Memory, SearchResults, Stats};

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
}

pub(crate) fn print_stats(s: &Stats) {
    println!("memories:   {} ({} sacred)", s.memories, s.sacred);
    println!("generation: {} (commit {})", s.generation, s.commit_seq);
    println!("segments:   {} ({} bytes)", s.segments, s.index_bytes);
    println!("domains:");
    for (d, n) in &s.domains {
        println!("  {d:<20} {n}");
    }
}
