//! What the protocol core needs from a `DesiredState`: timers, voters, and one lease key per group.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::manifest::DesiredState;
use crate::manifest::model::{NodeRole, QuorumPolicy};
use crate::manifest::values::Name;

use super::wire::LeaseKey;

/// The kernel's coarse address expiry beyond the lifetime it was given (DESIGN.md §4.6, measured ≤ 1.25 s).
pub const KERNEL_SLACK: Duration = Duration::from_millis(1250);

/// Why a `DesiredState` cannot drive the core; nothing is changed when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The local node is not in the manifests.
    #[error("node {0} is not defined in the manifests")]
    UnknownNode(String),
}

/// One peer as the core sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Where its datagrams must come from (DESIGN.md §4.2).
    pub address: IpAddr,
    /// 0 or 1.
    pub votes: u8,
    /// Witnesses vote and never hold.
    pub role: NodeRole,
}

/// One group as the core sees it: a lease key, its addresses and its placement scores.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConf {
    /// The group's primary key (its lowest floating address): names the group in events and logs.
    pub key: LeaseKey,
    /// One lease key per floating address, sorted (DESIGN.md §4.3): each address is its own PaxosLease instance at
    /// the acceptors, so moving an address between groups never opens a second key for it. A group without an
    /// address has the one key of [`keyless_group_key`].
    pub keys: Vec<LeaseKey>,
    /// Every floating address of the group.
    pub addresses: Vec<IpAddr>,
    /// Location scores.
    pub prefer: BTreeMap<Name, i64>,
    /// Bonus of the current holder.
    pub stickiness: i64,
    /// Failures within `failure_timeout` after which a node gives the group up.
    pub migration_threshold: u32,
    /// How long a failure counts; `None`: forever.
    pub failure_timeout: Option<Duration>,
}

/// The core's configuration, derived from the manifests (one per config version).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This node.
    pub me: Name,
    /// First 8 bytes of `DesiredState::digest()`, carried in heartbeats to make drift visible.
    pub digest: [u8; 8],
    /// majority or ignore.
    pub policy: QuorumPolicy,
    /// Heartbeat period; also Δ, the back-off step between ranked candidates.
    pub interval: Duration,
    /// Silence after which a peer is dead.
    pub dead_time: Duration,
    /// Silence after which a peer is late.
    pub warn_time: Duration,
    /// Start-up grace before taking anything over.
    pub init_dead: Duration,
    /// Lease length T.
    pub lease: Duration,
    /// Margin m.
    pub margin: Duration,
    /// Drift bound ρ.
    pub drift: f64,
    /// Wait out stale kernel lifetimes on takeover.
    pub strict: bool,
    /// Whether a tie-breaker must answer before an `ignore` takeover.
    pub tie_breaker: bool,
    /// Every node.
    pub nodes: BTreeMap<Name, Peer>,
    /// Groups with at least one floating address (a group without one has no lease; see the module docs).
    pub groups: BTreeMap<Name, GroupConf>,
    /// The group of each lease key, every address of every group (records name keys, not groups).
    pub by_key: BTreeMap<LeaseKey, Name>,
}

