//! The manifest kinds as written (DESIGN.md §1): one definition gives the JSON Schema and the decoder.
//! Values here are only well-typed; ranges, defaults and cross references are applied in `check.rs`, which
//! turns these into the `DesiredState`.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::decode::{At, Cx, Entries, FromNode, ScalarKind, manifest_enum, manifest_struct, scalar_kind};
use super::values::{Addr, Dur, IfName, Name, Prefixed};
use super::yaml::{Node, Value};

manifest_struct! {
    /// Identifies an object; names are unique per kind (FloatingIP and Service share one namespace).
    pub struct Metadata {
        /// 1 to 63 letters, digits and '-', starting with a letter; case is kept.
        pub name: At<Name> = "name",
    }
}

manifest_struct! {
    /// The cluster-wide settings; exactly one Cluster per manifest directory.
    pub struct ClusterSpec {
        /// UDP port of the peer protocol and TCP port of the peer API (Heartbeat's `udpport`). Default 694.
        pub port: Option<At<u16>> = "port",
        /// Path of the shared cluster key; the agent refuses it if group or others can read it.
        /// Default `/etc/hactl/authkey`.
        pub auth_key_file: Option<At<String>> = "authKeyFile",
        /// Membership timers (Heartbeat's keepalive, deadtime, warntime, initdead).
        pub heartbeat: Option<HeartbeatSpec> = "heartbeat",
        /// Ownership lease timing (DESIGN.md §4).
        pub lease: Option<LeaseSpec> = "lease",
        /// What a node needs before it may take a group over.
        pub quorum: Option<QuorumSpec> = "quorum",
        /// Defaults for every group.
        pub defaults: Option<DefaultsSpec> = "defaults",
    }
}

manifest_struct! {
    /// Heartbeat timers: how fast a silent peer is declared dead.
    pub struct HeartbeatSpec {
        /// Interval between heartbeats (Heartbeat's `keepalive`). Default `200ms`; 10ms to 10s.
        pub interval: Option<At<Dur>> = "interval",
        /// Silence after which a peer is dead (`deadtime`). Default `1s`; must exceed 2 × interval.
        pub dead_time: Option<At<Dur>> = "deadTime",
        /// Silence after which a late peer is logged (`warntime`). Default `600ms`; below deadTime.
        pub warn_time: Option<At<Dur>> = "warnTime",
        /// Grace at start-up before taking anything over (`initdead`). Default `10s`.
        pub init_dead: Option<At<Dur>> = "initDead",
    }
}

manifest_struct! {
    /// Lease timing of the ownership protocol.
    pub struct LeaseSpec {
        /// Lease length T. Default 5 × heartbeat.interval; must exceed 3 × interval.
        pub duration: Option<At<Dur>> = "duration",
        /// Safety margin m: the holder fences at deadline − m. Default `100ms`; below duration / 3.
        pub margin: Option<At<Dur>> = "margin",
        /// Bound ρ on the clock-rate error between nodes. Default 0.001; 0 to 0.1.
        pub drift_bound: Option<At<f64>> = "driftBound",
        /// Wait out the kernel address lifetime on takeover, so a hung agent is covered too. Default false.
        pub strict: Option<bool> = "strict",
    }
}

manifest_enum! {
    /// Quorum policy.
    pub enum QuorumPolicy {
        /// A majority of votes is needed to hold a group: never two holders (needs 3 or more voters).
        Majority = "majority",
        /// Take over after deadTime of silence; split brain is possible (the guide's no-quorum-policy=ignore).
        Ignore = "ignore",
    }
}

manifest_struct! {
    /// Quorum settings.
    pub struct QuorumSpec {
        /// `majority` (default) or `ignore`.
        pub policy: Option<At<QuorumPolicy>> = "policy",
        /// Under `ignore`: take over only when this address answers (a router, say).
        pub tie_breaker: Option<TieBreakerSpec> = "tieBreaker",
    }
}

