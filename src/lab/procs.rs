//! Processes in lab nodes: started with `ip netns exec` (which execs the program, so the pid we get is the
//! program's), recorded with their start time, and killed by pid. A node's namespace belongs to the lab, so every
//! process inside it is one the lab started (or a child of one): power-off SIGKILLs them all, by pid.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::LabError;
use super::daemon::{DaemonCommand, NODE_DIR_ENV};
use super::shell;
use super::state::ProcRecord;

/// Starts `command` in namespace `ns` in its own process group (a Ctrl-C on the terminal of `hactl lab up`
/// must not reach it), output appended to its log.
pub(crate) fn spawn(ns: &str, node_dir: &std::path::Path, command: &DaemonCommand) -> Result<Child, LabError> {
    for file in &command.run_files {
        match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(LabError::io(file)(e)),
            _ => {}
        }
    }
    let log = OpenOptions::new().create(true).append(true).open(&command.log).map_err(LabError::io(&command.log))?;
    let log2 = log.try_clone().map_err(LabError::io(&command.log))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .args(&command.argv)
        .env(NODE_DIR_ENV, node_dir)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    cmd.spawn().map_err(|e| LabError::Command { command: command.argv.join(" "), detail: e.to_string() })
}

/// The record of a started child.
pub(crate) fn record(child: &Child) -> Option<ProcRecord> {
    let pid = i32::try_from(child.id()).ok()?;
    Some(ProcRecord { pid, start_ticks: start_ticks(pid)? })
}

/// /proc/PID/stat field 22 (start time in clock ticks); `None` if the process is gone.
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the recorded process still runs: the same process (start time), and not a zombie waiting to be reaped
/// whose threads are all gone. A killed multi-threaded process (every tokio daemon) shows its leader as a zombie
/// while its other threads are still exiting, and the last of them closes the files: until then its sockets
/// stay bound, and a restarted daemon fails to bind them ("Address already in use"). Measured here with 8 busy
/// threads: the leader was a zombie with threads left in 26 of 30 kills.
pub(crate) fn running(record: ProcRecord) -> bool {
    start_ticks(record.pid) == Some(record.start_ticks) && !finished(record.pid)
}

/// A zombie whose threads have all been released (threads leave /proc/PID/task only after closing their files).
fn finished(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    zombie && threads <= 1
}

/// Waits up to `limit` until `child` is reaped: only then has every thread of it exited, so nothing it held
/// (its sockets) is held any more. Polls every 5 ms. False if it is still there.
pub(crate) fn reap(child: &mut Child, limit: std::time::Duration) -> bool {
    let step = std::time::Duration::from_millis(5);
    for _ in 0..=(limit.as_millis() / step.as_millis()) {
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return true;
        }
        std::thread::sleep(step);
    }
    false
}

/// SIGKILLs a recorded process if it is still the same process (same start time).
pub(crate) fn kill_recorded(record: ProcRecord) {
    if start_ticks(record.pid) == Some(record.start_ticks) {
        let _ = kill(Pid::from_raw(record.pid), Signal::SIGKILL);
    }
}

