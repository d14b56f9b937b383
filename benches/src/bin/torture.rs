//! `torture --kills N`: a circle of four navigator processes over a 10,000-memory index; one
//! member at a time is SIGKILLed at random, the next invitation must report it lost (never
//! hang, never retry), the circle restarts it, and it must answer again. Prints the figures.
//! `cargo xtask torture` runs it after the writer kill test.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use apprentice_core::{Circle, Error, Invitation, RestartPolicy, SpawnOptions};
use index_publisher::Publisher;
use semantic_index::SegmentBuilder;

const MEMBERS: usize = 4;

fn zombies_of(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest: Vec<&str> =
                stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
            rest.first() == Some(&"Z") && rest.get(1) == Some(&pid.to_string().as_str())
        })
        .count()
}

/// Kills the process `pid` at once, without letting it clean up (SIGKILL).
#[cfg(unix)]
fn kill_now(pid: u32) -> anyhow::Result<()> {
    let pid = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw).context("pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
    Ok(())
}

/// Kills the process `pid` at once, without letting it clean up (`TerminateProcess`).
#[cfg(windows)]
fn kill_now(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("taskkill").args(["/F", "/PID", &pid.to_string()]).status()?;
    ensure!(status.success(), "taskkill /F /PID {pid}: {status}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kills: usize = match args.iter().position(|a| a == "--kills").and_then(|i| args.get(i + 1))
    {
        Some(k) => k.parse().with_context(|| format!("--kills {k:?}"))?,
        None => 200,
    };
    let exe = benches::sibling_exe("apprentice")?;
    let dir = tempfile::tempdir()?;
    let corpus = benches::corpus::generate(10_000, 42);
    let mut publisher = Publisher::open(dir.path())?;
    let mut b = SegmentBuilder::new();
    for m in &corpus.memories {
        b.add(&m.to_document())?;
    }
    let entry = publisher.write_segment(&b)?;
    publisher.publish(1, vec![entry])?;

    // Restarts are the point here, so the limit is generous; backoff stays short.
    let policy = RestartPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        max_restarts: usize::MAX,
        ..RestartPolicy::default()
    };
    let mut circle = Circle::new(dir.path(), SpawnOptions::default(), policy);
    for i in 0..MEMBERS {
        let exe = exe.clone();
        circle.add(format!("navigator-{i}"), move || {
            let mut c = Command::new(&exe);
            c.arg("navigator");
            c
        })?;
    }
    let invitation = |q: &[String]| Invitation {
        task: q.join(" "),
        specialization: "semantic memory navigation".into(),
        ..Invitation::default()
    };
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut lost, mut recoveries) = (0usize, Vec::new());
    for kill in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let victim = (seed % MEMBERS as u64) as usize;
        let members = circle.members();
        let Some(pid) = members[victim].1 else {
            bail!("kill {kill}: {} is down", members[victim].0)
        };
        let killed_at = Instant::now();
        kill_now(pid)?;
        // Give the kernel a moment so that the death, not a race, is what the invitation meets.
        std::thread::sleep(Duration::from_millis(2 + seed % 5));
        let q = &corpus.queries[kill % corpus.queries.len()];
        let results = circle.invite_all(&invitation(q), timeout);
        for (i, (name, r)) in results.iter().enumerate() {
            match (i == victim, r) {
                (true, Err(Error::Lost { .. })) => lost += 1,
                (true, other) => bail!("kill {kill}: {name} should be lost, got {other:?}"),
                (false, Ok(resp)) => ensure!(resp.accepted, "kill {kill}: {name} declined"),
                (false, Err(e)) => bail!("kill {kill}: healthy {name} failed: {e}"),
            }
        }
        // The restarted member answers again.
        let results = circle.invite_all(&invitation(q), timeout);
        let (name, r) = &results[victim];
        let resp = r.as_ref().map_err(|e| anyhow::anyhow!("kill {kill}: restarted {name}: {e}"))?;
        ensure!(resp.accepted, "kill {kill}: restarted {name} declined");
        recoveries.push(killed_at.elapsed().as_secs_f64() * 1e3);
        let new_pid = circle.members()[victim].1;
        ensure!(new_pid.is_some_and(|p| p != pid), "kill {kill}: {name} was not restarted");
    }
    let zombies = zombies_of(std::process::id());
    let pids: Vec<u32> = circle.members().iter().filter_map(|m| m.1).collect();
    circle.terminate();
    let leftover = pids.iter().filter(|p| Path::new(&format!("/proc/{p}")).exists()).count();
    recoveries.sort_by(f64::total_cmp);
    let median = recoveries.get(recoveries.len() / 2).copied().unwrap_or(f64::NAN);
    let worst = recoveries.last().copied().unwrap_or(f64::NAN);
    println!(
        "apprentice torture: {kills} SIGKILLs across a circle of {MEMBERS}; {lost} in-flight \
         invitations reported lost (none retried, none hung); every victim restarted and answered; \
         kill → answering again: median {median:.1} ms, worst {worst:.1} ms; zombies {zombies}; \
         processes left after terminate {leftover}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ensure!(lost == kills, "{lost} lost of {kills}");
    ensure!(zombies == 0 && leftover == 0, "zombies {zombies}, left over {leftover}");
    Ok(())
}