manifest_struct! {
    /// A tie-breaker for two-node clusters under `ignore`.
    pub struct TieBreakerSpec {
        /// Address that must answer a ping before a node takes a group over.
        pub ping: At<Addr> = "ping",
    }
}

manifest_struct! {
    /// Defaults for every group (Pacemaker's rsc_defaults).
    pub struct DefaultsSpec {
        /// Score added for the current holder, so groups stay where they run. Default 100; 0 to 1000000.
        pub stickiness: Option<At<i64>> = "stickiness",
        /// Monitor failures within failureTimeout after which a node gives a group up. Default 3; at least 1.
        pub migration_threshold: Option<At<u32>> = "migrationThreshold",
        /// How long a failure counts; `0s` = forever. Default `10m`.
        pub failure_timeout: Option<At<Dur>> = "failureTimeout",
    }
}

manifest_enum! {
    /// What a node does in the cluster.
    pub enum NodeRole {
        /// Votes and runs groups.
        Member = "member",
        /// Votes only; gives two-node clusters a majority.
        Witness = "witness",
    }
}

manifest_struct! {
    /// A cluster node.
    pub struct NodeSpec {
        /// The node's address: peer datagrams are accepted only from it.
        pub address: At<Addr> = "address",
        /// 1 (default) or 0 (never counts for quorum).
        pub votes: Option<At<u8>> = "votes",
        /// `member` (default) or `witness` (votes, runs nothing).
        pub role: Option<At<NodeRole>> = "role",
    }
}

manifest_struct! {
    /// A floating address that follows its group.
    pub struct FloatingIpSpec {
        /// IPv4 or IPv6 address with prefix, e.g. `192.0.2.100/24`.
        pub address: At<Prefixed> = "address",
        /// Interface to add it to, e.g. `eth0`.
        pub interface: At<IfName> = "interface",
        /// IPv4 label such as `eth0:0`; must start with the interface name, at most 15 bytes.
        pub label: Option<At<String>> = "label",
        /// Gratuitous ARP / unsolicited NA schedule.
        pub announce: Option<AnnounceSpec> = "announce",
    }
}

manifest_struct! {
    /// How the new holder tells the network (DESIGN.md §4.11).
    pub struct AnnounceSpec {
        /// Gratuitous ARPs after adding the address. Default 5; 0 disables (clients may keep a stale MAC).
        pub count: Option<At<u32>> = "count",
        /// Gap between them. Default `200ms`; 10ms to 10s.
        pub interval: Option<At<Dur>> = "interval",
        /// Longest wait for an ARP probe reply before adding. Default `100ms`; 0s to 1s (0s skips the probe).
        pub probe_wait: Option<At<Dur>> = "probeWait",
        /// Slow re-announcement period. Default `10s`; `0s` disables; otherwise 1s to 1h.
        pub refresh: Option<At<Dur>> = "refresh",
    }
}

manifest_struct! {
    /// A service the group runs: exactly one of systemd, lsb, ocf or exec.
    pub struct ServiceSpec {
        /// `systemctl start|stop|is-active UNIT`.
        pub systemd: Option<At<SystemdDriver>> = "systemd",
        /// `/etc/init.d/SCRIPT start|stop|status` with LSB exit codes.
        pub lsb: Option<At<LsbDriver>> = "lsb",
        /// An OCF resource agent run as Pacemaker runs it.
        pub ocf: Option<At<OcfDriver>> = "ocf",
        /// Shell commands, or one foreground process supervised by the agent.
        pub exec: Option<At<ExecDriver>> = "exec",
        /// Time limits per action (default 20s each, Pacemaker's default).
        pub timeouts: Option<TimeoutsSpec> = "timeouts",
        /// Health checking.
        pub monitor: Option<MonitorSpec> = "monitor",
    }
}

