//! Replication through a real `nats-server -js` (one per test, on a free loopback port, with its
//! own storage directory): `mcs --nats` writers, `mcs replica` followers, `mcs promote`. Every
//! wait polls for an event (the server's port, a file, a process's exit) with a deadline that
//! fails the test; nothing sleeps a guessed time.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use replication::Nats;

/// Fails a test that waits longer than this for something that should happen.
const DEADLINE: Duration = Duration::from_secs(60);
/// Between two looks at something a test waits for.
const POLL: Duration = Duration::from_millis(20);

/// A `nats-server -js` on a loopback port, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Server::start_on(dir.join("nats"), port)
    }

    fn start_on(store: PathBuf, port: u16) -> Server {
        let child = Server::spawn(&store, port);
        let server = Server { child, port, store };
        server.wait_ready();
        server
    }

    fn spawn(store: &Path, port: u16) -> Child {
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (.ci/run installs it)")
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Waits until the server answers JetStream requests.
    fn wait_ready(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Nats::connect(&self.url(), Duration::from_secs(2)).is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "nats-server on port {} never got ready", self.port);
            std::thread::sleep(POLL);
        }
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and storage.
    fn restart(&mut self) {
        self.kill();
        self.child = Server::spawn(&self.store, self.port);
        self.wait_ready();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where no model is: these tests measure replication, not embedding (a debug build embedding
/// 20,000 memories takes many minutes).
const NO_MODEL: &str = "/nonexistent/mcs-tests-without-a-model";
fn mcs(store: &Path, nats: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcs"));
    cmd.arg("--store").arg(store).env_remove("MCS_NATS").env_remove("MCS_STORE");
    cmd.env("MCS_MODEL_DIR", NO_MODEL);
    if let Some(url) = nats {
        cmd.arg("--nats").arg(url);
    }
    cmd.args(args).output().expect("running mcs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "mcs failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn add(store: &Path, nats: Option<&str>, question: &str) -> String {
    ok(mcs(store, nats, &["add", "--domain", "replication", "--question", question]))
        .trim()
        .to_owned()
}

/// The ids a search on `store` returns.
fn search(store: &Path, words: &str) -> Vec<String> {
    let out = ok(mcs(store, None, &["search", words, "--json", "--limit", "100000"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()).collect()
}

fn memories(store: &Path) -> u64 {
    let out = ok(mcs(store, None, &["stats", "--json"]));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["memories"].as_u64().unwrap()
}

/// Writes `n` memories as JSON Lines, each with the word `apple` and its number.
fn lines(path: &Path, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "{{\"domain\":\"bulk\",\"question\":\"apple number {i} of the orchard\",\
             \"insights\":[\"insight {i} about replicated apples\"]}}\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// Segment (and content) files in `store` that no manifest file names.
fn unnamed_segments(store: &Path) -> Vec<String> {
    let mut named = Vec::new();
    for e in std::fs::read_dir(store.join("manifests")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let m = semantic_index::layout::Manifest::from_bytes(&bytes).unwrap();
        for s in m.segments {
            named.push(semantic_index::content::content_file_name(&s.file));
            named.push(s.file);
        }
    }
    std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !named.contains(n))
        .collect()
}

#[test]
fn a_replica_catches_up_and_searches_locally() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    let (writer, replica) = (dir.path().join("writer"), dir.path().join("replica"));
    let a = add(&writer, Some(&url), "How does a replica follow its writer?");
    let b = add(&writer, Some(&url), "Which host answers the apprentices?");
    ok(mcs(&replica, Some(&url), &["replica", "--once", "--name", "r1"]));
    assert_eq!(search(&replica, "replica follow writer"), vec![a.clone()]);
    assert_eq!(memories(&replica), 2);
    // The replica's records hold the commits too: a memory reads back whole.
    let got = ok(mcs(&replica, None, &["get", &b, "--json"]));
    assert!(got.contains("Which host answers"), "{got}");
    // Forget on the writer, catch up again: gone on the replica; nothing unnamed is kept.
    ok(mcs(&writer, Some(&url), &["forget", &a]));
    let c = add(&writer, Some(&url), "A third memory about replica hosts");
    ok(mcs(&replica, Some(&url), &["replica", "--once", "--name", "r1"]));
    assert_eq!(search(&replica, "replica follow writer"), vec![c]);
    assert_eq!(memories(&replica), 2);
    assert!(unnamed_segments(&replica).is_empty(), "{:?}", unnamed_segments(&replica));
    ok(mcs(&replica, None, &["verify"]));
    // Lag per replica.
    let stats = ok(mcs(&writer, Some(&url), &["stats"]));
    assert!(stats.contains("replica r1: commit 4 (lag 0 commits)"), "{stats}");
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    add(&dir.path().join("first"), Some(&url), "The first writer's memory");
    let out = mcs(
        &dir.path().join("second"),
        Some(&url),
        &["add", "--domain", "d", "--question", "A second writer's memory"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replication refused"), "{err}");
}

#[test]
fn unreachable_nats_warns_and_publishing_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let url = server.url();
    let (writer, replica) = (dir.path().join("writer"), dir.path().join("replica"));
    let a = add(&writer, Some(&url), "Stored while NATS was up");
    server.kill();
    let out = mcs(
        &writer,
        Some(&url),
        &["add", "--domain", "d", "--question", "Stored while NATS was down"],
    );
    assert!(out.status.success(), "local work continues");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not replicated yet") && err.contains("unreachable"), "{err}");
    let b = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    server.restart();
    // The next write catches up with what was missed.
    let c = add(&writer, Some(&url), "Stored after NATS came back");
    ok(mcs(&replica, Some(&url), &["replica", "--once"]));
    let mut found = search(&replica, "stored nats");
    found.sort();
    let mut expected = vec![a, b, c];
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn nats_killed_mid_upload_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let url = server.url();
    let (writer, replica) = (dir.path().join("writer"), dir.path().join("replica"));
    let input = dir.path().join("bulk.jsonl");
    lines(&input, 20_000);
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", NO_MODEL)
        .arg("--store")
        .arg(&writer)
        .args(["--nats", &url, "ingest"])
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Readiness: the upload has begun when the stream of commits holds bytes on disk.
    let stream_dir = server.store.join("jetstream");
    let deadline = Instant::now() + DEADLINE;
    let uploading = loop {
        if dir_bytes(&stream_dir) > 64 << 10 {
            break true;
        }
        if ingest.try_wait().unwrap().is_some() {
            break false;
        }
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(POLL);
    };
    server.kill();
    let status = ingest.wait().unwrap();
    assert!(status.success(), "the ingest is durable locally whatever NATS does");
    if uploading {
        let mut err = String::new();
        std::io::Read::read_to_string(ingest.stderr.as_mut().unwrap(), &mut err).unwrap();
        // Either the push finished before the kill, or it warned.
        assert!(err.is_empty() || err.contains("not replicated yet"), "{err}");
    }
    server.restart();
    ok(mcs(&writer, Some(&url), &["sync"]));
    ok(mcs(&replica, Some(&url), &["replica", "--once"]));
    assert_eq!(memories(&replica), 20_000);
    assert_eq!(search(&replica, "orchard").len(), 20_000);
    ok(mcs(&replica, None, &["verify"]));
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

#[test]
fn a_replica_killed_mid_download_publishes_nothing_partial_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    let (writer, replica) = (dir.path().join("writer"), dir.path().join("replica"));
    let input = dir.path().join("bulk.jsonl");
    lines(&input, 20_000);
    ok(mcs(&writer, Some(&url), &["ingest", input.to_str().unwrap()]));
    let mut follower = follow(&replica, &url);
    // Readiness: the replica has begun (its records exist), then kill it wherever it is.
    let deadline = Instant::now() + DEADLINE;
    while !replica.join("records").is_dir() {
        assert!(Instant::now() < deadline, "the replica never started");
        std::thread::sleep(POLL);
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    // Whatever it left: HEAD, if any, names only whole, verified segments.
    if let Ok(Some((_, manifest))) = semantic_index::layout::read_head(&replica) {
        for s in &manifest.segments {
            let bytes = std::fs::read(replica.join("segments").join(&s.file)).unwrap();
            index_publisher::verify_segment(&bytes, s.checksum).unwrap();
        }
    }
    ok(mcs(&replica, Some(&url), &["replica", "--once"]));
    assert_eq!(memories(&replica), 20_000);
    ok(mcs(&replica, None, &["verify"]));
}

#[test]
fn a_corrupted_object_is_refused_and_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    let (writer, replica) = (dir.path().join("writer"), dir.path().join("replica"));
    add(&writer, Some(&url), "A memory whose segment will be damaged in NATS");
    let nats = Nats::connect(&url, Duration::from_secs(5)).unwrap();
    let (head, _) = nats.head().unwrap().unwrap();
    let manifest = nats.read_manifest(&head.manifest).unwrap();
    let seg = &manifest.segments[0];
    let name = replication::segment_object(seg.checksum, &seg.file);
    let mut bytes = nats.get_object(&name).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    nats.put_object(&name, &bytes).unwrap();
    let out = mcs(&replica, Some(&url), &["replica", "--once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("segment {} refused", seg.file)), "{err}");
    assert!(!replica.join("HEAD").exists(), "nothing published");
    assert!(!replica.join("segments").join(&seg.file).exists(), "nothing unverified written");
    // A rebuild on the writer publishes new segments: the replica catches up.
    ok(mcs(&writer, Some(&url), &["rebuild"]));
    ok(mcs(&replica, Some(&url), &["replica", "--once"]));
    assert_eq!(memories(&replica), 1);
}

#[test]
fn a_promoted_replica_has_every_acknowledged_memory_and_fences_the_old_writer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    let (writer, replica) = (dir.path().join("writer"), dir.path().join("replica"));
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        acknowledged.push(add(
            &writer,
            Some(&url),
            &format!("Acknowledged memory {i} about promotion"),
        ));
    }
    ok(mcs(&replica, Some(&url), &["replica", "--once"]));
    // More after the replica's last catch-up: it must not lose them either.
    for i in 5..12 {
        acknowledged.push(add(
            &writer,
            Some(&url),
            &format!("Acknowledged memory {i} about promotion"),
        ));
    }
    // The writer host is lost.
    let lost = dir.path().join("writer-lost");
    std::fs::rename(&writer, &lost).unwrap();
    let out = ok(mcs(&replica, Some(&url), &["promote"]));
    assert!(out.contains("promoted: 12 memories"), "{out}");
    let mut found = search(&replica, "acknowledged promotion");
    found.sort();
    acknowledged.sort();
    assert_eq!(found, acknowledged, "0 acknowledged memories lost");
    ok(mcs(&replica, None, &["verify"]));
    // The promoted replica writes and replicates; a new replica follows it.
    let after = add(&replica, Some(&url), "Written by the promoted replica");
    let second = dir.path().join("second");
    ok(mcs(&second, Some(&url), &["replica", "--once"]));
    assert!(search(&second, "promoted replica written").contains(&after));
    assert_eq!(memories(&second), 13);
    // The old writer, back from the dead, is refused.
    std::fs::rename(&lost, &writer).unwrap();
    let out = mcs(&writer, Some(&url), &["add", "--domain", "d", "--question", "A zombie write"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn promotion_replays_the_stream_even_into_an_empty_replica() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    let writer = dir.path().join("writer");
    let ids: Vec<String> =
        (0..3).map(|i| add(&writer, Some(&url), &format!("Memory {i} of the lost host"))).collect();
    let nats = Nats::connect(&url, Duration::from_secs(5)).unwrap();
    assert_eq!(nats.head().unwrap().unwrap().0.commit_seq, 3);
    let fresh = dir.path().join("fresh");
    ok(mcs(&fresh, Some(&url), &["promote"]));
    for id in &ids {
        ok(mcs(&fresh, None, &["get", id]));
    }
}

/// Network namespaces as hosts: host A (NATS and the writer) joined to each replica host by its
/// own veth pair (subnet `10.<net>.<i>.0/24`), all removed when dropped. Needs root (CI runs as
/// root), as the brief's partition tests do.
struct Hosts {
    a: String,
    /// Each replica host: its namespace, its end of the veth pair, and NATS's URL from there.
    replicas: Vec<(String, String, String)>,
    servers: Vec<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Hosts {
    /// `tag` tells apart the hosts of tests running at once in one process.
    fn new(tag: char, net: u32, replicas: usize) -> Hosts {
        let pid = format!("{}{tag}", std::process::id());
        let a = format!("mcs{pid}a");
        let mut hosts = Hosts { a: a.clone(), replicas: Vec::new(), servers: Vec::new() };
        ip(&["netns", "add", &a]);
        ip(&["-n", &a, "link", "set", "lo", "up"]);
        for i in 0..replicas {
            let ns = format!("mcs{pid}r{i}");
            let (va, vr) = (format!("v{pid}a{i}"), format!("v{pid}r{i}"));
            ip(&["netns", "add", &ns]);
            hosts.replicas.push((ns.clone(), vr.clone(), format!("nats://10.{net}.{i}.1:4222")));
            ip(&[
                "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vr, "netns", &ns,
            ]);
            ip(&["-n", &a, "addr", "add", &format!("10.{net}.{i}.1/24"), "dev", &va]);
            ip(&["-n", &ns, "addr", "add", &format!("10.{net}.{i}.2/24"), "dev", &vr]);
            ip(&["-n", &a, "link", "set", &va, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "link", "set", &vr, "up"]);
        }
        hosts
    }

    /// `mcs` run on host `ns`.
    fn mcs(&self, ns: &str, store: &Path, nats: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .env("MCS_MODEL_DIR", NO_MODEL)
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_mcs"), "--store"])
            .arg(store)
            .args(["--nats", nats])
            .args(args)
            .env_remove("MCS_NATS")
            .output()
            .unwrap()
    }

    /// Starts NATS on host A, listening on every address of A, and waits until every replica
    /// host reaches it.
    fn start_nats(&mut self, store: &Path) {
        self.servers.push(
            Command::new("ip")
                .args(["netns", "exec", &self.a, "nats-server", "-js", "-a", "0.0.0.0"])
                .args(["-p", "4222", "-sd"])
                .arg(store)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let probe = store.with_extension("probe");
        for (ns, _, url) in &self.replicas {
            // Readiness: a catch-up from the host succeeds once NATS answers across its link.
            let deadline = Instant::now() + DEADLINE;
            while !self.mcs(ns, &probe, url, &["replica", "--once"]).status.success() {
                assert!(Instant::now() < deadline, "NATS on host A never answered host {ns}");
                std::thread::sleep(POLL);
            }
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in std::iter::once(&self.a).chain(self.replicas.iter().map(|r| &r.0)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn three_hosts_one_writer_two_replicas_with_local_apprentices() {
    let dir = tempfile::tempdir().unwrap();
    let net = 100 + (std::process::id() + 7) % 150;
    let mut hosts = Hosts::new('t', net, 2);
    hosts.start_nats(&dir.path().join("nats"));
    let writer = dir.path().join("writer");
    let url_a = "nats://127.0.0.1:4222";
    let mut ids = Vec::new();
    for q in ["How do three hosts share one index?", "Which replica answers the navigator?"] {
        let out =
            hosts.mcs(&hosts.a, &writer, url_a, &["add", "--domain", "hosts", "--question", q]);
        ids.push(ok(out).trim().to_owned());
    }
    for (i, (ns, _, url)) in hosts.replicas.iter().enumerate() {
        let store = dir.path().join(format!("replica{i}"));
        ok(hosts.mcs(ns, &store, url, &["replica", "--once", "--name", ns]));
        // An apprentice on the replica host answers from the local mapping.
        let out = Command::new("ip")
            .env("MCS_MODEL_DIR", NO_MODEL)
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_mcs"), "--store"])
            .arg(&store)
            .args(["invite", "--kind", "navigator", "--task", "three hosts share index", "--json"])
            .output()
            .unwrap();
        let answer = ok(out);
        assert!(answer.contains(&ids[0]), "host {ns}'s navigator: {answer}");
    }
    let stats = ok(hosts.mcs(&hosts.a, &writer, url_a, &["stats"]));
    for (ns, _, _) in &hosts.replicas {
        assert!(stats.contains(&format!("replica {ns}: commit 2 (lag 0 commits)")), "{stats}");
    }
}

#[test]
fn a_partitioned_replica_serves_what_it_has_and_catches_up_after() {
    let dir = tempfile::tempdir().unwrap();
    let net = 100 + std::process::id() % 150;
    let mut hosts = Hosts::new('p', net, 1);
    hosts.start_nats(&dir.path().join("nats"));
    let (ns_b, veth_b, url) = hosts.replicas[0].clone();
    let url_a = "nats://127.0.0.1:4222";
    let (writer, replica) = (dir.path().join("writer"), dir.path().join("replica"));
    let add_on_a = |q: &str| {
        let out = hosts.mcs(&hosts.a, &writer, url_a, &["add", "--domain", "d", "--question", q]);
        ok(out).trim().to_owned()
    };
    let a = add_on_a("Before the partition, a memory about links");
    ok(hosts.mcs(&ns_b, &replica, &url, &["replica", "--once"]));
    assert_eq!(search(&replica, "partition memory links"), vec![a.clone()]);
    // The link goes down: the writer keeps writing, the replica keeps serving what it has.
    ip(&["-n", &ns_b, "link", "set", &veth_b, "down"]);
    let b = add_on_a("During the partition, a memory about links");
    let out = hosts.mcs(&ns_b, &replica, &url, &["replica", "--once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unreachable"), "{err}");
    assert_eq!(search(&replica, "partition memory links"), vec![a.clone()]);
    // Healed: it catches up.
    ip(&["-n", &ns_b, "link", "set", &veth_b, "up"]);
    let deadline = Instant::now() + DEADLINE;
    while !hosts.mcs(&ns_b, &replica, &url, &["replica", "--once"]).status.success() {
        assert!(Instant::now() < deadline, "the replica never caught up after the partition");
        std::thread::sleep(POLL);
    }
    let mut found = search(&replica, "partition memory links");
    found.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(found, expected);
}

/// A stand-in embedding model (a hashed bag of words), so that vector files exist without the
/// real model.
struct BagOfWords;

impl BagOfWords {
    const DIM: usize = 32;

    fn vector(text: &str) -> Vec<f32> {
        let mut v = [0.0f32; Self::DIM];
        for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let h = w.to_lowercase().bytes().fold(14695981039346656037u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(1099511628211)
            });
            v[(h % Self::DIM as u64) as usize] += 1.0;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.iter().map(|x| x / n).collect()
    }
}

impl memory_store::Embed for BagOfWords {
    fn model_tag(&self) -> &str {
        "bag-of-words-test"
    }
    fn dim(&self) -> usize {
        Self::DIM
    }
    fn embed_documents(
        &self,
        texts: &[&str],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>, memory_store::EmbedError> {
        progress(texts.len());
        Ok(texts.iter().flat_map(|t| BagOfWords::vector(t)).collect())
    }
}

/// The side files (content and vectors) `store`'s current manifest has, by file name, with
/// their bytes; and every such file on disk whose segment no manifest file names.
fn side_files(store: &Path) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let (_, manifest) = semantic_index::layout::read_head(store).unwrap().unwrap();
    let mut live = Vec::new();
    for s in &manifest.segments {
        let stem = s.file.strip_suffix(".seg").unwrap();
        for rel in [format!("segments/{stem}.cnt"), format!("vectors/{stem}.vec")] {
            if let Ok(bytes) = std::fs::read(store.join(&rel)) {
                live.push((rel, bytes));
            }
        }
    }
    let mut named = Vec::new();
    for e in std::fs::read_dir(store.join("manifests")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let m = semantic_index::layout::Manifest::from_bytes(&bytes).unwrap();
        named.extend(m.segments.into_iter().map(|s| s.file.trim_end_matches(".seg").to_owned()));
    }
    let mut unnamed = Vec::new();
    for sub in ["segments", "vectors"] {
        for e in std::fs::read_dir(store.join(sub)).into_iter().flatten() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let stem = name.trim_end_matches(".cnt").trim_end_matches(".vec");
            if (name.ends_with(".cnt") || name.ends_with(".vec"))
                && !named.iter().any(|n| n == stem)
            {
                unnamed.push(name);
            }
        }
    }
    (live, unnamed)
}

#[test]
fn content_and_vector_files_travel_verified_and_go_with_their_segments() {
    use memory_store::{CommitLogOf, Memory, MemoryStore, Query, Ranking, SearchOptions};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    let (writer, replica) = (dir.path().join("writer"), dir.path().join("replica"));
    let nats = Nats::connect(&url, Duration::from_secs(5)).unwrap();
    let mut store = MemoryStore::open(&writer).unwrap();
    // A synthesis longer than a gist: only the content file holds all of it.
    let long = format!("{} and the end of the synthesis", "whole text beyond the gist ".repeat(12));
    let mut m = Memory::new("ops", "how does a replica quote a whole memory");
    m.synthesis = long.clone();
    let a = store.store(m).unwrap();
    let b = store.store(Memory::new("ops", "power the cluster nodes on")).unwrap();
    store.embed_pending(&BagOfWords, &mut |_, _| {}).unwrap();
    let pushed = nats.push(&writer, &CommitLogOf(&store)).unwrap();
    assert!(pushed.files >= 2, "a content and a vector file at least: {pushed:?}");
    ok(mcs(&replica, Some(&url), &["replica", "--once"]));
    let (on_writer, _) = side_files(&writer);
    let (on_replica, unnamed) = side_files(&replica);
    assert!(on_writer.iter().any(|(n, _)| n.ends_with(".vec")), "{:?}", on_writer.len());
    assert_eq!(on_replica, on_writer, "the same content and vector files, byte for byte");
    assert!(unnamed.is_empty(), "{unnamed:?}");
    {
        // Readers on the replica quote whole memories and search by vector.
        let snapshot = shm_reader::Reader::open(&replica).unwrap().snapshot();
        assert_eq!(snapshot.segments_without_content(), 0);
        let content = snapshot.content_of(a.as_bytes()).unwrap().unwrap();
        assert_eq!(content.synthesis(), long);
        let mut reader = MemoryStore::open_read_only(&replica).unwrap();
        assert_eq!(reader.pending_vectors().unwrap(), 0);
        let q = Query::from_text("x").with_embedding(&BagOfWords::vector("power cluster nodes"));
        let vector = SearchOptions { ranking: Ranking::Vector, ..SearchOptions::default() };
        assert_eq!(reader.search(&q, &vector).unwrap().hits[0].id, b);
    }

    // A damaged vector object: refused, never written, the segment published without it.
    let c = store.store(Memory::new("ops", "a memory whose vectors are damaged")).unwrap();
    store.embed_pending(&BagOfWords, &mut |_, _| {}).unwrap();
    nats.push(&writer, &CommitLogOf(&store)).unwrap();
    let (head, _) = nats.head().unwrap().unwrap();
    let newest = head.files.iter().rfind(|f| f.kind == replication::SideKind::Vectors);
    let damaged = newest.unwrap().clone();
    let mut bytes = nats.get_object(&damaged.object()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    nats.put_object(&damaged.object(), &bytes).unwrap();
    let out = mcs(&replica, Some(&url), &["replica", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("{} refused", damaged.object())), "{err}");
    assert!(!damaged.path(&replica).exists(), "nothing unverified written");
    assert_eq!(search(&replica, "vectors damaged"), vec![c.to_string()]);

    // A rebuild replaces every segment: the replica gets the new files, the old ones go.
    store.rebuild().unwrap();
    store.embed_pending(&BagOfWords, &mut |_, _| {}).unwrap();
    nats.push(&writer, &CommitLogOf(&store)).unwrap();
    ok(mcs(&replica, Some(&url), &["replica", "--once"]));
    let (on_writer, _) = side_files(&writer);
    let (on_replica, unnamed) = side_files(&replica);
    assert_eq!(on_replica, on_writer);
    assert!(unnamed.is_empty(), "files of dead segments stay: {unnamed:?}");
    ok(mcs(&replica, None, &["verify"]));
}

/// A small pseudo-random generator (xorshift64*), seeded from the clock, for kill points.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        Dice(t.as_nanos() as u64 | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The writer-loss series in small (`cargo xtask bench-replication` runs 100): each round a
/// replica follows (`mcs replica`), the writer host acknowledges a few memories (`mcs add
/// --nats` that exit 0 without a warning), one more `mcs add` is SIGKILLed at a random point
/// of its run, the follower is SIGKILLed too, the writer's directory is lost, and `mcs promote`
/// makes the replica the writer: every memory acknowledged so far, over every round, is there.
#[test]
fn writer_host_kills_with_promotion_lose_no_acknowledged_memory() {
    const KILLS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    let mut dice = Dice::new();
    let mut writer = dir.path().join("host0");
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 1..=KILLS {
        let replica = dir.path().join(format!("host{round}"));
        let mut follower = follow(&replica, &url);
        let mut took = Duration::from_millis(1);
        for i in 0..1 + dice.below(3) {
            let started = Instant::now();
            let q = format!("Round {round} acknowledged memory {i}");
            let out = mcs(&writer, Some(&url), &["add", "--domain", "kills", "--question", &q]);
            took = started.elapsed();
            let (stdout, stderr) = (ok_stdout(&out), String::from_utf8_lossy(&out.stderr));
            assert!(stderr.is_empty(), "NATS is up: acknowledged without a warning: {stderr}");
            acknowledged.push(stdout.trim().to_owned());
        }
        // The kill lands anywhere in a store: before, during or after its push.
        let mut victim = Command::new(env!("CARGO_BIN_EXE_mcs"))
            .env("MCS_MODEL_DIR", NO_MODEL)
            .arg("--store")
            .arg(&writer)
            .args(["--nats", &url, "add", "--domain", "kills", "--question"])
            .arg(format!("Round {round} memory of the killed writer"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Not a wait for readiness: the random point in the victim's run where it dies.
        std::thread::sleep(Duration::from_micros(dice.below(took.as_micros() as u64 + 1)));
        let finished = victim.try_wait().unwrap().is_some();
        if !finished {
            victim.kill().unwrap();
        }
        let out = victim.wait_with_output().unwrap();
        if finished && out.status.success() && out.stderr.is_empty() {
            acknowledged.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
        }
        follower.kill().unwrap();
        follower.wait().unwrap();
        std::fs::remove_dir_all(&writer).unwrap();
        ok(mcs(&replica, Some(&url), &["promote"]));
        let store = memory_store::MemoryStore::open_read_only(&replica).unwrap();
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|id| store.get(id.parse().unwrap()).unwrap().is_none())
            .collect();
        assert!(lost.is_empty(), "round {round}: acknowledged memories lost: {lost:?}");
        writer = replica;
    }
    assert!(acknowledged.len() >= KILLS);
}

fn ok_stdout(out: &Output) -> String {
    assert!(out.status.success(), "mcs failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A `mcs replica` following `url` into `replica`, its output discarded.
fn follow(replica: &Path, url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", NO_MODEL)
        .arg("--store")
        .arg(replica)
        .args(["--nats", url, "replica"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
