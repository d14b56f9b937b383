//! A worker for apprentice-core's tests: behaves as told by `TEST_WORKER_MODE`.
//!
//! - `echo` answers with the task and what it reads of the store (the text of `<store>/state`);
//! - `gate` answers once `<store>/release` exists, after creating `<store>/entered`;
//! - `barrier` answers once `TEST_WORKER_BARRIER` workers have entered `<store>/barrier/`;
//! - `crash` exits mid-invitation; `hang` never answers; `huge` answers with 9 MiB of insights;
//! - `silent` prints `silent PID` and never says Hello;
//! - `v1` says Hello in protocol version 1 and waits;
//! - `garbage` sends an oversized frame or garbage (`TEST_WORKER_GARBAGE`);
//! - `impostor-first` starts an `impostor` that connects to the socket first, claiming to be
//!   this worker, waits for it to exit, then answers as `echo` saying whether it was refused.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apprentice_core::{Invitation, Kind, Memory, Message, Response, WorkerArgs};
use interprocess::local_socket::{traits::Stream as _, GenericFilePath, Stream, ToFsName};

/// How long a gated or barrier worker waits before giving up (then it says so in its answer).
const PATIENCE: Duration = Duration::from_secs(120);

/// The test worker's memory: the text of `<store>/state`, and how many different texts it has
/// seen (its generation; 1 at open).
struct State {
    path: PathBuf,
    text: String,
    generation: u64,
}

impl Memory for State {
    type Error = std::io::Error;

    fn open(store: &Path) -> std::io::Result<State> {
        let path = store.join("state");
        let text = std::fs::read_to_string(&path)?;
        Ok(State { path, text, generation: 1 })
    }

    fn refresh(&mut self) -> std::io::Result<()> {
        let text = std::fs::read_to_string(&self.path)?;
        if text != self.text {
            self.text = text;
            self.generation += 1;
        }
        Ok(())
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}

struct Echo {
    mode: String,
    store: PathBuf,
    note: String,
}

/// Polls `done` until it holds or [`PATIENCE`] runs out; returns whether it held.
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

impl Kind for Echo {
    type Memory = State;

    fn kind(&self) -> &str {
        "echo"
    }
    fn specialization(&self) -> &str {
        "testing echoes"
    }
    fn consider(&mut self, invitation: &Invitation, memory: &mut State) -> Response {
        let mut reason = format!("echo of {}{}", invitation.task, self.note);
        match self.mode.as_str() {
            "gate" => {
                std::fs::write(self.store.join("entered"), b"").expect("entered");
                if !wait_for(|| self.store.join("release").exists()) {
                    reason = "never released".into();
                }
            }
            "barrier" => {
                let dir = self.store.join("barrier");
                let _ = std::fs::create_dir(&dir);
                std::fs::write(dir.join(std::process::id().to_string()), b"").expect("enter");
                let want: usize = std::env::var("TEST_WORKER_BARRIER")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let count = || std::fs::read_dir(&dir).map_or(0, Iterator::count);
                if !wait_for(|| count() >= want) {
                    reason = format!("only {} of {want} at the barrier", count());
                }
            }
            "crash" => std::process::exit(3),
            "hang" => std::thread::sleep(Duration::from_secs(3600)),
            _ => {}
        }
        let insights = if self.mode == "huge" {
            // 9 × 1 MiB: more than the 8 MiB frame cap.
            (0..9).map(|i| format!("{i}{}", "x".repeat(1 << 20))).collect()
        } else {
            vec![format!("generation {} with {}", memory.generation(), memory.text)]
        };
        Response { accepted: true, reason, confidence: 1.0, insights, memories: vec![] }
    }
}

fn connect(socket: &Path) -> Stream {
    let name = socket.to_fs_name::<GenericFilePath>().expect("socket name");
    Stream::connect(name).expect("connect")
}

/// Connects first and claims to be our parent (the spawned worker); exits 0 if the supervisor
/// closes the connection on us, 1 if it believed us and invited us.
fn impostor(socket: &Path) -> ! {
    let mut s = connect(socket);
    let forged = Message::Hello {
        pid: std::env::var("TEST_WORKER_CLAIM").ok().and_then(|p| p.parse().ok()).unwrap_or(0),
        kind: "forged".into(),
        specialization: "testing echoes".into(),
        protocol: apprentice_core::protocol::version::CURRENT,
    };
    let _ = apprentice_core::transport::write_frame(&mut s, &forged);
    match apprentice_core::transport::read_frame(&s) {
        Ok(Message::Invite { id, .. }) => {
            let forged =
                Response { accepted: true, reason: "forged".into(), ..Response::default() };
            let _ = apprentice_core::transport::write_frame(
                &mut s,
                &Message::Respond { id, response: forged },
            );
            std::process::exit(1)
        }
        _ => std::process::exit(0),
    }
}

fn main() {
    let mode = std::env::var("TEST_WORKER_MODE").unwrap_or_default();
    let args = WorkerArgs::from_env().expect("started by a supervisor");
    let mut note = String::new();
    match mode.as_str() {
        "silent" => {
            // Like `run_worker`, which it never reaches: end with the supervisor.
            #[cfg(target_os = "linux")]
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .expect("parent-death signal");
            println!("silent {}", std::process::id());
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_secs(3600));
            return;
        }
        "garbage" => {
            let mut s = connect(&args.socket);
            let which = std::env::var("TEST_WORKER_GARBAGE").unwrap_or_default();
            if which == "oversized" {
                let _ = s.write_all(&u32::MAX.to_le_bytes());
            } else {
                let _ = s.write_all(&[8, 0, 0, 0, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1]);
            }
            std::thread::sleep(Duration::from_secs(3600));
            return;
        }
        "impostor" => impostor(&args.socket),
        "v1" => {
            let mut s = connect(&args.socket);
            let hello = Message::Hello {
                pid: std::process::id(),
                kind: "old".into(),
                specialization: "testing echoes".into(),
                protocol: apprentice_core::protocol::version::V1,
            };
            let _ = apprentice_core::transport::write_frame(&mut s, &hello);
            std::thread::sleep(Duration::from_secs(3600));
            return;
        }
        "impostor-first" => {
            let status = std::process::Command::new(std::env::current_exe().expect("exe"))
                .env("TEST_WORKER_MODE", "impostor")
                .env("TEST_WORKER_CLAIM", std::process::id().to_string())
                .status()
                .expect("running the impostor");
            note = match status.code() {
                Some(0) => "; the impostor was refused".into(),
                _ => format!("; the impostor was not refused ({status})"),
            };
        }
        _ => {}
    }
    let mut kind = Echo { mode, store: args.store.clone(), note };
    if let Err(e) = apprentice_core::run_worker(&mut kind, &args) {
        eprintln!("worker: {e}");
        std::process::exit(1);
    }
}
