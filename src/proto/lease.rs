//! The proposer and holder half of PaxosLease (DESIGN.md §4.3–4.9), one [`Lease`] per group: acquisition after a
//! ranked wait, renewals every T/3, retransmission within a round, fencing at `deadline − m`, strict waits,
//! adoption after a restart, graceful hand-over and Release. Under `policy: ignore` (§4.8) the same state holds a
//! self-granted lease instead.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::manifest::model::QuorumPolicy;
use crate::manifest::values::Name;

use super::acceptor::PlantedBug;
use super::config::Config;
use super::io::{AdoptionRecord, Event};
use super::node::Node;
use super::placement::{self, Candidate};
use super::wire::{Ballot, LeaseKey, Proposal, Record};

/// Where a round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Preparing,
    Accepting,
}

/// Voters per lease key within one round.
pub(crate) type Tally = BTreeMap<LeaseKey, BTreeSet<Name>>;

/// One group's lease as seen by its (would-be) holder. Each floating address is its own PaxosLease key at the
/// acceptors (DESIGN.md §4.3), and one round asks for all of the group's keys under one ballot.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    /// The group's keys in this node's config (one per address, sorted).
    pub keys: Vec<LeaseKey>,
    /// The keys we hold under `held_ballot`: the only addresses the agent may configure. A key the config adds to
    /// a held group joins at a later renewal, once a majority of its acceptors grant it (the address may still be
    /// held under another group by a node that has not seen the new config yet).
    pub covered: BTreeSet<LeaseKey>,
    /// The keys the current round still asks for.
    pub asking: BTreeSet<LeaseKey>,
    /// Covered keys that joined a held group under `strict`, usable from the given instant (§4.6).
    pub unripe: BTreeMap<LeaseKey, Duration>,
    pub phase: Phase,
    /// The ballot of the current round.
    pub ballot: Ballot,
    /// The round's start on the lease clock, recorded before Prepare (§4.3).
    pub t0: Duration,
    pub promises: Tally,
    pub accepts: Tally,
    pub refused: Tally,
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
    /// The last round won, and no refusal since: this node's ballot was the highest promised at a quorum of
    /// every key, so the next renewal may skip Prepare (docs/protocol.md, "Accept-only renewals").
    pub fast: bool,
    /// The current round skipped Prepare; a refusal or a second retransmission falls back to a full round.
    pub skipped: bool,
}

impl Lease {
    pub fn new(keys: Vec<LeaseKey>) -> Lease {
        Lease {
            keys,
            covered: BTreeSet::new(),
            asking: BTreeSet::new(),
            unripe: BTreeMap::new(),
            phase: Phase::Idle,
            ballot: Ballot::default(),
            t0: Duration::ZERO,
            promises: Tally::new(),
            accepts: Tally::new(),
            refused: Tally::new(),
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
            fast: false,
            skipped: false,
        }
    }

    /// The group's primary key (its lowest address): names it in events, logs and adoption.
    pub fn key(&self) -> LeaseKey {
        self.keys.first().copied().unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    }

    /// The keys that must all reach a quorum for a round to count: every key when acquiring, the covered ones
    /// when renewing (so a key that another node still holds does not cost us the ones we hold).
    pub fn required(&self) -> BTreeSet<LeaseKey> {
        let covered: BTreeSet<LeaseKey> = self.covered.iter().filter(|k| self.keys.contains(k)).copied().collect();
        if self.holding.is_some() && !covered.is_empty() { covered } else { self.keys.iter().copied().collect() }
    }

    /// Every key this lease may have touched at the acceptors (what a Release must clear).
    fn touched_keys(&self) -> BTreeSet<LeaseKey> {
        self.keys.iter().chain(&self.covered).chain(&self.asking).copied().collect()
    }

    /// The covered keys whose addresses the agent may configure, for events, in order.
    pub fn covers(&self) -> Vec<LeaseKey> {
        self.covered.iter().filter(|k| !self.unripe.contains_key(k)).copied().collect()
    }

    /// Whether the holder renews now: at the heartbeat tick nearest to `next_renew` (at most the slack before or
    /// after it), so the renewals of every group leave in the heartbeat's datagram and cost no wake-up of their
    /// own; without a tick that near, at `next_renew` plus the slack.
    /// `slack` is [`Config::renew_slack`].
    pub fn renew_due(&self, now: Duration, slack: Duration, beat: bool) -> bool {
        now >= self.retry_at && (now >= self.next_renew + slack || (beat && now + slack >= self.next_renew))
    }