manifest_struct! {
    /// The systemd driver.
    pub struct SystemdDriver {
        /// Unit name, e.g. `nginx.service`.
        pub unit: At<String> = "unit",
    }
}

manifest_struct! {
    /// The LSB init-script driver.
    pub struct LsbDriver {
        /// Script name under /etc/init.d (e.g. `httpd`) or an absolute path.
        pub script: At<String> = "script",
    }
}

manifest_struct! {
    /// The OCF resource-agent driver.
    pub struct OcfDriver {
        /// `PROVIDER:TYPE`, e.g. `heartbeat:apache` (found as $OCF_ROOT/resource.d/PROVIDER/TYPE).
        pub agent: At<String> = "agent",
        /// Instance parameters, passed as OCF_RESKEY_<name>.
        pub params: Option<Entries<ParamValue>> = "params",
    }
}

manifest_struct! {
    /// The exec driver: either start/stop/status commands, or `run` alone.
    pub struct ExecDriver {
        /// Shell command that starts the service.
        pub start: Option<At<String>> = "start",
        /// Shell command that stops it.
        pub stop: Option<At<String>> = "stop",
        /// Shell command whose exit 0 means running.
        pub status: Option<At<String>> = "status",
        /// A foreground command the agent runs and supervises in its own process group.
        pub run: Option<At<String>> = "run",
    }
}

manifest_struct! {
    /// Time limits per action.
    pub struct TimeoutsSpec {
        /// Default `20s`; 100ms to 1h.
        pub start: Option<At<Dur>> = "start",
        /// Default `20s`; 100ms to 1h.
        pub stop: Option<At<Dur>> = "stop",
        /// Default `20s`; 100ms to 1h.
        pub monitor: Option<At<Dur>> = "monitor",
    }
}

manifest_struct! {
    /// Health checking: the driver's status action every interval, plus optional probes.
    pub struct MonitorSpec {
        /// Default `10s`; 100ms to 24h.
        pub interval: Option<At<Dur>> = "interval",
        /// Time limit of one check. Default: timeouts.monitor.
        pub timeout: Option<At<Dur>> = "timeout",
        /// An HTTP request that must answer with the expected status.
        pub http: Option<HttpProbe> = "http",
        /// A TCP connection that must open.
        pub tcp: Option<TcpProbe> = "tcp",
    }
}

manifest_struct! {
    /// HTTP probe.
    pub struct HttpProbe {
        /// `http://` URL to request, e.g. `http://192.0.2.100/`.
        pub url: At<String> = "url",
        /// Expected HTTP status. Default 200.
        pub expect_status: Option<At<u16>> = "expectStatus",
    }
}

manifest_struct! {
    /// TCP probe.
    pub struct TcpProbe {
        /// Address to connect to.
        pub address: At<Addr> = "address",
        /// Port to connect to.
        pub port: At<u16> = "port",
    }
}

manifest_struct! {
    /// Resources started in order on one node, stopped in reverse (order + colocation).
    pub struct GroupSpec {
        /// FloatingIP and Service names, in start order.
        pub members: At<Vec<At<Name>>> = "members",
        /// Location scores per node (Pacemaker's location constraints), -1000000 to 1000000.
        pub prefer: Option<Entries<At<i64>>> = "prefer",
        /// Overrides the cluster's default stickiness.
        pub stickiness: Option<At<i64>> = "stickiness",
    }
}

/// An OCF parameter value: strings, numbers and booleans are all passed to the agent as text.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamValue(pub String);

impl FromNode for ParamValue {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::Scalar { text, plain } if scalar_kind(text, *plain) != ScalarKind::Null => {
                Some(ParamValue(text.clone()))
            }
            _ => {
                cx.error(
                    node.pos,
                    "type",
                    format!("expected a string, number or boolean, found {}", super::decode::describe(node)),
                );
                None
            }
        }
    }
}

impl JsonSchema for ParamValue {
    fn schema_name() -> Cow<'static, str> {
        "ParamValue".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}
