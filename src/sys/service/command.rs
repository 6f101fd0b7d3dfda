//! Running one action command (an init script, an OCF agent, systemctl, a shell line) within a time limit.
//!
//! Every command runs in a process group of its own, so that a command that overruns its limit is killed with
//! everything it started (Pacemaker likewise kills an operation that times out); a daemon that the command
//! started and that detached itself (setsid) is not in that group and lives on, as it should.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::error::DriverError;

/// How much of a command's output is kept for the failure reason (the end matters most).
const OUTPUT_TAIL_BYTES: usize = 2048;
/// How long to wait, after the command exited, for the rest of its output: a daemon that it started may hold
/// the pipe open forever, so the reader is not awaited to the end.
const OUTPUT_GRACE: Duration = Duration::from_millis(50);
/// How long to wait for a timed-out command to be reaped after SIGKILL (only a process stuck in the kernel,
/// state D, takes longer; tokio reaps it later).
const REAP_GRACE: Duration = Duration::from_secs(1);

/// One command to run: a program, its arguments and extra environment.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    /// The program (absolute path or one found on PATH).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables added to the agent's environment.
    pub env: Vec<(String, String)>,
    /// The time limit.
    pub limit: Duration,
}

impl Invocation {
    /// A shell line run by `/bin/sh -c`, as `exec` drivers specify.
    pub fn shell(line: &str, limit: Duration) -> Invocation {
        Invocation { program: "/bin/sh".into(), args: vec!["-c".into(), line.into()], env: Vec::new(), limit }
    }

    /// The command as a person would type it, for messages.
    pub fn display(&self) -> String {
        let mut text = self.program.display().to_string();
        for arg in &self.args {
            text.push(' ');
            text.push_str(&arg.to_string_lossy());
        }
        text
    }
}

/// How a command ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// It exited with this code.
    Code(i32),
    /// A signal the driver did not send killed it.
    Signal(i32),
    /// It overran its limit; its process group was killed.
    TimedOut,
}

/// What a finished command left: how it ended and the end of what it printed.
#[derive(Debug)]
pub(crate) struct Ran {
    /// How it ended.
    pub ended: Ended,
    /// The last bytes of its standard output.
    pub stdout: String,
    /// The last bytes of its standard error.
    pub stderr: String,
}

impl Ran {
    /// The output worth showing in a failure reason: standard error, else standard output, trimmed.
    pub fn output(&self) -> String {
        let text = if self.stderr.trim().is_empty() { &self.stdout } else { &self.stderr };
        text.trim().to_string()
    }
}

/// Runs the command in its own process group, stdin from /dev/null, working directory `/` (so that a daemon
/// it starts does not pin a mount), and waits for it within its limit.
pub(crate) async fn run(inv: &Invocation) -> Result<Ran, DriverError> {
    let mut command = Command::new(&inv.program);
    command
        .args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let program = inv.program.display().to_string();
    let mut child =
        command.spawn().map_err(|e| DriverError::Spawn { program: program.clone(), message: e.to_string() })?;
    // If this future is dropped before the command ends (the agent gave up on the action), the whole group
    // goes, not only the direct child that `kill_on_drop` covers.
    let mut guard = GroupGuard(child.id());
    let stdout = Tail::drain(child.stdout.take());
    let stderr = Tail::drain(child.stderr.take());
    let ended = match tokio::time::timeout(inv.limit, child.wait()).await {
        Ok(Ok(status)) => ended(status),
        Ok(Err(e)) => return Err(DriverError::Wait { program, message: e.to_string() }),
        Err(_) => {
            kill_group(child.id());
            // Reaping is bounded: the group got SIGKILL, so only a process stuck in the kernel delays it.
            let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
            Ended::TimedOut
        }
    };
    // The command ended: what is left in its group (a daemon that a start command put in the background) is
    // the service itself and must live on.
    guard.0 = None;
    Ok(Ran { ended, stdout: stdout.finish().await, stderr: stderr.finish().await })
}

/// Kills the command's process group when dropped while still armed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

fn ended(status: ExitStatus) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Code(code),
        (None, Some(signal)) => Ended::Signal(signal),
        // A waited-for child has either an exit code or a terminating signal; stopped children are not reported.
        (None, None) => Ended::Code(-1),
    }
}

/// SIGKILL to the group the command leads (its pid is the group id: `process_group(0)`).
fn kill_group(pid: Option<u32>) {
    let Some(pgid) = pid.and_then(|p| i32::try_from(p).ok()) else { return };
    // ESRCH means the group is already gone, which is what we want.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// The end of one output stream, read by a task of its own so that the command never blocks on a full pipe.
struct Tail {
    buffer: Arc<Mutex<Vec<u8>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Tail {
    fn drain<R: AsyncRead + Unpin + Send + 'static>(stream: Option<R>) -> Tail {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let reader = stream.map(|mut stream| {
            let buffer = Arc::clone(&buffer);
            // The task ends at end of file: when the command and whatever inherited its output have exited.
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut chunk).await {
                    let mut kept = buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    kept.extend_from_slice(&chunk[..n]);
                    let excess = kept.len().saturating_sub(OUTPUT_TAIL_BYTES);
                    kept.drain(..excess);
                }
            })
        });
        Tail { buffer, reader }
    }

    async fn finish(self) -> String {
        if let Some(reader) = self.reader {
            // Not awaited to the end: a daemon started by the command may keep the pipe open for good.
            let _ = tokio::time::timeout(OUTPUT_GRACE, reader).await;
        }
        let kept = self.buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&kept).into_owned()
    }
}
