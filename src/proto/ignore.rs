//! `quorum.policy: ignore` (DESIGN.md §4.8): a self-granted lease for two-node clusters without a witness. A node
//! takes a group once its holder has been silent for deadTime (the claim is dropped when the peer turns dead) and,
//! if configured, the tie-breaker answers. Split brain is possible; on heal the higher ballot (carried in
//! heartbeats) keeps the group, and a node that sees a conflict its peer cannot see yields.

use std::time::Duration;

use crate::manifest::values::Name;

use super::io::Event;
use super::lease::Lease;
use super::node::Node;
use super::wire::Ballot;

impl Node {
    pub(super) fn take_ignore(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        if self.cfg.tie_breaker && !self.tie_breaker_ok {
            return;
        }
        let round = self.next_round();
        l.ballot = Ballot { round, node: self.id };
        l.held_ballot = l.ballot;
        l.t0 = now;
        // No quorum to ask: every key of the group is ours at once.
        l.covered = l.keys.iter().copied().collect();
        l.asking = l.covered.clone();
        // The adoption record (§4.7) also under `ignore`, so a restarted or re-executed agent keeps its groups.
        self.record(l, false);
        let deadline = now + self.cfg.lease;
        l.holding = Some(deadline);
        l.active = true;
        l.stopping = None;
        l.next_renew = now + self.cfg.lease / 3;
        let handed = std::mem::take(&mut l.handed);
        let (key, covers, ballot) = (l.key(), l.covers(), l.ballot);
        self.events.push_back(Event::Acquired { group: group.clone(), key, covers, deadline, ballot, handed });
    }

    /// §4.7 under `ignore`: there is no quorum to confirm with, so a restarted node keeps its running group at
    /// once and renews it; a peer that took it over meanwhile has the higher ballot, and the heal rule makes us
    /// yield at its first heartbeat (split brain is possible under `ignore` anyway; `status` says so).
    pub(super) fn adopt_ignore(
        &mut self,
        now: Duration,
        group: &Name,
        l: &mut Lease,
        ballot: Ballot,
        deadline: Duration,
    ) {
        l.ballot = ballot;
        l.held_ballot = ballot;
        l.holding = Some(deadline);
        l.active = true;
        l.next_renew = now;
        l.covered = l.keys.iter().copied().collect();
        let (key, covers) = (l.key(), l.covers());
        self.events.push_back(Event::Adopted { group: group.clone(), key, covers, deadline, ballot });
    }

    pub(super) fn drive_ignore_holder(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        let claim = l.keys.iter().filter_map(|k| self.members.claim(k, now)).max_by_key(|(_, r)| *r);
        if let Some((peer, round)) = claim.map(|(n, r)| (n.clone(), r)) {
            let peer_id = self.members.peers.get(&peer).and_then(|p| p.id).unwrap_or_default();
            let theirs = Ballot { round, node: peer_id };
            // The peer cannot see the conflict if it does not hear us: then we yield, whatever the ballots.
            let blind = !self.members.both_ways(&peer, self.id);
            if theirs > l.held_ballot || blind {
                l.holding = None;
                l.active = false;
                l.conflict = None;
                l.stopping = None;
                l.retry_at = now + self.cfg.dead_time;
                self.events.push_back(Event::MustFence { group: group.clone(), key: l.key() });
                self.events.push_back(Event::Conflict { group: group.clone(), with: peer, yielded: true });
                return;
            }
            if l.conflict.as_ref() != Some(&peer) {
                l.conflict = Some(peer.clone());
                self.events.push_back(Event::Conflict { group: group.clone(), with: peer, yielded: false });
            }
        } else {
            l.conflict = None;
        }
        if l.renew_due(now, self.cfg.renew_slack(), self.beat) {
            l.t0 = now;
            l.covered = l.keys.iter().copied().collect();
            l.asking = l.covered.clone();
            self.record(l, false);
            let deadline = now + self.cfg.lease;
            l.holding = Some(deadline);
            l.next_renew = now + self.cfg.lease / 3;
            let ballot = l.held_ballot;
            let (key, covers) = (l.key(), l.covers());
            self.events.push_back(Event::Renewed { group: group.clone(), key, covers, deadline, ballot });
        }
    }
}
