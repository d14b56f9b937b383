//! `cargo xtask bench-replication`: replication through a real `nats-server -js` on loopback.
//!
//! 1. Store acknowledged on the writer (durable locally and pushed: the commit acknowledged by
//!    JetStream, the head moved) → searchable on a replica (`mcs replica` following, a reader
//!    in this process mapping the replica's files): p50/p99 over `--stores` single stores.
//! 2. The same across network namespaces (as root): NATS on host A (a namespace), the writer
//!    (this process) reaching it over a veth pair, the replica on host B over another: each
//!    change crosses two links, as between three hosts.
//! 3. A store of `--n` memories replicated from scratch: `mcs replica --once` into an empty
//!    directory, process start to exit (records and index).
//! 4. `--kills` writer-host kills with promotion: each round a replica follows, the writer
//!    (`mcs add --nats` processes) acknowledges a few memories, one more `mcs add` is SIGKILLed
//!    at a random point, the follower too, the writer's directory is lost, and `mcs promote`
//!    makes the replica the writer; every memory acknowledged so far must be there.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use benches::corpus;
use memory_store::{CommitLogOf as Log, Memory, MemoryStore, Uuid};
use replication::{trace, Nats};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(dir: &Path) -> anyhow::Result<(Server, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server (apt-get install nats-server)")?;
    let server = Server(child);
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err()
        || Nats::connect(&url, Duration::from_secs(2)).is_err()
    {
        if Instant::now() > deadline {
            bail!("nats-server never got ready");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((server, url))
}

fn memory(c: &corpus::CorpusMemory) -> Memory {
    let mut m = Memory::new(c.domain, c.question.clone());
    m.id = Uuid::from_bytes(c.id);
    m.insights = c.insights.clone();
    m.synthesis = c.synthesis.clone();
    m.score = c.score();
    m.sacred = c.sacred;
    m
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let mut stores = 1000usize;
    let mut n = 100_000usize;
    let mut kills = 100usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--stores" => stores = args.next().context("--stores N")?.parse()?,
            "--n" => n = args.next().context("--n N")?.parse()?,
            "--kills" => kills = args.next().context("--kills N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let mcs = benches::sibling_exe("mcs")?;
    let tmp = tempfile::tempdir()?;

    // 1. Acknowledged on the writer → searchable on the replica, on loopback.
    let (_server, url) = server(&tmp.path().join("nats1"))?;
    let (acks, lags) = follow_latency(&mcs, &tmp.path().join("loop"), &url, &url, None, stores)?;
    report("loopback", stores, &acks, &lags);
    stages(&tmp.path().join("loop/trace"), "w.push")?;

    // 2. The same across network namespaces.
    if is_root() {
        let hosts = Hosts::new(&tmp.path().join("nats-ns"))?;
        let (acks, lags) = follow_latency(
            &mcs,
            &tmp.path().join("ns"),
            &hosts.writer_url,
            &hosts.replica_url,
            Some(&hosts.b),
            stores,
        )?;
        report(
            "network namespaces (writer → veth → host A's NATS → veth → host B)",
            stores,
            &acks,
            &lags,
        );
        stages(&tmp.path().join("ns/trace"), "w.push")?;
    } else {
        println!("network namespaces: skipped (needs root)");
    }

    // 3. A large store replicated from scratch.
    let (_server2, url2) = server(&tmp.path().join("nats2"))?;
    let nats2 = Nats::connect(&url2, Duration::from_secs(5))?;
    let big_dir = tmp.path().join("big");
    let mut big = MemoryStore::open(&big_dir)?;
    let corpus = corpus::generate(n, 7);
    for chunk in corpus.memories.chunks(16_384) {
        big.store_batch(chunk.iter().map(memory).collect())?;
    }
    let started = Instant::now();
    let pushed = nats2.push(&big_dir, &Log(&big))?;
    let push_time = started.elapsed();
    let fresh = tmp.path().join("fresh");
    let fresh_trace = tmp.path().join("fresh-trace");
    let started = Instant::now();
    trace::trace_to(Some(&fresh_trace))?;
    trace::stage("b.spawn", 0);
    let status = Command::new(&mcs)
        .env(trace::TRACE_ENV, &fresh_trace)
        .arg("--store")
        .arg(&fresh)
        .args(["--nats", &url2, "replica", "--once"])
        .stdout(Stdio::null())
        .status()?;
    let from_scratch = started.elapsed();
    trace::stage("b.exited", 0);
    trace::trace_to(None)?;
    if !status.success() {
        bail!("mcs replica --once failed");
    }
    let replicated = MemoryStore::open_read_only(&fresh)?.stats()?.memories;
    if replicated != n as u64 {
        bail!("replicated {replicated} of {n} memories");
    }
    println!(
        "{n} memories: pushed from scratch in {:.2} s ({} commits, {} segments); replicated \
         into an empty replica (mcs replica --once, records and index) in {:.2} s",
        push_time.as_secs_f64(),
        pushed.commits,
        pushed.segments,
        from_scratch.as_secs_f64()
    );
    stages(&fresh_trace, "b.spawn")?;

    // 4. Writer-host kills with promotion.
    if kills > 0 {
        let (_server3, url3) = server(&tmp.path().join("nats3"))?;
        failover(&mcs, &tmp.path().join("kills"), &url3, kills)?;
    }
    Ok(())
}

fn report(label: &str, stores: usize, acks: &[Duration], lags: &[Duration]) {
    println!(
        "{label}: single stores: {stores}; store+push (acknowledged) p50 {:.1} ms p99 {:.1} ms; \
         acknowledged → searchable on the replica p50 {:.1} ms p99 {:.1} ms (max {:.1} ms)",
        ms(percentile(acks, 0.5)),
        ms(percentile(acks, 0.99)),
        ms(percentile(lags, 0.5)),
        ms(percentile(lags, 0.99)),
        ms(percentile(lags, 1.0)),
    );
}

/// The writer in this process (a `MemoryStore` and a kept connection to `writer_url`) stores
/// `stores` memories one by one; a `mcs replica` (in the namespace `netns`, if any) follows
/// through `replica_url`; a reader here polls the replica's files. Returns each store's time
/// until acknowledged, and from then until the replica's reader finds it; both sorted.
fn follow_latency(
    mcs: &Path,
    dir: &Path,
    writer_url: &str,
    replica_url: &str,
    netns: Option<&str>,
    stores: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let nats = Nats::connect(writer_url, Duration::from_secs(5))?;
    std::fs::create_dir_all(dir)?;
    let trace_file = dir.join("trace");
    let writer_dir = dir.join("writer");
    let replica_dir = dir.join("replica");
    let mut writer = MemoryStore::open(&writer_dir)?;
    let corpus = corpus::generate(stores, 20);
    // One memory first, so that the replica has a store to map.
    writer.store(Memory::new("bench", "the first replicated memory"))?;
    nats.push(&writer_dir, &Log(&writer))?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(mcs);
            c
        }
        None => Command::new(mcs),
    };
    let follower = cmd
        .env(trace::TRACE_ENV, &trace_file)
        .arg("--store")
        .arg(&replica_dir)
        .args(["--nats", replica_url, "replica", "--name", "bench"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let _follower = Killed(follower);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replica_dir.join("HEAD").exists() {
        if Instant::now() > deadline {
            bail!("the replica never published");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut reader = shm_reader::Reader::open(&replica_dir)?;
    let (mut acks, mut lags) = (Vec::new(), Vec::new());
    trace::trace_to(Some(&trace_file))?;
    for c in &corpus.memories {
        let start = Instant::now();
        let id = writer.store(memory(c))?;
        let pushed = nats.push(&writer_dir, &Log(&writer))?;
        let acked = Instant::now();
        let generation = pushed.generation.unwrap_or(0);
        trace::stage("b.ack", generation);
        let deadline = acked + Duration::from_secs(30);
        loop {
            reader.refresh()?;
            if reader.snapshot().get(id.as_bytes()).is_some() {
                break;
            }
            if Instant::now() > deadline {
                bail!("memory {id} never reached the replica");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        trace::stage("b.found", generation);
        acks.push(acked - start);
        lags.push(acked.elapsed());
    }
    trace::trace_to(None)?;
    acks.sort();
    lags.sort();
    Ok((acks, lags))
}

/// Reads a trace file (`replication::trace`: `<unix us> <pid> <stage> <generation>` lines from
/// this process and the replica's) and prints, for each stage, when it happened after `origin`
/// of the same generation (or of the whole file with generation 0 stages), p50 and p99 over the
/// generations that have both: where the time goes.
fn stages(path: &Path, origin: &str) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    let text = std::fs::read_to_string(path)?;
    // generation → stage → first time (µs).
    let mut by_gen: BTreeMap<u64, BTreeMap<String, i128>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [us, _pid, stage, generation] = f[..] else { continue };
        let (Ok(us), Ok(generation)) = (us.parse::<i128>(), generation.parse::<u64>()) else {
            continue;
        };
        by_gen.entry(generation).or_default().entry(stage.to_owned()).or_insert(us);
    }
    // Stages of generation 0 (a from-scratch run's own marks) count against every generation.
    let common = by_gen.remove(&0).unwrap_or_default();
    let mut offsets: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for stages in by_gen.values() {
        let mut all = common.clone();
        all.extend(stages.iter().map(|(k, v)| (k.clone(), *v)));
        let Some(&t0) = all.get(origin) else { continue };
        for (stage, &t) in &all {
            offsets.entry(stage.clone()).or_default().push((t - t0) as f64 / 1e3);
        }
    }
    let mut rows: Vec<(f64, f64, usize, String)> = offsets
        .into_iter()
        .map(|(stage, mut v)| {
            v.sort_by(f64::total_cmp);
            let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
            (p(0.5), p(0.99), v.len(), stage)
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("  stages after {origin} (ms, p50 / p99, generations):");
    for (p50, p99, n, stage) in rows {
        println!("    {stage:<12} {p50:>9.2} {p99:>9.2} {n:>6}");
    }
    Ok(())
}

/// A child process SIGKILLed and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three hosts as network namespaces: this process's (the writer's), A (NATS) and B (the
/// replica), joined root ↔ A and A ↔ B by veth pairs; removed when dropped.
struct Hosts {
    a: String,
    b: String,
    root_veth: String,
    writer_url: String,
    replica_url: String,
    nats: Option<Killed>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Hosts {
    fn new(nats_dir: &Path) -> anyhow::Result<Hosts> {
        let pid = std::process::id();
        let net = 100 + pid % 150;
        let (a, b) = (format!("rb{pid}a"), format!("rb{pid}b"));
        let mut hosts = Hosts {
            a: a.clone(),
            b: b.clone(),
            root_veth: format!("rb{pid}w"),
            writer_url: format!("nats://10.{net}.1.2:4222"),
            replica_url: format!("nats://10.{net}.2.1:4222"),
            nats: None,
        };
        ip(&["netns", "add", &a])?;
        ip(&["netns", "add", &b])?;
        let (wa, ab, ba) = (&hosts.root_veth, format!("rb{pid}x"), format!("rb{pid}y"));
        ip(&[
            "link",
            "add",
            wa,
            "type",
            "veth",
            "peer",
            "name",
            &format!("rb{pid}v"),
            "netns",
            &a,
        ])?;
        ip(&["link", "add", &ab, "netns", &a, "type", "veth", "peer", "name", &ba, "netns", &b])?;
        ip(&["addr", "add", &format!("10.{net}.1.1/24"), "dev", wa])?;
        ip(&["link", "set", wa, "up"])?;
        ip(&["-n", &a, "addr", "add", &format!("10.{net}.1.2/24"), "dev", &format!("rb{pid}v")])?;
        ip(&["-n", &a, "link", "set", &format!("rb{pid}v"), "up"])?;
        ip(&["-n", &a, "addr", "add", &format!("10.{net}.2.1/24"), "dev", &ab])?;
        ip(&["-n", &a, "link", "set", &ab, "up"])?;
        ip(&["-n", &a, "link", "set", "lo", "up"])?;
        ip(&["-n", &b, "addr", "add", &format!("10.{net}.2.2/24"), "dev", &ba])?;
        ip(&["-n", &b, "link", "set", &ba, "up"])?;
        ip(&["-n", &b, "link", "set", "lo", "up"])?;
        let child = Command::new("ip")
            .args(["netns", "exec", &a, "nats-server", "-js", "-a", "0.0.0.0", "-p", "4222"])
            .arg("-sd")
            .arg(nats_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server on host A")?;
        hosts.nats = Some(Killed(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Nats::connect(&hosts.writer_url, Duration::from_secs(2)).is_err() {
            if Instant::now() > deadline {
                bail!("NATS on host A never answered");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.nats.take();
        let _ = Command::new("ip").args(["link", "del", &self.root_veth]).status();
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A small pseudo-random generator (xorshift64*), seeded from the clock, for kill points.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        Dice(t.map_or(7, |t| t.as_nanos() as u64) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Whether `mcs add` said it stored locally only (NATS unreachable): not acknowledged by NATS.
fn not_replicated(stderr: &[u8]) -> bool {
    String::from_utf8_lossy(stderr).contains("not replicated")
}

fn mcs_cmd(mcs: &Path, store: &Path, url: &str) -> Command {
    let mut c = Command::new(mcs);
    c.arg("--store").arg(store).args(["--nats", url]).env_remove("MCS_NATS");
    // Replication is measured, not embedding: no model, so `mcs add` does not embed after it.
    c.env("MCS_MODEL_DIR", "/nonexistent/replication-bench-without-a-model");
    c
}

/// `kills` rounds of: a replica follows, the writer acknowledges 1-3 memories, one more `mcs
/// add` is SIGKILLed at a random point of its run, the follower too, the writer's directory is
/// lost, `mcs promote` on the replica; then every memory acknowledged so far is looked up.
fn failover(mcs: &Path, dir: &Path, url: &str, kills: usize) -> anyhow::Result<()> {
    let mut dice = Dice::new();
    let mut writer = dir.join("host0");
    let mut acknowledged: Vec<Uuid> = Vec::new();
    let (mut promotions, mut lost, mut killed_mid_run) = (Vec::new(), 0usize, 0usize);
    let started = Instant::now();
    for round in 1..=kills {
        let replica = dir.join(format!("host{round}"));
        let follower = mcs_cmd(mcs, &replica, url)
            .arg("replica")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut follower = Killed(follower);
        let mut took = Duration::from_millis(1);
        for i in 0..1 + dice.below(3) {
            let t = Instant::now();
            let out = mcs_cmd(mcs, &writer, url)
                .args(["add", "--domain", "kills", "--question"])
                .arg(format!("Round {round} acknowledged memory {i}"))
                .output()?;
            took = t.elapsed();
            if !out.status.success() || not_replicated(&out.stderr) {
                bail!("round {round}: mcs add: {}", String::from_utf8_lossy(&out.stderr));
            }
            acknowledged.push(String::from_utf8_lossy(&out.stdout).trim().parse()?);
        }
        let mut victim = mcs_cmd(mcs, &writer, url)
            .args(["add", "--domain", "kills", "--question"])
            .arg(format!("Round {round} memory of the killed writer"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // The random point in the victim's run where it dies (SIGKILL).
        std::thread::sleep(Duration::from_micros(dice.below(took.as_micros() as u64 + 1)));
        let finished = victim.try_wait()?.is_some();
        if !finished {
            victim.kill()?;
            killed_mid_run += 1;
        }
        let out = victim.wait_with_output()?;
        if finished && out.status.success() && !not_replicated(&out.stderr) {
            acknowledged.push(String::from_utf8_lossy(&out.stdout).trim().parse()?);
        }
        let _ = follower.0.kill();
        let _ = follower.0.wait();
        std::fs::remove_dir_all(&writer)?;
        let t = Instant::now();
        let out = mcs_cmd(mcs, &replica, url).arg("promote").output()?;
        promotions.push(t.elapsed());
        if !out.status.success() {
            bail!("round {round}: mcs promote: {}", String::from_utf8_lossy(&out.stderr));
        }
        let store = MemoryStore::open_read_only(&replica)?;
        for id in &acknowledged {
            if store.get(*id)?.is_none() {
                lost += 1;
                eprintln!("round {round}: acknowledged memory {id} lost");
            }
        }
        writer = replica;
    }
    promotions.sort();
    println!(
        "writer-host kills with promotion: {kills} (SIGKILL mid-run {killed_mid_run}, after the \
         store finished {}); {} memories acknowledged, {lost} lost after the promotions; \
         promotion (mcs promote) p50 {:.0} ms p99 {:.0} ms; series {:.1} s",
        kills - killed_mid_run,
        acknowledged.len(),
        ms(percentile(&promotions, 0.5)),
        ms(percentile(&promotions, 0.99)),
        started.elapsed().as_secs_f64()
    );
    if lost > 0 {
        bail!("{lost} acknowledged memories lost");
    }
    Ok(())
}

/// Whether this process runs as root (network namespaces need it; never on Windows).
fn is_root() -> bool {
    #[cfg(unix)]
    {
        rustix::process::geteuid().is_root()
    }
    #[cfg(not(unix))]
    {
        false
    }
}
