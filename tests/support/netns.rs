//! Network-namespace labs for tests on the real kernel (DESIGN.md §5): every node is a namespace joined to a bridge
//! that lives in a namespace of its own, so nothing is created in the root namespace. A [`Lab`] deletes every
//! namespace it created, and stops the processes left in them, when it is dropped — also when the test panics.
//!
//! Names are unique per process and lab (`hx<pid><n>-<node>`), so tests can run in parallel and next to other test
//! runs on the same machine. Interface names live inside the lab's namespaces, so they can be short and fixed
//! (`eth0` in a node, `v<node>` on the bridge) and stay under 15 bytes.
//!
//! Tests that need namespaces call [`netns_available`] first: with `HACTL_SKIP_NETNS=1` it prints that the test
//! was skipped and returns false; otherwise it fails with a clear message when the test is not run as root or `ip`
//! is missing.

use std::future::Future;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Labs created by this process so far, for unique names.
static LABS: AtomicU32 = AtomicU32::new(0);

/// Whether the namespace tests can run; see the module docs.
pub fn netns_available(test: &str) -> bool {
    if std::env::var("HACTL_SKIP_NETNS").is_ok_and(|v| v == "1") {
        eprintln!("skipped {test}: HACTL_SKIP_NETNS=1 (needs root and network namespaces)");
        return false;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "{test} needs root to create network namespaces; run as root or set HACTL_SKIP_NETNS=1 to skip it"
    );
    let ip = Command::new("ip").arg("-V").output();
    assert!(
        ip.is_ok_and(|o| o.status.success()),
        "{test} needs iproute2's `ip` (apt-get install -y iproute2); or set HACTL_SKIP_NETNS=1 to skip it"
    );
    true
}

/// Runs a command to completion and panics with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One network namespace of a lab.
#[derive(Debug, Clone)]
pub struct Ns {
    /// The namespace's name (under /run/netns).
    pub name: String,
}

impl Ns {
    /// A command that runs `program` inside this namespace (`ip netns exec`).
    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `ip ARGS` inside the namespace and returns its stdout; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        String::from_utf8_lossy(&run(&mut cmd).stdout).into_owned()
    }

    /// Runs `ip ARGS` inside the namespace and reports whether it succeeded (for commands expected to fail).
    pub fn ip_ok(&self, args: &[&str]) -> bool {
        Command::new("ip").args(["-n", &self.name]).args(args).output().is_ok_and(|o| o.status.success())
    }

    /// Runs the future built by `f` on a thread that has entered this namespace, on a fresh current-thread tokio
    /// runtime built after `setns`, so netlink and raw sockets (and /proc/sys/net) are this namespace's. Panics in
    /// the closure are re-raised in the caller.
    pub fn block_on<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            rt.block_on(f())
        });
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The MAC address of `ifname` in this namespace.
    pub fn mac(&self, ifname: &str) -> String {
        let out = self.ip(&["-br", "link", "show", "dev", ifname]);
        out.split_whitespace().nth(2).unwrap_or_else(|| panic!("no MAC in {out:?}")).to_string()
    }
}

/// A lab: a bridge namespace and node namespaces wired to it. Dropping it removes everything it created.
#[derive(Debug)]
pub struct Lab {
    id: String,
    /// Namespaces created, in creation order (deleted in reverse).
    namespaces: Vec<Ns>,
    bridge: Ns,
    nodes: u8,
}

impl Lab {
    /// Creates the lab's bridge namespace with bridge `br0` up.
    pub fn start() -> Lab {
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let id = format!("hx{}x{n}", std::process::id());
        let mut lab = Lab { bridge: Ns { name: format!("{id}-br") }, id, namespaces: Vec::new(), nodes: 0 };
        let bridge = lab.bridge.clone();
        lab.add_namespace(&bridge);
        bridge.ip(&["link", "add", "br0", "type", "bridge"]);
        bridge.ip(&["link", "set", "br0", "up"]);
        lab
    }

    /// The bridge's namespace.
    pub fn bridge(&self) -> &Ns {
        &self.bridge
    }

    /// Adds a node namespace `name` whose `eth0` (MAC 02:48:58:00:00:NN, NN the node's number) is wired to the
    /// bridge through `v<name>`; `eth0` and `lo` are up.
    pub fn add_node(&mut self, name: &str) -> Ns {
        assert!(name.len() <= 8, "node name {name:?} too long: bridge port v<name> must fit 15 bytes");
        let ns = Ns { name: format!("{}-{name}", self.id) };
        self.add_namespace(&ns);
        self.nodes += 1;
        let port = format!("v{name}");
        let mac = format!("02:48:58:00:00:{:02x}", self.nodes);
        // Created inside the bridge namespace with its peer moved straight into the node: never in the root one.
        self.bridge.ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name]);
        self.bridge.ip(&["link", "set", &port, "master", "br0", "up"]);
        ns.ip(&["link", "set", "eth0", "address", &mac]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns
    }

    /// Cuts `node`'s cable: its bridge port goes down, so the node's `eth0` loses carrier but keeps its addresses.
    pub fn unplug(&self, node: &str) {
        self.bridge.ip(&["link", "set", &format!("v{node}"), "down"]);
    }

    /// Plugs `node`'s cable back in.
    pub fn plug(&self, node: &str) {
        self.bridge.ip(&["link", "set", &format!("v{node}"), "up"]);
    }

    /// Powers `node` off as DESIGN.md §5 describes: its veth is deleted, and its addresses go with it.
    pub fn power_off(&self, node: &str) {
        self.bridge.ip(&["link", "del", &format!("v{node}")]);
    }

    fn add_namespace(&mut self, ns: &Ns) {
        run(Command::new("ip").args(["netns", "add", &ns.name]));
        self.namespaces.push(ns.clone());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            // Processes still inside are ones this lab's test started there (the namespace is the test's own).
            let pids = Command::new("ip").args(["netns", "pids", &ns.name]).output();
            if let Ok(out) = pids {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                    }
                }
            }
            let del = Command::new("ip").args(["netns", "del", &ns.name]).output();
            if !del.is_ok_and(|o| o.status.success()) {
                eprintln!("warning: could not delete network namespace {}", ns.name);
            }
        }
    }
}

/// Polls `check` every 20 ms, at most `limit / 20 ms + 1` times, until it returns `Some`: a bounded loop for
/// "eventually" assertions (it reads no clock, so a slow `check` only stretches the bound).
pub fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    const STEP: Duration = Duration::from_millis(20);
    let tries = limit.as_millis() / STEP.as_millis() + 1;
    for _ in 0..tries {
        if let Some(v) = check() {
            return Some(v);
        }
        std::thread::sleep(STEP);
    }
    None
}
