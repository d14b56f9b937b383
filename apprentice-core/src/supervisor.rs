//! The supervisor side: spawn an apprentice process, handshake, invite, terminate, reap.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use interprocess::local_socket::traits::{Listener as _, StreamCommon as _};
use interprocess::local_socket::{
    GenericFilePath, ListenerNonblockingMode, ListenerOptions, Stream, ToFsName,
};

use crate::protocol::{version, Invitation, Message, Push, Response};
use crate::transport::{read_frame, write_frame, FrameError};
use crate::{Error, SOCKET_ENV, STORE_ENV};

/// The reason a busy apprentice gives for declining.
pub const BUSY_REASON: &str = "currently engaged in another task";

/// How to spawn and stop apprentices.
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    /// How long to wait for the child's Hello.
    pub hello_timeout: Duration,
    /// How long a child may take to exit after Shutdown before it is killed.
    pub grace: Duration,
    /// Where to make the private socket directory (default: `$XDG_RUNTIME_DIR`, else the temp dir).
    pub socket_base: Option<PathBuf>,
}

impl Default for SpawnOptions {
    fn default() -> SpawnOptions {
        SpawnOptions {
            hello_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(1),
            socket_base: None,
        }
    }
}

/// A private directory (0700) holding one socket (0600); removed when dropped. We only ever
/// remove what we created here.
#[derive(Debug)]
struct SocketDir {
    dir: PathBuf,
    socket: PathBuf,
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);
/// The socket's name inside its directory.
const SOCKET_NAME: &str = "s.sock";

