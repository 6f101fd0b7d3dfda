//! The acceptor half of PaxosLease (DESIGN.md §4.3): promises, accepted leases and their exclusion on this node's
//! lease clock. Its memory is not persisted; a restarted acceptor stays silent for the largest `D_A` it persisted.

use std::collections::HashMap;
use std::time::Duration;

use super::wire::{Answer, Ballot, LeaseKey, NodeId, Proposal};

/// Planted bugs for the simulation's self-test (issue item 8); `None` in every real build.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// A restarted acceptor forgets its promise and accepted lease and answers at once (no quarantine).
    ForgetPromise,
    /// The proposer starts its lease timer when the Prepare quorum arrives, not before Prepare.
    LateTimer,
    /// The proposer starts its lease timer when the Accept quorum arrives (the classic lease bug).
    TimerAtAcceptQuorum,
    /// The holder never fences: its address stays until the kernel lifetime runs out.
    NoFence,
    /// During a rollout the proposer counts only the new voter set (no joint majorities).
    NoJointMajority,
    /// A restarted acceptor honours its quarantine for Accept but answers Prepare at once (a half-applied
    /// quarantine): quorums then count a quarantined acceptor (invariant (h)).
    PrepareInQuarantine,
    /// The Accept-only shortcut without its conditions: once a round was won, the proposer skips Prepare on
    /// every later round — after a refusal that showed another proposer's higher promise, after its lease
    /// lapsed, when acquiring. hactl's acceptor refuses such an Accept twice over (another holder's lease is
    /// live, another proposer's promise is the highest), so it is caught with the textbook acceptor
    /// (`Boot::textbook_acceptor`), which decides by ballot order alone.
    SkipPrepare,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    promised: Ballot,
    /// The accepted ballot and the end of its exclusion on the lease clock.
    accepted: Option<(Ballot, Duration)>,
}

