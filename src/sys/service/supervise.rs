//! The `exec: {run: CMD}` driver: a foreground process that the agent starts and supervises itself.
//!
//! The process leads a process group of its own; a task owns the child and waits on it, so an exit is known at
//! once (no polling: Pacemaker's nginx agent lost 2.1 s to `sleep 1`, DESIGN.md §3) and reported on the exit
//! channel. Stop sends SIGTERM to the whole group, waits, and sends SIGKILL when the stop timeout runs out.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::Outcome;
use super::error::DriverError;
use crate::manifest::values::Name;

/// How long to wait for a process group to vanish after SIGKILL before reporting that it survived.
const AFTER_KILL: Duration = Duration::from_secs(2);
/// Poll step while waiting for the rest of a group once its leader has exited: the leader is waited on; the
/// others are not our children, so the group is checked with signal 0 (DESIGN.md §3: tens of ms, never seconds).
const GROUP_POLL: Duration = Duration::from_millis(20);

/// A supervised process exited on its own (not through a stop): the agent should look again at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExit {
    /// The service whose process exited.
    pub service: Name,
    /// Its process id.
    pub pid: u32,
    /// How it ended (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub status: String,
}

/// The supervised processes of this agent, by service; cheap to clone (shared), so spawned tasks can hold it.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    running: Arc<Mutex<HashMap<Name, Supervised>>>,
    exits: Option<mpsc::UnboundedSender<ProcessExit>>,
}

#[derive(Debug, Clone)]
struct Supervised {
    pid: u32,
    /// `None` while the process runs; its exit status text once it has exited.
    exit: watch::Receiver<Option<String>>,
    /// Set by stop before it signals, so the exit it causes is not reported as a failure.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl Supervised {
    fn pgid(&self) -> Pid {
        // The process leads its own group (`process_group(0)`), so its pid is the group id; pids fit in i32.
        Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX))
    }

    fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }
}

impl Supervisor {
    /// A supervisor that reports unexpected exits on `exits` (the agent's input channel), if given.
    pub fn new(exits: Option<mpsc::UnboundedSender<ProcessExit>>) -> Supervisor {
        Supervisor { running: Arc::default(), exits }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<Name, Supervised>> {
        // A panic while holding this lock cannot leave the map half-changed (single inserts and removes).
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The process group id of a service's supervised process, while it is known (tests and diagnostics).
    pub fn pgid(&self, service: &Name) -> Option<i32> {
        self.table().get(service).map(|s| s.pgid().as_raw())
    }

    /// Starts `command` under `/bin/sh -c` in a new process group, unless it already runs. Its output goes to
    /// the agent's own stdout/stderr (the journal under systemd).
    pub(crate) async fn start(&self, service: &Name, command: &str, limit: Duration) -> Outcome {
        let previous = self.table().get(service).cloned();
        if let Some(previous) = previous {
            if previous.exited().is_none() {
                return Outcome::Running;
            }
            // It died on its own; whatever it left in its group goes before a new one starts.
            let outcome = self.terminate(service, &previous, limit).await;
            if !outcome.is_stopped() {
                return outcome;
            }
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(command).current_dir("/").stdin(Stdio::null()).process_group(0);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                return Outcome::Failed(DriverError::Spawn { program: "/bin/sh".into(), message: e.to_string() });
            }
        };
        let Some(pid) = child.id() else {
            // id() is None only after the child was reaped, which nothing has done yet.
            return Outcome::Failed(DriverError::Wait { program: "/bin/sh".into(), message: "no pid".into() });
        };
        let (tx, rx) = watch::channel(None);
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let entry = Supervised { pid, exit: rx, stopping: Arc::clone(&stopping) };
        self.table().insert(service.clone(), entry);
        let exits = self.exits.clone();
        let name = service.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = tx.send(Some(status.clone()));
            if !stopping.load(std::sync::atomic::Ordering::SeqCst)
                && let Some(exits) = exits
            {
                let _ = exits.send(ProcessExit { service: name, pid, status });
            }
        });
        Outcome::Running
    }

    /// Running while the supervised process has not exited; side-effect free.
    pub(crate) fn status(&self, service: &Name) -> Outcome {
        match self.table().get(service) {
            None => Outcome::Stopped,
            Some(s) => match s.exited() {
                None => Outcome::Running,
                Some(status) => Outcome::Failed(DriverError::Exited { pid: s.pid, status }),
            },
        }
    }

    /// Stops the service's process group: SIGTERM, then SIGKILL when `limit` runs out.
    pub(crate) async fn stop(&self, service: &Name, limit: Duration) -> Outcome {
        let entry = self.table().get(service).cloned();
        match entry {
            None => Outcome::Stopped,
            Some(entry) => self.terminate(service, &entry, limit).await,
        }
    }

    async fn terminate(&self, service: &Name, entry: &Supervised, limit: Duration) -> Outcome {
        entry.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let pgid = entry.pgid();
        if let Err(e) = signal_group(pgid, Signal::SIGTERM) {
            return Outcome::Failed(e);
        }
        let outcome = if group_gone(entry, limit).await {
            Outcome::Stopped
        } else {
            if let Err(e) = signal_group(pgid, Signal::SIGKILL) {
                return Outcome::Failed(e);
            }
            if group_gone(entry, AFTER_KILL).await {
                Outcome::Killed { limit }
            } else {
                Outcome::Failed(DriverError::Survived { pgid: pgid.as_raw(), waited: AFTER_KILL })
            }
        };
        if outcome.is_stopped() {
            let mut table = self.table();
            // Remove only the entry we stopped: a concurrent start may have put a new one in its place.
            if table.get(service).is_some_and(|s| s.pid == entry.pid) {
                table.remove(service);
            }
        }
        outcome
    }
}

