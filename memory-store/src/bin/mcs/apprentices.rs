//! `mcs invite`, `mcs circle` and the hidden `mcs apprentice KIND`: apprentices are this very
//! program re-executed with the hidden subcommand, so `cargo run -p memory-store` needs no
//! second binary.

use std::path::Path;
use std::time::{Duration, Instant};

use apprentice_core::{Apprentice, Context, Invitation, Response, SpawnOptions};
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
    pub specialization: Option<String>,
    pub keywords: Vec<String>,
    pub context: Context,
    pub timeout: Duration,
    /// The task's embedding, when the supervisor computed one (see `semantic`); empty: none.
    pub embedding: Vec<f32>,
}

/// The invitation context of `--context KEY=VALUE` pairs: the typed keys (domain, sacred,
/// since, until, limit, ranking) checked and converted, any other key kept as free-form
/// background. A key given twice or a value that does not parse is an error naming it.
pub(crate) fn context(pairs: &[(String, String)]) -> anyhow::Result<Context> {
    let time = |key: &str, v: &str| -> anyhow::Result<i64> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
            return Ok(t.timestamp_micros());
        }
        let day = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
            anyhow::anyhow!("--context {key}={v}: expected an RFC 3339 time or YYYY-MM-DD")
        })?;
        Ok(day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_micros())
    };
    let mut c = Context::default();
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in pairs {
        anyhow::ensure!(seen.insert(key.as_str()), "--context {key} is given twice");
        match key.as_str() {
            "domain" => c.domain = Some(value.clone()),
            "sacred" => {
                c.sacred_only = match value.as_str() {
                    "true" | "yes" => true,
                    "false" | "no" => false,
                    _ => anyhow::bail!("--context sacred={value}: expected true or false"),
                }
            }
            "since" => c.since_micros = Some(time(key, value)?),
            "until" => c.until_micros = Some(time(key, value)?),
            "limit" => {
                let n: u32 = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    anyhow::anyhow!("--context limit={value}: expected a whole number from 1")
                })?;
                c.limit = Some(n);
            }
            "ranking" => {
                anyhow::ensure!(
                    apprentice_kinds::RANKINGS.contains(&value.as_str()),
                    "--context ranking={value}: known rankings are {}",
                    apprentice_kinds::RANKINGS.join(", ")
                );
                c.ranking = Some(value.clone());
            }
            _ => {
                c.entries.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(c)
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
        specialization: ask.specialization.clone().unwrap_or_else(|| kind.specialization().into()),
        keywords: ask.keywords.clone(),
        context: ask.context.clone(),
        embedding: ask.embedding.clone(),
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

/// `mcs circle --watch`: a restart-capable circle of the kinds that watch, each holding the
/// task as a standing interest from now on; prints each push as it arrives (a line, or a JSON
/// object per line) until the process is interrupted.
pub(crate) fn watch(store: &Path, ask: &Ask, json: bool) -> anyhow::Result<std::process::ExitCode> {
    use std::io::Write as _;
    let mut circle = apprentice_core::Circle::new(
        store,
        SpawnOptions::default(),
        apprentice_core::RestartPolicy::default(),
    );
    let after = chrono::Utc::now().timestamp_micros();
    let mut watching = Vec::new();
    for &kind in BuiltIn::ALL {
        let interest = Invitation {
            task: ask.task.clone(),
            specialization: ask
                .specialization
                .clone()
                .unwrap_or_else(|| kind.specialization().into()),
            keywords: ask.keywords.clone(),
            context: ask.context.clone(),
            embedding: ask.embedding.clone(),
        };
        let command = self_command(kind)?;
        let program = command.get_program().to_owned();
        circle
            .add(kind.name(), move || {
                let mut c = std::process::Command::new(&program);
                c.args(["apprentice", kind.name()]);
                c
            })
            .map_err(|e| {
                anyhow::Error::new(e).context(format!("starting the {kind} apprentice"))
            })?;
        match circle.watch(kind.name(), &interest, after, ask.timeout) {
            Ok(generation) => watching.push(format!(
                "{kind} (pid {}) from generation {generation}",
                circle.pid(kind.name()).unwrap_or_default()
            )),
            Err(apprentice_core::Error::Worker(_)) => circle.remove(kind.name()),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("{kind} watching"))),
        }
    }
    anyhow::ensure!(!watching.is_empty(), "no apprentice kind watches");
    let mut out = std::io::stdout().lock();
    if !json {
        let header = writeln!(out, "watching for [{}]: {}", ask.task, watching.join(", "));
        if header.and_then(|()| out.flush()).is_err() {
            circle.terminate();
            return Ok(std::process::ExitCode::SUCCESS);
        }
    }
    loop {
        let Some((name, push)) = circle.next_push(Duration::from_secs(1)) else {
            circle.heal();
            continue;
        };
        for (m, line) in push.memories.iter().zip(&push.insights) {
            let written = if json {
                let v = serde_json::json!({
                    "apprentice": name, "generation": push.generation, "id": m.id,
                    "score": m.score, "memory": line,
                });
                writeln!(out, "{v}")
            } else {
                writeln!(out, "{name} (generation {}): {line} ({})", push.generation, &m.id[..8])
            };
            // A closed pipe ends the watch quietly.
            if written.and_then(|()| out.flush()).is_err() {
                circle.terminate();
                return Ok(std::process::ExitCode::SUCCESS);
            }
        }
    }
}