/// Acceptor state for every lease key.
#[derive(Debug, Clone)]
pub(crate) struct Acceptor {
    slots: HashMap<LeaseKey, Slot>,
    /// Silent until then (restart quarantine).
    pub quarantine_until: Duration,
    /// The largest `T + m` ever seen (own configs included).
    pub max_tm: Duration,
    drift: f64,
    /// Simulation self-test only (`PrepareInQuarantine`).
    pub bug: Option<PlantedBug>,
    /// Simulation only: Accept decided by ballot order alone, as in the PaxosLease paper — without hactl's
    /// refusal while another holder's lease is live and without its check that the highest promise is the
    /// proposer's own. Shows that the Accept-only renewal is safe by the proposer's rule (only within a lease
    /// still held, back to Prepare at any refusal), not by those extra refusals.
    pub textbook: bool,
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Acceptor {
    pub fn new(quarantine_until: Duration, max_tm: Duration, drift: f64) -> Acceptor {
        Acceptor { slots: HashMap::new(), quarantine_until, max_tm, drift, bug: None, textbook: false }
    }

    /// `D_A` for the largest `T + m` seen.
    pub fn exclusion(&self) -> Duration {
        self.max_tm.mul_f64((1.0 + self.drift) / (1.0 - self.drift))
    }

    /// Raises the largest `T + m`; returns whether it grew (the caller persists `D_A`).
    pub fn see_tm(&mut self, tm: Duration) -> bool {
        if tm > self.max_tm {
            self.max_tm = tm;
            true
        } else {
            false
        }
    }

    fn live(&self, key: &LeaseKey, now: Duration) -> Option<(Ballot, Duration)> {
        self.slots.get(key)?.accepted.filter(|(_, end)| *end > now)
    }

    fn answer(&self, key: LeaseKey, round: u64, ok: bool, now: Duration) -> Answer {
        let slot = self.slots.get(&key).cloned().unwrap_or_default();
        let live = self.live(&key, now);
        Answer {
            key,
            round,
            ok,
            promised: slot.promised,
            accepted: live.map(|(b, _)| b),
            left_ms: live.map(|(_, end)| ms(end - now)).unwrap_or(0),
        }
    }

    /// Phase 1. `None`: quarantined, stay silent. A live lease of another holder is reported without raising the
    /// promise (PreVote-style), with its time left.
    pub fn on_prepare(&mut self, now: Duration, from: NodeId, p: &Proposal) -> Option<Answer> {
        if now < self.quarantine_until && self.bug != Some(PlantedBug::PrepareInQuarantine) {
            return None;
        }
        let b = Ballot { round: p.round, node: from };
        let other_live = self.live(&p.key, now).is_some_and(|(held, _)| held.node != from);
        let slot = self.slots.entry(p.key).or_default();
        let ok = !other_live && b >= slot.promised;
        if ok {
            slot.promised = b;
        }
        Some(self.answer(p.key, p.round, ok, now))
    }

    /// Phase 2: accept unless promised higher or another holder's lease is live; exclusion `D_A` from now.
    ///
    /// The highest promise must also be the proposer's own (or none at all): an Accept after the proposer's
    /// Prepare finds its own ballot there, and an Accept-only renewal (a fresh round that skipped Prepare,
    /// docs/protocol.md) finds the ballot of the proposer's previous round — unless another proposer's Prepare
    /// was promised since, which is exactly when skipping Prepare would be unsafe.
    pub fn on_accept(&mut self, now: Duration, from: NodeId, p: &Proposal) -> Option<Answer> {
        if now < self.quarantine_until {
            return None;
        }
        let b = Ballot { round: p.round, node: from };
        let other_live = !self.textbook && self.live(&p.key, now).is_some_and(|(held, _)| held.node != from);
        let end = now + self.exclusion();
        let textbook = self.textbook;
        let slot = self.slots.entry(p.key).or_default();
        let promiser_ok = textbook || slot.promised.node == from || slot.promised == Ballot::default();
        let ok = !other_live && promiser_ok && b >= slot.promised;
        if ok {
            slot.promised = b;
            slot.accepted = Some((b, end));
        }
        Some(self.answer(p.key, p.round, ok, now))
    }

    /// A Release clears every ballot of that holder up to `round`.
    pub fn on_release(&mut self, from: NodeId, key: LeaseKey, round: u64) {
        if let Some(slot) = self.slots.get_mut(&key)
            && slot.accepted.is_some_and(|(b, _)| b.node == from && b.round <= round)
        {
            slot.accepted = None;
        }
    }

    /// The highest round this acceptor has seen on `key` (so a proposer can go above it).
    pub fn highest_round(&self) -> u64 {
        self.slots.values().map(|s| s.promised.round).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(round: u64) -> Proposal {
        Proposal { key: "192.0.2.1".parse().unwrap_or_else(|_| unreachable!()), round, tm_ms: 1100, voters: 0 }
    }

    #[test]
    fn live_lease_of_another_is_never_overwritten() {
        let mut a = Acceptor::new(Duration::ZERO, Duration::from_millis(1100), 0.001);
        let (x, y) = (NodeId([1; 16]), NodeId([2; 16]));
        let now = Duration::from_secs(1);
        assert!(a.on_prepare(now, x, &prop(1)).is_some_and(|r| r.ok));
        assert!(a.on_accept(now, x, &prop(1)).is_some_and(|r| r.ok));
        let r = a.on_prepare(now, y, &prop(5)).unwrap_or_else(|| unreachable!());
        assert!(!r.ok && r.accepted.map(|b| b.node) == Some(x) && r.left_ms > 1000);
        // PreVote: the refused prepare did not raise the promise, so the holder renews with a lower round.
        assert!(a.on_accept(now, x, &prop(2)).is_some_and(|r| r.ok));
        assert!(a.on_accept(now, y, &prop(9)).is_some_and(|r| !r.ok));
        let later = now + Duration::from_millis(1200);
        assert!(a.on_prepare(later, y, &prop(5)).is_some_and(|r| r.ok));
        assert!(a.on_accept(later, x, &prop(3)).is_some_and(|r| !r.ok), "promised (5, y)");
    }

    #[test]
    fn quarantined_acceptor_is_silent_and_release_clears() {
        let mut a = Acceptor::new(Duration::from_secs(2), Duration::from_millis(1100), 0.001);
        let x = NodeId([1; 16]);
        assert!(a.on_prepare(Duration::from_secs(1), x, &prop(1)).is_none());
        let now = Duration::from_secs(3);
        assert!(a.on_accept(now, x, &prop(1)).is_some_and(|r| r.ok));
        a.on_release(x, prop(1).key, 1);
        assert!(a.on_prepare(now, NodeId([2; 16]), &prop(2)).is_some_and(|r| r.ok && r.accepted.is_none()));
    }
}
