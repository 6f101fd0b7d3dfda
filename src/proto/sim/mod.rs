//! A deterministic simulation of whole clusters (issue 3, item 7; STYLE.md "Deterministic simulation"): N cores in
//! virtual time from one seed, a network that drops, delays, duplicates, reorders and partitions (one-way too),
//! agent crashes and hangs, power losses, clock rates drifting within ρ, a stand-in kernel that records which node
//! holds each floating address at every instant and expires lifetimes, and reconciler effects that take a random
//! bounded time. Invariants are checked after every step; a fault phase is followed by a heal phase in which
//! liveness is checked against the failover budget.

mod check;
pub mod quorum;
mod world;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::manifest::DesiredState;
use crate::manifest::model::{
    Announce, Cluster, FloatingIp, Group, Heartbeat, Lease, NodeConfig, NodeRole, Quorum, QuorumPolicy, Resource,
};
use crate::manifest::values::{IfName, Name};

pub use check::Violation;
use world::World;

pub use super::acceptor::PlantedBug;

/// One simulated scenario (everything else is drawn from the seed).
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Member nodes.
    pub members: usize,
    /// Add a witness.
    pub witness: bool,
    /// Quorum policy.
    pub policy: QuorumPolicy,
    /// Groups (one floating address each).
    pub groups: usize,
    /// Virtual time with faults.
    pub fault_phase: Duration,
    /// Roll out a config that adds two voters, lengthens T and renames a group, one node at a time, during the
    /// fault phase.
    pub rollout: bool,
    /// With `rollout`: the rollout also moves an address from g0 to the renamed g1 (invariant (i)).
    pub move_address: bool,
    /// (l) Also replay datagrams recorded before their *receiver's* restart (a restarted core has forgotten
    /// every peer's replay window; the echoed incarnation in each header is what rejects them).
    pub replay_across_receiver_restart: bool,
    /// Node n1 runs with n0's UUID (a VM cloned with its state directory, DESIGN.md §4.2).
    pub shared_uuid: bool,
    /// Planted bug (checker self-test).
    pub bug: Option<PlantedBug>,
    /// Every acceptor decides Accept by its promise alone, as in the PaxosLease paper (`Acceptor::textbook`).
    pub textbook_acceptor: bool,
    /// The loss-and-delay fault may also make one directed link hold its datagrams for T/4 to 1.5 × T (a
    /// congested queue, a VM paused at the hypervisor): an Accept can then land after its round's rivals moved on.
    pub lagging_links: bool,
    /// Planted bug of the simulated agent (checker self-test of (g)): a failed write of the protocol state is
    /// logged and the agent carries on, instead of exiting before it sends anything.
    pub ignore_failed_writes: bool,
    /// Planted agent bug: a lifetime renewal in flight is applied even after a removal overtook it (the real agent
    /// skips it: `Agent::removal` in src/agent/runtime, a removal generation checked under a lock).
    pub renewal_ignores_removals: bool,
    /// Of the lifetime renewals in the fault phase, the share that waits inside a loaded agent (10 ms to T/2)
    /// before the kernel takes it; the kernel counts the lifetime from then.
    pub slow_renewals: f64,
    /// Planted agent bug: a lifetime renewal that the kernel took too late to be sure of the rounding bound keeps
    /// its lifetime (the real agent sets it again from a fresh clock read, `Netlink::renew`).
    pub late_renewal_kept: bool,
    /// Timers: heartbeat interval, dead time, T, m.
    pub timers: Timers,
    /// Only power off the holder now and then (the failover benchmark).
    pub crash_only: bool,
    /// Force `lease.strict` (drawn from the seed when `None`).
    pub strict: Option<bool>,
    /// Benchmark mode: time the cores' work with the host clock (never read by the cores, so runs stay
    /// deterministic) and check the holder invariants every 1,000 steps only.
    pub measure_cpu: bool,
}

/// The timers a scenario runs with.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// Heartbeat interval (also Δ).
    pub interval: Duration,
    /// deadTime.
    pub dead_time: Duration,
    /// Lease T.
    pub lease: Duration,
    /// Margin m.
    pub margin: Duration,
}

impl Timers {
    /// DESIGN.md defaults: 200 ms, 1 s, T = 1 s, m = 100 ms.
    pub fn defaults() -> Timers {
        Timers {
            interval: Duration::from_millis(200),
            dead_time: Duration::from_secs(1),
            lease: Duration::from_secs(1),
            margin: Duration::from_millis(100),
        }
    }

    /// DESIGN.md §4.12 "tuned": 50 ms, 250 ms, T = 250 ms, m = 25 ms.
    pub fn tuned() -> Timers {
        Timers {
            interval: Duration::from_millis(50),
            dead_time: Duration::from_millis(250),
            lease: Duration::from_millis(250),
            margin: Duration::from_millis(25),
        }
    }
}

impl Scenario {
    /// A majority scenario with `members` nodes (+ witness) and default timers.
    pub fn majority(members: usize, witness: bool) -> Scenario {
        Scenario {
            members,
            witness,
            policy: QuorumPolicy::Majority,
            groups: 2,
            fault_phase: Duration::from_secs(20),
            rollout: false,
            bug: None,
            textbook_acceptor: false,
            lagging_links: false,
            move_address: false,
            replay_across_receiver_restart: false,
            shared_uuid: false,
            ignore_failed_writes: false,
            renewal_ignores_removals: false,
            late_renewal_kept: false,
            slow_renewals: 0.03,
            timers: Timers::defaults(),
            crash_only: false,
            strict: None,
            measure_cpu: false,
        }
    }

