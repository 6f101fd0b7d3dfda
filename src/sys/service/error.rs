//! Why a driver action failed, as a value the core can print, compare and show in `status`.

use std::time::Duration;

/// Why a start, stop, status or monitor action failed. Cloneable and comparable, so a failure can travel
/// back to the core as an input and be recorded; OS errors are kept as their text for that reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The command could not be started at all (missing script, not executable): nothing ran.
    #[error("could not run {program}: {message}")]
    Spawn {
        /// The program that was to run.
        program: String,
        /// The OS error.
        message: String,
    },
    /// Waiting for the command failed; whether it finished is unknown.
    #[error("lost track of {program}: {message}")]
    Wait {
        /// The program that ran.
        program: String,
        /// The OS error.
        message: String,
    },
    /// The command exited with a code that means failure for this action.
    #[error("{command} exited with {code} ({meaning}){}", output_suffix(.output))]
    Exit {
        /// What ran, e.g. `/etc/init.d/httpd start`.
        command: String,
        /// Its exit code.
        code: i32,
        /// What the code means under the driver's convention (LSB, OCF, systemctl).
        meaning: String,
        /// The last lines it printed (OCF: its `ocf-exit-reason`, when it gave one).
        output: String,
    },
    /// The command was killed by a signal that the driver did not send.
    #[error("{command} was killed by signal {signal}{}", output_suffix(.output))]
    Signaled {
        /// What ran.
        command: String,
        /// The signal number.
        signal: i32,
        /// The last lines it printed.
        output: String,
    },
    /// The configuration cannot be turned into a command (an OCF parameter name that is no variable name).
    #[error("invalid driver configuration: {0}; nothing was run")]
    Config(String),
    /// A supervised process (`exec: {run}`) is not running.
    #[error("supervised process {pid} exited: {status}")]
    Exited {
        /// Its process id.
        pid: u32,
        /// How it ended (`exit status: 1`, `signal: 9 (SIGKILL)`).
        status: String,
    },
    /// Processes of a supervised group were still alive after SIGKILL: the service may still run.
    #[error("process group {pgid} survived SIGKILL for {waited:?}; the service may still run")]
    Survived {
        /// The process group id.
        pgid: i32,
        /// How long the driver waited after SIGKILL.
        waited: Duration,
    },
    /// Signalling a supervised process group failed (not ESRCH: that only means it is gone).
    #[error("could not signal process group {pgid}: {message}")]
    Signal {
        /// The process group id.
        pgid: i32,
        /// The OS error.
        message: String,
    },
    /// A supervised process could not be recorded in the records directory; it was stopped again, since a
    /// restarted agent would not know it and could start a second copy.
    #[error("could not record the supervised process in {dir}: {message}; it was stopped")]
    Record {
        /// The records directory.
        dir: String,
        /// The OS error.
        message: String,
    },
    /// A supervised process's record exists but cannot be read or parsed (corruption, a hand edit): whether the
    /// process runs is unknown, so nothing is started (a second copy could run), signalled (the pid may be
    /// another process's) or reported stopped until the operator has looked.
    #[error(
        "the record {path} cannot be read ({problem}): whether the service runs is unknown, so nothing was \
         started or stopped; stop any copy that still runs, then remove the file"
    )]
    RecordUnreadable {
        /// The record file.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The HTTP probe did not get the expected status.
    #[error("http probe {url}: {problem}")]
    Http {
        /// The probed URL.
        url: String,
        /// What went wrong: connect error, bad status line, unexpected status.
        problem: String,
    },
    /// The TCP probe could not connect.
    #[error("tcp probe {address}: {problem}")]
    Tcp {
        /// The probed address.
        address: String,
        /// The connect error.
        problem: String,
    },
}

fn output_suffix(output: &str) -> String {
    if output.is_empty() { String::new() } else { format!(": {output}") }
}