    /// The next instant this lease needs the core without input.
    pub fn next_wake(&self, cfg: &Config) -> Duration {
        let mut t = Duration::MAX;
        if let Some(d) = self.holding {
            t = t.min(d.saturating_sub(cfg.margin));
            if self.phase == Phase::Idle && !self.adopting {
                // Normally a heartbeat tick comes first and takes the renewal along (`renew_due`).
                t = t.min((self.next_renew + cfg.renew_slack()).max(self.retry_at));
            }
        }
        if let Some(s) = self.strict_until {
            t = t.min(s);
        }
        if let Some(s) = self.unripe.values().min() {
            t = t.min(*s);
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
        let groups: Vec<(Name, Vec<LeaseKey>)> =
            self.cfg.groups.iter().map(|(n, g)| (n.clone(), g.keys.clone())).collect();
        for (name, keys) in groups {
            let mut l = Lease::new(keys);
            self.maybe_adopt(now, &name, &mut l);
            self.leases.insert(name, l);
        }
    }

    /// §4.7: same boot, deadline not passed, not released: keep what runs and renew exactly that ballot.
    /// Anything else found running is fenced. Only a group every address of which has that same record is
    /// adopted: records are per address, and after a config change made while the agent was down one of them may
    /// belong to another group's lease (an address moved between groups); adopting on its account would split a
    /// group across two nodes (simulation seed 5643 of the moved-address test, 20,000-seed run).
    fn maybe_adopt(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        let records: Vec<Option<AdoptionRecord>> =
            l.keys.iter().map(|k| self.persisted.records.get(k).copied()).collect();
        let Some(rec) = records.iter().flatten().filter(|r| !r.released).max_by_key(|r| r.ballot).copied() else {
            return;
        };
        let m = self.cfg.margin;
        let live = rec.boot_id == self.boot_id && now + m < rec.deadline;
        if !live || records.iter().any(|r| *r != Some(rec)) {
            self.events.push_back(Event::MustFence { group: group.clone(), key: l.key() });
            return;
        }
        l.covered = l.keys.iter().copied().collect();
        if self.cfg.policy == QuorumPolicy::Ignore {
            self.adopt_ignore(now, group, l, rec.ballot, rec.deadline);
        } else {
            l.adopting = true;
            l.holding = Some(rec.deadline);
            l.held_ballot = rec.ballot;
            l.ballot = rec.ballot;
            l.t0 = now;
            l.phase = Phase::Accepting;
            l.asking = l.covered.clone();
            self.send_proposals(now, l, false);
        }
    }

    /// After a config change: leases follow their keys (a renamed group keeps its lease, an address added to or
    /// removed from a held group keeps the others); a lease none of whose keys is configured any more is fenced.
    pub(super) fn rekey_leases(&mut self, now: Duration) {
        let mut old: Vec<(Name, Lease)> = std::mem::take(&mut self.leases).into_iter().collect();
        let groups: Vec<(Name, Vec<LeaseKey>)> =
            self.cfg.groups.iter().map(|(n, g)| (n.clone(), g.keys.clone())).collect();
        for (name, keys) in groups {
            // A held lease follows the keys it covers; a lease not held, the keys it asks for.
            let overlap = |l: &Lease| {
                let mine: Vec<&LeaseKey> =
                    if l.holding.is_some() { l.covered.iter().collect() } else { l.keys.iter().collect() };
                mine.into_iter().filter(|k| keys.contains(k)).count()
            };
            let best = old.iter().enumerate().filter(|(_, (_, l))| overlap(l) > 0).max_by_key(|(_, (_, l))| overlap(l));
            let l = match best.map(|(i, _)| i) {
                Some(i) => {
                    let (was, l) = old.swap_remove(i);
                    self.follow_keys(now, was != name, l, keys)
                }
                None => Lease::new(keys),
            };
            self.leases.insert(name, l);
        }
        for (name, mut l) in old {
            l.stopping = Some(self.cfg.me.clone());
            if l.holding.is_some() {
                self.events.push_back(Event::MustFence { group: name, key: l.key() });
                self.release(now, &mut l, None);
            }
        }
    }

    /// A lease taken over by a group of the new config with (some of) its keys. Keys it no longer has are not
    /// released: the agent removes their addresses as retired members, and the acceptors' exclusion runs out by
    /// itself, so another group can take such an address only after this node fenced it (§4.3, §4.6).
    fn follow_keys(&mut self, now: Duration, renamed: bool, mut l: Lease, keys: Vec<LeaseKey>) -> Lease {
        if renamed {
            // Renamed mid-hand-over: the agent reports `Stopped` under the old name, which is gone; the next
            // placement check asks again under the new one (stopping is idempotent).
            l.stopping = None;
            l.next_placement = Duration::ZERO;
        }
        let grows = keys.iter().any(|k| !l.covered.contains(k));
        l.keys = keys;
        l.covered.retain(|k| l.keys.contains(k));
        if l.phase != Phase::Idle && l.holding.is_none() {
            // A round for the old key set: abandon it (released if it reached Accept); a fresh one follows.
            self.end_failed_round(&mut l);
        }
        if l.holding.is_some() && grows && !l.adopting {
            l.next_renew = now; // ask for the new keys at the next renewal, which is now
        }
        l
    }

    pub(super) fn drive_leases(&mut self, now: Duration) {
        let full = std::mem::take(&mut self.full_drive);
        let touched = std::mem::take(&mut self.touched);
        let names: Vec<Name> = self
            .leases
            .iter()
            .filter(|(_, l)| {
                full || l.keys.iter().chain(&l.covered).any(|k| touched.contains(k)) || l.next_wake(&self.cfg) <= now
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let Some(mut l) = self.leases.remove(&name) else { continue };
            self.drive_lease(now, &name, &mut l);
            self.leases.insert(name, l);
        }
    }

    fn drive_lease(&mut self, now: Duration, group: &Name, l: &mut Lease) {
        if l.phase != Phase::Idle {
            self.advance_round(now, group, l);
        }
        self.fence_if_due(now, group, l);
        if l.phase != Phase::Idle {
            if now + self.cfg.margin >= l.t0 + self.cfg.lease {
                self.end_failed_round(l); // too late to be useful: a fresh round follows
            } else if l.skipped && now >= l.t0 + rtx_interval(&self.cfg) * 2 {
                // The Accept-only renewal went unanswered through one retransmission: a full round.
                self.lose_shortcut(l);
                self.start_round(now, l);
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
        self.lose_shortcut(l);
        l.strict_until = None;
        l.unripe.clear();
        l.stopping = None;
        l.phase = Phase::Idle;
        if ran && !planted_no_fence {
            self.events.push_back(Event::MustFence { group: group.clone(), key: l.key() });
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
                key: l.key(),
                covers: l.covers(),
                deadline,
                ballot: l.held_ballot,
                handed: false,
            });
        }
        self.ripen(now, group, l);
        if self.cfg.policy == QuorumPolicy::Ignore {
            self.drive_ignore_holder(now, group, l);
        } else if l.phase == Phase::Idle && !l.adopting && l.renew_due(now, self.cfg.renew_slack(), self.beat) {
            // Accept-only while nothing changed since the last round won: every key still covered (a key the
            // config just added has never been promised to us), no refusal since.
            let skip = l.fast && l.keys.iter().all(|k| l.covered.contains(k));
            self.start_round_as(now, l, skip);
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

    pub(super) fn ranking(&self, group: &Name, holder: Option<&Name>) -> Vec<(Name, i64)> {
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
        if l.keys.iter().any(|k| self.members.claim(k, now).is_some()) {
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
            // The planted bug takes the shortcut for an acquisition too, on the strength of a round won long ago.
            QuorumPolicy::Majority => {
                let skip = self.bug == Some(PlantedBug::SkipPrepare) && l.fast;
                self.start_round_as(now, l, skip)
            }
            QuorumPolicy::Ignore => self.take_ignore(now, group, l),
        }
    }

    pub(super) fn next_round(&mut self) -> u64 {
        let r = self.seen_round.max(self.persisted.max_round).max(self.acceptor.highest_round()) + 1;
        self.persisted.max_round = r;
        r
    }

    /// The next round of `l` runs Prepare again (a refusal, a lapse, a failed round); the planted bug forgets to.
    pub(super) fn lose_shortcut(&self, l: &mut Lease) {
        l.fast &= self.bug == Some(PlantedBug::SkipPrepare);
    }

    /// A new round: the deadline is recorded (and persisted for adoption) before Prepare is sent (§4.3, §4.7).
    pub(super) fn start_round(&mut self, now: Duration, l: &mut Lease) {
        self.start_round_as(now, l, false);
    }

    /// A new round, Prepare first unless `skip_prepare` (a holder's Accept-only renewal: a fresh round, so no
    /// answer to an earlier one counts, sent as Accept at once; the acceptor takes it only while its highest
    /// promise is still this node's, see `Acceptor::on_accept`). Timing is the same either way: the lease counts
    /// from `now`, read before anything is sent.
    fn start_round_as(&mut self, now: Duration, l: &mut Lease, skip_prepare: bool) {
        let round = self.next_round();
        l.ballot = Ballot { round, node: self.id };
        l.t0 = now;
        l.skipped = skip_prepare;
        l.phase = if skip_prepare { Phase::Accepting } else { Phase::Preparing };
        l.asking = l.keys.iter().copied().collect();
        l.promises.clear();
        l.accepts.clear();
        l.refused.clear();
        self.record(l, false);
        if let Some(t) = self.trace.as_mut() {
            t.push(super::io::Trace::Prepared { ballot: l.ballot, skipped: skip_prepare });
        }
        self.send_proposals(now, l, !skip_prepare);
    }

    pub(super) fn record(&mut self, l: &Lease, released: bool) {
        let rec = AdoptionRecord { ballot: l.ballot, deadline: l.t0 + self.cfg.lease, boot_id: self.boot_id, released };
        let keys = if released { l.touched_keys() } else { l.asking.iter().chain(&l.covered).copied().collect() };
        for key in keys {
            self.persisted.records.insert(key, rec);
        }
        self.persist();
    }

    /// Sends (or re-sends to those that have not answered) the round's Prepare or Accept, one record per key.
    pub(super) fn send_proposals(&mut self, now: Duration, l: &mut Lease, prepare: bool) {
        let tm_ms = u32::try_from(self.acceptor.max_tm.as_millis()).unwrap_or(u32::MAX);
        let voters = self.voters_digest();
        let answered = if prepare { &l.promises } else { &l.accepts };
        let has = |tally: &Tally, key: &LeaseKey, v: &Name| tally.get(key).is_some_and(|s| s.contains(v));
        for v in self.all_voters() {
            if l.adopting && v == self.cfg.me {
                continue;
            }
            for key in &l.asking {
                if has(answered, key, &v) || has(&l.refused, key, &v) {
                    continue;
                }
                let p = Proposal { key: *key, round: l.ballot.round, tm_ms, voters };
                self.send(&v, if prepare { Record::Prepare(p) } else { Record::Accept(p) });
            }
        }
        l.rtx_at = now + rtx_interval(&self.cfg);
    }

    pub(super) fn group_of(&self, key: LeaseKey) -> Option<Name> {
        self.cfg.group_of(key).cloned()
    }

    /// `Input::Stopped` after a hand-over's MustStop: persist "released", then Release to everyone.
    pub(super) fn stopped(&mut self, now: Duration, group: &Name) {
        let Some(mut l) = self.leases.remove(group) else { return };
        if let Some(to) = l.stopping.clone()
            && l.holding.is_some()
        {
            self.release(now, &mut l, Some(&to));
            self.events.push_back(Event::Released { group: group.clone(), key: l.key() });
        }
        self.leases.insert(group.clone(), l);
    }

    fn release(&mut self, now: Duration, l: &mut Lease, to: Option<&Name>) {
        self.record(l, true);
        let to_id = to.and_then(|n| self.members.peers.get(n)).and_then(|p| p.id);
        let round = l.ballot.round.max(l.held_ballot.round);
        let everyone: Vec<Name> = self.cfg.nodes.keys().cloned().collect();
        for key in l.touched_keys() {
            let record = Record::Release { key, round, to: to_id };
            for n in &everyone {
                self.send(n, record.clone());
            }
            self.releases.retain(|(r, _)| !matches!(r, Record::Release { key: k, .. } if *k == key));
            self.releases.push((record, now + self.cfg.dead_time));
        }
        l.holding = None;
        l.active = false;
        self.lose_shortcut(l);
        l.stopping = None;
        l.phase = Phase::Idle;
        l.unripe.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> LeaseKey {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn acquiring_needs_every_key_and_renewing_only_the_covered_ones() {
        let (x, y) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let mut l = Lease::new(vec![x, y]);
        assert_eq!(l.required(), [x, y].into(), "a fresh acquisition needs every address");
        l.holding = Some(Duration::from_secs(5));
        l.covered = [x].into();
        assert_eq!(l.required(), [x].into(), "a renewal must not wait for the address that just joined");
        l.covered = [ip("192.0.2.9")].into();
        assert_eq!(l.required(), [x, y].into(), "covering none of today's keys is no holding to renew");
    }

    #[test]
    fn a_renewal_rides_the_heartbeat_nearest_its_due_time() {
        let ms = Duration::from_millis;
        let mut l = Lease::new(vec![ip("192.0.2.1")]);
        l.next_renew = ms(333);
        let slack = ms(100);
        assert!(!l.renew_due(ms(200), slack, true), "a heartbeat too early does not take it");
        assert!(l.renew_due(ms(240), slack, true), "the heartbeat within the slack before it does");
        assert!(!l.renew_due(ms(340), slack, false), "between heartbeats it waits for the next one");
        assert!(l.renew_due(ms(420), slack, true), "the heartbeat within the slack after it does");
        assert!(l.renew_due(ms(433), slack, false), "without a heartbeat that near, at due time + slack");
        l.retry_at = ms(500);
        assert!(!l.renew_due(ms(433), slack, true), "never before a refusal's retry time");
    }

    #[test]
    fn an_unripe_key_is_not_offered_to_the_agent_and_a_release_clears_every_key() {
        let (x, y, z) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        let mut l = Lease::new(vec![x, y]);
        l.covered = [x, y].into();
        l.unripe.insert(y, Duration::from_secs(3));
        assert_eq!(l.covers(), vec![x]);
        l.asking = [z].into();
        assert_eq!(l.touched_keys(), [x, y, z].into());
        assert_eq!(l.key(), x);
    }
}