impl SocketDir {
    fn create(base: Option<&Path>) -> io::Result<SocketDir> {
        let base = match base {
            Some(b) => b.to_owned(),
            None => std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|p| p.is_dir())
                .unwrap_or_else(std::env::temp_dir),
        };
        remove_stale(&base);
        #[cfg_attr(not(unix), allow(unused_mut))]
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        for _ in 0..100 {
            let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = base.join(format!("{DIR_PREFIX}{}-{n}-{nanos:x}", std::process::id()));
            match builder.create(&dir) {
                Ok(()) => {
                    let socket = dir.join(SOCKET_NAME);
                    return Ok(SocketDir { dir, socket });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free socket directory name"))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The prefix of every socket directory's name; the rest is `{pid}-{n}-{nanos:x}`.
const DIR_PREFIX: &str = "mcs-apprentice-";

/// Removes the socket directories in `base` that a supervisor killed mid-handshake (SIGKILL,
/// or a signal with no handler) left behind: those named after a process that no longer
/// exists, owned by us, holding nothing but their socket. A live process's directory, another
/// user's, a symlink or a directory with anything else in it is left alone. Best-effort: a
/// failure here never fails a spawn.
fn remove_stale(base: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(base) else { return };
        let ours = rustix::process::geteuid().as_raw();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(DIR_PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
            else {
                continue;
            };
            // ESRCH: no such process. EPERM means it exists (as another user): keep.
            if rustix::process::test_kill_process(pid) != Err(rustix::io::Errno::SRCH) {
                continue;
            }
            let dir = entry.path();
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() && m.uid() == ours => {}
                _ => continue,
            }
            let _ = std::fs::remove_file(dir.join(SOCKET_NAME));
            // Fails, and leaves the directory, if it holds anything else.
            let _ = std::fs::remove_dir(&dir);
        }
    }
    #[cfg(not(unix))]
    let _ = base;
}

/// A running apprentice process and the connection to it.
///
/// [`Apprentice::invite`] takes `&self`: one thread may invite while others find the
/// apprentice busy (they get a declined [`Response`] with [`BUSY_REASON`]). Dropping the handle
/// kills and reaps the child; [`Apprentice::terminate`] asks it to exit first.
pub struct Apprentice {
    child: Mutex<Child>,
    reaped: AtomicBool,
    pid: u32,
    kind: String,
    specialization: String,
    stream: std::sync::Arc<Stream>,
    send: Mutex<()>,
    inbox: Receiver<Result<Message, FrameError>>,
    pushes: Receiver<Push>,
    busy: AtomicBool,
    next_id: AtomicU64,
    grace: Duration,
}

impl std::fmt::Debug for Apprentice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apprentice")
            .field("pid", &self.pid)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

struct BusyGuard<'a>(&'a AtomicBool);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl Apprentice {
    /// Spawns `command` as an apprentice for the store at `store`: makes a private socket,
    /// passes its path and the store path in `MCS_APPRENTICE_SOCKET` / `MCS_APPRENTICE_STORE`,
    /// accepts the child's connection (checking it runs as our user), and waits for its Hello.
    /// Any failure kills and reaps the child.
    pub fn spawn(
        mut command: Command,
        store: &Path,
        options: &SpawnOptions,
    ) -> Result<Apprentice, Error> {
        let dir = SocketDir::create(options.socket_base.as_deref())
            .map_err(|e| Error::Io { what: "creating socket directory", source: e })?;
        let name = dir
            .socket
            .as_path()
            .to_fs_name::<GenericFilePath>()
            .map_err(|e| Error::Io { what: "naming socket", source: e })?;
        let listener = ListenerOptions::new()
            .name(name)
            .nonblocking(ListenerNonblockingMode::Accept)
            .create_sync()
            .map_err(|e| Error::Io { what: "listening", source: e })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir.socket, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::Io { what: "securing socket", source: e })?;
        }
        command.env(SOCKET_ENV, &dir.socket).env(STORE_ENV, store).stdin(Stdio::null());
        let mut child =
            command.spawn().map_err(|e| Error::Io { what: "spawning apprentice", source: e })?;
        let child_pid = child.id();
        let deadline = Instant::now() + options.hello_timeout;
        let stream = loop {
            match listener.accept() {
                // Anyone running as us can connect to the socket first; only the process we
                // spawned is accepted, the others are dropped (they see the connection close).
                Ok(stream) => match check_peer(&stream, child_pid) {
                    Ok(()) => break stream,
                    Err(_) => continue,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(Error::Exited { status });
                    }
                    if Instant::now() >= deadline {
                        kill_and_reap(&mut child);
                        return Err(Error::HelloTimeout { after: options.hello_timeout });
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    kill_and_reap(&mut child);
                    return Err(Error::Io { what: "accepting", source: e });
                }
            }
        };
        // The connection outlives its name: the socket and its directory go now, so a
        // supervisor killed from here on leaves nothing in the temp directory.
        drop(listener);
        drop(dir);
        let stream = std::sync::Arc::new(stream);
        let recv = stream.clone();
        let (tx, inbox) = crossbeam_channel::unbounded();
        let (push_tx, pushes) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name(format!("apprentice-{}-reader", child.id()))
            .spawn(move || loop {
                let frame = read_frame(&*recv);
                if let Ok(Message::Push(push)) = frame {
                    // Pushes have their own channel; a supervisor that does not read them
                    // still gets its answers.
                    let _ = push_tx.send(push);
                    continue;
                }
                let stop = frame.is_err();
                if tx.send(frame).is_err() || stop {
                    break;
                }
            })
            .map_err(|e| Error::Io { what: "starting reader thread", source: e })?;
        let hello = match inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                kill_and_reap(&mut child);
                return Err(Error::Frame(e));
            }
            Err(_) => {
                kill_and_reap(&mut child);
                return Err(Error::HelloTimeout { after: options.hello_timeout });
            }
        };
        let (kind, specialization) = match hello {
            Message::Hello { pid, kind, specialization, protocol }
                if protocol == version::CURRENT && pid == child_pid =>
            {
                (kind, specialization)
            }
            Message::Hello { pid, protocol, .. } if protocol == version::CURRENT => {
                kill_and_reap(&mut child);
                return Err(Error::Unexpected(format!(
                    "Hello claims pid {pid}; the apprentice is {child_pid}"
                )));
            }
            Message::Hello { protocol, .. } => {
                kill_and_reap(&mut child);
                return Err(Error::Protocol { expected: version::CURRENT, got: protocol });
            }
            Message::Error { message } => {
                kill_and_reap(&mut child);
                return Err(Error::Worker(message));
            }
            other => {
                kill_and_reap(&mut child);
                return Err(Error::Unexpected(format!("{other:?} instead of Hello")));
            }
        };
        Ok(Apprentice {
            child: Mutex::new(child),
            reaped: AtomicBool::new(false),
            pid: child_pid,
            kind,
            specialization,
            stream,
            send: Mutex::new(()),
            inbox,
            pushes,
            busy: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            grace: options.grace,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The kind it announced.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The specialization it announced.
    pub fn specialization(&self) -> &str {
        &self.specialization
    }

    fn send(&self, message: &Message) -> Result<(), Error> {
        let _send =
            self.send.lock().map_err(|_| Error::Unexpected("sender lock poisoned".into()))?;
        write_frame(&*self.stream, message).map_err(|e| self.lost(e))
    }

    /// The error for a connection that broke: names the exit status if the child is gone.
    fn lost(&self, cause: FrameError) -> Error {
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            if let Ok(mut child) = self.child.lock() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.reaped.store(true, Ordering::Release);
                    return Error::Lost { pid: self.pid, status: Some(status), cause: Some(cause) };
                }
            }
            if Instant::now() >= deadline {
                return Error::Lost { pid: self.pid, status: None, cause: Some(cause) };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Invites the apprentice and waits at most `timeout` for its answer. A busy apprentice
    /// (another invitation in flight) declines at once. A child that dies, closes or sends
    /// garbage is an error; one that stays silent is [`Error::Timeout`].
    pub fn invite(&self, invitation: &Invitation, timeout: Duration) -> Result<Response, Error> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Ok(Response::declined(BUSY_REASON, 0.0));
        }
        let _guard = BusyGuard(&self.busy);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(&Message::Invite { id, invitation: invitation.clone() })?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok(Message::Respond { id: got, response })) if got == id => return Ok(response),
                Ok(Ok(Message::Respond { .. } | Message::Pong { .. })) => continue,
                Ok(Ok(Message::Error { message })) => return Err(Error::Worker(message)),
                Ok(Ok(other)) => {
                    return Err(Error::Unexpected(format!("{other:?} during an invitation")))
                }
                Ok(Err(e)) => return Err(self.lost(e)),
                Err(RecvTimeoutError::Timeout) => return Err(Error::Timeout { after: timeout }),
                Err(RecvTimeoutError::Disconnected) => return Err(self.lost(FrameError::Closed)),
            }
        }
    }

    /// Gives the apprentice a standing interest (memory streams): from then on it pushes the
    /// memories stamped at or after `after_micros` that match `interest` as they are published,
    /// except the `seen` ids, on [`Apprentice::pushes`]. Returns the generation it read when it
    /// took the interest; a kind that does not watch is [`Error::Worker`].
    pub fn watch(
        &self,
        interest: &Invitation,
        after_micros: i64,
        seen: &[String],
        timeout: Duration,
    ) -> Result<u64, Error> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(Error::Failed(BUSY_REASON.into()));
        }
        let _guard = BusyGuard(&self.busy);
        let watch =
            Message::Watch { interest: interest.clone(), after_micros, seen: seen.to_vec() };
        self.send(&watch)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok(Message::Watching { accepted: true, generation })) => return Ok(generation),
                Ok(Ok(Message::Watching { accepted: false, .. })) => {
                    return Err(Error::Worker(format!("the {} kind does not watch", self.kind)))
                }
                Ok(Ok(Message::Respond { .. } | Message::Pong { .. })) => continue,
                Ok(Ok(Message::Error { message })) => return Err(Error::Worker(message)),
                Ok(Ok(other)) => {
                    return Err(Error::Unexpected(format!("{other:?} instead of Watching")))
                }
                Ok(Err(e)) => return Err(self.lost(e)),
                Err(RecvTimeoutError::Timeout) => return Err(Error::Timeout { after: timeout }),
                Err(RecvTimeoutError::Disconnected) => return Err(self.lost(FrameError::Closed)),
            }
        }
    }

    /// The memories a watching apprentice pushed, in the order it sent them.
    pub fn pushes(&self) -> &Receiver<Push> {
        &self.pushes
    }

    /// Checks the apprentice answers a Ping within `timeout`.
    pub fn ping(&self, timeout: Duration) -> Result<(), Error> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _guard = BusyGuard(&self.busy);
        let nonce = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(&Message::Ping { nonce })?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok(Message::Pong { nonce: n })) if n == nonce => return Ok(()),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(self.lost(e)),
                Err(RecvTimeoutError::Timeout) => return Err(Error::Timeout { after: timeout }),
                Err(RecvTimeoutError::Disconnected) => return Err(self.lost(FrameError::Closed)),
            }
        }
    }

    /// Whether the child is still running.
    pub fn is_alive(&self) -> bool {
        match self.child.lock() {
            Ok(mut c) => matches!(c.try_wait(), Ok(None)),
            Err(_) => false,
        }
    }

    /// Asks the apprentice to exit (Shutdown), waits the grace period, then kills it; always
    /// reaps it. Returns its exit status.
    pub fn terminate(self) -> Result<ExitStatus, Error> {
        let _ = self.send(&Message::Shutdown);
        let deadline = Instant::now() + self.grace;
        let mut child =
            self.child.lock().map_err(|_| Error::Unexpected("child lock poisoned".into()))?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped.store(true, Ordering::Release);
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => {
                    let _ = child.kill();
                    let status =
                        child.wait().map_err(|e| Error::Io { what: "reaping", source: e })?;
                    self.reaped.store(true, Ordering::Release);
                    return Ok(status);
                }
            }
        }
    }
}

