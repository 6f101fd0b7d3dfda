//! What the world knows that no core does: which acceptor was quarantined at an instant, which config each node
//! runs, which node sits behind a name. The checks that need it ((g) and (h)) read the cores' traces here.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::manifest::values::Name;
use crate::proto::wire::{Ballot, LeaseKey, NodeId};
use crate::proto::{QuorumKind, Trace};

use super::super::check::{KernelAddr, Violation};
use super::super::node_address;
use super::super::quorum::{Counted, judge};
use super::World;

/// One config version of the run, in rollout order.
pub(crate) struct Version {
    pub digest: [u8; 8],
    pub voters: BTreeSet<Name>,
}

impl Version {
    /// The distinct configs of a run, in rollout order, as derived for node `me`.
    pub fn of_run(states: &[&crate::manifest::DesiredState], me: Option<&Name>) -> Vec<Version> {
        let mut versions: Vec<Version> = Vec::new();
        for state in states {
            if let Some(c) = me.and_then(|n| crate::proto::Config::from_desired(state, n).ok())
                && !versions.iter().any(|v| v.digest == c.digest)
            {
                versions.push(Version { digest: c.digest, voters: c.voters() });
            }
        }
        versions
    }

    /// The position of the config with this digest (unknown digests count as the first).
    pub fn index(versions: &[Version], digest: [u8; 8]) -> usize {
        versions.iter().position(|v| v.digest == digest).unwrap_or(0)
    }
}

impl World {
    /// Handles one trace entry of node `i`'s core (in the order the core produced them).
    pub(super) fn on_trace(&mut self, i: usize, t: Trace) -> Result<(), Violation> {
        let now = self.now;
        let quarantined = now + Duration::from_micros(1) < self.nodes[i].quarantine_end;
        match t {
            Trace::Accepted { key, ballot, until } => {
                let until = self.nodes[i].real(until);
                let Some(proposer) = self.proposer(i, ballot.node) else {
                    // Never expected: an Accept is used only from a peer heard under its UUID (so (f) is not
                    // silently skipped).
                    return Err(Violation {
                        invariant: "(f) accept from an unknown proposer",
                        at: now,
                        detail: format!("{} accepted round {} on {key}", self.nodes[i].name, ballot.round),
                    });
                };
                self.checker.accepted(key, ballot, (proposer, i), now, until);
                self.checker.answered(key, ballot, true, i, quarantined);
            }
            Trace::Promised { key, ballot } => self.checker.answered(key, ballot, false, i, quarantined),
            Trace::Prepared { ballot, skipped } => {
                self.prepared.push(ballot);
                if skipped {
                    self.stats.rounds_without_prepare += 1;
                } else {
                    self.stats.rounds_with_prepare += 1;
                }
            }
            Trace::Quorum { key, ballot, kind, voters, .. } => return self.on_quorum(i, key, ballot, kind, voters),
        }
        Ok(())
    }

    /// The node whose Accept acceptor `i` just took for a ballot of `id`: itself, or the peer its core hears under
    /// that UUID (two clones share a UUID, and each acceptor serves only the first it heard: src/proto/receive.rs).
    fn proposer(&self, i: usize, id: NodeId) -> Option<usize> {
        if self.nodes[i].id == id {
            return Some(i);
        }
        let core = self.nodes[i].core.as_ref()?;
        let name = core.peers().peers.iter().find(|(_, p)| p.id == Some(id) && p.clash.is_none()).map(|(n, _)| n)?;
        self.nodes.iter().position(|n| n.name == *name)
    }

    /// (h) Resolves the counted voters against the world and judges the quorum.
    fn on_quorum(
        &mut self,
        i: usize,
        key: LeaseKey,
        ballot: Ballot,
        kind: QuorumKind,
        voters: Vec<(Name, Option<NodeId>)>,
    ) -> Result<(), Violation> {
        let Some(cfg) = self.nodes[i].core.as_ref().map(|c| c.config().clone()) else { return Ok(()) };
        let accept = kind != QuorumKind::Prepare;
        let counted: Vec<Counted> = voters
            .into_iter()
            .map(|(name, claimed_id)| {
                let address = cfg.nodes.get(&name).map(|p| p.address);
                let node = address.and_then(|a| (0..self.nodes.len()).find(|j| node_address(*j) == a));
                let (answered, quarantined) =
                    node.map(|j| self.checker.answer(key, ballot, accept, j)).unwrap_or((false, false));
                let true_id = node.map(|j| self.nodes[j].id);
                Counted { name, node, claimed_id, true_id, answered, quarantined }
            })
            .collect();
        let required = self.required_sets(i);
        judge(kind, i, &counted, &required).map_err(|(invariant, detail)| Violation {
            invariant,
            at: self.now,
            detail: format!("{} on {key} round {}: {detail}", self.nodes[i].name, ballot.round),
        })
    }

