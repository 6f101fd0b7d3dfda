//! The `exec: {run: CMD}` driver: a foreground process that the agent starts and supervises itself.
//!
//! The process leads a process group of its own; a task owns the child and waits on it, so an exit is known at
//! once (no polling: Pacemaker's nginx agent lost 2.1 s to `sleep 1`, DESIGN.md §3) and reported on the exit
//! channel. Stop sends SIGTERM to the whole group, waits, and sends SIGKILL when the stop timeout runs out.
//! With a records directory, each process is recorded when it starts, so that a restarted agent adopts it
//! instead of calling it stopped (see `records`).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::Outcome;
use super::error::DriverError;
use super::records::{self, Record};
use crate::manifest::values::Name;

/// How long to wait for a process group to vanish after SIGKILL before reporting that it survived.
const AFTER_KILL: Duration = Duration::from_secs(2);
/// Poll step while waiting for the rest of a group once its leader has exited: the leader is waited on; the
/// others are not our children, so the group is checked in /proc (DESIGN.md §3: tens of ms, never seconds).
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
/// The core runs one action per service at a time; the supervisor does not serialize them itself.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    running: Arc<Mutex<HashMap<Name, Supervised>>>,
    exits: Option<mpsc::UnboundedSender<ProcessExit>>,
    records: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct Supervised {
    /// The process id, which is also the process group id (`process_group(0)`).
    pid: i32,
    /// `None` while the process runs; its exit status text once it has exited.
    exit: watch::Receiver<Option<String>>,
    /// Set by stop before it signals, so the exit it causes is not reported as a failure.
    stopping: Arc<AtomicBool>,
}

impl Supervised {
    fn pgid(&self) -> Pid {
        Pid::from_raw(self.pid)
    }

    fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }
}

impl Supervisor {
    /// A supervisor that reports unexpected exits on `exits` (the agent's input channel), if given.
    pub fn new(exits: Option<mpsc::UnboundedSender<ProcessExit>>) -> Supervisor {
        Supervisor { running: Arc::default(), exits, records: None }
    }

    /// Records every process it starts in `dir` (e.g. `/var/lib/hactl/run`), and adopts the processes recorded
    /// there by an earlier agent that still run.
    pub fn with_records(mut self, dir: PathBuf) -> Supervisor {
        self.records = Some(dir);
        self
    }

    fn table(&self) -> MutexGuard<'_, HashMap<Name, Supervised>> {
        // A panic while holding this lock cannot leave the map half-changed (single inserts and removes).
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The process group id of a service's supervised process, while it is known (tests and diagnostics).
    pub fn pgid(&self, service: &Name) -> Option<i32> {
        self.lookup(service).ok().flatten().map(|s| s.pid)
    }

    /// Services recorded by this or an earlier agent (start-up hygiene: those that no manifest names any more
    /// are stopped with [`Supervisor::stop`]).
    pub fn recorded(&self) -> Vec<Name> {
        self.records.as_deref().map(records::list).unwrap_or_default()
    }

    /// The service's process as this agent knows it, or as an earlier agent recorded it if it still runs; an
    /// error when its record cannot be read (then whether it runs is unknown, see `records::read`).
    fn lookup(&self, service: &Name) -> Result<Option<Supervised>, DriverError> {
        if let Some(known) = self.table().get(service) {
            return Ok(Some(known.clone()));
        }
        let Some(dir) = self.records.as_deref() else { return Ok(None) };
        let Some(record) = records::read(dir, service)? else { return Ok(None) };
        if !records::runs(record) {
            // Gone, or its pid now belongs to another process: never signal it. A stale record is only ours.
            let _ = records::remove(dir, service);
            return Ok(None);
        }
        Ok(Some(self.watch(service, record.pid, records::wait_adopted(record))))
    }

