//! A worker for apprentice-core's tests: behaves as told by `TEST_WORKER_MODE`.
//! `echo` answers with the task; `slow` sleeps first; `crash` exits mid-invitation;
//! `silent` never says Hello; `garbage` sends an oversized frame then garbage.

use std::io::Write;
use std::time::Duration;

use apprentice_core::{Invitation, Kind, Response, WorkerArgs};

struct Echo {
    mode: String,
}

impl Kind for Echo {
    fn kind(&self) -> &str {
        "echo"
    }
    fn specialization(&self) -> &str {
        "testing echoes"
    }
    fn consider(&mut self, invitation: &Invitation, memory: &mut shm_reader::Reader) -> Response {
        match self.mode.as_str() {
            "slow" => std::thread::sleep(Duration::from_millis(400)),
            "crash" => std::process::exit(3),
            "hang" => std::thread::sleep(Duration::from_secs(3600)),
            _ => {}
        }
        Response {
            accepted: true,
            reason: format!("echo of {}", invitation.task),
            confidence: 1.0,
            insights: vec![format!(
                "generation {} with {} memories",
                memory.generation(),
                memory.len()
            )],
            memories: vec![],
        }
    }
}

fn main() {
    let mode = std::env::var("TEST_WORKER_MODE").unwrap_or_default();
    let args = WorkerArgs::from_env().expect("started by a supervisor");
    match mode.as_str() {
        "silent" => std::thread::sleep(Duration::from_secs(3600)),
        "garbage" => {
            use interprocess::local_socket::{
                traits::Stream as _, GenericFilePath, Stream, ToFsName,
            };
            let name = args.socket.as_path().to_fs_name::<GenericFilePath>().expect("name");
            let mut s = Stream::connect(name).expect("connect");
            let which = std::env::var("TEST_WORKER_GARBAGE").unwrap_or_default();
            if which == "oversized" {
                let _ = s.write_all(&u32::MAX.to_le_bytes());
            } else {
                let _ = s.write_all(&[8, 0, 0, 0, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1]);
            }
            std::thread::sleep(Duration::from_secs(3600));
        }
        _ => {
            let mut kind = Echo { mode };
            if let Err(e) = apprentice_core::run_worker(&mut kind, &args) {
                eprintln!("worker: {e}");
                std::process::exit(1);
            }
        }
    }
}
