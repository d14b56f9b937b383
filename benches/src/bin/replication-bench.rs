//! `cargo xtask bench-replication`: replication through a real `nats-server -js` on loopback.
//!
//! 1. Store acknowledged on the writer (durable locally and pushed: the commit acknowledged by
//!    JetStream, the head moved) → searchable on a replica (`mcs replica` following, a reader
//!    in this process mapping the replica's files): p50/p99 over `--stores` single stores.
//! 2. A store of `--n` memories replicated from scratch: `mcs replica --once` into an empty
//!    directory, process start to exit (records and index).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use benches::corpus;
use memory_store::{CommitLogOf as Log, Memory, MemoryStore, Uuid};
use replication::Nats;

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
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--stores" => stores = args.next().context("--stores N")?.parse()?,
            "--n" => n = args.next().context("--n N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let mcs = benches::sibling_exe("mcs")?;
    let tmp = tempfile::tempdir()?;

    // 1. Acknowledged on the writer → searchable on the replica.
    let (_server, url) = server(&tmp.path().join("nats1"))?;
    let nats = Nats::connect(&url, Duration::from_secs(5))?;
    let writer_dir = tmp.path().join("writer");
    let replica_dir = tmp.path().join("replica");
    let mut writer = MemoryStore::open(&writer_dir)?;
    let corpus = corpus::generate(stores, 20);
    // One memory first, so that the replica has a store to map.
    writer.store(Memory::new("bench", "the first replicated memory"))?;
    nats.push(&writer_dir, &Log(&writer))?;
    let mut follower = Command::new(&mcs)
        .arg("--store")
        .arg(&replica_dir)
        .args(["--nats", &url, "replica", "--name", "bench"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replica_dir.join("HEAD").exists() {
        if Instant::now() > deadline {
            bail!("the replica never published");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut reader = shm_reader::Reader::open(&replica_dir)?;
    let (mut acks, mut lags) = (Vec::new(), Vec::new());
    for c in &corpus.memories {
        let start = Instant::now();
        let id = writer.store(memory(c))?;
        nats.push(&writer_dir, &Log(&writer))?;
        let acked = Instant::now();
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
        acks.push(acked - start);
        lags.push(acked.elapsed());
    }
    let _ = follower.kill();
    let _ = follower.wait();
    acks.sort();
    lags.sort();
    println!(
        "single stores: {stores}; store+push (acknowledged) p50 {:.1} ms p99 {:.1} ms; \
         acknowledged → searchable on the replica p50 {:.1} ms p99 {:.1} ms (max {:.1} ms)",
        ms(percentile(&acks, 0.5)),
        ms(percentile(&acks, 0.99)),
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99)),
        ms(percentile(&lags, 1.0)),
    );

    // 2. A large store replicated from scratch.
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
    let started = Instant::now();
    let status = Command::new(&mcs)
        .arg("--store")
        .arg(&fresh)
        .args(["--nats", &url2, "replica", "--once"])
        .stdout(Stdio::null())
        .status()?;
    let from_scratch = started.elapsed();
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
    Ok(())
}