    /// The config version node `i` runs: its core's, or the one it will start with when down.
    pub(super) fn version_of(&self, i: usize) -> usize {
        let n = &self.nodes[i];
        let digest = n.core.as_ref().map(|c| c.config().digest).unwrap_or(n.cfg.digest);
        Version::index(&self.versions, digest)
    }

    /// Notes a possible change of the config node `i` runs (the joint phase of (h) follows it).
    pub(super) fn note_config(&mut self, i: usize) {
        let now = self.now;
        let v = self.version_of(i);
        if self.running[i] != v {
            self.left[self.running[i]] = Some(now);
            self.running[i] = v;
        }
    }

    /// The voter sets a proposer running node `i`'s config needs a majority of now: its own, and every older
    /// one that a node still runs or ran within the last `D_A` (a lease granted by an old-only majority lasts
    /// that long).
    fn required_sets(&self, i: usize) -> Vec<BTreeSet<Name>> {
        let mine = self.version_of(i);
        let mut sets = vec![self.versions[mine].voters.clone()];
        for older in 0..mine {
            let in_use =
                self.running.contains(&older) || self.left[older].is_some_and(|t| self.now < t + self.joint_window);
            if in_use {
                sets.push(self.versions[older].voters.clone());
            }
        }
        sets
    }
}

impl World {
    /// The agent adds (or refreshes) every address of the group whose key is `key` in the config its core runs
    /// that the lease covers, recording the group's key, and removes any it added under that key that the group
    /// no longer has or the lease no longer covers.
    pub(super) fn install(&mut self, i: usize, key: LeaseKey, expires: Duration) {
        let addresses = self.covered_addresses(i, key);
        self.put(i, key, addresses, expires);
    }

    /// The addresses of the group whose key is `key` that its lease covers, in the config node `i`'s core runs.
    pub(super) fn covered_addresses(&self, i: usize, key: LeaseKey) -> Vec<std::net::IpAddr> {
        let node = &self.nodes[i];
        let cfg = node.core.as_ref().map(|c| c.config()).unwrap_or(&node.cfg);
        let covers = node.covers.get(&key);
        cfg.groups
            .values()
            .find(|g| g.key == key)
            .map(|g| g.addresses.iter().filter(|a| covers.is_some_and(|c| c.contains(a))).copied().collect())
            .unwrap_or_default()
    }

    /// Configures exactly `addresses` under `key` in node `i`'s kernel, with the given expiry.
    pub(super) fn put(&mut self, i: usize, key: LeaseKey, addresses: Vec<std::net::IpAddr>, expires: Duration) {
        let node = &mut self.nodes[i];
        node.kernel.retain(|addr, a| a.key != key || addresses.contains(addr));
        // A renewal in flight when the agent hung or crashed lands anyway: the address is then that agent's stale
        // one, bounded only by its lifetime, like every address of a hung or crashed agent.
        let stale = node.hung_until.is_some() || node.core.is_none();
        for addr in addresses {
            node.kernel.insert(addr, KernelAddr { key, expires, stale });
        }
    }

    /// After a config change the reconciler removes addresses whose group (by key) no longer has them, and (i)
    /// every node derives the same key for an address from the same config.
    pub(super) fn check_keys(&mut self, i: usize) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let Some(cfg) = node.core.as_ref().map(|c| c.config()) else { return Ok(()) };
        let mut keys = std::collections::BTreeMap::new();
        for g in cfg.groups.values() {
            for a in &g.addresses {
                if keys.insert(*a, g.key).is_some_and(|k| k != g.key) {
                    let detail = format!("{}: {a} is in two groups of one config", node.name);
                    return Err(Violation { invariant: "(i) one address under two lease keys", at: self.now, detail });
                }
            }
        }
        node.kernel.retain(|addr, a| keys.get(addr) == Some(&a.key));
        match self.key_maps.insert(cfg.digest, keys.clone()) {
            Some(seen) if seen != keys => Err(Violation {
                invariant: "(i) nodes derive different keys from one config",
                at: self.now,
                detail: format!("{}: {keys:?}, another node {seen:?}", node.name),
            }),
            _ => Ok(()),
        }
    }
}
