//! A circle: several apprentices invited at once, with an optional restart policy.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::protocol::{Invitation, Push, Response};
use crate::supervisor::{Apprentice, SpawnOptions};
use crate::Error;

/// Restarts in the spirit of OTP and systemd: back off from `initial_backoff`, doubling up to
/// `max_backoff`; more than `max_restarts` within `window` marks the apprentice failed.
#[derive(Clone, Debug)]
pub struct RestartPolicy {
    /// Whether crashed apprentices are restarted at all.
    pub enabled: bool,
    /// The first wait before a restart.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// Restarts allowed within `window`.
    pub max_restarts: usize,
    /// The window restarts are counted in.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy {
            enabled: true,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_restarts: 5,
            window: Duration::from_secs(10),
        }
    }
}

type MakeCommand = Box<dyn Fn() -> Command + Send + Sync>;

struct Member {
    name: String,
    make: MakeCommand,
    apprentice: Option<Apprentice>,
    restarts: VecDeque<Instant>,
    backoff: Duration,
    failed: Option<String>,
    /// The standing interest, re-sent to each restarted process.
    interest: Option<(Invitation, i64)>,
    /// The ids delivered from this member's pushes.
    seen: BTreeSet<String>,
}

/// Several apprentices over one store, invited concurrently.
pub struct Circle {
    store: PathBuf,
    options: SpawnOptions,
    policy: RestartPolicy,
    members: Vec<Member>,
    duplicates: u64,
}

