//! One step of the simulated world: restarts, hangs, faults, deliveries, reconciler effects and timeouts.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::manifest::values::Name;
use crate::proto::Operation;
use crate::proto::wire::LeaseKey;
use crate::proto::{Boot, Event, Input, Node, PeerState};

use super::super::check::{Violation, holds};
use super::super::node_address;
use super::replay::Output;
use super::{Effect, InFlight, Packet, World};
use std::cmp::Reverse;

const MS: Duration = Duration::from_millis(1);

impl World {
    /// Handles the earliest pending thing at `self.now`.
    pub(super) fn step(&mut self) -> Result<(), Violation> {
        let now = self.now;
        if !self.healed && now >= self.heal_at {
            return self.heal();
        }
        if !self.healed && now >= self.next_fault {
            self.next_fault = now + self.rng.between(300 * MS, 2500 * MS);
            return self.fault();
        }
        if let Some((at, issuer, op)) = self.op.clone().filter(|(at, _, _)| !self.op_done && *at <= now) {
            let _ = at;
            self.op_done = true;
            if self.verbose {
                eprintln!("{now:>12.6?} {} OPERATE {op:?}", self.nodes[issuer].name);
            }
            return self.feed(issuer, Input::Operate(op));
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].down_until.is_some_and(|t| t <= now) {
                return self.restart(i);
            }
            if self.nodes[i].hung_until.is_some_and(|t| t <= now) {
                return self.resume(i);
            }
        }
        if self.net.peek().is_some_and(|Reverse(p)| p.at <= now)
            && let Some(Reverse(p)) = self.net.pop()
        {
            return self.deliver(p);
        }
        for i in 0..self.nodes.len() {
            // The kernel carries out a renewal on its way in even while its agent hangs; one still queued in the
            // agent waits for the agent.
            if let Some(pos) = self.nodes[i].inflight.iter().position(|f| f.lands <= now) {
                if self.nodes[i].inflight[pos].queued
                    && let Some(until) = self.nodes[i].hung_until
                {
                    self.nodes[i].inflight[pos].lands = until;
                    return Ok(());
                }
                let f = self.nodes[i].inflight.swap_remove(pos);
                self.renewal_lands(i, f);
                return Ok(());
            }
            if !self.nodes[i].up() {
                continue;
            }
            if let Some(pos) = self.nodes[i].quick.iter().position(|(at, _, _)| *at <= now) {
                let (_, key, delete) = self.nodes[i].quick.swap_remove(pos);
                self.quick_effect(i, key, delete);
                return Ok(());
            }
            if !self.nodes[i].slow.is_empty() && self.nodes[i].busy_until <= now {
                return self.slow_effect(i);
            }
            if self.nodes[i].wake <= now {
                return self.feed(i, Input::Timeout);
            }
        }
        Ok(())
    }

    /// Feeds one input to node `i`'s core and carries out what it asks, events (persistence) first.
    pub(super) fn feed(&mut self, i: usize, input: Input<'_>) -> Result<(), Violation> {
        let now = self.now;
        let node = &mut self.nodes[i];
        let local = node.local(now);
        let Some(core) = node.core.as_mut() else { return Ok(()) };
        // Benchmark only: the host clock times the core's work; the core never sees it.
        #[allow(clippy::disallowed_methods)]
        let started = self.s.measure_cpu.then(std::time::Instant::now);
        core.handle(local, input);
        let out = Output::drain(core);
        if let Some(s) = started {
            self.stats.core_cpu += s.elapsed();
        }
        self.carry_out(i, out)
    }

    /// Carries out what node `i`'s core asked after one input: trace entries to the checker, events in order
    /// (persistence first), then the datagrams.
    pub(super) fn carry_out(&mut self, i: usize, out: Output) -> Result<(), Violation> {
        let now = self.now;
        let Output { events, transmits, traces, timeout } = out;
        let wake = self.nodes[i].real(timeout);
        self.nodes[i].wake = wake.max(now + Duration::from_micros(100));
        for t in traces {
            self.on_trace(i, t)?;
        }
        for e in events {
            if let Event::Persist(p) = e {
                if !self.write(i, p) {
                    return Ok(()); // the agent exited: nothing after the event happens, nothing is sent
                }
                continue;
            }
            if self.verbose {
                eprintln!("{:>12.6?} {} {e:?}", now, self.nodes[i].name);
            }
            self.on_event(i, e)?;
        }
        self.commit_prepared(i)?;
        for t in transmits {
            self.transmit(i, t.to, t.bytes);
        }
        if std::mem::take(&mut self.nodes[i].left) {
            // The agent exits after `Event::Left` (its last datagrams are out); started again later — at once
            // when the leave began in the fault phase and ends after the heal (no faults after the heal).
            let down = if self.healed { Duration::ZERO } else { self.rng.between(100 * MS, Duration::from_secs(2)) };
            self.crash(i, false, down);
        }
        Ok(())
    }

    fn on_event(&mut self, i: usize, e: Event) -> Result<(), Violation> {
        let now = self.now;
        let margin = self.s.timers.margin;
        match e {
            Event::Acquired { key, ref covers, deadline, ballot, .. }
            | Event::Renewed { key, ref covers, deadline, ballot, .. }
            | Event::Adopted { key, ref covers, deadline, ballot, .. } => {
                let adopted = matches!(e, Event::Adopted { .. });
                let node = &mut self.nodes[i];
                if !node.cfg.is_member(&node.name) {
                    return Err(Violation {
                        invariant: "witness holds",
                        at: now,
                        detail: format!("{} (a witness) acquired {key}", node.name),
                    });
                }
                if !adopted && node.awaiting_adoption.contains(&key) {
                    return Err(Violation {
                        invariant: "(j) adoption added before confirmation",
                        at: now,
                        detail: format!("{} activated {key} before its adoption was confirmed", node.name),
                    });
                }
                node.awaiting_adoption.remove(&key);
                let since = if adopted { node.restarted_at } else { Duration::ZERO };
                let fence = node.real(deadline.saturating_sub(margin));
                if adopted {
                    self.stats.adoptions.push(now - since);
                }
                // (f) per address: each is its own lease key at the acceptors.
                for k in covers {
                    self.checker.lease(now, *k, (ballot, i), since, fence)?;
                }
                let node = &mut self.nodes[i];
                node.deadlines.insert(key, deadline);
                node.covers.insert(key, covers.iter().copied().collect());
                if matches!(e, Event::Acquired { .. }) || (adopted && !holds(&node.kernel, key)) {
                    self.queue_slow(i, Effect::Add(key));
                } else {
                    let at = now + self.rng.between(Duration::ZERO, 3 * MS);
                    self.nodes[i].quick.push((at, key, false));
                }
            }
            Event::MustFence { key, .. } => {
                let node = &mut self.nodes[i];
                self.stats.adoptions_fenced += u64::from(node.awaiting_adoption.contains(&key));
                node.deadlines.remove(&key);
                node.covers.remove(&key);
                node.awaiting_adoption.remove(&key);
                node.slow.retain(|e| !matches!(e, Effect::Add(k) if *k == key));
                let at = now + self.rng.between(Duration::ZERO, 3 * MS);
                self.nodes[i].quick.push((at, key, true));
            }
            Event::MustStop { group, .. } => {
                if let Some(g) = self.nodes[i].cfg.groups.get(&group) {
                    let key = g.key;
                    self.queue_slow(i, Effect::Stop(group, key));
                }
            }
            Event::Released { key, .. } => {
                self.nodes[i].deadlines.remove(&key);
                self.nodes[i].covers.remove(&key);
            }
            Event::Left => self.nodes[i].left = true,
            Event::PeerState { node: peer, state: PeerState::Alive } => self.count_seen(i, &peer),
            Event::IdentityClash { .. } => self.stats.identity_clashes += 1,
            _ => {}
        }
        Ok(())
    }

    /// Measures how long after a restart two nodes report each other alive (the first report per restart).
    fn count_seen(&mut self, i: usize, peer: &Name) {
        let Some(j) = self.nodes.iter().position(|n| n.name == *peer) else { return };
        let since = self.nodes[i].restarted_at.max(self.nodes[j].restarted_at);
        if self.nodes[i].seen_since.insert(j, since) == Some(since) {
            return;
        }
        let took = self.now - since;
        if self.nodes[i].restarted_at >= self.nodes[j].restarted_at {
            self.stats.restarted_sees_peer.push(took);
        } else {
            self.stats.peer_sees_restarted.push(took);
        }
    }

    fn queue_slow(&mut self, i: usize, e: Effect) {
        let d = match e {
            Effect::Add(_) => self.rng.between(MS, 20 * MS),
            Effect::Stop(..) => self.rng.between(10 * MS, 400 * MS),
        };
        let node = &mut self.nodes[i];
        if node.slow.is_empty() {
            node.busy_until = self.now + d;
        }
        node.slow.push_back(e);
    }

    /// The kernel lifetime of an address whose lease has `left` on the lease clock: ⌈left⌉ whole seconds
    /// (DESIGN.md §4.6) plus the kernel's coarse expiry, in real time from when the kernel takes it.
    fn lifetime(&mut self, i: usize, left: Duration) -> Duration {
        self.expiry(i, whole_secs(left))
    }

    /// `secs` seconds of node `i`'s clock plus the kernel's coarse expiry, in real time.
    fn expiry(&mut self, i: usize, secs: u64) -> Duration {
        Duration::from_secs(secs).div_f64(self.nodes[i].rate) + self.rng.between(Duration::ZERO, 750 * MS)
    }

    /// The agent's non-queued path: reads the lease clock just before the netlink call (DESIGN.md §4.6).
    fn quick_effect(&mut self, i: usize, key: LeaseKey, delete: bool) {
        let now = self.now;
        let margin = self.s.timers.margin;
        let node = &self.nodes[i];
        let local = node.local(now);
        let live = node.deadlines.get(&key).copied().filter(|d| local + margin < *d);
        let adding = node.slow.iter().any(|e| matches!(e, Effect::Add(k) if *k == key));
        match (delete, live, holds(&node.kernel, key) || !adding) {
            // Level-triggered like the reconciler: a live lease whose address is missing gets it (again).
            // The netlink request is in flight for a while (a loaded host): a removal may overtake it.
            // Now and then (faults only) the request waits inside a loaded agent for up to T/2 first
            // (`Scenario::slow_renewals`).
            (false, Some(d), true) => {
                let generation = self.nodes[i].removals.get(&key).copied().unwrap_or(0);
                let queued = !self.healed && self.rng.chance(self.s.slow_renewals);
                let delay = if queued {
                    self.rng.between(10 * MS, self.s.timers.lease / 2)
                } else {
                    self.rng.between(Duration::ZERO, 10 * MS)
                };
                let addresses = self.covered_addresses(i, key);
                let (secs, lands) = (whole_secs(d - local), now + delay);
                self.nodes[i].inflight.push(InFlight { lands, key, addresses, secs, deadline: d, generation, queued });
            }
            (true, _, _) | (false, None, true) => self.remove(i, key),
            _ => {}
        }
    }

    /// The agent deletes the addresses it added under `key` (one removal generation more).
    fn remove(&mut self, i: usize, key: LeaseKey) {
        let node = &mut self.nodes[i];
        node.kernel.retain(|_, a| a.key != key);
        *node.removals.entry(key).or_insert(0) += 1;
    }

    /// A renewal's netlink request reaches the kernel. An IPv4 RTM_NEWADDR re-creates a deleted address, so the
    /// agent skips a renewal that a removal overtook (`Agent::removal` in src/agent/runtime); the planted bug
    /// does not.
    /// The lifetime counts from now. A running agent reads the acknowledgement with its clock, as
    /// `Netlink::renew` does: past the deadline it deletes the address; when the lifetime may reach more than a
    /// second past the deadline (it waited too long on its way) it sets the lifetime again from this read. The
    /// planted bug keeps the late lifetime.
    fn renewal_lands(&mut self, i: usize, f: InFlight) {
        let now_gen = self.nodes[i].removals.get(&f.key).copied().unwrap_or(0);
        if now_gen != f.generation && !self.s.renewal_ignores_removals {
            return;
        }
        let expires = self.now + self.expiry(i, f.secs);
        self.put(i, f.key, f.addresses.clone(), expires);
        let node = &self.nodes[i];
        if !node.up() || self.s.late_renewal_kept {
            return;
        }
        let acked = node.local(self.now);
        let late = acked + Duration::from_secs(f.secs) > f.deadline + Duration::from_secs(1);
        if acked >= f.deadline {
            self.remove(i, f.key);
        } else if late {
            let expires = self.now + self.lifetime(i, f.deadline - acked);
            self.put(i, f.key, f.addresses, expires);
        }
    }

    fn slow_effect(&mut self, i: usize) -> Result<(), Violation> {
        let now = self.now;
        let Some(e) = self.nodes[i].slow.pop_front() else { return Ok(()) };
        if let Some(next) = self.nodes[i].slow.front().cloned() {
            let d = match next {
                Effect::Add(_) => self.rng.between(MS, 20 * MS),
                Effect::Stop(..) => self.rng.between(10 * MS, 400 * MS),
            };
            self.nodes[i].busy_until = now + d;
        }
        match e {
            Effect::Add(key) => {
                let node = &self.nodes[i];
                let local = node.local(now);
                if let Some(d) = node.deadlines.get(&key).copied().filter(|d| local + self.s.timers.margin < *d) {
                    let expires = now + self.lifetime(i, d - local);
                    self.install(i, key, expires);
                }
                Ok(())
            }
            Effect::Stop(group, key) => {
                self.remove(i, key);
                self.feed(i, Input::Stopped(group))
            }
        }
    }

    fn transmit(&mut self, from: usize, to: std::net::IpAddr, bytes: Vec<u8>) {
        let Some(to) = (0..self.nodes.len()).find(|j| node_address(*j) == to) else { return };
        self.stats.datagrams += 1;
        self.stats.bytes += bytes.len() as u64;
        if self.blocked[from][to] || self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for c in 0..copies {
            let at = self.now + self.rng.between(self.delay.0, self.delay.1) + self.lag[from][to];
            self.seq += 1;
            let bytes = if c + 1 == copies { std::mem::take(&mut bytes.clone()) } else { bytes.clone() };
            self.net.push(Reverse(Packet { at, seq: self.seq, from, to, bytes }));
        }
    }

    fn deliver(&mut self, p: Packet) -> Result<(), Violation> {
        let node = &mut self.nodes[p.to];
        if node.core.is_none() {
            return Ok(());
        }
        if node.hung_until.is_some() {
            node.inbox.push((node_address(p.from), p.bytes));
            return Ok(());
        }
        self.record(p.from, p.to, &p.bytes);
        self.feed(p.to, Input::Datagram { from: node_address(p.from), bytes: &p.bytes })
    }

    pub(super) fn restart(&mut self, i: usize) -> Result<(), Violation> {
        let bug = self.s.bug;
        let keys = self.keys.clone();
        let margin = self.s.timers.margin;
        if !self.healed && self.disk_fail > 0.0 && self.rng.chance(self.disk_fail) {
            // (g) The agent reads its state and writes the next incarnation (fsynced) before anything else; when
            // either fails it refuses to start (§4.2) and is tried again later, sending nothing meanwhile.
            self.stats.failed_writes += 1;
            let down = self.rng.between(Duration::from_millis(100), Duration::from_secs(1));
            self.nodes[i].down_until = Some(self.now + down);
            if self.verbose {
                eprintln!("{:>12.6?} {} START REFUSED: state not persisted", self.now, self.nodes[i].name);
            }
            return Ok(());
        }
        let node = &mut self.nodes[i];
        node.down_until = None;
        node.restarted_at = self.now;
        node.incarnation += 1;
        let local = node.local(self.now);
        // Like the agent: only a lease whose address is still in the kernel is adopted (a record of a round
        // that never established has none; adopting it would add the address without the strict wait).
        let mut persisted = node.persisted.clone();
        persisted.records.retain(|address, _| node.kernel.contains_key(address));
        let live: BTreeSet<LeaseKey> = persisted
            .records
            .iter()
            .filter(|(_, r)| !r.released && r.boot_id == node.boot_id && local + margin < r.deadline)
            .map(|(k, _)| *k)
            .collect();
        // Records are per address; events name a group by its primary key.
        node.awaiting_adoption =
            node.cfg.groups.values().filter(|g| g.keys.iter().any(|k| live.contains(k))).map(|g| g.key).collect();
        let boot = Boot {
            id: node.id,
            incarnation: node.incarnation,
            boot_id: node.boot_id,
            keys,
            persisted,
            bug,
            trace: true,
            textbook_acceptor: self.s.textbook_acceptor,
        };
        if self.verbose {
            eprintln!("{:>12.6?} {} RESTART adopting={:?}", self.now, node.name, node.awaiting_adoption);
        }
        node.quarantine_end = node.real(local + node.cfg.exclusion(node.persisted.max_tm));
        node.core = Some(Node::new(local, node.cfg.clone(), boot));
        self.note_config(i);
        self.check_keys(i)?;
        self.feed(i, Input::Timeout)
    }

    fn resume(&mut self, i: usize) -> Result<(), Violation> {
        self.nodes[i].hung_until = None;
        // A config rolled out while the agent hung is read when it wakes.
        let cfg = self.nodes[i].cfg.clone();
        if self.nodes[i].core.as_ref().is_some_and(|c| *c.config() != cfg) {
            self.feed(i, Input::Config(Box::new(cfg)))?;
            self.note_config(i);
            self.check_keys(i)?;
        }
        let inbox = std::mem::take(&mut self.nodes[i].inbox);
        for (from, bytes) in inbox {
            if let Some(j) = (0..self.nodes.len()).find(|j| node_address(*j) == from) {
                self.record(j, i, &bytes);
            }
            self.feed(i, Input::Datagram { from, bytes: &bytes })?;
        }
        self.feed(i, Input::Timeout)
    }

    /// Kills node `i`'s agent (`power`: the whole host, its addresses gone with it).
    pub(super) fn crash(&mut self, i: usize, power: bool, down: Duration) {
        let now = self.now;
        if self.verbose {
            eprintln!("{now:>12.6?} {} CRASH power={power} down={down:?}", self.nodes[i].name);
        }
        for a in self.nodes[i].kernel.values() {
            if !a.stale {
                self.crashed_holder.insert(a.key, (now, i));
            }
        }
        self.checker.acceptor_crashed(i);
        let boot_id = self.rng.below(u64::MAX);
        let node = &mut self.nodes[i];
        node.core = None;
        node.inbox.clear();
        node.slow.clear();
        node.quick.clear();
        node.deadlines.clear();
        node.covers.clear();
        node.awaiting_adoption.clear();
        node.hung_until = None;
        node.down_until = Some(now + down);
        self.note_config(i);
        let node = &mut self.nodes[i];
        if power {
            node.kernel.clear();
            node.inflight.clear(); // the renewals in flight die with the host
            node.boot_id = boot_id;
        } else {
            node.kernel.values_mut().for_each(|a| a.stale = true);
            node.inflight.retain(|f| !f.queued); // never left the agent
        }
    }

    fn hang(&mut self, i: usize, d: Duration) {
        let node = &mut self.nodes[i];
        if node.up() {
            node.hung_until = Some(self.now + d);
            node.kernel.values_mut().for_each(|a| a.stale = true);
        }
    }

    fn fault(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        let i = usize::try_from(self.rng.below(n as u64)).unwrap_or(0);
        if self.s.crash_only {
            let holder = self.nodes.iter().position(|x| x.kernel.values().any(|a| !a.stale));
            if let Some(h) = holder.filter(|_| self.now > self.s.timers.dead_time * 4) {
                self.crash(h, true, Duration::from_secs(4));
            }
            self.next_fault = self.now + self.rng.between(Duration::from_secs(3), Duration::from_secs(6));
            return Ok(());
        }
        match self.rng.below(if self.s.rollout { 10 } else { 9 }) {
            0 => {
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        self.blocked[a][b] = side[a] != side[b];
                    }
                }
            }
            1 => {
                let j = usize::try_from(self.rng.below(n as u64)).unwrap_or(0);
                self.blocked[i][j] = true;
            }
            2 => {
                self.blocked.iter_mut().for_each(|r| r.iter_mut().for_each(|b| *b = false));
                self.lag.iter_mut().for_each(|r| r.iter_mut().for_each(|d| *d = Duration::ZERO));
            }
            3 => {
                let down = self.rng.between(100 * MS, Duration::from_secs(3));
                if self.nodes[i].core.is_some() {
                    self.crash(i, false, down);
                }
            }
            4 => {
                let down = self.rng.between(500 * MS, Duration::from_secs(4));
                if self.nodes[i].core.is_some() {
                    self.crash(i, true, down);
                }
            }
            5 => {
                let d = self.rng.between(100 * MS, Duration::from_secs(3));
                self.hang(i, d);
            }
            6 => {
                self.loss = 0.3 * self.rng.unit();
                self.dup = 0.1 * self.rng.unit();
                self.delay = (Duration::from_micros(100), self.rng.between(MS, 60 * MS));
                if self.s.lagging_links {
                    // One directed link, or everything node i sends (its uplink's queue).
                    let lease = self.s.timers.lease;
                    let lag = self.rng.between(lease / 4, lease * 3 / 2);
                    if self.rng.chance(0.5) {
                        let j = usize::try_from(self.rng.below(n as u64)).unwrap_or(0);
                        self.lag[i][j] = lag;
                    } else {
                        self.lag[i].iter_mut().for_each(|d| *d = lag);
                    }
                }
            }
            7 => return self.replay(),
            // SIGTERM: a graceful leave (hand every group over, then exit on `Event::Left`).
            8 => return self.feed(i, Input::Leave),
            _ => return self.roll_out(i),
        }
        Ok(())
    }

    /// Gives node `i` the final config (a rollout reaches nodes one at a time).
    fn roll_out(&mut self, i: usize) -> Result<(), Violation> {
        let Some(fin) = self.final_cfgs.get(i).cloned() else { return Ok(()) };
        if self.nodes[i].cfg == fin {
            return Ok(());
        }
        self.nodes[i].cfg = fin.clone();
        if self.nodes[i].up() {
            self.feed(i, Input::Config(Box::new(fin)))?;
        }
        self.note_config(i);
        self.check_keys(i)?;
        Ok(())
    }

    fn heal(&mut self) -> Result<(), Violation> {
        self.healed = true;
        self.blocked.iter_mut().for_each(|r| r.iter_mut().for_each(|b| *b = false));
        self.lag.iter_mut().for_each(|r| r.iter_mut().for_each(|d| *d = Duration::ZERO));
        self.loss = 0.01;
        self.dup = 0.01;
        self.delay = (Duration::from_micros(200), 5 * MS);
        for i in 0..self.nodes.len() {
            if self.nodes[i].down_until.is_some() {
                self.nodes[i].down_until = Some(self.now);
            }
            if self.nodes[i].hung_until.is_some() {
                self.nodes[i].hung_until = Some(self.now);
            }
            if self.s.rollout {
                self.roll_out(i)?;
            }
        }
        Ok(())
    }

    /// Failover times: from a holder's crash to another node holding the address.
    pub(super) fn note_failovers(&mut self) {
        let mut done = Vec::new();
        for (key, (at, who)) in &self.crashed_holder {
            match self.checker.holder.get(key).copied().flatten() {
                Some(h) if h != *who => {
                    self.stats.failovers.push(self.now - *at);
                    done.push(*key);
                }
                Some(_) => done.push(*key),
                None => {}
            }
        }
        for k in done {
            self.crashed_holder.remove(&k);
        }
        if self.healed {
            for (key, h) in &self.checker.holder {
                if h.is_some() {
                    self.first_held.entry(*key).or_insert(self.now);
                }
            }
        }
    }

    /// (b) liveness within the budget after heal; (c)/(k) at most one holder change once stable (none when
    /// stickiness outweighs every preference).
    pub(super) fn final_checks(&self) -> Result<(), Violation> {
        let fail = |invariant, detail| Err(Violation { invariant, at: self.now, detail });
        match &self.op {
            Some((_, _, Operation::Standby { node })) => {
                if let Some(n) = self.nodes.iter().find(|n| n.name == *node && !n.kernel.is_empty()) {
                    return fail("(d) standby not obeyed", format!("{} still holds {:?}", n.name, n.kernel));
                }
            }
            Some((_, _, Operation::Move { node, .. })) => {
                let key = super::super::group_address(0);
                if !self.nodes.iter().any(|n| n.name == *node && holds(&n.kernel, key)) {
                    return fail("(d) move not obeyed", format!("{node} does not hold {key}"));
                }
            }
            _ => {}
        }
        let t = self.s.timers;
        for g in 0..self.s.groups {
            let key = super::super::group_address(g);
            let Some(first) = self.first_held.get(&key) else {
                return fail("(b) no holder after heal", format!("{key}: nobody holds it"));
            };
            if *first > self.heal_at + self.budget {
                return fail("(b) failover over budget", format!("{key}: first held at {first:?}"));
            }
            if self.checker.holder.get(&key).copied().flatten().is_none() {
                return fail("(b) no single holder at the end", format!("{key}"));
            }
            let stable = self.heal_at + t.dead_time * 4;
            let changes = self.checker.changes.iter().filter(|(at, k, _, _)| *k == key && *at > stable).count();
            let by_op = match &self.op {
                Some((_, _, Operation::Standby { .. })) => 1,
                Some((_, _, Operation::Move { group, .. })) if group.0 == format!("g{g}") => 1,
                _ => 0,
            };
            let allowed = if self.sticky { 0 } else { 1 } + by_op;
            if changes > allowed {
                let inv = if self.sticky { "(c) stickiness not honoured" } else { "(k) flapping" };
                return fail(inv, format!("{key}: {changes} holder changes after {stable:?}"));
            }
        }
        self.every_address_with_its_group()
    }

    /// (b) for every address, not only each group's primary one: an address the rollout moved into a held group
    /// ends on that group's holder (each address is its own lease key, §4.3).
    fn every_address_with_its_group(&self) -> Result<(), Violation> {
        let Some(cfg) = self.final_cfgs.first() else { return Ok(()) };
        for (name, g) in &cfg.groups {
            let Some(holder) = self.nodes.iter().find(|n| holds(&n.kernel, g.key)) else { continue };
            if let Some(missing) = g.addresses.iter().find(|a| !holder.kernel.contains_key(a)) {
                let detail = format!("{}: {missing} of {name} missing on the holder {}", holder.name, holder.name);
                return Err(Violation { invariant: "(b) address not with its group", at: self.now, detail });
            }
        }
        Ok(())
    }
}

/// ⌈d⌉ in whole seconds.
fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