impl Config {
    /// Derives the core's view of `state` for node `me`.
    pub fn from_desired(state: &DesiredState, me: &Name) -> Result<Config, ConfigError> {
        if !state.nodes.contains_key(me) {
            return Err(ConfigError::UnknownNode(me.to_string()));
        }
        let c = &state.cluster;
        let digest_hex = state.digest();
        let mut digest = [0u8; 8];
        for (i, b) in digest.iter_mut().enumerate() {
            *b = u8::from_str_radix(digest_hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
        }
        let nodes = state
            .nodes
            .iter()
            .map(|(n, cfg)| (n.clone(), Peer { address: cfg.address, votes: cfg.votes, role: cfg.role }))
            .collect();
        let groups: BTreeMap<Name, GroupConf> = state
            .groups
            .iter()
            .map(|(n, g)| {
                let mut addresses: Vec<IpAddr> = g.floating_ips().map(|ip| ip.address.addr()).collect();
                addresses.sort();
                addresses.dedup();
                let keys = if addresses.is_empty() { vec![keyless_group_key(n)] } else { addresses.clone() };
                (
                    n.clone(),
                    GroupConf {
                        key: keys[0],
                        keys,
                        addresses,
                        prefer: g.prefer.clone(),
                        stickiness: g.stickiness,
                        migration_threshold: g.migration_threshold,
                        failure_timeout: g.failure_timeout,
                    },
                )
            })
            .collect();
        let by_key = groups.iter().flat_map(|(n, g)| g.keys.iter().map(move |k| (*k, n.clone()))).collect();
        Ok(Config {
            by_key,
            me: me.clone(),
            digest,
            policy: c.quorum.policy,
            interval: c.heartbeat.interval,
            dead_time: c.heartbeat.dead_time,
            warn_time: c.heartbeat.warn_time,
            init_dead: c.heartbeat.init_dead,
            lease: c.lease.duration,
            margin: c.lease.margin,
            drift: c.lease.drift_bound,
            strict: c.lease.strict,
            tie_breaker: c.quorum.tie_breaker.is_some(),
            nodes,
            groups,
        })
    }

    /// `T + m`: what Prepare and Accept carry.
    pub fn tm(&self) -> Duration {
        self.lease + self.margin
    }

    /// The acceptor's exclusion `D_A = (T + m)(1 + ρ)/(1 − ρ)` for a given `T + m` (DESIGN.md §4.3).
    pub fn exclusion(&self, tm: Duration) -> Duration {
        tm.mul_f64((1.0 + self.drift) / (1.0 - self.drift))
    }

    /// How far a renewal may move from its due time `T/3` to ride a heartbeat: half a heartbeat interval, and
    /// never more than `T/6`, so a renewal still starts with at least `T/2 − m` of the lease left.
    pub fn renew_slack(&self) -> Duration {
        (self.interval / 2).min(self.lease / 6)
    }

    /// Under `strict`, how long a new holder waits after acquiring before adding the address: until any stale
    /// holder's kernel lifetime has run out (its last renewal ≤ T − m after the last accept; lifetime ≤ ⌈T⌉ +
    /// kernel slack), less the exclusion it already waited out, scaled for drift.
    pub fn strict_wait(&self) -> Duration {
        let lifetime = Duration::from_secs(self.lease.as_secs() + u64::from(self.lease.subsec_nanos() > 0));
        let stale = (self.lease.saturating_sub(self.margin) + lifetime + KERNEL_SLACK).as_secs_f64();
        let waited = self.tm().as_secs_f64();
        let real = ((stale - waited) / (1.0 - self.drift)).max(0.0);
        Duration::from_secs_f64(real * (1.0 + self.drift))
    }

    /// The group whose lease key is `key`.
    pub fn group_of(&self, key: LeaseKey) -> Option<&Name> {
        self.by_key.get(&key)
    }

    /// Names whose vote counts.
    pub fn voters(&self) -> BTreeSet<Name> {
        self.nodes.iter().filter(|(_, p)| p.votes > 0).map(|(n, _)| n.clone()).collect()
    }

    /// The node configured at `address`, if any.
    pub fn node_at(&self, address: IpAddr) -> Option<&Name> {
        self.nodes.iter().find(|(_, p)| p.address == address).map(|(n, _)| n)
    }

    /// Whether `name` may hold groups.
    pub fn is_member(&self, name: &Name) -> bool {
        self.nodes.get(name).is_some_and(|p| p.role == NodeRole::Member)
    }
}

/// A short digest of a voter set, carried in Prepare and Accept.
pub fn voter_digest(voters: &BTreeSet<Name>) -> u64 {
    let mut h = Sha256::new();
    for v in voters {
        h.update(v.as_str().as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// The lease key of a group without a floating address (only services): an address in the discard-only prefix
/// 100::/64 (RFC 6666), never a real floating address, from the first 8 bytes of SHA-256 of the group's name, so
/// every node derives the same key. Unlike address keys it changes when the group is renamed: a rename of such a
/// group is a remove and an add (its services stop and start again).
pub fn keyless_group_key(group: &Name) -> LeaseKey {
    let digest = Sha256::digest(group.0.as_bytes());
    let mut octets = [0u8; 16];
    octets[0] = 0x01; // 0100::/64
    octets[8..].copy_from_slice(&digest[..8]);
    IpAddr::V6(std::net::Ipv6Addr::from(octets))
}

#[cfg(test)]
mod keyless_tests {
    use super::*;

    #[test]
    fn groups_without_addresses_get_distinct_stable_discard_prefix_keys() {
        let (a, b) = (keyless_group_key(&Name("Batch".into())), keyless_group_key(&Name("Other".into())));
        assert_ne!(a, b);
        assert_eq!(a, keyless_group_key(&Name("Batch".into())));
        let IpAddr::V6(v6) = a else { panic!("an IPv6 key") };
        assert_eq!(v6.segments()[..4], [0x0100, 0, 0, 0], "inside 100::/64");
    }
}
