//! Invariant (l): an attacker on the wire replays datagrams that their receiver already processed, possibly from
//! before the receiver's or the sender's restart. Each replay is checked against the counterfactual: a clone of
//! the receiving core is given only the replay's authenticated header ([`Node::header_only`]: it may raise the
//! sender's incarnation that the receiver echoes, and nothing else) and then a plain timeout at the same instant;
//! the replay must leave the core with the same fingerprint ([`Node::fingerprint`]) and make it produce exactly
//! the same events and datagrams. The world also checks that the echoed incarnation never exceeds the sender's
//! true one (so the only thing a replay can teach is a fact the sender would tell anyway).

use std::time::Duration;

use crate::proto::{Event, Input, Node, Trace, Transmit};

use super::super::check::Violation;
use super::super::node_address;
use super::World;

/// What one input made a core produce.
pub(crate) struct Output {
    pub events: Vec<Event>,
    pub transmits: Vec<Transmit>,
    pub traces: Vec<Trace>,
    /// `poll_timeout`, on the lease clock.
    pub timeout: Duration,
}

impl Output {
    /// Drains a core after `handle`.
    pub fn drain(core: &mut Node) -> Output {
        let mut events = Vec::new();
        while let Some(e) = core.poll_event() {
            events.push(e);
        }
        let mut transmits = Vec::new();
        while let Some(t) = core.poll_transmit() {
            transmits.push(t);
        }
        Output { events, transmits, traces: core.drain_trace(), timeout: core.poll_timeout() }
    }
}

/// A datagram its receiver processed, with both ends' incarnations at that moment.
#[derive(Clone)]
pub(crate) struct Recorded {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
    sender_incarnation: u64,
    receiver_incarnation: u64,
}

/// How many processed datagrams the attacker keeps (older ones are replaced at random, so some stay long).
const KEPT: usize = 256;

impl World {
    /// Remembers a datagram that node `to` is about to process, if its config knows the sender (a datagram it
    /// drops unread, from a node it does not know yet, is never accepted, so a later copy is a first delivery).
    pub(super) fn record(&mut self, from: usize, to: usize, bytes: &[u8]) {
        let known = self.nodes[to].core.as_ref().is_some_and(|c| c.config().node_at(node_address(from)).is_some());
        if !known {
            return;
        }
        let r = Recorded {
            from,
            to,
            bytes: bytes.to_vec(),
            sender_incarnation: self.nodes[from].incarnation,
            receiver_incarnation: self.nodes[to].incarnation,
        };
        if self.recorded.len() < KEPT {
            self.recorded.push(r);
        } else if self.rng.chance(0.05) {
            let slot = usize::try_from(self.rng.below(KEPT as u64)).unwrap_or(0);
            self.recorded[slot] = r;
        }
    }

    /// (l) Replays a few recorded datagrams to their receivers, each checked against the counterfactual.
    pub(super) fn replay(&mut self) -> Result<(), Violation> {
        for _ in 0..8 {
            let Some(len) = u64::try_from(self.recorded.len()).ok().filter(|l| *l > 0) else { return Ok(()) };
            let r = self.recorded[usize::try_from(self.rng.below(len)).unwrap_or(0)].clone();
            if !self.s.replay_across_receiver_restart && self.nodes[r.to].incarnation != r.receiver_incarnation {
                continue;
            }
            // Bring the receiver up to date at this instant, so the replay is the only input left.
            if self.nodes[r.to].up() {
                self.feed(r.to, Input::Timeout)?;
            }
            if self.nodes[r.to].up() {
                self.replay_one(&r)?;
            }
        }
        Ok(())
    }

    fn replay_one(&mut self, r: &Recorded) -> Result<(), Violation> {
        let now = self.now;
        let restarts = (
            self.nodes[r.to].incarnation != r.receiver_incarnation,
            self.nodes[r.from].incarnation != r.sender_incarnation,
        );
        let after = match restarts {
            (true, true) => "both restarts",
            (true, false) => "the receiver's restart",
            (false, true) => "the sender's restart",
            (false, false) => "no restart",
        };
        let (sender, sender_incarnation) = (self.nodes[r.from].name.clone(), self.nodes[r.from].incarnation);
        let node = &mut self.nodes[r.to];
        let local = node.local(now);
        let Some(core) = node.core.as_mut() else { return Ok(()) };
        let from = node_address(r.from);
        let mut without = core.clone();
        without.header_only(local, from, &r.bytes);
        without.handle(local, Input::Timeout);
        let expected = (without.fingerprint(), Output::drain(&mut without));
        core.handle(local, Input::Datagram { from, bytes: &r.bytes });
        let got = (core.fingerprint(), Output::drain(core));
        let echo = core.peers().peers.get(&sender).map_or(0, |p| p.echo);
        self.stats.replays += 1;
        if restarts.0 || restarts.1 {
            self.stats.replays_after_restart += 1;
        }
        let what = if echo > sender_incarnation {
            Some("the sender's incarnation it echoes, beyond the true one")
        } else if got.0 != expected.0 {
            Some("its protocol state")
        } else if got.1.events != expected.1.events {
            Some("its events")
        } else if got.1.transmits != expected.1.transmits {
            Some("its datagrams")
        } else {
            None
        };
        if let Some(what) = what {
            let (to, from) = (&self.nodes[r.to].name, &self.nodes[r.from].name);
            return Err(Violation {
                invariant: "(l) a replayed datagram changed its receiver",
                at: now,
                detail: format!("{from} → {to}, recorded before {after}: changed {what}"),
            });
        }
        self.carry_out(r.to, got.1)
    }
}
