//! The proposer and holder half of PaxosLease (DESIGN.md §4.3–4.9), one [`Lease`] per group: acquisition after a
//! ranked wait, renewals every T/3, retransmission within a round, fencing at `deadline − m`, strict waits,
//! adoption after a restart, graceful hand-over and Release. Under `policy: ignore` (§4.8) the same state holds a
//! self-granted lease instead.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::manifest::model::QuorumPolicy;
use crate::manifest::values::Name;

use super::acceptor::PlantedBug;
use super::config::Config;
use super::io::{AdoptionRecord, Event, QuorumKind};
use super::node::Node;
use super::placement::{self, Candidate};
use super::wire::{Answer, Ballot, LeaseKey, Proposal, Record};

/// Where a round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Preparing,
    Accepting,
}

/// One group's lease as seen by its (would-be) holder.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub key: LeaseKey,
    pub phase: Phase,
    /// The ballot of the current round.
    pub ballot: Ballot,
    /// The round's start on the lease clock, recorded before Prepare (§4.3).
    pub t0: Duration,
    pub promises: BTreeSet<Name>,
    pub accepts: BTreeSet<Name>,
    pub refused: BTreeSet<Name>,
    pub rtx_at: Duration,
    /// The deadline of the lease we hold.
    pub holding: Option<Duration>,
    pub held_ballot: Ballot,
    /// The group runs here (after any strict wait or adoption).
    pub active: bool,
    pub strict_until: Option<Duration>,
    pub next_renew: Duration,
    /// No new round before this (refusals carry time left).
    pub retry_at: Duration,
    pub vacant_since: Option<Duration>,
    /// When the ranked wait ends (for the timer).
    pub want_at: Option<Duration>,
    /// Renewing exactly the persisted ballot after a restart (§4.7).
    pub adopting: bool,
    /// Hand-over in progress: waiting for the group to stop.
    pub stopping: Option<Name>,
    /// We are a hand-over target: acquire at once.
    pub go_now: bool,
    /// This round follows a Release addressed to us: the previous holder removed the address before releasing,
    /// so no strict wait is needed (DESIGN.md §4.11: a move costs no probe either).
    pub handed: bool,
    /// Under `ignore`: the claimant we last reported a conflict with.
    pub conflict: Option<Name>,
    /// The holder re-checks placement once per heartbeat interval, not on every datagram.
    pub next_placement: Duration,
}

impl Lease {
    pub fn new(key: LeaseKey) -> Lease {
        Lease {
            key,
            phase: Phase::Idle,
            ballot: Ballot::default(),
            t0: Duration::ZERO,
            promises: BTreeSet::new(),
            accepts: BTreeSet::new(),
            refused: BTreeSet::new(),
            rtx_at: Duration::ZERO,
            holding: None,
            held_ballot: Ballot::default(),
            active: false,
            strict_until: None,
            next_renew: Duration::ZERO,
            retry_at: Duration::ZERO,
            vacant_since: None,
            want_at: None,
            adopting: false,
            stopping: None,
            go_now: false,
            handed: false,
            conflict: None,
            next_placement: Duration::ZERO,
        }
    }

    /// The next instant this lease needs the core without input.
    pub fn next_wake(&self, cfg: &Config) -> Duration {
        let mut t = Duration::MAX;
        if let Some(d) = self.holding {
            t = t.min(d.saturating_sub(cfg.margin));
            if self.phase == Phase::Idle && !self.adopting {
                t = t.min(self.next_renew.max(self.retry_at));
            }
        }
        if let Some(s) = self.strict_until {
            t = t.min(s);
        }
        if self.phase != Phase::Idle {
            t = t.min(self.rtx_at).min(self.t0 + cfg.lease.saturating_sub(cfg.margin));
        } else if self.holding.is_none() {
            if let Some(w) = self.want_at {
                t = t.min(w.max(self.retry_at));
            }
        }
        t
    }
}

fn rtx_interval(cfg: &Config) -> Duration {
    (cfg.lease / 10).max(Duration::from_millis(10))
}

impl Node {
    pub(super) fn start_leases(&mut self, now: Duration) {
        let groups: Vec<(Name, LeaseKey)> = self.cfg.groups.iter().map(|(n, g)| (n.clone(), g.key)).collect();
        for (name, key) in groups {
            let mut l = Lease::new(key);
            self.maybe_adopt(now, &name, &mut l);
            self.leases.insert(name, l);
        }
    }

