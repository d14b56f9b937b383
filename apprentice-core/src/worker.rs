//! The worker side: the loop an apprentice process runs.

use std::io::Write as _;
use std::path::PathBuf;

use interprocess::local_socket::traits::Stream as _;
use interprocess::local_socket::{GenericFilePath, Stream, ToFsName};

use crate::kind::{answer, Kind, Memory};
use crate::protocol::{version, Message, Push, Response};
use crate::transport::{encode, read_frame, write_frame, FrameError, MAX_FRAME};
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

/// Runs an apprentice: connects to the supervisor, opens the kind's [`Memory`] on the store
/// read-only, says Hello, and
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
    let mut reader = match K::Memory::open(&args.store) {
        Ok(r) => r,
        Err(e) => {
            let _ = write_frame(
                &mut stream,
                &Message::Error { message: format!("opening store: {e}") },
            );
            return Err(Error::Store(Box::new(e)));
        }
    };
    let hello = Message::Hello {
        pid: std::process::id(),
        kind: kind.kind().to_owned(),
        specialization: kind.specialization().to_owned(),
        protocol: version::CURRENT,
    };
    write_frame(&mut stream, &hello)?;
    // Frames arrive on their own thread so that, while watching, the loop can also notice new
    // generations; all writes stay on this thread.
    let stream = std::sync::Arc::new(stream);
    let (tx, inbox) = crossbeam_channel::bounded::<Result<Message, FrameError>>(16);
    let recv = stream.clone();
    std::thread::Builder::new()
        .name("apprentice-frames".into())
        .spawn(move || loop {
            let frame = read_frame(&*recv);
            let stop = frame.is_err();
            if tx.send(frame).is_err() || stop {
                break;
            }
        })
        .map_err(|e| Error::Io { what: "starting the frame reader", source: e })?;
    let send = |frame: &[u8]| (&*stream).write_all(frame).map_err(crate::transport::read_error);
    let mut watching = false;
    let mut seen_generation = reader.generation();
    loop {
        let next = if watching {
            match inbox.recv_timeout(NOTICE_EVERY) {
                Ok(frame) => Some(frame),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        } else {
            match inbox.recv() {
                Ok(frame) => Some(frame),
                Err(_) => return Ok(()),
            }
        };
        let Some(frame) = next else {
            // A tick while watching: a new generation may hold new matching memories.
            if reader.refresh().is_ok() && reader.generation() != seen_generation {
                seen_generation = reader.generation();
                for push in pushes(seen_generation, kind.notice(&mut reader)) {
                    send(&encode(&Message::Push(push))?)?;
                }
            }
            continue;
        };
        let message = match frame {
            Ok(m) => m,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => {
                let _ = send(&encode(&Message::Error { message: e.to_string() })?);
                return Err(e.into());
            }
        };
        match message {
            Message::Invite { id, invitation } => {
                let response = match reader.refresh() {
                    Ok(_) => answer(kind, &invitation, &mut reader),
                    Err(e) => Response::declined(format!("cannot read the memory store: {e}"), 0.0),
                };
                send(&bounded(id, response)?)?;
            }
            Message::Watch { interest, after_micros, seen } => {
                let _ = reader.refresh();
                seen_generation = reader.generation();
                watching = kind.watch(&interest, after_micros, &seen, &mut reader);
                // Memories already published that the interest has not seen go out now.
                let found = if watching { kind.notice(&mut reader) } else { Vec::new() };
                let ack = Message::Watching { accepted: watching, generation: seen_generation };
                send(&encode(&ack)?)?;
                for push in pushes(seen_generation, found) {
                    send(&encode(&Message::Push(push))?)?;
                }
            }
            Message::Ping { nonce } => send(&encode(&Message::Pong { nonce })?)?,
            Message::Shutdown => return Ok(()),
            other => {
                let message = format!("unexpected {other:?}");
                let _ = send(&encode(&Message::Error { message: message.clone() })?);
                return Err(Error::Unexpected(message));
            }
        }
    }
}

/// The noticed memories as Push frames of at most [`CUT_ITEMS`] memories each (a line is a
/// clipped gist, so a frame stays far below the cap).
fn pushes(generation: u64, found: Vec<(crate::MemoryUsed, String)>) -> Vec<Push> {
    found
        .chunks(CUT_ITEMS)
        .map(|chunk| {
            let (memories, insights) = chunk.iter().cloned().unzip();
            Push { generation, memories, insights }
        })
        .collect()
}

/// How often a watching worker looks for a new generation (one atomic load of the beacon).
const NOTICE_EVERY: std::time::Duration = std::time::Duration::from_millis(1);

/// Characters kept of each text field of a reply cut to fit a frame.
const CUT_TEXT: usize = 4096;
/// Insights and memories kept of a reply cut to fit a frame.
const CUT_ITEMS: usize = 1000;

/// The frame that answers `Invite { id }`, encoded: the response itself when it fits
/// [`MAX_FRAME`], else the response cut down (each text to 4,096 characters, at most 1,000
/// insights and memories, so about 8 MiB at the very most; the reason says what was cut), else
/// an Error frame, so the supervisor always hears back and the worker stays up.
fn bounded(id: u64, response: Response) -> Result<Vec<u8>, FrameError> {
    let whole = Message::Respond { id, response };
    match encode(&whole) {
        Err(FrameError::TooLarge { .. }) => {}
        other => return other,
    }
    let Message::Respond { response, .. } = whole else { return encode(&whole) };
    let clip = |s: &str| match s.char_indices().nth(CUT_TEXT) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    };
    let cut = Response {
        accepted: response.accepted,
        reason: format!(
            "{} (reply cut to fit the {MAX_FRAME}-byte frame cap: {} insights, {} memories)",
            clip(&response.reason),
            response.insights.len(),
            response.memories.len()
        ),
        confidence: response.confidence,
        insights: response.insights.iter().take(CUT_ITEMS).map(|i| clip(i)).collect(),
        memories: response
            .memories
            .into_iter()
            .take(CUT_ITEMS)
            .map(|mut m| {
                m.id = clip(&m.id);
                m
            })
            .collect(),
    };
    encode(&Message::Respond { id, response: cut }).or_else(|e| {
        encode(&Message::Error {
            message: format!("the answer to invitation {id} cannot be sent: {e}"),
        })
    })
}
