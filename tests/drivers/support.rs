//! What the driver tests share: services built in code, scripts written to a temporary directory, and guards
//! that kill what a test started.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hactl::manifest::model::{Driver, Monitor, Service, Timeouts};
use hactl::manifest::values::Name;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// A service with short limits (2 s per action) and no probes.
pub fn service(name: &str, driver: Driver) -> Service {
    let limit = Duration::from_secs(2);
    Service {
        name: Name::parse(name).unwrap(),
        driver,
        timeouts: Timeouts { start: limit, stop: limit, monitor: limit },
        monitor: Monitor { interval: Duration::from_secs(1), timeout: limit, http: None, tcp: None },
    }
}

/// An `exec` driver from three shell lines.
pub fn exec(start: &str, stop: &str, status: &str) -> Driver {
    Driver::Exec { start: start.into(), stop: stop.into(), status: status.into() }
}

/// An OCF driver.
pub fn ocf(provider: &str, kind: &str, params: &[(&str, &str)]) -> Driver {
    let params: BTreeMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Driver::Ocf { provider: provider.into(), kind: kind.into(), params }
}

/// Writes an executable script (mode 0755).
pub fn script(path: &Path, body: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Shell test for "the process whose pid is in FILE is alive": /proc/PID exists and is not a zombie. Zombies
/// matter here: this lab's PID 1 reaps orphans only after a delay (about 1.5 s), and `kill -0` succeeds on a
/// zombie.
pub fn alive_sh(pid_file: &Path) -> String {
    format!(
        "grep -q '^State:[[:space:]]*[^Z[:space:]]' /proc/$(cat {} 2>/dev/null)/status 2>/dev/null",
        pid_file.display()
    )
}

/// Whether process `pid` is alive (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// Reads a pid written by a script the test started.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits up to `limit` for `condition`, checking every 10 ms.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let steps = limit.as_millis() / 10;
    for _ in 0..steps {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// Kills, when dropped, what the test started: process groups by id and processes whose pid a script wrote
/// to a file. Only these; never by name.
#[derive(Default)]
pub struct Reaper {
    groups: Vec<i32>,
    pid_files: Vec<PathBuf>,
}

impl Reaper {
    /// Kill this process group at the end.
    pub fn group(&mut self, pgid: Option<i32>) {
        self.groups.extend(pgid);
    }

    /// Kill the process whose pid is in this file at the end.
    pub fn pid_file(&mut self, path: &Path) {
        self.pid_files.push(path.to_path_buf());
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for pgid in &self.groups {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
        for path in &self.pid_files {
            if let Some(pid) = read_pid(path).filter(|p| *p > 1 && alive(*p)) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}