    /// Enters a process in the table and spawns the task that publishes its exit.
    fn watch(&self, service: &Name, pid: i32, exited: impl Future<Output = String> + Send + 'static) -> Supervised {
        let (tx, rx) = watch::channel(None);
        let stopping = Arc::new(AtomicBool::new(false));
        let entry = Supervised { pid, exit: rx, stopping: Arc::clone(&stopping) };
        self.table().insert(service.clone(), entry.clone());
        let exits = self.exits.clone();
        let name = service.clone();
        tokio::spawn(async move {
            let status = exited.await;
            let _ = tx.send(Some(status.clone()));
            if !stopping.load(Ordering::SeqCst)
                && let Some(exits) = exits
            {
                let pid = u32::try_from(pid).unwrap_or_default();
                let _ = exits.send(ProcessExit { service: name, pid, status });
            }
        });
        entry
    }

    /// Starts `command` under `/bin/sh -c` in a new process group, unless it already runs. Its output goes to
    /// the agent's own stdout/stderr (the journal under systemd).
    pub(crate) async fn start(&self, service: &Name, command: &str, limit: Duration) -> Outcome {
        let previous = match self.lookup(service) {
            Ok(previous) => previous,
            Err(unknown) => return Outcome::Failed(unknown),
        };
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
        let spawn_failed = |message: String| Outcome::Failed(DriverError::Spawn { program: "/bin/sh".into(), message });
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(command).current_dir("/").stdin(Stdio::null()).process_group(0);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return spawn_failed(e.to_string()),
        };
        // id() is None only after the child was reaped, which nothing has done yet; pids fit in i32.
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            return spawn_failed("the new process has no pid".into());
        };
        // Recorded before anything waits on the child: until then it cannot be reaped, so its stat is there.
        let recorded = self.record(service, pid);
        let exited = async move {
            match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("wait failed: {e}"),
            }
        };
        let entry = self.watch(service, pid, exited);
        match recorded {
            Ok(()) => Outcome::Running,
            Err(e) => {
                // Unrecorded, a restarted agent would start a second copy: better not to run it at all.
                let _ = self.terminate(service, &entry, limit).await;
                Outcome::Failed(e)
            }
        }
    }

    fn record(&self, service: &Name, pid: i32) -> Result<(), DriverError> {
        let Some(dir) = &self.records else { return Ok(()) };
        let fail = |message: String| DriverError::Record { dir: dir.display().to_string(), message };
        let (_, start_ticks) = records::stat(pid).ok_or_else(|| fail(format!("cannot read /proc/{pid}/stat")))?;
        records::write(dir, service, Record { pid, start_ticks }).map_err(|e| fail(e.to_string()))
    }

    /// Running while the supervised process has not exited. Changes nothing that runs: at most it adopts a
    /// recorded process or forgets a stale record.
    pub(crate) fn status(&self, service: &Name) -> Outcome {
        match self.lookup(service) {
            Err(unknown) => Outcome::Failed(unknown),
            Ok(None) => Outcome::Stopped,
            Ok(Some(s)) => match s.exited() {
                None => Outcome::Running,
                Some(status) => Outcome::Failed(DriverError::Exited { pid: s.pid.unsigned_abs(), status }),
            },
        }
    }

    /// Stops the service's process group: SIGTERM, then SIGKILL when `limit` runs out. Stopping a service that
    /// has no process is a success.
    pub async fn stop(&self, service: &Name, limit: Duration) -> Outcome {
        match self.lookup(service) {
            Err(unknown) => Outcome::Failed(unknown),
            Ok(None) => Outcome::Stopped,
            Ok(Some(entry)) => self.terminate(service, &entry, limit).await,
        }
    }

    async fn terminate(&self, service: &Name, entry: &Supervised, limit: Duration) -> Outcome {
        entry.stopping.store(true, Ordering::SeqCst);
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
            self.forget(service, entry.pid);
        }
        outcome
    }

    /// Drops a stopped process from the table and its record, unless a concurrent start replaced it.
    fn forget(&self, service: &Name, pid: i32) {
        let mut table = self.table();
        if table.get(service).is_some_and(|s| s.pid == pid) {
            table.remove(service);
        }
        drop(table);
        if let Some(dir) = &self.records
            && records::read(dir, service).is_ok_and(|r| r.is_some_and(|r| r.pid == pid))
        {
            // A record left behind only costs a check at the next lookup (the start time will not match).
            let _ = records::remove(dir, service);
        }
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
/// reaped by init, and an init that reaps late or never (this lab's, some containers') must not make a stopped
/// group look alive,
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
