//! The protocol core of one node: `handle(now, input)`, then drain `poll_event`, `poll_transmit`, and arm
//! `poll_timeout`. It reads no clock, opens no socket and draws no random number (STYLE.md).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::manifest::model::QuorumPolicy;
use crate::manifest::values::Name;

use super::acceptor::{Acceptor, PlantedBug};
use super::config::{Config, voter_digest};
use super::io::{Boot, Event, Input, Persisted, Trace, Transmit};
use super::lease::Lease;
use super::membership::Membership;
use super::wire::{self, Ballot, Header, Keys, LeaseKey, NodeId, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputKind {
    Datagram,
    Timeout,
    Other,
}

/// The protocol core of one node.
#[derive(Debug, Clone)]
pub struct Node {
    pub(super) cfg: Config,
    /// Voter sets of previous configs until every voter reports the new digest (joint majorities, §4.4).
    pub(super) old_voters: Vec<BTreeSet<Name>>,
    pub(super) id: NodeId,
    pub(super) incarnation: u64,
    pub(super) boot_id: u64,
    pub(super) seq: u64,
    pub(super) keys: Keys,
    pub(super) started: Duration,
    pub(super) members: Membership,
    pub(super) acceptor: Acceptor,
    pub(super) leases: BTreeMap<Name, Lease>,
    pub(super) persisted: Persisted,
    pub(super) next_heartbeat: Duration,
    /// The state changed in this input and must be written before its datagrams are sent.
    persist_due: bool,
    /// This drive sends a heartbeat: renewals due about now leave with it ([`Lease::renew_due`]).
    pub(super) beat: bool,
    pub(super) out: BTreeMap<Name, Vec<Record>>,
    transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<Event>,
    pub(super) bug: Option<PlantedBug>,
    pub(super) tie_breaker_ok: bool,
    /// The highest round seen from anyone (the next ballot goes above it).
    pub(super) seen_round: u64,
    pub(super) trace: Option<Vec<Trace>>,
    /// A node that never ran cannot know the voter set a rollout comes from: it proposes nothing until every
    /// voter of its config reports its digest (DESIGN.md §4.4, conservatively).
    pub(super) joint_unknown: bool,
    /// When every voter reported our digest, the joint phase still lasts until leases granted by an old-only
    /// majority have run out: this instant.
    pub(super) joint_exit_at: Option<Duration>,
    /// Releases still repeated in heartbeats, until when.
    pub(super) releases: Vec<(Record, Duration)>,
    /// Replicated operations and failcounts.
    pub(super) ops: super::ops::Ops,
    /// Lease keys named by the records of this input: their leases are driven now (the rest wait for their
    /// timer or the next heartbeat, so one datagram costs O(records), not O(groups)).
    pub(super) touched: BTreeSet<LeaseKey>,
    /// Drive every lease on this input (timer of a heartbeat, membership change, operation, config).
    pub(super) full_drive: bool,
    /// Taken out by [`Input::Leave`]: not eligible, hands everything over; `left` once [`Event::Left`] went out.
    pub(super) leaving: bool,
    left: bool,
    /// The `now` of the previous input, to tell our own pause from our peers' silence.
    last_now: Duration,
    /// [`Node::poll_timeout`], computed once at the end of each input: the agent asks for it on every message,
    /// most of which never reach the core, and the minimum over every lease is O(groups).
    pub(super) wake: Duration,
}

impl Node {
    /// Starts a node at `now` on its lease clock.
    pub fn new(now: Duration, cfg: Config, boot: Boot) -> Node {
        let mut persisted = boot.persisted;
        let quarantine = if boot.bug == Some(PlantedBug::ForgetPromise) {
            Duration::ZERO
        } else {
            now + cfg.exclusion(persisted.max_tm)
        };
        persisted.max_tm = persisted.max_tm.max(cfg.tm());
        let voters = cfg.voters();
        let joint_unknown =
            (persisted.voters.is_empty() || persisted.joint_unknown) && cfg.policy == QuorumPolicy::Majority;
        persisted.joint_unknown = joint_unknown;
        let mut old_voters = persisted.joint_old.clone();
        if !persisted.voters.is_empty() && persisted.voters != voters {
            old_voters.push(persisted.voters.clone());
        }
        persisted.voters = voters;
        persisted.joint_old = old_voters.clone();
        let mut acceptor = Acceptor::new(quarantine, persisted.max_tm, cfg.drift);
        acceptor.bug = boot.bug;
        acceptor.textbook = boot.textbook_acceptor;
        let members = Membership::new(cfg.nodes.keys(), &cfg.me);
        let mut node = Node {
            old_voters,
            joint_unknown,
            joint_exit_at: None,
            releases: Vec::new(),
            ops: super::ops::Ops::default(),
            touched: BTreeSet::new(),
            full_drive: true,
            leaving: false,
            left: false,
            last_now: now,
            wake: now,
            id: boot.id,
            incarnation: boot.incarnation,
            boot_id: boot.boot_id,
            seq: 0,
            keys: boot.keys,
            started: now,
            members,
            acceptor,
            leases: BTreeMap::new(),
            persisted,
            next_heartbeat: now,
            beat: false,
            persist_due: false,
            out: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            bug: boot.bug,
            tie_breaker_ok: false,
            seen_round: 0,
            trace: boot.trace.then(Vec::new),
            cfg,
        };
        node.persist();
        node.start_leases(now);
        node.push_persist();
        node.wake = node.next_wake();
        node
    }

    /// This node's identity.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Replaces the cluster keys (a rotation, DESIGN.md §4.8): the first signs from the next datagram on, all
    /// verify; nothing else changes, so a rotation costs no restart.
    pub fn set_keys(&mut self, keys: Keys) {
        self.keys = keys;
    }

    /// This node's current configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Groups this node holds and has activated, with their deadlines (for `status`).
    pub fn holding(&self) -> impl Iterator<Item = (&Name, Duration)> {
        self.leases.iter().filter(|(_, l)| l.active).filter_map(|(n, l)| l.holding.map(|d| (n, d)))
    }

    /// The peers as seen from here (for `status`).
    pub fn peers(&self) -> &Membership {
        &self.members
    }

    /// Simulation only: drains the checker's trace.
    #[doc(hidden)]
    pub fn drain_trace(&mut self) -> Vec<Trace> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Feeds one input; then drain the polls.
    pub fn handle(&mut self, now: Duration, input: Input<'_>) {
        let input_kind = match input {
            Input::Datagram { .. } => InputKind::Datagram,
            Input::Timeout => InputKind::Timeout,
            _ => InputKind::Other,
        };
        self.discount_own_pause(now);
        match input {
            Input::Datagram { from, bytes } => self.receive(now, from, bytes),
            Input::Timeout => {}
            Input::Stopped(group) => {
                self.full_drive = true;
                self.stopped(now, &group)
            }
            Input::Config(cfg) => self.reconfigure(now, *cfg),
            Input::TieBreaker(ok) => self.tie_breaker_ok = ok,
            Input::Operate(op) => self.operate(now, op),
            Input::MemberFailed(group) => self.member_failed(now, &group),
            Input::Leave => {
                self.leaving = true;
                self.abandon_rounds(now);
            }
        }
        if !matches!(input_kind, InputKind::Datagram | InputKind::Timeout) {
            self.full_drive = true;
        }
        self.drive(now);
        self.push_persist();
        self.wake = self.next_wake();
    }

    /// The next event, if any. Drain these before transmits: a `Persist` must be written before sending.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When to call `handle(now, Input::Timeout)` next.
    pub fn poll_timeout(&self) -> Duration {
        self.wake
    }

    pub(super) fn next_wake(&self) -> Duration {
        let mut t = self.next_heartbeat;
        if let Some(m) = self.members.next_change(self.cfg.warn_time, self.cfg.dead_time) {
            t = t.min(m);
        }
        for l in self.leases.values() {
            t = t.min(l.next_wake(&self.cfg));
        }
        t
    }

    /// Asks for the state to be written once at the end of this input (one copy of the records however many
    /// groups renewed in it), after its other events and before any of its datagrams.
    pub(super) fn persist(&mut self) {
        self.persist_due = true;
    }

    fn push_persist(&mut self) {
        if std::mem::take(&mut self.persist_due) {
            self.events.push_back(Event::Persist(self.persisted.clone()));
        }
    }

    /// Queues a record for a peer (or for ourselves: our own acceptor answers through the same path).
    pub(super) fn send(&mut self, to: &Name, record: Record) {
        // No copy of the name per record: only the first record to a peer in an input makes its entry.
        match self.out.get_mut(to) {
            Some(queue) => queue.push(record),
            None => {
                self.out.insert(to.clone(), vec![record]);
            }
        }
    }

    /// Every voter of the current and, during a rollout, the previous config.
    pub(super) fn all_voters(&self) -> BTreeSet<Name> {
        let mut v = self.cfg.voters();
        for old in &self.old_voters {
            v.extend(old.iter().cloned());
        }
        v
    }

    /// The digest Prepare and Accept carry: the voter sets this proposer counts.
    pub(super) fn voters_digest(&self) -> u64 {
        voter_digest(&self.all_voters())
    }

    /// Whether `yes` is a majority of the voters — of both sets during a rollout (§4.4).
    pub(super) fn is_quorum(&self, yes: &BTreeSet<Name>) -> bool {
        let majority = |set: &BTreeSet<Name>| 2 * set.iter().filter(|v| yes.contains(*v)).count() > set.len();
        let new_ok = majority(&self.cfg.voters());
        if self.joint_unknown && self.bug != Some(PlantedBug::NoJointMajority) {
            return false;
        }
        if self.bug == Some(PlantedBug::NoJointMajority) {
            return new_ok;
        }
        new_ok && self.old_voters.iter().all(majority)
    }

    fn drive(&mut self, now: Duration) {
        self.end_joint_phase(now);
        self.ops.expire(now);
        for (name, state) in self.members.update(now, self.cfg.warn_time, self.cfg.dead_time) {
            self.events.push_back(Event::PeerState { node: name, state });
            self.full_drive = true;
        }
        self.beat = now >= self.next_heartbeat;
        if self.beat {
            self.full_drive = true; // placement is re-evaluated for every group once per heartbeat
        }
        self.drive_leases(now);
        if self.beat {
            self.heartbeat(now);
            self.next_heartbeat = now + self.cfg.interval;
            self.beat = false;
        }
        self.check_left(now);
        self.flush(now);
    }

    /// The core is woken at least once per heartbeat interval. A longer gap means this node was not running
    /// (SIGSTOP, a VM pause, an overloaded host): its peers were not silent for that time, we were deaf. The
    /// excess is added to every peer's last-heard time and claim, so a resumed node does not declare live peers
    /// dead and take their groups over before it has listened again (leases themselves are not shifted: a
    /// resumed holder still fences at `deadline − m`).
    fn discount_own_pause(&mut self, now: Duration) {
        let gap = now.saturating_sub(self.last_now);
        self.last_now = self.last_now.max(now);
        let expected = self.cfg.interval * 2;
        if gap > expected {
            self.members.discount_pause(gap - self.cfg.interval, now);
        }
    }

    /// §4.7 SIGTERM: once leaving, nothing is held or stopping here, and every Release was either taken up by
    /// another node (its `Held` with a higher round) or repeated for deadTime, tell the agent it may exit.
    fn check_left(&mut self, now: Duration) {
        if !self.leaving || self.left {
            return;
        }
        if self.leases.values().any(|l| l.holding.is_some() || l.stopping.is_some()) {
            return;
        }
        let taken_up = |key: &LeaseKey, round: u64| {
            self.members.peers.values().any(|p| p.held.get(key).is_some_and(|(r, exp)| *r > round && *exp > now))
        };
        let pending = self.releases.iter().any(|(r, until)| match r {
            Record::Release { key, round, to: Some(_) } => *until > now && !taken_up(key, *round),
            _ => false,
        });
        if !pending {
            self.left = true;
            self.events.push_back(Event::Left);
        }
    }

    /// What a heartbeat carries: membership, the Releases still repeated, and the leases held. A peer drops what it
    /// knew of our claims when it takes the first datagram of our new incarnation, so that datagram carries them too.
    pub(super) fn heartbeat_records(&mut self, now: Duration) -> Vec<Record> {
        let heard = self.members.heard();
        let ready = self.ready(now);
        let mut records = vec![Record::Heartbeat { digest: self.cfg.digest, heard, ready }];
        // A Release is repeated in heartbeats for deadTime, so one lost datagram does not stall a hand-over.
        self.releases.retain(|(_, until)| *until > now);
        records.extend(self.releases.iter().map(|(r, _)| r.clone()));
        for l in self.leases.values() {
            if let Some(deadline) = l.holding.filter(|d| *d > now) {
                let left_ms = u32::try_from((deadline - now).as_millis()).unwrap_or(u32::MAX);
                let round = l.held_ballot.round;
                records.extend(l.covered.iter().map(|key| Record::Held { key: *key, round, left_ms }));
            }
        }
        records
    }

    fn heartbeat(&mut self, now: Duration) {
        let records = self.heartbeat_records(now);
        let peers: Vec<Name> = self.members.peers.keys().cloned().collect();
        for p in peers {
            for r in &records {
                self.send(&p, r.clone());
            }
            // Operations are re-sent in every heartbeat until this peer acknowledges them.
            for op in self.ops.pending_for(now, &p) {
                self.send(&p, Record::Op(op));
            }
        }
    }

    /// Delivers queued records: our own to our acceptor and proposer (which may queue more), others as datagrams.
    fn flush(&mut self, now: Duration) {
        for _ in 0..8 {
            let Some(mine) = self.out.remove(&self.cfg.me) else { break };
            for r in mine {
                let me = self.cfg.me.clone();
                self.on_record(now, &me, self.id, r);
            }
            self.drive_leases(now);
        }
        self.out.remove(&self.cfg.me);
        let out = std::mem::take(&mut self.out);
        for (to, records) in out {
            let Some(peer) = self.cfg.nodes.get(&to) else { continue };
            let address = peer.address;
            for chunk in wire::pack(records) {
                self.seq += 1;
                // The peer's incarnation as last authenticated here: proves to it that this datagram is fresh.
                let echo = self.members.peers.get(&to).map_or(0, |p| p.echo);
                let header = Header { sender: self.id, incarnation: self.incarnation, seq: self.seq, echo };
                self.transmits.push_back(Transmit { to: address, bytes: wire::encode(&header, &chunk, &self.keys) });
            }
        }
    }

    pub(super) fn on_record(&mut self, now: Duration, from: &Name, id: NodeId, record: Record) {
        match &record {
            Record::Held { key, .. } | Record::Release { key, .. } => {
                self.touched.insert(*key);
            }
            Record::Promise(a) | Record::Accepted(a) => {
                self.touched.insert(a.key);
            }
            Record::Op(_) => self.full_drive = true,
            _ => {}
        }
        match record {
            Record::Heartbeat { digest, heard, ready } => {
                if let Some(p) = self.members.peers.get_mut(from) {
                    p.ready = ready;
                }
                self.on_heartbeat(now, from, digest, heard)
            }
            Record::Held { key, round, left_ms } => {
                self.see_round(round);
                if let Some(p) = self.members.peers.get_mut(from)
                    && p.released.get(&key).is_none_or(|r| round > *r)
                {
                    p.held.insert(key, (round, now + Duration::from_millis(u64::from(left_ms))));
                }
            }
            Record::Prepare(p) => {
                self.see_round(p.round);
                self.see_tm(Duration::from_millis(u64::from(p.tm_ms)));
                if let Some(a) = self.acceptor.on_prepare(now, id, &p) {
                    if a.ok
                        && let Some(t) = self.trace.as_mut()
                    {
                        t.push(Trace::Promised { key: p.key, ballot: Ballot { round: p.round, node: id } });
                    }
                    self.send(from, Record::Promise(a));
                }
            }
            Record::Accept(p) => {
                self.see_round(p.round);
                self.see_tm(Duration::from_millis(u64::from(p.tm_ms)));
                if let Some(a) = self.acceptor.on_accept(now, id, &p) {
                    if a.ok
                        && let Some(t) = self.trace.as_mut()
                    {
                        let ballot = Ballot { round: p.round, node: id };
                        t.push(Trace::Accepted { key: p.key, ballot, until: now + self.acceptor.exclusion() });
                    }
                    self.send(from, Record::Accepted(a));
                }
            }
            Record::Op(op) => {
                let stamp = op.stamp;
                self.ops.store(now, op);
                self.send(from, Record::OpAck(stamp));
            }
            Record::OpAck(stamp) => self.ops.acked(&stamp, from),
            Record::Promise(a) => self.on_promise(now, from, a),
            Record::Accepted(a) => self.on_accepted(now, from, a),
            Record::Release { key, round, to } => {
                self.acceptor.on_release(id, key, round);
                if let Some(p) = self.members.peers.get_mut(from) {
                    p.held.remove(&key);
                    let r = p.released.entry(key).or_insert(0);
                    *r = (*r).max(round);
                }
                if to == Some(self.id) {
                    self.hand_over_target(now, key, round);
                } else if let Some(target) = to.and_then(|t| self.members.by_id(t)).cloned() {
                    // A hand-over to another node: bystanders count the lease as the target's for deadTime (its
                    // own `Held` replaces this), so one whose ranked wait is over does not grab it first and
                    // hand it on again (two changes for one operation: invariant (k), sim seed 1893).
                    let until = now + self.cfg.dead_time;
                    if let Some(p) = self.members.peers.get_mut(&target) {
                        let claim = p.held.entry(key).or_insert((round, until));
                        if claim.1 < until {
                            *claim = (claim.0.max(round), until);
                        }
                    }
                }
            }
        }
    }

    fn on_heartbeat(&mut self, now: Duration, from: &Name, digest: [u8; 8], heard: Vec<wire::NodeId>) {
        let Some(p) = self.members.peers.get_mut(from) else { return };
        if p.digest != Some(digest) && digest != self.cfg.digest {
            self.events.push_back(Event::ConfigDrift { node: from.clone(), digest });
        }
        p.digest = Some(digest);
        p.heard = heard.into_iter().collect();
        // §4.4: the joint phase ends when every voter reports the new digest.
        if !self.old_voters.is_empty() || self.joint_unknown {
            let all_new = self
                .cfg
                .voters()
                .iter()
                .filter(|v| **v != self.cfg.me)
                .all(|v| self.members.peers.get(v).is_some_and(|p| p.digest == Some(self.cfg.digest)));
            if all_new && self.joint_exit_at.is_none() {
                let d_a = self.acceptor.exclusion();
                self.joint_exit_at = Some(now + d_a.mul_f64((1.0 + self.cfg.drift) / (1.0 - self.cfg.drift)));
            }
        }
    }

    /// Whether this node could acquire a group now: a member, out of the start-up grace and of any unknown joint
    /// phase (heartbeats carry it so a holder hands over only to a target that can take the group).
    pub(super) fn ready(&self, now: Duration) -> bool {
        now >= self.started + self.cfg.init_dead && self.can_propose()
    }

    /// A member that knows which majorities it needs (its own eligibility; the start-up grace aside).
    pub(super) fn can_propose(&self) -> bool {
        let quorum_known = !self.joint_unknown || self.bug == Some(PlantedBug::NoJointMajority);
        self.cfg.is_member(&self.cfg.me) && quorum_known && !self.leaving
    }

    fn end_joint_phase(&mut self, now: Duration) {
        if self.joint_exit_at.is_some_and(|t| now >= t) {
            self.joint_exit_at = None;
            self.old_voters.clear();
            self.joint_unknown = false;
            self.persisted.joint_unknown = false;
            self.persisted.joint_old.clear();
            self.persist();
        }
    }

    pub(super) fn see_round(&mut self, round: u64) {
        // Only rounds we use are persisted (before use); seen rounds just raise the next one.
        self.seen_round = self.seen_round.max(round);
    }

    fn see_tm(&mut self, tm: Duration) {
        if self.acceptor.see_tm(tm) {
            self.persisted.max_tm = self.acceptor.max_tm;
            self.persist();
        }
    }

    fn reconfigure(&mut self, now: Duration, cfg: Config) {
        let old = self.cfg.voters();
        if cfg.voters() != old && cfg.policy == QuorumPolicy::Majority {
            self.old_voters.push(old);
        }
        self.joint_exit_at = None;
        self.persisted.voters = cfg.voters();
        self.persisted.joint_old = self.old_voters.clone();
        self.persist();
        self.see_tm(cfg.tm());
        self.members.reconfigure(cfg.nodes.keys(), &cfg.me);
        self.cfg = cfg;
        self.rekey_leases(now);
    }
}
