//! `mcs demo`: a guided tour on a fresh temporary store (or the one given).

use std::path::Path;

use memory_store::{Memory, MemoryStore, Query, SearchOptions};

use crate::output;

const SAMPLE: &str = include_str!("../../../data/sample.jsonl");

pub(crate) fn run(store: Option<&Path>) -> anyhow::Result<()> {
    let temp;
    let dir = match store {
        Some(dir) => dir.to_owned(),
        None => {
            temp = tempfile::Builder::new().prefix("mcs-demo-").tempdir()?;
            crate::pipe::remove_on_quiet_exit(temp.path().to_owned());
            temp.path().join("store")
        }
    };
    println!("memory circulation demo");
    println!("=======================");
    println!("store: {}\n", dir.display());

    let mut memories = Vec::new();
    for (n, line) in SAMPLE.lines().enumerate() {
        memories.push(Memory::from_json(line).map_err(|mut e| {
            e.line = Some(n + 1);
            anyhow::anyhow!("sample memories: {e}")
        })?);
    }
    let mut store = MemoryStore::open(&dir)?;
    let report = store.store_batch(memories)?;
    println!(
        "1. Stored {} sample memories about agent work in one durable commit ({} already there).",
        report.stored.len(),
        report.skipped.len()
    );
    println!(
        "   The writer published index generation {}: an immutable segment any process can map.\n",
        store.generation()
    );

    let query = Query::from_text("how do apprentices share memory without copying it");
    println!("2. Search: \"how do apprentices share memory without copying it\"");
    println!("   Score = BM25F relevance of the stemmed words, times up to 1.05 for a memory's");
    println!("   own score and the sacred flag (✦): boosts only reorder comparable relevance.");
    let results = store.search(&query, &SearchOptions { limit: 5, ..SearchOptions::default() })?;
    output::print_results(&results, false)?;

    println!("\n3. The same query, sacred memories only:");
    let sacred_only = store.search(
        &query,
        &SearchOptions { limit: 3, sacred_only: true, ..SearchOptions::default() },
    )?;
    output::print_results(&sacred_only, false)?;

    if let Some(top) = results.hits.first() {
        println!(
            "\n4. Related to the best hit ({}): its own keywords as the query.",
            &top.id.to_string()[..8]
        );
        if let Some(related) =
            store.related(top.id, &SearchOptions { limit: 4, ..SearchOptions::default() })?
        {
            output::print_results(&related, false)?;
        }
    }

    println!("\n5. Sacred memories, newest first:");
    output::print_found(&store.sacred(None, 5)?, false)?;

    let stats = store.stats()?;
    println!(
        "\n6. The store holds {} in {}, {}, {} of index.",
        output::count(stats.memories as usize, "memory", "memories"),
        output::count(stats.domains.len(), "domain", "domains"),
        output::count(stats.segments, "segment", "segments"),
        output::count(stats.index_bytes as usize, "byte", "bytes"),
    );
    println!(
        "   Every other process (apprentices, `mcs search`) maps the same segment read-only and"
    );
    println!("   sees the next generation with one atomic load; nothing is copied into them.");

    drop(store);
    let task = "crash safety of durable records";
    println!("\n7. Apprentices: child processes, one per kind (this program, re-executed), map the index");
    println!("   and are invited over a private local socket to: \"{task}\" (keyword: fsync).");
    let ask = crate::apprentices::Ask {
        task: task.into(),
        specialization: None,
        keywords: vec!["fsync".into()],
        context: apprentice_core::Context { limit: Some(5), ..Default::default() },
        timeout: std::time::Duration::from_secs(10),
        embedding: Vec::new(),
    };
    let outcomes = crate::apprentices::invite(apprentice_kinds::BuiltIn::ALL, &dir, &ask);
    for o in &outcomes {
        crate::apprentices::print(o, "   ");
    }
    let declined = crate::apprentices::invite(
        apprentice_kinds::BuiltIn::from_name("navigator").as_slice(),
        &dir,
        &crate::apprentices::Ask { specialization: Some("database optimization".into()), ..ask },
    );
    println!("\n8. Invited to a task outside its specialization, an apprentice declines:");
    for o in &declined {
        crate::apprentices::print(o, "   ");
    }
    if let Some(e) = outcomes.iter().chain(&declined).find_map(|o| o.result.as_ref().err()) {
        anyhow::bail!("an apprentice failed: {e}");
    }
    Ok(())
}
