//! Simulation-only views of a core: the quorums it acts on, for invariant (h), and a digest of its protocol state,
//! for invariant (l). Kept apart from the core's logic so the hooks in it stay one line each; the agent never
//! enables tracing (`Boot::trace` is false) and never calls [`Node::fingerprint`].

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::manifest::values::Name;

use super::acceptor::PlantedBug;
use super::io::{QuorumKind, Trace};
use super::node::Node;
use super::wire::{Ballot, LeaseKey};

impl Node {
    /// Records the quorum this proposer is about to act on: the voters it counted (with the identity it
    /// associates with each name) and the voter sets it required a majority of (its `is_quorum`).
    pub(super) fn trace_quorum(&mut self, key: LeaseKey, ballot: Ballot, kind: QuorumKind, yes: &BTreeSet<Name>) {
        if self.trace.is_none() {
            return;
        }
        let voters = yes
            .iter()
            .map(|n| {
                let id = if *n == self.cfg.me { Some(self.id) } else { self.members.peers.get(n).and_then(|p| p.id) };
                (n.clone(), id)
            })
            .collect();
        let mut sets = vec![self.cfg.voters()];
        if self.bug != Some(PlantedBug::NoJointMajority) {
            sets.extend(self.old_voters.iter().cloned());
        }
        if let Some(t) = self.trace.as_mut() {
            t.push(Trace::Quorum { key, ballot, kind, voters, sets });
        }
    }

    /// Simulation only: a digest of everything that decides this node's future behaviour (acceptor slots,
    /// leases, membership views with their replay windows, persisted state, queued records and operations,
    /// timers). A datagram that changes nothing leaves it unchanged. Scratch state reset by every input
    /// (`touched`, `full_drive`), the output queues and the trace are left out.
    #[doc(hidden)]
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        let state = format!(
            "{:?}|{:?}|{}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}|{:?}|{:?}",
            self.cfg.digest,
            self.old_voters,
            self.incarnation,
            self.seq,
            self.seen_round,
            self.members,
            self.acceptor,
            self.leases,
            self.persisted,
            self.out,
            self.releases,
            self.ops,
            self.next_heartbeat,
            self.joint_unknown,
            self.tie_breaker_ok,
            self.joint_exit_at,
            self.started,
        );
        state.hash(&mut h);
        h.finish()
    }
}
