//! The worker side: the loop an apprentice process runs.

use std::path::PathBuf;

use interprocess::local_socket::traits::Stream as _;
use interprocess::local_socket::{GenericFilePath, Stream, ToFsName};
use shm_reader::Reader;

use crate::kind::{answer, Kind};
use crate::protocol::{version, Message, Response};
use crate::transport::{read_frame, write_frame, FrameError};
use crate::{Error, SOCKET_ENV, STORE_ENV};

/// Where a worker connects and which store it reads, as the supervisor passed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerArgs {
    /// The supervisor's socket.
    pub socket: PathBuf,
    /// The store directory to map read-only.
    pub store: PathBuf,
}

impl WorkerArgs {
    /// Reads `MCS_APPRENTICE_SOCKET` and `MCS_APPRENTICE_STORE`.
    pub fn from_env() -> Result<WorkerArgs, Error> {
        let var = |name: &'static str| {
            std::env::var_os(name).map(PathBuf::from).ok_or(Error::MissingEnv(name))
        };
        Ok(WorkerArgs { socket: var(SOCKET_ENV)?, store: var(STORE_ENV)? })
    }
}

/// Ends this process with its parent (Linux: `PR_SET_PDEATHSIG`), so no apprentice outlives a
/// supervisor that was killed. Returns `false` if the parent is already gone.
fn die_with_parent() -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let parent = rustix::process::getppid();
        if rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
            .is_err()
        {
            return true;
        }
        // The parent may have died between fork and the prctl: then we were reparented.
        return rustix::process::getppid() == parent;
    }
    #[allow(unreachable_code)]
    true
}

/// Runs an apprentice: connects to the supervisor, opens the store read-only, says Hello, and
/// answers invitations until Shutdown or until the supervisor's socket closes. Each invitation
/// first refreshes the reader, so a generation published after start is seen.
pub fn run_worker<K: Kind + ?Sized>(kind: &mut K, args: &WorkerArgs) -> Result<(), Error> {
    if !die_with_parent() {
        return Err(Error::Orphaned);
    }
    let name = args
        .socket
        .as_path()
        .to_fs_name::<GenericFilePath>()
        .map_err(|e| Error::Io { what: "naming socket", source: e })?;
    let mut stream = Stream::connect(name)
        .map_err(|e| Error::Io { what: "connecting to supervisor", source: e })?;
    let mut reader = match Reader::open(&args.store) {
        Ok(r) => r,
        Err(e) => {
            let _ = write_frame(
                &mut stream,
                &Message::Error { message: format!("opening store: {e}") },
            );
            return Err(Error::Store(e));
        }
    };
    let hello = Message::Hello {
        pid: std::process::id(),
        kind: kind.kind().to_owned(),
        specialization: kind.specialization().to_owned(),
        protocol: version::CURRENT,
    };
    write_frame(&mut stream, &hello)?;
    loop {
        let message = match read_frame(&mut stream) {
            Ok(m) => m,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => {
                let _ = write_frame(&mut stream, &Message::Error { message: e.to_string() });
                return Err(e.into());
            }
        };
        match message {
            Message::Invite { id, invitation } => {
                let response = match reader.refresh() {
                    Ok(_) => answer(kind, &invitation, &mut reader),
                    Err(e) => Response::declined(format!("cannot read the memory store: {e}"), 0.0),
                };
                write_frame(&mut stream, &Message::Respond { id, response })?;
            }
            Message::Ping { nonce } => write_frame(&mut stream, &Message::Pong { nonce })?,
            Message::Shutdown => return Ok(()),
            other => {
                let message = format!("unexpected {other:?}");
                let _ = write_frame(&mut stream, &Message::Error { message: message.clone() });
                return Err(Error::Unexpected(message));
            }
        }
    }
}