impl std::fmt::Debug for Circle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circle")
            .field("store", &self.store)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl Circle {
    /// An empty circle for the store at `store`.
    pub fn new(store: impl Into<PathBuf>, options: SpawnOptions, policy: RestartPolicy) -> Circle {
        Circle { store: store.into(), options, policy, members: Vec::new(), duplicates: 0 }
    }

    /// Spawns a member named `name` from `make` (called again for each restart).
    pub fn add(
        &mut self,
        name: impl Into<String>,
        make: impl Fn() -> Command + Send + Sync + 'static,
    ) -> Result<u32, Error> {
        let apprentice = Apprentice::spawn(make(), &self.store, &self.options)?;
        let pid = apprentice.pid();
        self.members.push(Member {
            name: name.into(),
            make: Box::new(make),
            apprentice: Some(apprentice),
            restarts: VecDeque::new(),
            backoff: self.policy.initial_backoff,
            failed: None,
            interest: None,
            seen: BTreeSet::new(),
        });
        Ok(pid)
    }

    /// The members' names and current pids (`None` while down or failed).
    pub fn members(&self) -> Vec<(String, Option<u32>)> {
        self.members
            .iter()
            .map(|m| (m.name.clone(), m.apprentice.as_ref().map(Apprentice::pid)))
            .collect()
    }

    /// Invites every member at once and gathers the answers, in member order. An invitation
    /// in flight when its apprentice died comes back as [`Error::Lost`] (its outcome is
    /// unknown; it is never retried); with the policy enabled the apprentice is then restarted.
    pub fn invite_all(
        &mut self,
        invitation: &Invitation,
        timeout: Duration,
    ) -> Vec<(String, Result<Response, Error>)> {
        let results: Vec<Result<Response, Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .members
                .iter()
                .map(|m| {
                    s.spawn(move || match (&m.apprentice, &m.failed) {
                        (_, Some(why)) => Err(Error::Failed(why.clone())),
                        (Some(a), None) => a.invite(invitation, timeout),
                        (None, None) => Err(Error::Failed(format!("{} is not running", m.name))),
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Unexpected("invitation thread panicked".into()))
                    })
                })
                .collect()
        });
        for (member, result) in self.members.iter_mut().zip(&results) {
            if matches!(result, Err(Error::Lost { .. })) {
                member.apprentice = None;
                if self.policy.enabled {
                    restart(member, &self.store, &self.options, &self.policy);
                } else {
                    member.failed = Some(format!("{} died and restarts are disabled", member.name));
                }
            }
        }
        self.members.iter().map(|m| m.name.clone()).zip(results).collect()
    }

    /// Restarts any member whose process is gone (if the policy allows).
    pub fn heal(&mut self) {
        for member in &mut self.members {
            if member.failed.is_none()
                && !member.apprentice.as_ref().is_some_and(Apprentice::is_alive)
            {
                member.apprentice = None;
                if self.policy.enabled {
                    restart(member, &self.store, &self.options, &self.policy);
                }
            }
        }
    }

    /// Gives member `name` a standing interest (see [`Apprentice::watch`]); the circle keeps it
    /// and gives it again, with the ids already delivered, to every restarted process, which
    /// resumes from there. Returns the generation the member read.
    pub fn watch(
        &mut self,
        name: &str,
        interest: &Invitation,
        after_micros: i64,
        timeout: Duration,
    ) -> Result<u64, Error> {
        let member = self
            .members
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::Failed(format!("no member named {name}")))?;
        member.interest = Some((interest.clone(), after_micros));
        let seen: Vec<String> = member.seen.iter().cloned().collect();
        match &member.apprentice {
            Some(a) => a.watch(interest, after_micros, &seen, timeout),
            None => Err(Error::Failed(format!("{name} is not running"))),
        }
    }

    /// Waits at most `timeout` for the next push of any member and returns it with the
    /// member's name, keeping only memories this member had not delivered before (a repeat
    /// is counted in [`Circle::duplicates`], never returned).
    pub fn next_push(&mut self, timeout: Duration) -> Option<(String, Push)> {
        let deadline = Instant::now() + timeout;
        loop {
            let live: Vec<usize> =
                (0..self.members.len()).filter(|&i| self.members[i].apprentice.is_some()).collect();
            if live.is_empty() {
                return None;
            }
            let receivers: Vec<crossbeam_channel::Receiver<Push>> = live
                .iter()
                .filter_map(|&i| self.members[i].apprentice.as_ref().map(|a| a.pushes().clone()))
                .collect();
            let mut select = crossbeam_channel::Select::new();
            for r in &receivers {
                select.recv(r);
            }
            let op = select.select_deadline(deadline).ok()?;
            let index = op.index();
            let received = op.recv(&receivers[index]);
            let member = &mut self.members[live[index]];
            let Ok(mut push) = received else {
                // That apprentice's connection is gone; heal() restarts it.
                member.apprentice = None;
                continue;
            };
            let mut kept_memories = Vec::new();
            let mut kept_insights = Vec::new();
            for (m, line) in push.memories.into_iter().zip(push.insights) {
                if member.seen.insert(m.id.clone()) {
                    kept_memories.push(m);
                    kept_insights.push(line);
                } else {
                    self.duplicates += 1;
                }
            }
            if !kept_memories.is_empty() {
                push.memories = kept_memories;
                push.insights = kept_insights;
                return Some((member.name.clone(), push));
            }
        }
    }

    /// How many pushed memories were repeats of ones already delivered (dropped).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The pid of member `name`, if it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.members.iter().find(|m| m.name == name)?.apprentice.as_ref().map(Apprentice::pid)
    }

    /// Terminates member `name` and forgets it.
    pub fn remove(&mut self, name: &str) {
        if let Some(i) = self.members.iter().position(|m| m.name == name) {
            if let Some(a) = self.members.remove(i).apprentice {
                let _ = a.terminate();
            }
        }
    }

    /// Why a member failed for good, if it did.
    pub fn failure(&self, name: &str) -> Option<&str> {
        self.members.iter().find(|m| m.name == name).and_then(|m| m.failed.as_deref())
    }

    /// Terminates every member.
    pub fn terminate(self) {
        for m in self.members {
            if let Some(a) = m.apprentice {
                let _ = a.terminate();
            }
        }
    }
}

fn restart(
    member: &mut Member,
    store: &std::path::Path,
    options: &SpawnOptions,
    policy: &RestartPolicy,
) {
    loop {
        let now = Instant::now();
        while member.restarts.front().is_some_and(|t| now.duration_since(*t) > policy.window) {
            member.restarts.pop_front();
        }
        if member.restarts.is_empty() {
            // A whole window without a restart: the apprentice was healthy; start over.
            member.backoff = policy.initial_backoff;
        }
        if member.restarts.len() >= policy.max_restarts {
            member.failed = Some(format!(
                "{} restarted {} times within {:?}; marked failed",
                member.name,
                member.restarts.len(),
                policy.window
            ));
            return;
        }
        std::thread::sleep(member.backoff);
        member.backoff = (member.backoff * 2).min(policy.max_backoff);
        member.restarts.push_back(Instant::now());
        match Apprentice::spawn((member.make)(), store, options) {
            Ok(a) => {
                if let Some((interest, after)) = &member.interest {
                    let seen: Vec<String> = member.seen.iter().cloned().collect();
                    if a.watch(interest, *after, &seen, options.hello_timeout).is_err() {
                        continue;
                    }
                }
                member.apprentice = Some(a);
                return;
            }
            Err(_) => continue,
        }
    }
}
