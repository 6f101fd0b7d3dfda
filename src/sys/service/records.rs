//! Records of supervised processes in the agent's state directory, so that an agent that restarted (a crash,
//! or the SIGUSR2 re-exec of DESIGN.md §4.7) finds the `exec: {run}` processes it started: it must neither
//! report them stopped while they run nor start a second copy, and at start-up it must be able to stop those of
//! groups it does not hold.
//!
//! A record is `PID STARTTIME` (the kernel's start time in clock ticks, /proc/PID/stat field 22): a pid that
//! was reused by another process has another start time, so it is never adopted or signalled.

use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::error::DriverError;
use crate::manifest::values::Name;

/// Poll step while watching an adopted process.
const ADOPTED_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// A supervised process as recorded when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    /// The process id, which is also its process group id.
    pub pid: i32,
    /// Its start time in clock ticks since boot.
    pub start_ticks: u64,
}

fn path(dir: &Path, service: &Name) -> PathBuf {
    // Names are letters, digits and '-' (manifest rule), so they are safe file names.
    dir.join(format!("{service}.pid"))
}

/// Writes the record durably (temporary file, fsync, rename, fsync of the directory: the rename is durable only
/// once the directory entry is), creating the directory if needed.
pub(crate) fn write(dir: &Path, service: &Name, record: Record) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let target = path(dir, service);
    let temporary = dir.join(format!(".{service}.pid.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    writeln!(file, "{} {}", record.pid, record.start_ticks)?;
    file.sync_all()?;
    std::fs::rename(&temporary, &target)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads a record: `Ok(None)` when there is none. A file that is there but cannot be read or parsed is an error,
/// never "no record": records are written atomically, so it takes corruption or a hand edit, and reading it as
/// absent would let the agent start a second copy of a process that may still run.
pub(crate) fn read(dir: &Path, service: &Name) -> Result<Option<Record>, DriverError> {
    let file = path(dir, service);
    let unreadable = |problem: String| DriverError::RecordUnreadable { path: file.display().to_string(), problem };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e.to_string())),
    };
    parse(&text).map(Some).ok_or_else(|| unreadable(format!("expected \"PID STARTTIME\", found {:?}", text.trim())))
}

/// Parses `PID STARTTIME`, nothing more.
fn parse(text: &str) -> Option<Record> {
    let mut fields = text.split_whitespace();
    let pid: i32 = fields.next()?.parse().ok()?;
    let start_ticks = fields.next()?.parse().ok()?;
    (pid > 0 && fields.next().is_none()).then_some(Record { pid, start_ticks })
}

/// Removes a record (a missing one is fine).
pub(crate) fn remove(dir: &Path, service: &Name) -> std::io::Result<()> {
    match std::fs::remove_file(path(dir, service)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The services that have a record.
pub(crate) fn list(dir: &Path) -> Vec<Name> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<Name> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".pid").and_then(|n| Name::parse(n).ok()))
        .collect();
    names.sort();
    names
}

/// The state letter and start time of a process, from /proc/PID/stat.
pub(crate) fn stat(pid: i32) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the last ')' (comm may hold anything): state is the 3rd field overall, starttime the 22nd.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.to_string(), fields.get(19)?.parse().ok()?))
}

/// The start time of a live (not zombie) process.
fn start_ticks(pid: i32) -> Option<u64> {
    stat(pid).filter(|(state, _)| !matches!(state.as_str(), "Z" | "X" | "x")).map(|(_, ticks)| ticks)
}

/// Whether the recorded process still runs: same pid, same start time, not a zombie.
pub(crate) fn runs(record: Record) -> bool {
    start_ticks(record.pid) == Some(record.start_ticks)
}

/// Waits until an adopted process exits and says how it ended. It is not a tokio child, so it cannot be waited
/// on; it is checked in /proc every 50 ms (DESIGN.md §3: tens of ms, never seconds; only adopted processes, only
/// after a restart, cost this). After a re-exec it is still this process's child, so it is reaped here, or it
/// would stay a zombie.
pub(crate) async fn wait_adopted(record: Record) -> String {
    while runs(record) {
        tokio::time::sleep(ADOPTED_POLL).await;
    }
    match waitpid(nix::unistd::Pid::from_raw(record.pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => format!("exit status: {code}"),
        Ok(WaitStatus::Signaled(_, signal, _)) => format!("signal: {} ({signal})", signal as i32),
        _ => "exited (started by an earlier agent; its exit status is unknown)".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_list() {
        let dir = std::env::temp_dir().join(format!("hactl-records-{}", std::process::id()));
        let name = Name::parse("web-1").unwrap();
        let record = Record { pid: 4242, start_ticks: 987_654 };
        write(&dir, &name, record).unwrap();
        assert_eq!(read(&dir, &name), Ok(Some(record)));
        assert_eq!(list(&dir), vec![name.clone()]);
        remove(&dir, &name).unwrap();
        remove(&dir, &name).unwrap();
        assert_eq!(read(&dir, &name), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_that_cannot_be_parsed_is_an_error_not_an_absence() {
        let dir = tempfile::tempdir().unwrap();
        let name = Name::parse("web").unwrap();
        for bad in ["", "garbage\n", "42\n", "42 x\n", "-1 5\n", "0 5\n", "42 5 7\n"] {
            std::fs::write(dir.path().join("web.pid"), bad).unwrap();
            let error = read(dir.path(), &name).unwrap_err();
            assert!(matches!(&error, DriverError::RecordUnreadable { .. }), "{bad:?}: {error}");
            assert!(error.to_string().contains("web.pid"), "{error}");
        }
    }

    #[test]
    fn this_process_runs_as_recorded_and_another_start_time_does_not() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let ticks = stat(pid).unwrap().1;
        assert!(runs(Record { pid, start_ticks: ticks }));
        assert!(!runs(Record { pid, start_ticks: ticks + 1 }));
    }
}
