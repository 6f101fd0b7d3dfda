//! `hactl lab status`: what each node is doing, seen from the kernel (links, addresses, processes) and from
//! the client (who answers on the floating address).

use std::fmt;
use std::time::Duration;

use super::probe::Answer;
use super::{Lab, LabError, LabSpec, shell};

/// One node as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Powered on according to the state file.
    pub powered: bool,
    /// `eth0` exists and has carrier.
    pub carrier: bool,
    /// It holds the floating address.
    pub holds: bool,
    /// Processes running in it: (pid, command name).
    pub processes: Vec<(i32, String)>,
}

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabStatus {
    /// The lab's description.
    pub spec: LabSpec,
    /// The node daemon's name.
    pub daemon: String,
    /// Per node.
    pub nodes: Vec<NodeStatus>,
    /// What one request from the client got.
    pub client_sees: Answer,
}

impl Lab {
    /// Reads the status of every node and makes one request from the client.
    pub fn status(&self) -> Result<LabStatus, LabError> {
        let holders = self.holders()?;
        let mut nodes = Vec::new();
        for (name, ns) in self.node_namespaces() {
            let carrier = shell::ip_in(&ns, &["-br", "link", "show", "dev", "eth0"])
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("LOWER_UP"));
            let processes = self
                .pids(&name)?
                .into_iter()
                .map(|pid| {
                    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    (pid, comm.trim().to_string())
                })
                .collect();
            nodes.push(NodeStatus {
                powered: self.powered(&name),
                holds: holders.contains(&name),
                carrier,
                processes,
                namespace: ns,
                name,
            });
        }
        let client_sees = self.request(Duration::from_millis(500))?;
        Ok(LabStatus { spec: self.spec().clone(), daemon: self.daemon().to_string(), nodes, client_sees })
    }
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        writeln!(f, "lab {} (daemon {}), files in {}", s.tag, self.daemon, s.dir().display())?;
        writeln!(f, "floating address {} on eth0; client {} in {}", s.floating, s.client, s.client_ns())?;
        for n in &self.nodes {
            let power = if n.powered { "on" } else { "OFF" };
            let link = if n.carrier { "carrier" } else { "no link" };
            let holds = if n.holds { "  HOLDS the floating address" } else { "" };
            writeln!(f, "  {:<6} {:<14} power {power:<3} {link}{holds}", n.name, n.namespace)?;
            let procs: Vec<String> = n.processes.iter().map(|(pid, comm)| format!("{comm}[{pid}]")).collect();
            if !procs.is_empty() {
                writeln!(f, "         processes: {}", procs.join(" "))?;
            }
        }
        match &self.client_sees {
            Answer::Node(node) => writeln!(f, "client: http://{}/ -> Test page served from {node}", s.floating),
            Answer::Failed(why) => writeln!(f, "client: http://{}/ -> no answer ({why})", s.floating),
        }
    }
}
