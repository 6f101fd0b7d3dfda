//! A PaxosLease round's answers (DESIGN.md §4.3): promises and accepts tallied per lease key (one per address),
//! refusals with the time left, failed rounds released, and the lease established for the keys that won.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::manifest::values::Name;

use super::acceptor::PlantedBug;
use super::io::{Event, QuorumKind};
use super::lease::{Lease, Phase, Tally};
use super::node::Node;
use super::wire::{Answer, LeaseKey, Record};

impl Node {
    /// Whether every key of `keys` has a quorum in `tally`.
    fn all_quorate<'a>(&self, tally: &Tally, mut keys: impl Iterator<Item = &'a LeaseKey>) -> bool {
        keys.all(|k| tally.get(k).is_some_and(|s| self.is_quorum(s)))
    }

    pub(super) fn on_promise(&mut self, now: Duration, from: &Name, a: Answer) {
        let Some(group) = self.group_of(a.key) else { return };
        let Some(mut l) = self.leases.remove(&group) else { return };
        if l.phase == Phase::Preparing && a.round == l.ballot.round && l.asking.contains(&a.key) {
            self.see_round(a.promised.round);
            if a.ok {
                l.promises.entry(a.key).or_default().insert(from.clone());
            } else {
                self.refusal(now, &group, &mut l, from, &a);
            }
        }
        self.leases.insert(group, l);
    }

    /// A round moves on once every answer of the input is in (one datagram answers all of a group's keys; moving
    /// on at the first quorum would leave the keys answered later in it behind).
    pub(super) fn advance_round(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        let required = l.required();
        if l.phase == Phase::Preparing && self.all_quorate(&l.promises, required.iter()) {
            self.accept_phase(now, l);
        } else if l.phase == Phase::Accepting && self.all_quorate(&l.accepts, required.iter()) {
            let kind = if l.adopting { QuorumKind::Adopt } else { QuorumKind::Accept };
            let won: BTreeSet<LeaseKey> =
                l.asking.iter().filter(|k| l.accepts.get(k).is_some_and(|s| self.is_quorum(s))).copied().collect();
            for (key, yes) in l.accepts.iter().filter(|(k, _)| won.contains(k)) {
                self.trace_quorum(*key, l.ballot, kind, yes);
            }
            self.established(now, group, l, won);
        }
    }

    /// Every required key has its Prepare quorum: Accept for those and for any other key that has one already
    /// (a key still waiting is asked again at the next renewal).
    fn accept_phase(&mut self, now: Duration, l: &mut Lease) {
        let required = l.required();
        l.asking.retain(|k| required.contains(k) || l.promises.get(k).is_some_and(|s| self.is_quorum(s)));
        // By reference: a clone per key and round would cost every renewal, traced or not.
        for (key, yes) in l.promises.iter().filter(|(k, _)| l.asking.contains(k)) {
            self.trace_quorum(*key, l.ballot, QuorumKind::Prepare, yes);
        }
        if self.bug == Some(PlantedBug::LateTimer) {
            l.t0 = now; // planted bug: the timer starts at the Prepare quorum
        }
        l.phase = Phase::Accepting;
        l.refused.clear();
        self.send_proposals(now, l, false);
    }

    pub(super) fn on_accepted(&mut self, now: Duration, from: &Name, a: Answer) {
        let Some(group) = self.group_of(a.key) else { return };
        let Some(mut l) = self.leases.remove(&group) else { return };
        if l.phase == Phase::Accepting && a.round == l.ballot.round && l.asking.contains(&a.key) {
            if a.ok {
                let yes = l.accepts.entry(a.key).or_default();
                yes.insert(from.clone());
                if l.adopting {
                    yes.remove(&self.cfg.me); // §4.7: a majority of the *other* voters
                }
            } else {
                self.refusal(now, &group, &mut l, from, &a);
            }
        }
        self.leases.insert(group, l);
    }

    fn refusal(&mut self, now: Duration, group: &Name, l: &mut Lease, from: &Name, a: &Answer) {
        self.see_round(a.promised.round);
        if l.skipped && l.holding.is_some() && self.bug != Some(PlantedBug::SkipPrepare) {
            // An Accept-only renewal refused (another proposer was promised since, or the acceptor lost its
            // memory): Prepare+Accept at once, above every round seen, with the lease still running.
            l.fast = false;
            self.start_round(now, l);
            return;
        }
        let others_lease = a.accepted.is_some_and(|b| b.node != self.id);
        let required = l.required().contains(&a.key);
        if l.adopting && required && l.ballot == l.held_ballot && !others_lease {
            // §4.7 adoption renews exactly the persisted ballot; an acceptor that promised a higher one since
            // (a rival's Prepare that lost the election) refuses it forever. No other lease is live there, so a
            // fresh full round (Prepare then Accept, a majority of the *other* voters, our acceptor quarantined)
            // is an ordinary renewal and just as safe; what runs is kept meanwhile, nothing is added.
            self.start_round(now, l);
            return;
        }
        l.refused.entry(a.key).or_default().insert(from.clone());
        if required {
            // A key we do not need yet (one the config just added) must not delay the renewal of the others.
            let wait = match a.accepted {
                Some(b) if b.node != self.id => Duration::from_millis(u64::from(a.left_ms) + 1),
                _ => {
                    let ranked = self.ranking(group, None);
                    let rank = ranked.iter().position(|(n, _)| *n == self.cfg.me).unwrap_or(0);
                    self.cfg.interval / 2 * u32::try_from(rank + 1).unwrap_or(1)
                }
            };
            l.retry_at = l.retry_at.max(now + wait);
        }
        let refused = l.refused.get(&a.key);
        let possible: BTreeSet<Name> =
            self.all_voters().into_iter().filter(|v| refused.is_none_or(|r| !r.contains(v))).collect();
        if self.is_quorum(&possible) {
            return;
        }
        if required {
            // An adoption that fails keeps what runs (adding nothing) until deadline − m, then fences (§4.7).
            self.end_failed_round(l);
        } else {
            l.asking.remove(&a.key);
        }
    }

    /// A round that can no longer establish a lease. If it reached Accept and we hold nothing, the acceptors
    /// that did accept it would exclude everyone for `D_A` on behalf of a lease nobody holds — in a two-voter
    /// plus witness cluster that blocks the real holder's adoption after a restart (it needs every other voter).
    /// So the abandoned ballot is released (persisted first, §4.7). Never while holding: a holder's earlier
    /// ballots are what keeps the others out until it fences.
    pub(super) fn end_failed_round(&mut self, l: &mut Lease) {
        let accepting = l.phase == Phase::Accepting;
        l.phase = Phase::Idle;
        self.lose_shortcut(l);
        l.skipped = false;
        if accepting && l.holding.is_none() && l.ballot.node == self.id {
            self.record(l, true);
            for key in l.asking.clone() {
                let record = Record::Release { key, round: l.ballot.round, to: None };
                for v in self.all_voters() {
                    self.send(&v, record.clone());
                }
            }
        }
    }

    fn established(&mut self, now: Duration, group: &Name, l: &mut Lease, won: BTreeSet<LeaseKey>) {
        if self.bug == Some(PlantedBug::TimerAtAcceptQuorum) {
            l.t0 = now; // planted bug: the timer starts when the lease is confirmed
        }
        let deadline = l.t0 + self.cfg.lease;
        let fresh = l.holding.is_none();
        if fresh {
            l.stopping = None;
        }
        // A key that joins a held group waits out the strict wait by itself, like a fresh acquisition (§4.6).
        let joined: Vec<LeaseKey> = won.iter().filter(|k| !l.covered.contains(k)).copied().collect();
        if !fresh && self.cfg.strict && !l.adopting {
            for key in joined {
                l.unripe.insert(key, now + self.cfg.strict_wait());
            }
        }
        l.covered = won;
        l.holding = Some(deadline);
        l.held_ballot = l.ballot;
        l.phase = Phase::Idle;
        // Every acceptor of the quorum set its promise to this ballot when it accepted.
        l.fast = true;
        l.skipped = false;
        l.next_renew = l.t0 + self.cfg.lease / 3;
        l.retry_at = Duration::ZERO;
        let (group, key, ballot, covers) = (group.clone(), l.key(), l.ballot, l.covers());
        // A hand-over counts for this acquisition only: a Release repeated in heartbeats may have set `go_now`
        // again while this round ran, and a later acquisition must not skip the strict wait on its account.
        let handed = std::mem::take(&mut l.handed);
        l.go_now = false;
        if l.adopting {
            l.adopting = false;
            l.active = true;
            self.events.push_back(Event::Adopted { group, key, covers, deadline, ballot });
        } else if l.active {
            self.events.push_back(Event::Renewed { group, key, covers, deadline, ballot });
        } else if fresh && self.cfg.strict && !handed {
            l.strict_until = Some(now + self.cfg.strict_wait());
        } else if l.strict_until.is_none() {
            l.active = true;
            self.events.push_back(Event::Acquired { group, key, covers, deadline, ballot, handed });
        }
    }

    /// Keys whose strict wait is over become usable: the agent hears it as a renewal with the larger cover.
    pub(super) fn ripen(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        let before = l.unripe.len();
        l.unripe.retain(|_, until| *until > now);
        if l.unripe.len() == before || !l.active {
            return;
        }
        let Some(deadline) = l.holding else { return };
        let (key, covers, ballot) = (l.key(), l.covers(), l.held_ballot);
        self.events.push_back(Event::Renewed { group: group.clone(), key, covers, deadline, ballot });
    }
}
