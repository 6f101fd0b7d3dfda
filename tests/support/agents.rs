//! Real agents started by tests in a lab's namespaces, ended by PID, and the lock that runs labs one at a time.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use super::netns::Ns;

/// Labs with running agents run one at a time (DESIGN.md §5): they time failovers, and two at once on two
/// cores would measure each other.
pub static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Agents started by a test, killed by PID when it ends (the lab's Drop also kills what is left inside). A node
/// restarted by a test has several entries; `kill`, `pid` and `wait_exit` mean its latest agent.
#[derive(Default)]
pub struct Agents {
    /// Node, process, log file.
    pub children: Vec<(String, Child, PathBuf)>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Agents {
    pub fn start(&mut self, ns: &Ns, node: &str, manifests: &Path, work: &Path) {
        let log = work.join(format!("{node}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = ns
            .cmd(env!("CARGO_BIN_EXE_hactl"))
            .args(["agent", "--node", node, "--manifests"])
            .arg(manifests)
            .arg("--state-dir")
            .arg(work.join(format!("state-{node}")))
            .arg("--api-socket")
            .arg(Agents::socket(work, node))
            .env("HACTL_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        self.children.push((node.to_string(), child, log));
    }

    /// The local API socket of `node`'s agent.
    pub fn socket(work: &Path, node: &str) -> PathBuf {
        work.join(format!("{node}.sock"))
    }

    /// SIGKILLs `node`'s agent and reaps it: once reaped every thread has exited, so its sockets are closed and
    /// an agent started right after binds the port (a process seen as a zombie may still hold them).
    pub fn kill(&mut self, node: &str) {
        if let Some((_, child, _)) = self.children.iter_mut().rev().find(|(n, _, _)| n == node) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `limit` for `node`'s agent to exit by itself; its exit status, or None if it still runs.
    pub fn wait_exit(&mut self, node: &str, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let (_, child, _) = self.children.iter_mut().rev().find(|(n, _, _)| n == node)?;
        for _ in 0..(limit.as_millis() / 20 + 1) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    pub fn pid(&self, node: &str) -> nix::unistd::Pid {
        let (_, child, _) = self.children.iter().rev().find(|(n, _, _)| n == node).unwrap();
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap())
    }

    pub fn signal(&self, node: &str, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(node), signal).unwrap();
    }

    pub fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(n, _, log)| format!("--- {n}\n{}", std::fs::read_to_string(log).unwrap_or_default()))
            .collect()
    }
}
