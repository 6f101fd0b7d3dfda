//! A lab instance: building the topology, powering nodes off and on, faults, status, and the idempotent
//! tear-down that also works from the state file alone after a crash.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use super::daemon::{NodeContext, NodeDaemon, PeerContext};
use super::state::{NodeState, State};
use super::{LabError, LabSpec, netfilter, probe, procs, sampler, shell, web};

/// Bridge port of the client.
const CLIENT_PORT: &str = "v-client";

/// A lab that exists: its state, and the processes this process started (reaped after they are killed).
#[derive(Debug)]
pub struct Lab {
    state: State,
    children: BTreeMap<String, Vec<Child>>,
}

impl Lab {
    /// Builds the lab of `spec` with `daemon` on every node, and starts each node. On failure everything
    /// created so far is torn down again and the first error is returned.
    pub fn up(spec: LabSpec, daemon: &dyn NodeDaemon) -> Result<Lab, LabError> {
        spec.check()?;
        let path = State::path(&spec.root, &spec.tag);
        if path.exists() {
            return Err(LabError::Exists(spec.tag.clone(), path));
        }
        let (root, tag) = (spec.root.clone(), spec.tag.clone());
        let nodes = spec.nodes.iter().map(|n| (n.name.clone(), NodeState::default())).collect();
        let state = State { spec, daemon: daemon.name().to_string(), namespaces: Vec::new(), nodes, owner: None };
        let mut lab = Lab { state, children: BTreeMap::new() };
        match lab.build(daemon) {
            Ok(()) => Ok(lab),
            Err(e) => {
                lab.reap_all();
                let _ = teardown(&root, &tag);
                Err(e)
            }
        }
    }

    /// The lab `tag` under `root` as recorded in its state file (for the CLI's later commands).
    pub fn attach(root: &Path, tag: &str) -> Result<Lab, LabError> {
        Ok(Lab { state: State::load(root, tag)?, children: BTreeMap::new() })
    }

    fn build(&mut self, daemon: &dyn NodeDaemon) -> Result<(), LabError> {
        self.state.save()?;
        let spec = self.state.spec.clone();
        let br = spec.bridge_ns();
        self.add_namespace(&br)?;
        shell::ip_in(&br, &["link", "add", "br0", "type", "bridge"])?;
        shell::ip_in(&br, &["link", "set", "br0", "up"])?;
        let client = spec.client_ns();
        self.add_namespace(&client)?;
        self.cable(&client, CLIENT_PORT, "02:48:4c:00:00:32", &format!("{}/24", spec.client))?;
        for (rank, node) in spec.nodes.iter().enumerate() {
            let ns = spec.node_ns(&node.name);
            self.add_namespace(&ns)?;
            let dir = spec.node_dir(&node.name);
            std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
            let mut commands = Vec::new();
            if !daemon.starts_web_server() {
                commands.push(web::prepare(&node.name, &dir)?);
            }
            let peers = spec.nodes.iter().filter(|p| p.name != node.name);
            let ctx = NodeContext {
                node: &node.name,
                rank,
                address: node.address,
                peers: peers.map(|p| PeerContext { name: p.name.clone(), address: p.address }).collect(),
                floating: spec.floating,
                dir: &dir,
            };
            commands.extend(daemon.prepare(&ctx)?);
            self.state.node_mut(&node.name)?.commands = commands;
            self.power_on(&node.name)?;
        }
        Ok(())
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), LabError> {
        // Recorded first: a crash between the two lines leaves a name that `down` ignores if absent.
        self.state.namespaces.push(ns.to_string());
        self.state.save()?;
        shell::run("ip", &["netns", "add", ns])?;
        shell::ip_in(ns, &["link", "set", "lo", "up"]).map(drop)
    }