    /// §4.7: same boot, deadline not passed, not released: keep what runs and renew exactly that ballot.
    /// Anything else found running is fenced.
    fn maybe_adopt(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        let Some(rec) = self.persisted.records.get(&l.key).copied() else { return };
        if rec.released {
            return;
        }
        let m = self.cfg.margin;
        let live = rec.boot_id == self.boot_id && now + m < rec.deadline;
        if live && self.cfg.policy == QuorumPolicy::Ignore {
            self.adopt_ignore(now, group, l, rec.ballot, rec.deadline);
        } else if live {
            l.adopting = true;
            l.holding = Some(rec.deadline);
            l.held_ballot = rec.ballot;
            l.ballot = rec.ballot;
            l.t0 = now;
            l.phase = Phase::Accepting;
            self.send_proposals(now, l, false);
        } else {
            self.events.push_back(Event::MustFence { group: group.clone(), key: l.key });
        }
    }

    /// After a config change: leases follow their key (a renamed group keeps its lease); removed keys are fenced.
    pub(super) fn rekey_leases(&mut self, now: Duration) {
        let mut old: Vec<(Name, Lease)> = std::mem::take(&mut self.leases).into_iter().collect();
        let groups: Vec<(Name, LeaseKey)> = self.cfg.groups.iter().map(|(n, g)| (n.clone(), g.key)).collect();
        for (name, key) in groups {
            let l = match old.iter().position(|(_, l)| l.key == key) {
                Some(i) => {
                    let (was, mut l) = old.swap_remove(i);
                    if was != name {
                        // Renamed mid-hand-over: the agent reports `Stopped` under the old name, which is gone;
                        // the next placement check asks again under the new one (stopping is idempotent).
                        l.stopping = None;
                        l.next_placement = Duration::ZERO;
                    }
                    l
                }
                None => Lease::new(key),
            };
            self.leases.insert(name, l);
        }
        for (name, mut l) in old {
            l.stopping = Some(self.cfg.me.clone());
            if l.holding.is_some() {
                self.events.push_back(Event::MustFence { group: name, key: l.key });
                self.release(now, &mut l, None);
            }
        }
    }

    pub(super) fn drive_leases(&mut self, now: Duration) {
        let full = std::mem::take(&mut self.full_drive);
        let touched = std::mem::take(&mut self.touched);
        let names: Vec<Name> = self
            .leases
            .iter()
            .filter(|(_, l)| full || touched.contains(&l.key) || l.next_wake(&self.cfg) <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let Some(mut l) = self.leases.remove(&name) else { continue };
            self.drive_lease(now, &name, &mut l);
            self.leases.insert(name, l);
        }
    }

    fn drive_lease(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        self.fence_if_due(now, group, l);
        if l.phase != Phase::Idle {
            if now + self.cfg.margin >= l.t0 + self.cfg.lease {
                self.end_failed_round(l); // too late to be useful: a fresh round follows
            } else if now >= l.rtx_at {
                let accept = l.phase == Phase::Accepting;
                self.send_proposals(now, l, !accept);
            }
        }
        if l.holding.is_some() {
            self.drive_holder(now, group, l);
        } else if l.phase == Phase::Idle {
            self.maybe_acquire(now, group, l);
        }
    }

    fn fence_if_due(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        let Some(deadline) = l.holding else { return };
        if now + self.cfg.margin < deadline {
            return;
        }
        let ran = l.active || l.adopting;
        // The planted bug is a *holder* that does not fence; an unconfirmed adoption still fences.
        let planted_no_fence = self.bug == Some(PlantedBug::NoFence) && !l.adopting;
        l.holding = None;
        l.active = false;
        l.adopting = false;
        l.strict_until = None;
        l.stopping = None;
        l.phase = Phase::Idle;
        if ran && !planted_no_fence {
            self.events.push_back(Event::MustFence { group: group.clone(), key: l.key });
        }
    }

    fn drive_holder(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        if let Some(until) = l.strict_until
            && now >= until
        {
            l.strict_until = None;
            l.active = true;
            let deadline = l.holding.unwrap_or(now);
            self.events.push_back(Event::Acquired {
                group: group.clone(),
                key: l.key,
                deadline,
                ballot: l.held_ballot,
                handed: false,
            });
        }
        if self.cfg.policy == QuorumPolicy::Ignore {
            self.drive_ignore_holder(now, group, l);
        } else if l.phase == Phase::Idle && !l.adopting && now >= l.next_renew && now >= l.retry_at {
            self.start_round(now, l);
        }
        let placement_due = l.active && now >= l.next_placement;
        if l.holding.is_some() && l.stopping.is_none() && (placement_due || self.leaving) {
            l.next_placement = now + self.cfg.interval;
            self.maybe_hand_over(group, l);
        }
    }

