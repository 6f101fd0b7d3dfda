//! The desired state: what a valid manifest set means, with defaults applied and references resolved.
//! Its types cannot hold an invalid config, so the protocol, the agent and `diff` never check again.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

pub use super::raw::{NodeRole, QuorumPolicy};
use super::values::{Dur, IfName, Name};

fn dur<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    Dur(*d).serialize(s)
}

fn opt_dur<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    d.map(Dur).serialize(s)
}

/// A whole valid manifest set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredState {
    /// Cluster-wide settings.
    pub cluster: Cluster,
    /// Every node, witnesses included.
    pub nodes: BTreeMap<Name, NodeConfig>,
    /// Every group, with its members resolved (every resource is in exactly one group).
    pub groups: BTreeMap<Name, Group>,
}

impl DesiredState {
    /// The canonical rendering: stable JSON with defaults applied, identical on every node for the same meaning
    /// (so file layout, comments and key order do not count as drift).
    pub fn canonical(&self) -> String {
        // Serializing plain structs, maps with string keys and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// SHA-256 of the canonical rendering, hex: what heartbeats carry so that config drift is visible.
    pub fn digest(&self) -> String {
        let hash = Sha256::digest(self.canonical().as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Nodes whose vote counts for quorum.
    pub fn voters(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.values().filter(|n| n.votes > 0)
    }

    /// Nodes that may run groups.
    pub fn members(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.values().filter(|n| n.role == NodeRole::Member)
    }
}

/// Cluster-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// The cluster's name (part of the witness's key, so clusters copied from one guide do not mix).
    pub name: Name,
    /// UDP port of the peer protocol, TCP port of the peer API.
    pub port: u16,
    /// Shared key file.
    pub auth_key_file: PathBuf,
    /// Membership timers.
    pub heartbeat: Heartbeat,
    /// Lease timing.
    pub lease: Lease,
    /// Quorum policy.
    pub quorum: Quorum,
}

/// Membership timers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Heartbeat {
    /// Between heartbeats; also Δ, the back-off step between ranked candidates.
    #[serde(serialize_with = "dur")]
    pub interval: Duration,
    /// Silence after which a peer is dead.
    #[serde(serialize_with = "dur")]
    pub dead_time: Duration,
    /// Silence after which a peer is late.
    #[serde(serialize_with = "dur")]
    pub warn_time: Duration,
    /// Start-up grace before taking over.
    #[serde(serialize_with = "dur")]
    pub init_dead: Duration,
}

/// Lease timing (DESIGN.md §4.3–4.6).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lease {
    /// T.
    #[serde(serialize_with = "dur")]
    pub duration: Duration,
    /// m.
    #[serde(serialize_with = "dur")]
    pub margin: Duration,
    /// ρ.
    pub drift_bound: f64,
    /// Wait out the kernel lifetime on takeover.
    pub strict: bool,
}

/// Quorum settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quorum {
    /// majority or ignore.
    pub policy: QuorumPolicy,
    /// Under ignore: an address that must answer before a takeover.
    pub tie_breaker: Option<IpAddr>,
}

/// A node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeConfig {
    /// Its name (the agent's `--node`, the hostname by default).
    pub name: Name,
    /// Where its datagrams come from and its peer API listens.
    pub address: IpAddr,
    /// 0 or 1.
    pub votes: u8,
    /// member or witness.
    pub role: NodeRole,
}

/// A group: members started in order on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Its name.
    pub name: Name,
    /// Members in start order.
    pub members: Vec<Resource>,
    /// Location scores; nodes not named score 0.
    pub prefer: BTreeMap<Name, i64>,
    /// Score bonus of the current holder.
    pub stickiness: i64,
    /// Failures within `failure_timeout` after which a node gives the group up.
    pub migration_threshold: u32,
    /// How long a failure counts; `None` = forever.
    #[serde(serialize_with = "opt_dur")]
    pub failure_timeout: Option<Duration>,
}

impl Group {
    /// The floating addresses of the group: the keys of its lease (DESIGN.md §4.3).
    pub fn floating_ips(&self) -> impl Iterator<Item = &FloatingIp> {
        self.members.iter().filter_map(|m| match m {
            Resource::FloatingIp(ip) => Some(ip),
            Resource::Service(_) => None,
        })
    }

    /// The location score of `node` (0 when not named).
    pub fn preference(&self, node: &Name) -> i64 {
        self.prefer.get(node).copied().unwrap_or(0)
    }
}

/// A group member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    /// A floating address.
    FloatingIp(FloatingIp),
    /// A service.
    Service(Service),
}

impl Resource {
    /// The resource's name.
    pub fn name(&self) -> &Name {
        match self {
            Resource::FloatingIp(ip) => &ip.name,
            Resource::Service(s) => &s.name,
        }
    }
}

/// A floating address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloatingIp {
    /// Its name.
    pub name: Name,
    /// Address and prefix.
    pub address: IpNet,
    /// The interface it is added to.
    pub interface: IfName,
    /// IPv4 label (`eth0:0`).
    pub label: Option<String>,
    /// Announcement schedule.
    pub announce: Announce,
}

/// Announcement schedule (DESIGN.md §4.11).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Announce {
    /// Gratuitous ARPs / NAs after adding.
    pub count: u32,
    /// Gap between them.
    #[serde(serialize_with = "dur")]
    pub interval: Duration,
    /// Longest probe wait; zero skips the probe.
    #[serde(serialize_with = "dur")]
    pub probe_wait: Duration,
    /// Slow refresh period; `None` disables it.
    #[serde(serialize_with = "opt_dur")]
    pub refresh: Option<Duration>,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// Its name.
    pub name: Name,
    /// How it is started, stopped and checked.
    pub driver: Driver,
    /// Time limits per action.
    pub timeouts: Timeouts,
    /// Health checking.
    pub monitor: Monitor,
}

/// How a service is driven.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Driver {
    /// systemctl start/stop/is-active.
    Systemd {
        /// Unit name.
        unit: String,
    },
    /// An LSB init script.
    Lsb {
        /// Absolute path of the script.
        script: PathBuf,
    },
    /// An OCF resource agent.
    Ocf {
        /// Provider directory under resource.d (`heartbeat`).
        provider: String,
        /// Agent name (`apache`).
        kind: String,
        /// OCF_RESKEY_ parameters.
        params: BTreeMap<String, String>,
    },
    /// Shell commands.
    Exec {
        /// Starts the service.
        start: String,
        /// Stops it.
        stop: String,
        /// Exit 0 = running.
        status: String,
    },
    /// A foreground process supervised by the agent.
    Run {
        /// The command.
        command: String,
    },
}

/// Time limits per action.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timeouts {
    /// Start.
    #[serde(serialize_with = "dur")]
    pub start: Duration,
    /// Stop.
    #[serde(serialize_with = "dur")]
    pub stop: Duration,
    /// Monitor.
    #[serde(serialize_with = "dur")]
    pub monitor: Duration,
}

/// Health checking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Monitor {
    /// Between checks.
    #[serde(serialize_with = "dur")]
    pub interval: Duration,
    /// Limit of one check.
    #[serde(serialize_with = "dur")]
    pub timeout: Duration,
    /// HTTP probe.
    pub http: Option<HttpCheck>,
    /// TCP probe.
    pub tcp: Option<SocketAddr>,
}

/// HTTP probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpCheck {
    /// `http://` URL.
    pub url: String,
    /// Expected status.
    pub expect_status: u16,
}