/// Pids of the processes in namespace `ns` (`ip netns pids`), never our own.
pub(crate) fn pids_in(ns: &str) -> Vec<i32> {
    let own = i32::try_from(std::process::id()).unwrap_or(-1);
    shell::run("ip", &["netns", "pids", ns])
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .filter(|&p| p != own)
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process in namespace `ns`, then the recorded ones (a process that left the namespace is
/// still ours), repeating a few times for children forked meanwhile. Bounded: 5 rounds, 20 ms apart.
pub(crate) fn kill_all(ns: &str, records: &[ProcRecord]) {
    for _ in 0..5 {
        let pids = pids_in(ns);
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for &record in records {
            kill_recorded(record);
        }
        if pids.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Memory and CPU use of a set of processes, read from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessUsage {
    /// Sum of resident set sizes (VmRSS), in KiB.
    pub rss_kib: u64,
    /// Sum of CPU time (scheduler run time of every thread, nanosecond precision).
    pub cpu: std::time::Duration,
    /// How many of the processes were found.
    pub processes: usize,
}

/// CPU time of every thread of `pid` from /proc/PID/task/*/schedstat (first field: ns on the CPU); the
/// utime/stime of /proc/PID/stat count 10 ms ticks, too coarse for an idle daemon.
fn cpu_time(pid: i32) -> std::time::Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return std::time::Duration::ZERO };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    std::time::Duration::from_nanos(ns)
}

/// RSS and CPU time of `pids` whose command name is `comm` (the benchmark's idle cost of a daemon).
pub fn usage_of(pids: &[i32], comm: &str) -> ProcessUsage {
    let mut usage = ProcessUsage::default();
    for pid in pids {
        let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else { continue };
        if name.trim() != comm {
            continue;
        }
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok());
        let cpu = cpu_time(*pid);
        usage.rss_kib += rss.unwrap_or(0);
        usage.cpu += cpu;
        usage.processes += 1;
    }
    usage
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HELPER: &str = "HACTL_TEST_BUSY_SOCKET_HOLDER";

    /// Not a check: the process `a_killed_daemon_runs_until_its_sockets_are_closed` kills. Binds a UDP port, prints
    /// it, and keeps 8 threads busy writing and fsyncing (as a daemon persisting its ballots) for at most 20 s.
    #[test]
    #[ignore = "helper process, started by a_killed_daemon_runs_until_its_sockets_are_closed"]
    fn busy_socket_holder() {
        let Ok(dir) = std::env::var(HELPER) else { return };
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        println!("PORT={}", socket.local_addr().unwrap().port());
        for i in 0..8 {
            let path = std::path::Path::new(&dir).join(format!("f{i}"));
            std::thread::spawn(move || {
                loop {
                    let mut f = std::fs::File::create(&path).unwrap();
                    std::io::Write::write_all(&mut f, &[0u8; 65_536]).unwrap();
                    f.sync_all().unwrap();
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_secs(20));
    }

    /// The lab restarts a killed daemon once it no longer runs: by then its port must be free. A leader seen as a
    /// zombie is not enough (its threads may still hold the socket: the "Address already in use" of a restart
    /// right after kill -9); `running` waits for the threads too.
    #[test]
    fn a_killed_daemon_runs_until_its_sockets_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut refused = Vec::new();
        for trial in 0..10 {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--ignored", "--exact", "--nocapture", "lab::procs::tests::busy_socket_holder"])
                .env(HELPER, dir.path())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let port = std::iter::from_fn(|| {
                let mut line = String::new();
                (std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0).then_some(line)
            })
            .find_map(|l| l.trim().strip_prefix("PORT=").map(|p| p.parse::<u16>().unwrap()))
            .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            let record = record(&child).unwrap();
            kill(Pid::from_raw(record.pid), Signal::SIGKILL).unwrap();
            // Bounded: 100,000 looks at /proc (the exit takes milliseconds).
            let gone = (0..100_000).find(|_| !running(record)).is_some();
            assert!(gone, "trial {trial}: the killed helper still runs");
            if let Err(e) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
                refused.push(format!("trial {trial}: {e}"));
            }
            child.wait().unwrap();
        }
        assert!(
            refused.is_empty(),
            "the port was still bound when the process no longer counted as running: {refused:?}"
        );
    }

    #[test]
    fn own_start_time_and_usage_are_read() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(start_ticks(me).is_some());
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        let usage = usage_of(&[me], comm.trim());
        assert_eq!(usage.processes, 1);
        assert!(usage.rss_kib > 0 && usage.cpu > std::time::Duration::ZERO);
        assert_eq!(usage_of(&[me], "no-such-comm").processes, 0);
    }
}