    /// The candidates for a group from this node's view (§4.9 −∞ rules: offline, not heard both ways, witness).
    /// A hand-over target must also have said it is ready (`for_hand_over`); a vacancy's ranking does not wait for
    /// that, so a peer finishing its start-up grace a heartbeat late is not overtaken by a lower-ranked one.
    pub(super) fn candidates(&self, group: &Name, for_hand_over: bool) -> Vec<Candidate> {
        let me = &self.cfg.me;
        let ready = |n: &Name| self.members.peers.get(n).is_some_and(|p| p.ready);
        self.cfg
            .nodes
            .keys()
            .filter(|n| self.cfg.is_member(n))
            .map(|n| {
                let eligible = if n == me {
                    self.can_propose()
                } else {
                    self.members.both_ways(n, self.id) && (ready(n) || !for_hand_over)
                };
                Candidate { name: n.clone(), eligible: eligible && !self.excluded_by_ops(group, n) }
            })
            .collect()
    }

    fn ranking(&self, group: &Name, holder: Option<&Name>) -> Vec<(Name, i64)> {
        match self.cfg.groups.get(group) {
            Some(g) => {
                let moved = self.moved_to(group);
                let candidates = self.candidates(group, holder.is_some());
                placement::rank(&g.prefer, g.stickiness, holder, moved.as_ref(), &candidates)
            }
            None => Vec::new(),
        }
    }

    /// Hands the group to a better node (§4.9). A leaving node is not eligible itself, so it hands over to the best
    /// other node; when there is none it still stops the group and releases with no target (the operator took
    /// the node out: the group stays down until another node can take it, as with `crm node standby`).
    fn maybe_hand_over(&mut self, group: &Name, l: &mut Lease) {
        let me = self.cfg.me.clone();
        let ranked = self.ranking(group, Some(&me));
        // A lease still in its strict wait (not active) added no address here, so a Release naming a target would
        // wrongly let it skip its own strict wait while a crashed holder's address may still be up (sim seed 677):
        // a leaving node releases such a lease to nobody.
        let target = placement::choose(&ranked, Some(&me)).filter(|best| *best != me && l.active);
        if target.is_some() || self.leaving {
            // `stopping == me` marks a stop without a target (its Release names nobody).
            l.stopping = Some(target.clone().unwrap_or(me));
            self.events.push_back(Event::MustStop { group: group.clone(), to: target });
        }
    }

