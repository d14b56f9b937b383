//! `mcs invite`, `mcs circle` and the hidden `mcs apprentice KIND`: apprentices are this very
//! program re-executed with the hidden subcommand, so `cargo run -p memory-store` needs no
//! second binary.

use std::path::Path;
use std::time::{Duration, Instant};

use apprentice_core::{Apprentice, Invitation, Response, SpawnOptions};
use apprentice_kinds::BuiltIn;

/// One apprentice's part in an invitation.
pub(crate) struct Outcome {
    pub kind: BuiltIn,
    pub pid: Option<u32>,
    pub spawn_ms: f64,
    pub took_ms: f64,
    pub result: Result<Response, String>,
}

/// What every apprentice is asked; the specialization defaults to each kind's own.
pub(crate) struct Ask {
    pub task: String,
    pub context: String,
    pub specialization: Option<String>,
    pub keywords: Vec<String>,
    pub sacred_only: bool,
    pub limit: u32,
    pub timeout: Duration,
}

fn self_command(kind: BuiltIn) -> anyhow::Result<std::process::Command> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("finding this program to start an apprentice: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["apprentice", kind.name()]);
    Ok(cmd)
}

fn one(kind: BuiltIn, store: &Path, ask: &Ask) -> Outcome {
    let started = Instant::now();
    let spawned = self_command(kind).and_then(|cmd| {
        Apprentice::spawn(cmd, store, &SpawnOptions::default())
            .map_err(|e| anyhow::Error::new(e).context(format!("starting the {kind} apprentice")))
    });
    let spawn_ms = started.elapsed().as_secs_f64() * 1e3;
    let apprentice = match spawned {
        Ok(a) => a,
        Err(e) => {
            return Outcome {
                kind,
                pid: None,
                spawn_ms,
                took_ms: 0.0,
                result: Err(format!("{e:#}")),
            }
        }
    };
    let invitation = Invitation {
        task: ask.task.clone(),
        context: ask.context.clone(),
        specialization: ask.specialization.clone().unwrap_or_else(|| kind.specialization().into()),
        keywords: ask.keywords.clone(),
        sacred_only: ask.sacred_only,
        limit: ask.limit,
    };
    let t = Instant::now();
    // `{:#}` prints the error with its causes, one line.
    let result = apprentice
        .invite(&invitation, ask.timeout)
        .map_err(|e| format!("{:#}", anyhow::Error::new(e)));
    let took_ms = t.elapsed().as_secs_f64() * 1e3;
    let pid = Some(apprentice.pid());
    // Shutdown, grace, kill; the child is reaped either way.
    let _ = apprentice.terminate();
    Outcome { kind, pid, spawn_ms, took_ms, result }
}

/// Spawns one apprentice per kind, invites them all at once, terminates them, and returns the
/// outcomes in the order of `kinds`.
pub(crate) fn invite(kinds: &[BuiltIn], store: &Path, ask: &Ask) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = kinds.iter().map(|&k| s.spawn(move || one(k, store, ask))).collect();
        handles
            .into_iter()
            .zip(kinds)
            .map(|(h, &kind)| {
                h.join().unwrap_or_else(|_| Outcome {
                    kind,
                    pid: None,
                    spawn_ms: 0.0,
                    took_ms: 0.0,
                    result: Err("the invitation thread panicked".into()),
                })
            })
            .collect()
    })
}

pub(crate) fn to_json(o: &Outcome) -> serde_json::Value {
    let mut v = match &o.result {
        Ok(r) => serde_json::to_value(r)
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() })),
        Err(e) => serde_json::json!({ "error": e }),
    };
    if let Some(map) = v.as_object_mut() {
        map.insert("apprentice".into(), serde_json::json!({ "kind": o.kind.name(), "pid": o.pid }));
        map.insert("spawn_ms".into(), serde_json::json!(round2(o.spawn_ms)));
        map.insert("took_ms".into(), serde_json::json!(round2(o.took_ms)));
    }
    v
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn print(o: &Outcome, indent: &str) {
    let pid = o.pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "not started".into());
    match &o.result {
        Err(e) => println!("{indent}{} ({pid}): error: {e}", o.kind),
        Ok(r) => {
            let verdict = if r.accepted { "accepted" } else { "declined" };
            println!(
                "{indent}{} ({pid}, up in {:.1} ms, answered in {:.1} ms) {verdict}, confidence {:.2}: {}",
                o.kind, o.spawn_ms, o.took_ms, r.confidence, r.reason
            );
            for insight in &r.insights {
                println!("{indent}  • {insight}");
            }
            if !r.memories.is_empty() {
                let ids: Vec<String> = r
                    .memories
                    .iter()
                    .take(5)
                    .map(|m| format!("{} ({:.3})", &m.id[..8], m.score))
                    .collect();
                let more = r.memories.len().saturating_sub(5);
                println!(
                    "{indent}  memories: {}{}",
                    ids.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                );
            }
        }
    }
}