impl Drop for Apprentice {
    fn drop(&mut self) {
        if !self.reaped.load(Ordering::Acquire) {
            if let Ok(mut child) = self.child.lock() {
                kill_and_reap(&mut child);
            }
        }
    }
}

/// Accepts only the process we spawned: the peer's pid from the socket's credentials
/// (`SO_PEERCRED`, recorded by the kernel at connect time) must be the child's, and on Unix it
/// must run as our user.
#[cfg(unix)]
fn check_peer(stream: &Stream, child: u32) -> Result<(), Error> {
    let creds = stream
        .peer_creds()
        .map_err(|e| Error::Io { what: "reading peer credentials", source: e })?;
    let ours = rustix::process::geteuid().as_raw();
    match creds.euid() {
        Some(uid) if uid == ours => {}
        other => return Err(Error::Peer { expected: ours, got: other }),
    }
    let pid = creds.pid().and_then(|p| u32::try_from(p).ok());
    if pid == Some(child) {
        Ok(())
    } else {
        Err(Error::Impostor { expected: child, got: pid })
    }
}

#[cfg(not(unix))]
fn check_peer(stream: &Stream, child: u32) -> Result<(), Error> {
    // Named pipes are created with a default DACL granting the creator's account access.
    let pid = stream
        .peer_creds()
        .map_err(|e| Error::Io { what: "reading peer credentials", source: e })?
        .pid();
    if pid == Some(child) {
        Ok(())
    } else {
        Err(Error::Impostor { expected: child, got: pid })
    }
}