    /// §4.7 SIGTERM: a round in flight for a group we do not hold is abandoned and released, so acceptors that
    /// may have accepted it do not make the others wait out its lease.
    pub(super) fn abandon_rounds(&mut self, now: Duration) {
        let names: Vec<Name> = self
            .leases
            .iter()
            .filter(|(_, l)| l.holding.is_none() && l.phase != Phase::Idle)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let Some(mut l) = self.leases.remove(&name) else { continue };
            self.release(now, &mut l, None);
            self.leases.insert(name, l);
        }
    }

    fn maybe_acquire(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        l.want_at = None;
        if !self.cfg.is_member(&self.cfg.me) || now < l.retry_at {
            return;
        }
        if self.members.claim(&l.key, now).is_some() {
            l.vacant_since = None;
            return;
        }
        let since = *l.vacant_since.get_or_insert(now);
        if !l.go_now {
            let ranked = self.ranking(group, None);
            let Some(rank) = ranked.iter().position(|(n, s)| *n == self.cfg.me && *s > placement::MINUS_INFINITY)
            else {
                return;
            };
            let grace = self.started + self.cfg.init_dead;
            let at = since.max(grace) + self.cfg.interval * u32::try_from(rank).unwrap_or(u32::MAX);
            if now < at {
                l.want_at = Some(at);
                return;
            }
        }
        l.handed = l.go_now;
        l.go_now = false;
        match self.cfg.policy {
            QuorumPolicy::Majority => self.start_round(now, l),
            QuorumPolicy::Ignore => self.take_ignore(now, group, l),
        }
    }

    pub(super) fn next_round(&mut self) -> u64 {
        let r = self.seen_round.max(self.persisted.max_round).max(self.acceptor.highest_round()) + 1;
        self.persisted.max_round = r;
        r
    }

    /// A new round: the deadline is recorded (and persisted for adoption) before Prepare is sent (§4.3, §4.7).
    fn start_round(&mut self, now: Duration, l: &mut Lease) {
        let round = self.next_round();
        l.ballot = Ballot { round, node: self.id };
        l.t0 = now;
        l.phase = Phase::Preparing;
        l.promises.clear();
        l.accepts.clear();
        l.refused.clear();
        self.record(l, false);
        if let Some(t) = self.trace.as_mut() {
            t.push(super::io::Trace::Prepared { ballot: l.ballot });
        }
        self.send_proposals(now, l, true);
    }

    pub(super) fn record(&mut self, l: &Lease, released: bool) {
        let rec = AdoptionRecord { ballot: l.ballot, deadline: l.t0 + self.cfg.lease, boot_id: self.boot_id, released };
        self.persisted.records.insert(l.key, rec);
        self.persist();
    }

    /// Sends (or re-sends to those that have not answered) the round's Prepare or Accept.
    fn send_proposals(&mut self, now: Duration, l: &mut Lease, prepare: bool) {
        let tm_ms = u32::try_from(self.acceptor.max_tm.as_millis()).unwrap_or(u32::MAX);
        let p = Proposal { key: l.key, round: l.ballot.round, tm_ms, voters: self.voters_digest() };
        let answered = if prepare { &l.promises } else { &l.accepts };
        for v in self.all_voters() {
            if answered.contains(&v) || l.refused.contains(&v) || (l.adopting && v == self.cfg.me) {
                continue;
            }
            self.send(&v, if prepare { Record::Prepare(p) } else { Record::Accept(p) });
        }
        l.rtx_at = now + rtx_interval(&self.cfg);
    }

    fn group_of(&self, key: LeaseKey) -> Option<Name> {
        self.cfg.group_of(key).cloned()
    }

    pub(super) fn on_promise(&mut self, now: Duration, from: &Name, a: Answer) {
        let Some(group) = self.group_of(a.key) else { return };
        let Some(mut l) = self.leases.remove(&group) else { return };
        if l.phase == Phase::Preparing && a.round == l.ballot.round {
            self.see_round(a.promised.round);
            if a.ok {
                l.promises.insert(from.clone());
                if self.is_quorum(&l.promises) {
                    self.trace_quorum(a.key, l.ballot, QuorumKind::Prepare, &l.promises);
                    if self.bug == Some(PlantedBug::LateTimer) {
                        l.t0 = now; // planted bug: the timer starts at the Prepare quorum
                    }
                    l.phase = Phase::Accepting;
                    l.refused.clear();
                    self.send_proposals(now, &mut l, false);
                }
            } else {
                self.refusal(now, &group, &mut l, from, &a);
            }
        }
        self.leases.insert(group, l);
    }

    pub(super) fn on_accepted(&mut self, now: Duration, from: &Name, a: Answer) {
        let Some(group) = self.group_of(a.key) else { return };
        let Some(mut l) = self.leases.remove(&group) else { return };
        if l.phase == Phase::Accepting && a.round == l.ballot.round {
            if a.ok {
                l.accepts.insert(from.clone());
                if l.adopting {
                    l.accepts.remove(&self.cfg.me); // §4.7: a majority of the *other* voters
                }
                if self.is_quorum(&l.accepts) {
                    let kind = if l.adopting { QuorumKind::Adopt } else { QuorumKind::Accept };
                    self.trace_quorum(a.key, l.ballot, kind, &l.accepts);
                    self.established(now, &group, &mut l);
                }
            } else {
                self.refusal(now, &group, &mut l, from, &a);
            }
        }
        self.leases.insert(group, l);
    }

    fn refusal(&mut self, now: Duration, group: &Name, l: &mut Lease, from: &Name, a: &Answer) {
        self.see_round(a.promised.round);
        let others_lease = a.accepted.is_some_and(|b| b.node != self.id);
        if l.adopting && l.ballot == l.held_ballot && !others_lease {
            // §4.7 adoption renews exactly the persisted ballot; an acceptor that promised a higher one since
            // (a rival's Prepare that lost the election) refuses it forever. No other lease is live there, so a
            // fresh full round (Prepare then Accept, a majority of the *other* voters, our acceptor quarantined)
            // is an ordinary renewal and just as safe; what runs is kept meanwhile, nothing is added.
            self.start_round(now, l);
            return;
        }
        l.refused.insert(from.clone());
        let wait = match a.accepted {
            Some(b) if b.node != self.id => Duration::from_millis(u64::from(a.left_ms) + 1),
            _ => {
                let ranked = self.ranking(group, None);
                let rank = ranked.iter().position(|(n, _)| *n == self.cfg.me).unwrap_or(0);
                self.cfg.interval / 2 * u32::try_from(rank + 1).unwrap_or(1)
            }
        };
        l.retry_at = l.retry_at.max(now + wait);
        let possible: BTreeSet<Name> = self.all_voters().difference(&l.refused).cloned().collect();
        if !self.is_quorum(&possible) {
            // An adoption that fails keeps what runs (adding nothing) until deadline − m, then fences (§4.7).
            self.end_failed_round(l);
        }
    }

    /// A round that can no longer establish a lease. If it reached Accept and we hold nothing, the acceptors
    /// that did accept it would exclude everyone for `D_A` on behalf of a lease nobody holds — in a two-voter
    /// plus witness cluster that blocks the real holder's adoption after a restart (it needs every other voter).
    /// So the abandoned ballot is released (persisted first, §4.7). Never while holding: a holder's earlier
    /// ballots are what keeps the others out until it fences.
    fn end_failed_round(&mut self, l: &mut Lease) {
        let accepting = l.phase == Phase::Accepting;
        l.phase = Phase::Idle;
        if accepting && l.holding.is_none() && l.ballot.node == self.id {
            self.record(l, true);
            let record = Record::Release { key: l.key, round: l.ballot.round, to: None };
            for v in self.all_voters() {
                self.send(&v, record.clone());
            }
        }
    }

    fn established(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        if self.bug == Some(PlantedBug::TimerAtAcceptQuorum) {
            l.t0 = now; // planted bug: the timer starts when the lease is confirmed
        }
        let deadline = l.t0 + self.cfg.lease;
        let fresh = l.holding.is_none();
        if fresh {
            l.stopping = None;
        }
        l.holding = Some(deadline);
        l.held_ballot = l.ballot;
        l.phase = Phase::Idle;
        l.next_renew = l.t0 + self.cfg.lease / 3;
        l.retry_at = Duration::ZERO;
        let (group, key, ballot) = (group.clone(), l.key, l.ballot);
        // A hand-over counts for this acquisition only: a Release repeated in heartbeats may have set `go_now`
        // again while this round ran, and a later acquisition must not skip the strict wait on its account.
        let handed = std::mem::take(&mut l.handed);
        l.go_now = false;
        if l.adopting {
            l.adopting = false;
            l.active = true;
            self.events.push_back(Event::Adopted { group, key, deadline, ballot });
        } else if l.active {
            self.events.push_back(Event::Renewed { group, key, deadline, ballot });
        } else if fresh && self.cfg.strict && !handed {
            l.strict_until = Some(now + self.cfg.strict_wait());
        } else if l.strict_until.is_none() {
            l.active = true;
            self.events.push_back(Event::Acquired { group, key, deadline, ballot, handed });
        }
    }

    /// `Input::Stopped` after a hand-over's MustStop: persist "released", then Release to everyone.
    pub(super) fn stopped(&mut self, now: Duration, group: &Name) {
        let Some(mut l) = self.leases.remove(group) else { return };
        if let Some(to) = l.stopping.clone()
            && l.holding.is_some()
        {
            self.release(now, &mut l, Some(&to));
            self.events.push_back(Event::Released { group: group.clone(), key: l.key });
        }
        self.leases.insert(group.clone(), l);
    }

    fn release(&mut self, now: Duration, l: &mut Lease, to: Option<&Name>) {
        self.record(l, true);
        let to_id = to.and_then(|n| self.members.peers.get(n)).and_then(|p| p.id);
        let round = l.ballot.round.max(l.held_ballot.round);
        let everyone: Vec<Name> = self.cfg.nodes.keys().cloned().collect();
        let record = Record::Release { key: l.key, round, to: to_id };
        for n in everyone {
            self.send(&n, record.clone());
        }
        self.releases.retain(|(r, _)| !matches!(r, Record::Release { key, .. } if *key == l.key));
        self.releases.push((record, now + self.cfg.dead_time));
        l.holding = None;
        l.active = false;
        l.stopping = None;
        l.phase = Phase::Idle;
        // Do not race the target for a while: it acquires at once.
        l.retry_at = now + self.cfg.dead_time;
    }

    /// A Release naming us: acquire at once, skipping the probe and the strict wait (the releaser removed the
    /// address). Releases are repeated in heartbeats for deadTime, so a stale one may arrive after the lease has
    /// moved on (we held it since, or a peer claims a later round): that one is ignored, or a later acquisition
    /// would skip the strict wait while another holder's address may still be in its kernel.
    pub(super) fn hand_over_target(&mut self, now: Duration, key: LeaseKey, round: u64) {
        let Some(group) = self.group_of(key) else { return };
        let later_elsewhere = self.members.peers.values().any(|p| p.held.get(&key).is_some_and(|(r, _)| *r > round));
        if let Some(l) = self.leases.get_mut(&group)
            && l.holding.is_none()
            && l.held_ballot.round <= round
            && !later_elsewhere
        {
            l.go_now = true;
            l.retry_at = now;
            l.vacant_since = Some(now);
        }
    }
}
