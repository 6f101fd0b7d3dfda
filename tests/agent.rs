//! Two real agents in two network namespaces (DESIGN.md §5): one holder for the floating address and the
//! service, failover when the holder is powered off, and an invalid manifest edit that changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::netns::{Lab, Ns, eventually, netns_available};

const FLOATING: &str = "192.0.2.100";

/// Agents started by a test, killed by PID when it ends (the lab's Drop also kills what is left inside).
struct Agents {
    children: Vec<(String, Child, PathBuf)>,
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
    fn start(&mut self, ns: &Ns, node: &str, manifests: &Path, work: &Path) {
        let log = work.join(format!("{node}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = ns
            .cmd(env!("CARGO_BIN_EXE_hactl"))
            .args(["agent", "--node", node, "--manifests"])
            .arg(manifests)
            .arg("--state-dir")
            .arg(work.join(format!("state-{node}")))
            .env("HACTL_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        self.children.push((node.to_string(), child, log));
    }

    fn kill(&mut self, node: &str) {
        if let Some((_, child, _)) = self.children.iter_mut().find(|(n, _, _)| n == node) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(n, _, log)| format!("--- {n}\n{}", std::fs::read_to_string(log).unwrap_or_default()))
            .collect()
    }
}

fn manifests(dir: &Path, key: &Path) {
    let text = format!(
        "apiVersion: hactl/v1\nkind: Cluster\nmetadata: {{name: t}}\nspec:\n  authKeyFile: {}\n  quorum: {{policy: ignore}}\n  heartbeat: {{interval: 100ms, deadTime: 600ms, warnTime: 300ms, initDead: 1s}}\n---\n\
         apiVersion: hactl/v1\nkind: Node\nmetadata: {{name: ha1}}\nspec: {{address: 192.0.2.11}}\n---\n\
         apiVersion: hactl/v1\nkind: Node\nmetadata: {{name: ha2}}\nspec: {{address: 192.0.2.12}}\n---\n\
         apiVersion: hactl/v1\nkind: FloatingIP\nmetadata: {{name: ip1}}\nspec: {{address: {FLOATING}/24, interface: eth0, label: \"eth0:0\", announce: {{probeWait: 50ms}}}}\n---\n\
         apiVersion: hactl/v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  exec: {{run: \"exec sleep 600\"}}\n  monitor: {{interval: 1s}}\n---\n\
         apiVersion: hactl/v1\nkind: Group\nmetadata: {{name: WebServices}}\nspec: {{members: [ip1, web], prefer: {{ha1: 50}}}}\n",
        key.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cluster.yaml"), text).unwrap();
}

fn holds(ns: &Ns) -> bool {
    ns.ip_ok(&["addr", "show", "dev", "eth0"]) && ns.ip(&["-br", "addr", "show", "dev", "eth0"]).contains(FLOATING)
}

/// Whether a `sleep 600` (the group's service) runs inside `ns`.
fn runs_service(ns: &Ns) -> bool {
    let out = Command::new("ip").args(["netns", "pids", &ns.name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|pid| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with("sleep\x00600")))
}

fn holder(ha1: &Ns, ha2: &Ns) -> Option<&'static str> {
    match (holds(ha1), holds(ha2)) {
        (true, false) => Some("ha1"),
        (false, true) => Some("ha2"),
        _ => None,
    }
}

/// Labs with running agents run one at a time (DESIGN.md §5): they time failovers, and two at once on two
/// cores would measure each other.
static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Two nodes in a lab with their agents running.
struct Cluster {
    agents: Agents,
    ha1: Ns,
    ha2: Ns,
    dir: PathBuf,
    lab: Lab,
    _work: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let mut lab = Lab::start();
    let (ha1, ha2) = (lab.add_node("ha1"), lab.add_node("ha2"));
    ha1.ip(&["addr", "add", "192.0.2.11/24", "dev", "eth0"]);
    ha2.ip(&["addr", "add", "192.0.2.12/24", "dev", "eth0"]);
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("authkey");
    assert!(Command::new(env!("CARGO_BIN_EXE_hactl")).arg("keygen").arg(&key).status().unwrap().success());
    let dir = work.path().join("manifests");
    manifests(&dir, &key);
    let mut agents = Agents { children: Vec::new() };
    agents.start(&ha1, "ha1", &dir, work.path());
    agents.start(&ha2, "ha2", &dir, work.path());
    Cluster { agents, ha1, ha2, dir, lab, _work: work }
}

fn ns<'c>(c: &'c Cluster, node: &str) -> &'c Ns {
    if node == "ha1" { &c.ha1 } else { &c.ha2 }
}

#[test]
fn two_agents_elect_one_holder_and_fail_over_on_power_off() {
    if !netns_available("two_agents_elect_one_holder_and_fail_over_on_power_off") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut c = cluster();
    // Generous bounds (shared CI machines); the benchmark measures the real figures.
    let first = eventually(Duration::from_secs(20), || holder(&c.ha1, &c.ha2).filter(|n| runs_service(ns(&c, n))));
    let Some(first) = first else { panic!("no single holder with its service\n{}", c.agents.logs()) };
    let other = if first == "ha1" { "ha2" } else { "ha1" };
    assert!(!runs_service(ns(&c, other)), "the service must not run without the lease\n{}", c.agents.logs());

    // An invalid change is refused; everything keeps running where it is.
    let broken = "apiVersion: hactl/v1\nkind: Group\nmetadata: {name: G2}\nspec: {members: [nope]}\n";
    std::fs::write(c.dir.join("broken.yaml"), broken).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(holder(&c.ha1, &c.ha2), Some(first), "{}", c.agents.logs());
    assert!(runs_service(ns(&c, first)), "{}", c.agents.logs());
    assert!(c.agents.logs().contains("unknown member"), "the rejection is logged\n{}", c.agents.logs());
    std::fs::remove_file(c.dir.join("broken.yaml")).unwrap();

    // Power-off of the holder: its cable is gone and its agent (and service) die with it.
    c.lab.power_off(first);
    c.agents.kill(first);
    let next =
        eventually(Duration::from_secs(20), || (holds(ns(&c, other)) && runs_service(ns(&c, other))).then_some(()));
    assert!(next.is_some(), "{other} should take the group over\n{}", c.agents.logs());
}

#[test]
fn the_preferred_node_gets_the_group_at_start() {
    if !netns_available("the_preferred_node_gets_the_group_at_start") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = cluster();
    let first = eventually(Duration::from_secs(20), || holder(&c.ha1, &c.ha2).filter(|n| runs_service(ns(&c, n))));
    assert_eq!(first, Some("ha1"), "prefer {{ha1: 50}} should place the group on ha1\n{}", c.agents.logs());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(holder(&c.ha1, &c.ha2), Some("ha1"), "and it stays there\n{}", c.agents.logs());
}