    /// Wires namespace `ns` to the bridge: veth `port` in the bridge namespace, `eth0` with `mac` and `cidr`
    /// in `ns`. Created in the bridge namespace with the peer moved straight into `ns`: never in the root one.
    fn cable(&self, ns: &str, port: &str, mac: &str, cidr: &str) -> Result<(), LabError> {
        let br = self.state.spec.bridge_ns();
        shell::ip_in(&br, &["link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
        shell::ip_in(&br, &["link", "set", port, "master", "br0", "up"])?;
        shell::ip_in(ns, &["link", "set", "eth0", "address", mac])?;
        shell::ip_in(ns, &["addr", "add", cidr, "dev", "eth0"])?;
        shell::ip_in(ns, &["link", "set", "eth0", "up"]).map(drop)
    }

    /// Records the calling process as the lab's owner (see [`sweep_orphans`]).
    pub(crate) fn set_owner(&mut self) -> Result<(), LabError> {
        let pid = i32::try_from(std::process::id()).unwrap_or(-1);
        self.state.owner = procs::start_ticks(pid).map(|start_ticks| super::state::ProcRecord { pid, start_ticks });
        self.state.save()
    }

    /// The lab's description.
    pub fn spec(&self) -> &LabSpec {
        &self.state.spec
    }

    /// The node daemon's name.
    pub fn daemon(&self) -> &str {
        &self.state.daemon
    }

    /// (node, namespace) pairs, for the sampler.
    pub fn node_namespaces(&self) -> Vec<(String, String)> {
        let spec = &self.state.spec;
        spec.nodes.iter().map(|n| (n.name.clone(), spec.node_ns(&n.name))).collect()
    }

    /// Powers `node` on: a new cable (veth) with its address, faults cleared (a reboot empties nftables), and
    /// its commands started again. Powering on a node that is on is refused by `ip` (the port exists).
    pub fn power_on(&mut self, node: &str) -> Result<(), LabError> {
        let spec = self.state.spec.clone();
        let addr = format!("{}/24", spec.node(node)?.address);
        let ns = spec.node_ns(node);
        netfilter::heal(&ns)?;
        self.state.node_mut(node)?.powered = true;
        self.state.save()?;
        self.cable(&ns, &LabSpec::port(node), &spec.mac(node)?, &addr)?;
        let dir = spec.node_dir(node);
        for command in self.state.node_mut(node)?.commands.clone() {
            let child = procs::spawn(&ns, &dir, &command)?;
            if let Some(record) = procs::record(&child) {
                self.state.node_mut(node)?.processes.push(record);
            }
            self.children.entry(node.to_string()).or_default().push(child);
            self.state.save()?;
        }
        Ok(())
    }

    /// Powers `node` off as DESIGN.md §5 says: its veth is deleted (its addresses go with it), then every
    /// process in it is SIGKILLed by pid. Idempotent.
    pub fn power_off(&mut self, node: &str) -> Result<(), LabError> {
        let spec = self.state.spec.clone();
        let ns = spec.node_ns(node);
        spec.node(node)?;
        if let Err(e) = shell::ip_in(&spec.bridge_ns(), &["link", "del", &LabSpec::port(node)]) {
            // Already off: the port is gone. Anything else is a real failure.
            if self.state.node_mut(node)?.powered {
                return Err(e);
            }
        }
        let state = self.state.node_mut(node)?;
        procs::kill_all(&ns, &state.processes);
        state.powered = false;
        state.processes.clear();
        self.state.save()?;
        for mut child in self.children.remove(node).unwrap_or_default() {
            // SIGKILLed above: wait returns at once.
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Cuts `node` off from `peers` (nftables in the node's namespace, both directions); replaces earlier faults
    /// of that node.
    pub fn partition(&self, node: &str, peers: &[&str]) -> Result<(), LabError> {
        let spec = &self.state.spec;
        let addrs = peers.iter().map(|p| spec.node(p).map(|n| n.address)).collect::<Result<Vec<_>, _>>()?;
        netfilter::apply(&spec.node_ns(spec.node(node)?.name.as_str()), &addrs, 0)
    }

    /// Drops `percent` % of the packets arriving on `eth0` of `target` (a node or `client`).
    pub fn loss(&self, target: &str, percent: u8) -> Result<(), LabError> {
        netfilter::apply(&self.namespace_of(target)?, &[], percent)
    }

    /// Removes the faults of `target` (a node or `client`).
    pub fn heal(&self, target: &str) -> Result<(), LabError> {
        netfilter::heal(&self.namespace_of(target)?)
    }

    fn namespace_of(&self, target: &str) -> Result<String, LabError> {
        let spec = &self.state.spec;
        if target == "client" { Ok(spec.client_ns()) } else { Ok(spec.node_ns(&spec.node(target)?.name)) }
    }

    /// The nodes that hold the floating address now.
    pub fn holders(&self) -> Result<Vec<String>, LabError> {
        sampler::holders_now(&self.node_namespaces(), self.state.spec.floating)
    }

    /// One request of the floating address from the client, as the probe makes it.
    pub fn request(&self, timeout: Duration) -> Result<probe::Answer, LabError> {
        let target = SocketAddr::from((self.state.spec.floating, 80));
        probe::spawn_in(&self.state.spec.client_ns(), "lab-request", move || probe::get_once(target, timeout))?
            .join()
            .unwrap_or(Err(LabError::Panicked("request")))
    }

    /// Probes the floating address from the client every 10 ms (100 ms timeout) for `duration`.
    pub fn probe_for(&self, duration: Duration) -> Result<Vec<probe::ProbeRecord>, LabError> {
        let target = SocketAddr::from((self.state.spec.floating, 80));
        let (period, timeout) = (Duration::from_millis(10), Duration::from_millis(100));
        let origin = std::time::Instant::now();
        let prober = probe::Prober::start(&self.state.spec.client_ns(), target, period, timeout, duration, origin)?;
        std::thread::sleep(duration);
        prober.finish()
    }

    /// One request of `address` (not necessarily the lab's floating one) from the client.
    pub fn request_to(&self, address: std::net::Ipv4Addr, timeout: Duration) -> Result<probe::Answer, LabError> {
        let target = SocketAddr::from((address, 80));
        probe::spawn_in(&self.state.spec.client_ns(), "lab-request", move || probe::get_once(target, timeout))?
            .join()
            .unwrap_or(Err(LabError::Panicked("request")))
    }

    /// Runs the hactl CLI with `args` inside `node`'s namespace against that node's agent (its own API socket):
    /// what an operator logged in on the node types. The exit status is the caller's to judge.
    pub fn hactl(&self, node: &str, args: &[&str]) -> Result<std::process::Output, LabError> {
        let index = self.daemon_index(node)?;
        let binary = self.state.nodes[node].commands[index].argv.first().cloned().unwrap_or_default();
        let socket = super::hactl::api_socket(&self.state.spec.node_dir(node));
        let ns = self.state.spec.node_ns(node);
        let line = format!("ip netns exec {ns} {binary} {}", args.join(" "));
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns, &binary])
            .args(args)
            .env("HACTL_SOCKET", &socket)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| LabError::Command { command: line, detail: e.to_string() })
    }

    /// Position of the node daemon's command (the one labelled with the daemon's name) in `node`'s commands.
    fn daemon_index(&self, node: &str) -> Result<usize, LabError> {
        let state = self.state.nodes.get(node).ok_or_else(|| LabError::UnknownNode(node.to_string()))?;
        state
            .commands
            .iter()
            .position(|c| c.label == self.state.daemon)
            .ok_or_else(|| LabError::Daemon(format!("{node} runs no {}", self.state.daemon)))
    }

    /// The pid of the node daemon on `node` as the lab started it, if it still runs.
    pub fn daemon_pid(&self, node: &str) -> Result<Option<i32>, LabError> {
        let index = self.daemon_index(node)?;
        let record = self.state.nodes[node].processes.get(index).copied();
        Ok(record.filter(|r| procs::running(*r)).map(|r| r.pid))
    }

    /// Starts the node daemon of `node` again after it died (a `kill -9` test), leaving everything else in the
    /// namespace as it is: what systemd's `Restart=always` does. Refused while it still runs.
    pub fn restart_daemon(&mut self, node: &str) -> Result<(), LabError> {
        if let Some(pid) = self.daemon_pid(node)? {
            return Err(LabError::Daemon(format!("the daemon of {node} still runs (pid {pid})")));
        }
        let index = self.daemon_index(node)?;
        // Reaped, not merely a zombie: a killed daemon's threads may still hold its sockets (see `procs::running`),
        // so the new one would fail to bind its port. Bounded: exiting threads take milliseconds.
        let old = self.state.nodes[node].processes.get(index).map(|r| r.pid);
        if let Some(children) = self.children.get_mut(node) {
            for child in children.iter_mut().filter(|c| i32::try_from(c.id()).ok() == old) {
                if !procs::reap(child, std::time::Duration::from_secs(5)) {
                    return Err(LabError::Daemon(format!("the daemon of {node} was not reaped within 5 s")));
                }
            }
            children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        }
        let spec = self.state.spec.clone();
        let command = self.state.node_mut(node)?.commands[index].clone();
        let child = procs::spawn(&spec.node_ns(node), &spec.node_dir(node), &command)?;
        let record = procs::record(&child).ok_or_else(|| LabError::Daemon(format!("{node}: daemon vanished")))?;
        let processes = &mut self.state.node_mut(node)?.processes;
        match processes.get_mut(index) {
            Some(slot) => *slot = record,
            None => processes.push(record),
        }
        self.children.entry(node.to_string()).or_default().push(child);
        self.state.save()
    }

    /// Pids of the processes running in `node`.
    pub fn pids(&self, node: &str) -> Result<Vec<i32>, LabError> {
        Ok(procs::pids_in(&self.state.spec.node_ns(&self.state.spec.node(node)?.name)))
    }

    /// Whether `node` is powered on.
    pub fn powered(&self, node: &str) -> bool {
        self.state.nodes.get(node).is_some_and(|n| n.powered)
    }

    /// Tears the lab down (see [`teardown`]).
    pub fn down(mut self) -> Result<Vec<String>, LabError> {
        self.reap_all();
        teardown(&self.state.spec.root, &self.state.spec.tag)
    }

    fn reap_all(&mut self) {
        for ns in self.state.namespaces.clone() {
            procs::kill_all(&ns, &[]);
        }
        for (_, children) in std::mem::take(&mut self.children) {
            for mut child in children {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Removes lab `tag`: every process in its namespaces and every recorded one is SIGKILLed by pid, its
/// namespaces (recorded ones, and any `hl-<tag>-*` left by a crash before the record) deleted, its directory
/// removed. Idempotent: a missing lab is not an error. Returns the namespaces deleted.
pub fn teardown(root: &Path, tag: &str) -> Result<Vec<String>, LabError> {
    let state = match State::load(root, tag) {
        Ok(state) => Some(state),
        Err(LabError::Missing(..)) => None,
        Err(e) => return Err(e),
    };
    let prefix = format!("hl-{tag}-");
    let existing = shell::namespaces()?;
    let mut doomed: Vec<String> = existing.iter().filter(|n| n.starts_with(&prefix)).cloned().collect();
    let records: Vec<_> = state.iter().flat_map(|s| s.nodes.values().flat_map(|n| n.processes.clone())).collect();
    // Nodes and the client first, the bridge last.
    doomed.sort_by_key(|n| n.ends_with("-br"));
    for ns in &doomed {
        procs::kill_all(ns, &records);
    }
    for record in &records {
        procs::kill_recorded(*record);
    }
    for ns in &doomed {
        shell::run("ip", &["netns", "del", ns])?;
    }
    let dir = root.join(tag);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(LabError::io(dir)(e)),
        _ => {}
    }
    Ok(doomed)
}

/// Tears down every lab under `root` whose owning process (a test run) is gone: what a run killed halfway left
/// behind. Labs without an owner (`hactl lab up`) are left alone. Returns the tags removed.
pub fn sweep_orphans(root: &Path) -> Result<Vec<String>, LabError> {
    let Ok(entries) = std::fs::read_dir(root) else { return Ok(Vec::new()) };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let tag = entry.file_name().to_string_lossy().into_owned();
        let Ok(state) = State::load(root, &tag) else { continue };
        if let Some(owner) = state.owner {
            if procs::start_ticks(owner.pid) != Some(owner.start_ticks) {
                teardown(root, &tag)?;
                removed.push(tag);
            }
        }
    }
    Ok(removed)
}