/// Sends `signal` to the group; a group that no longer exists (ESRCH) is not an error.
fn signal_group(pgid: Pid, signal: Signal) -> Result<(), DriverError> {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(DriverError::Signal { pgid: pgid.as_raw(), message: e.to_string() }),
    }
}

/// Waits up to `limit` until the leader has exited (waited on, so noticed at once) and no process is left in
/// its group.
async fn group_gone(entry: &Supervised, limit: Duration) -> bool {
    let mut exit = entry.exit.clone();
    let pgid = entry.pgid();
    let wait = async {
        // An error means the waiting task ended, which it does only after sending the exit status.
        let _ = exit.wait_for(Option::is_some).await;
        while group_alive(pgid.as_raw()) {
            tokio::time::sleep(GROUP_POLL).await;
        }
    };
    tokio::time::timeout(limit, wait).await.is_ok()
}

/// Whether any process of group `pgid` is alive. Zombies do not count: a member orphaned by the leader's exit is
/// reaped by init, and an init that never reaps (some containers) must not make a stopped group look alive,
/// which signal 0 would (it succeeds on zombies). Falls back to signal 0 when /proc cannot be read.
pub fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return matches!(killpg(Pid::from_raw(pgid), None), Ok(()));
    };
    dir.flatten().any(|entry| {
        let is_pid = entry.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        is_pid && std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| live_member(&stat, pgid))
    })
}

/// Parses `/proc/PID/stat` (`pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses, so fields are
/// counted after the last `)`): is this a live (not zombie, not dead) process of group `pgid`?
fn live_member(stat: &str, pgid: i32) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    let mut fields = rest.split_whitespace();
    let state = fields.next();
    let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
    pgrp == Some(pgid) && !matches!(state, Some("Z" | "X" | "x"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_after_the_last_parenthesis() {
        assert!(live_member("42 (a) b) S 1 42 42 0", 42));
        assert!(!live_member("42 (a) b) Z 1 42 42 0", 42));
        assert!(!live_member("43 (sh) S 1 7 7 0", 42));
        assert!(!live_member("garbage", 42));
    }
}