    /// Two nodes under `policy: ignore`.
    pub fn ignore_pair() -> Scenario {
        Scenario { policy: QuorumPolicy::Ignore, ..Scenario::majority(2, false) }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Datagrams sent.
    pub datagrams: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Holder changes observed.
    pub holder_changes: u64,
    /// Overlaps allowed because one side was a hung or crashed agent's stale address (non-strict only).
    pub stale_overlaps: u64,
    /// Writes of the protocol state that failed (each one ended its agent, invariant (g)).
    pub failed_writes: u64,
    /// Replayed datagrams checked to change nothing (invariant (l)).
    pub replays: u64,
    /// Of `replays`, those recorded before the receiver's or the sender's restart.
    pub replays_after_restart: u64,
    /// After a restart, virtual time from the later restart of two nodes until the restarted one reports the
    /// other alive (the first such report after it).
    pub restarted_sees_peer: Vec<Duration>,
    /// The same, until the other one reports the restarted node alive again (when it had seen it late or dead).
    pub peer_sees_restarted: Vec<Duration>,
    /// Restart to `Event::Adopted` (adoption confirmed), virtual.
    pub adoptions: Vec<Duration>,
    /// Adoptions given up: fenced before they were confirmed.
    pub adoptions_fenced: u64,
    /// `Event::IdentityClash` reports (a UUID shared by two nodes).
    pub identity_clashes: u64,
    /// Failover times after a holder's crash (crash to the next holder's address), virtual.
    pub failovers: Vec<Duration>,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Host time spent inside the cores (`handle` and the polls), all nodes together; only with `measure_cpu`.
    pub core_cpu: Duration,
    /// Rounds started with Prepare (acquisitions, and renewals after a refusal or a timeout).
    pub rounds_with_prepare: u64,
    /// Accept-only renewals started.
    pub rounds_without_prepare: u64,
}

/// Runs one seed; `Err` names the first invariant broken.
pub fn run(seed: u64, scenario: &Scenario) -> Result<Stats, Violation> {
    World::new(seed, scenario.clone()).run()
}

/// The address of node `i` (documentation range, DESIGN.md §5).
pub(crate) fn node_address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, u8::try_from(i + 1).unwrap_or(u8::MAX)))
}

/// The floating address of group `g` (IPv6 documentation addresses beyond the first 200 groups).
pub(crate) fn group_address(g: usize) -> IpAddr {
    match u8::try_from(10 + g) {
        Ok(last) if g < 200 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
        _ => IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, u16::try_from(g).unwrap_or(u16::MAX))),
    }
}

/// The address a rollout moves between groups (`Scenario::move_address`): IPv6, so never a group's lowest.
pub(crate) const MOVED_ADDRESS: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 2, 1));

/// Adds a floating address to `group` of `state`.
pub(crate) fn add_address(state: &mut DesiredState, group: &str, address: IpAddr) {
    if let Some(g) = state.groups.get_mut(&Name(group.into())) {
        let ip = sim_floating_ip("ip-moved", IpNet::new(address, 64).unwrap_or_default());
        g.members.push(Resource::FloatingIp(ip));
    }
}

/// Builds the desired state of a simulated cluster: `names` with their roles, `groups` with preferences.
pub(crate) fn desired(
    s: &Scenario,
    names: &[(Name, NodeRole)],
    prefer: &[BTreeMap<Name, i64>],
    stickiness: &[i64],
    strict: bool,
    drift: f64,
) -> DesiredState {
    let t = s.timers;
    let cluster = Cluster {
        name: Name("sim".into()),
        port: 694,
        auth_key_file: PathBuf::from("/dev/null"),
        heartbeat: Heartbeat {
            interval: t.interval,
            dead_time: t.dead_time,
            warn_time: t.dead_time * 3 / 5,
            init_dead: t.dead_time * 2,
        },
        lease: Lease { duration: t.lease, margin: t.margin, drift_bound: drift, strict },
        quorum: Quorum { policy: s.policy, tie_breaker: None },
    };
    let nodes = names
        .iter()
        .enumerate()
        .map(|(i, (n, role))| {
            (n.clone(), NodeConfig { name: n.clone(), address: node_address(i), votes: 1, role: *role })
        })
        .collect();
    let groups = (0..s.groups)
        .map(|g| {
            let name = Name(format!("g{g}"));
            let ip = sim_floating_ip(&format!("ip{g}"), IpNet::new(group_address(g), 24).unwrap_or_default());
            let group = Group {
                name: name.clone(),
                members: vec![Resource::FloatingIp(ip)],
                prefer: prefer.get(g).cloned().unwrap_or_default(),
                stickiness: stickiness.get(g).copied().unwrap_or(0),
                migration_threshold: 3,
                failure_timeout: None,
            };
            (name, group)
        })
        .collect();
    DesiredState { cluster, nodes, groups }
}

/// A floating address as every simulated group declares it (no probe: the stand-in kernel has no ARP).
fn sim_floating_ip(name: &str, address: IpNet) -> FloatingIp {
    FloatingIp {
        name: Name(name.into()),
        address,
        interface: IfName("eth0".into()),
        label: None,
        announce: Announce {
            count: 3,
            interval: Duration::from_millis(200),
            probe_wait: Duration::ZERO,
            refresh: None,
        },
    }
}
