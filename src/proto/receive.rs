//! The receive path: authenticate a datagram, learn the sender's incarnation from its header, and use its
//! records only when it is fresh (invariant (l), across the receiver's restarts too) and its sender's claimed
//! identity is not already taken (a cloned UUID, DESIGN.md §4.2).
//!
//! Why the echo: a restarted receiver has lost every peer's replay window and persists none (a write per
//! datagram would cost too much). Each header therefore carries the receiver's incarnation as the sender last
//! authenticated it. A datagram echoing the receiver's *current* incarnation was built after this life began, so
//! the window kept in memory since then has seen every such datagram: a replay of one from an earlier life of
//! the receiver echoes an older incarnation and is dropped. The sender's incarnation is still learned from any
//! authenticated header (as a maximum, so a replay cannot lower it), which is what lets two nodes that restart
//! at once hear each other: each echoes what it learned from the other's first datagram.

use std::net::IpAddr;
use std::time::Duration;

use crate::manifest::values::Name;

use super::io::Event;
use super::lease::Phase;
use super::node::Node;
use super::wire::{self, Header, Record, WireError};

impl Node {
    pub(super) fn receive(&mut self, now: Duration, from: IpAddr, bytes: &[u8]) {
        let Some((name, header, records)) = self.authenticate(now, from, bytes) else { return };
        if !self.admit(now, &name, &header) {
            return;
        }
        for r in records {
            self.on_record(now, &name, header.sender, r);
        }
    }

    /// Simulation only: what a datagram's authenticated header alone does here — raising the sender's incarnation
    /// this node echoes, and when it rises, one heartbeat to it and an early retransmission ([`Node::met`]) — with
    /// none of its records used. Invariant (l) allows a replay exactly this effect: the raised value is at most
    /// the sender's true current incarnation, an echo is only ever a claim of freshness that the *sender* checks
    /// against its own incarnation (so echoing it early is as safe as echoing it late), and a heartbeat or a
    /// retransmission within a round may be sent at any time.
    #[doc(hidden)]
    pub fn header_only(&mut self, now: Duration, from: IpAddr, bytes: &[u8]) {
        let _ = self.authenticate(now, from, bytes);
        self.wake = self.next_wake();
    }

    /// Decodes a datagram from a configured peer's address and learns the sender's incarnation from its header.
    fn authenticate(&mut self, now: Duration, from: IpAddr, bytes: &[u8]) -> Option<(Name, Header, Vec<Record>)> {
        let name = self.members.name_at(&self.cfg.nodes, from).cloned()?;
        let (header, records) = match wire::decode(bytes, &self.keys) {
            Ok(d) => d,
            Err(WireError::BadMac) => {
                // §4.8: an HMAC failure from a peer's address means alive and misconfigured, never silence.
                if let Some(p) = self.members.peers.get_mut(&name) {
                    p.auth_failed = Some(now);
                    p.last_heard = Some(now);
                }
                self.events.push_back(Event::AuthFailed { node: name });
                return None;
            }
            Err(_) => return None,
        };
        let peer = self.members.peers.get_mut(&name)?;
        let before = peer.echo;
        peer.learn(header.incarnation);
        if peer.echo > before {
            self.met(now, &name);
        }
        Some((name, header, records))
    }

    /// A peer's incarnation became known or changed (it or this node restarted): whatever either side sent before
    /// knowing the other's incarnation was dropped for its stale echo. So this node sends it a heartbeat at once
    /// (echoing the incarnation just learned) and retransmits its rounds in flight now; the peer does the same on
    /// its side. Two nodes that restart together, or a restarted node and its peers, then hear each other within
    /// about two round trips instead of a heartbeat interval, and an adoption is not held up for a retransmission
    /// period. At most once per incarnation of each peer, so replays cannot make it send more.
    fn met(&mut self, now: Duration, name: &Name) {
        // The whole heartbeat, claims included: the peer drops our old claims on the first datagram it takes from
        // our new incarnation, and under `ignore` would take a group over that it saw unclaimed.
        for r in self.heartbeat_records(now) {
            self.send(name, r);
        }
        for l in self.leases.values_mut().filter(|l| l.phase != Phase::Idle) {
            l.rtx_at = l.rtx_at.min(now);
        }
    }

    /// Whether the records of this authenticated datagram may be used; marks the peer heard if so.
    fn admit(&mut self, now: Duration, name: &Name, h: &Header) -> bool {
        let mine = self.incarnation;
        let Some(peer) = self.members.peers.get_mut(name) else { return false };
        if !peer.admit(h.sender, h.incarnation, h.seq, h.echo, mine) {
            return false;
        }
        // Checked only on a fresh datagram, so a replay can neither raise nor clear a clash.
        let clash = self.members.clash(name, h.sender, self.id);
        let Some(peer) = self.members.peers.get_mut(name) else { return false };
        let changed = peer.clash != clash;
        peer.clash = clash.clone();
        if let Some(with) = clash {
            // Reported once per change; its records stay unused and it is not marked heard.
            if changed {
                self.events.push_back(Event::IdentityClash { peer: name.clone(), with });
            }
            return false;
        }
        peer.id = Some(h.sender);
        peer.last_heard = Some(now);
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use crate::manifest::model::NodeRole;
    use crate::manifest::values::Name;
    use crate::proto::sim::{Scenario, desired, node_address};
    use crate::proto::wire::{Keys, NodeId};
    use crate::proto::{Boot, Clash, Config, Event, Input, Node, PeerState, Persisted, Transmit};

    const MS: Duration = Duration::from_millis(1);

    fn name(i: usize) -> Name {
        Name(format!("n{i}"))
    }

    /// Node `i` of an `n`-node cluster with UUID `[uuid; 16]`, started at `now` in `incarnation`.
    fn start(n: usize, i: usize, uuid: u8, incarnation: u64, now: Duration) -> Node {
        boot(&Scenario::majority(n, false), i, uuid, incarnation, now, Persisted::default())
    }

    /// Node `i` of the scenario's cluster, started with what its previous life persisted.
    fn boot(s: &Scenario, i: usize, uuid: u8, incarnation: u64, now: Duration, persisted: Persisted) -> Node {
        let names: Vec<(Name, NodeRole)> = (0..s.members).map(|j| (name(j), NodeRole::Member)).collect();
        let state = desired(s, &names, &[], &[], false, 1e-3);
        let cfg = Config::from_desired(&state, &name(i)).unwrap();
        let keys = Keys(vec![b"k".to_vec()]);
        let boot = Boot {
            id: NodeId([uuid; 16]),
            incarnation,
            boot_id: 1,
            keys,
            persisted,
            bug: None,
            trace: false,
            textbook_acceptor: false,
        };
        Node::new(now, cfg, boot)
    }

    fn drain(node: &mut Node) -> (Vec<Event>, Vec<Transmit>) {
        let mut events = Vec::new();
        while let Some(e) = node.poll_event() {
            events.push(e);
        }
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        (events, out)
    }

    /// Delivers `wire` (sender, datagram) and whatever the receivers send back, until nothing is left (bounded);
    /// returns every event, with the node that emitted it.
    fn deliver(nodes: &mut [Node], mut wire: Vec<(usize, Transmit)>, now: Duration) -> Vec<(usize, Event)> {
        let mut events = Vec::new();
        for hop in 1..=16u32 {
            let mut next = Vec::new();
            for (from, t) in std::mem::take(&mut wire) {
                let Some(to) = (0..nodes.len()).find(|j| node_address(*j) == t.to) else { continue };
                nodes[to].handle(now + MS * hop, Input::Datagram { from: node_address(from), bytes: &t.bytes });
                let (e, sent) = drain(&mut nodes[to]);
                events.extend(e.into_iter().map(|e| (to, e)));
                next.extend(sent.into_iter().map(|t| (to, t)));
            }
            wire = next;
        }
        events
    }

    /// Wakes every node at `now` and delivers what each sent, and the answers.
    fn exchange(nodes: &mut [Node], now: Duration) -> Vec<(usize, Event)> {
        let mut events = Vec::new();
        let mut wire = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            n.handle(now, Input::Timeout);
            let (e, t) = drain(n);
            events.extend(e.into_iter().map(|e| (i, e)));
            wire.extend(t.into_iter().map(|t| (i, t)));
        }
        events.extend(deliver(nodes, wire, now));
        events
    }

    fn alive(node: &Node, peer: usize) -> bool {
        node.peers().alive(&name(peer))
    }

    /// One heartbeat interval of the scenario's timers.
    fn interval() -> Duration {
        Scenario::majority(2, false).timers.interval
    }

    #[test]
    fn two_nodes_started_at_once_hear_each_other_within_a_round_trip() {
        let mut nodes = vec![start(2, 0, 1, 1, Duration::ZERO), start(2, 1, 2, 3, Duration::ZERO)];
        // Each first heartbeat echoes 0 (the other is unknown): not used, but the header teaches the receiver the
        // sender's incarnation, and it answers at once with a heartbeat that echoes it.
        nodes[0].handle(Duration::ZERO, Input::Timeout);
        let (_, first) = drain(&mut nodes[0]);
        nodes[1].handle(MS, Input::Datagram { from: node_address(0), bytes: &first[0].bytes });
        let (_, answer) = drain(&mut nodes[1]);
        assert!(!alive(&nodes[1], 0), "a datagram echoing 0 was used");
        assert_eq!(nodes[1].peers().peers[&name(0)].echo, 1);
        assert_eq!(answer.len(), 1, "one heartbeat back to n0");
        let wire = answer.into_iter().map(|t| (1, t)).collect();
        deliver(&mut nodes, wire, MS);
        assert!(alive(&nodes[0], 1), "n0 uses the answer (it echoes n0's incarnation)");
        // No deadlock: after one exchange of heartbeats both hear each other.
        exchange(&mut nodes, interval());
        assert!(alive(&nodes[0], 1) && alive(&nodes[1], 0));
    }

    #[test]
    fn a_datagram_from_before_the_receivers_restart_is_not_used() {
        let mut nodes = vec![start(2, 0, 1, 1, Duration::ZERO), start(2, 1, 2, 1, Duration::ZERO)];
        exchange(&mut nodes, Duration::ZERO);
        exchange(&mut nodes, interval());
        // n0's next heartbeat to n1, recorded by an attacker.
        let now = 2 * interval();
        nodes[0].handle(now, Input::Timeout);
        let (_, sent) = drain(&mut nodes[0]);
        let recorded = sent.into_iter().find(|t| t.to == node_address(1)).unwrap();
        // n1 restarts (incarnation 2): its replay window is gone, n0 is unknown to it.
        nodes[1] = start(2, 1, 2, 2, now);
        let later = now + 10 * MS;
        nodes[1].handle(later, Input::Datagram { from: node_address(0), bytes: &recorded.bytes });
        let (events, _) = drain(&mut nodes[1]);
        let peer = &nodes[1].peers().peers[&name(0)];
        assert_eq!(peer.state, PeerState::Unknown, "the replay must not make n0 look alive: {events:?}");
        assert_eq!(peer.last_heard, None);
        assert!(peer.digest.is_none(), "the replayed heartbeat's records were used");
        assert_eq!(peer.echo, 1, "n0's incarnation is learned from the header");
        // Replaying it again changes nothing at all (n1 already answered the first copy with a heartbeat).
        let before = nodes[1].fingerprint();
        nodes[1].handle(later, Input::Datagram { from: node_address(0), bytes: &recorded.bytes });
        assert_eq!(drain(&mut nodes[1]).1, Vec::new(), "a second copy made n1 send");
        assert_eq!(nodes[1].fingerprint(), before);
        // (The answer to the replay was not delivered here.) n0 learns n1's new incarnation from n1's next heartbeat
        // and answers at once: both hear each other again.
        exchange(&mut nodes, later + interval());
        exchange(&mut nodes, later + 2 * interval());
        assert!(alive(&nodes[1], 0) && alive(&nodes[0], 1));
    }

    #[test]
    fn a_peer_claiming_my_uuid_is_ignored_and_reported_once() {
        // n1 is a clone of n0: same UUID.
        let mut nodes = vec![start(2, 0, 7, 1, Duration::ZERO), start(2, 1, 7, 1, Duration::ZERO)];
        let mut clashes = Vec::new();
        for k in 0..6 {
            let events = exchange(&mut nodes, interval() * k);
            clashes.extend(events.into_iter().filter(|(_, e)| matches!(e, Event::IdentityClash { .. })));
            assert!(!alive(&nodes[0], 1) && !alive(&nodes[1], 0));
        }
        let me = |i: usize, peer: usize| (i, Event::IdentityClash { peer: name(peer), with: Clash::Me });
        assert_eq!(clashes.len(), 2, "reported once on each side: {clashes:?}");
        assert!(clashes.contains(&me(0, 1)) && clashes.contains(&me(1, 0)), "{clashes:?}");
        assert_eq!(nodes[0].peers().peers[&name(1)].id, None, "the clone's UUID is not taken as the peer's");
    }

    #[test]
    fn a_uuid_already_used_by_another_peer_is_rejected_and_the_first_keeps_it() {
        // n1 and n2 share a UUID; n0 hears n1 first (n2 starts later).
        let mut nodes = vec![start(3, 0, 1, 1, Duration::ZERO), start(3, 1, 9, 1, Duration::ZERO)];
        exchange(&mut nodes, Duration::ZERO);
        exchange(&mut nodes, interval());
        assert!(alive(&nodes[0], 1));
        nodes.push(start(3, 2, 9, 1, 2 * interval()));
        let mut clashes = Vec::new();
        for k in 2..8 {
            let events = exchange(&mut nodes, interval() * k);
            clashes.extend(events.into_iter().filter(|(_, e)| matches!(e, Event::IdentityClash { .. })));
        }
        let with = |i: usize, peer: usize, w: Clash| (i, Event::IdentityClash { peer: name(peer), with: w });
        assert!(clashes.contains(&with(0, 2, Clash::Peer(name(1)))), "{clashes:?}");
        assert_eq!(clashes.iter().filter(|(i, _)| *i == 0).count(), 1, "reported once: {clashes:?}");
        assert!(alive(&nodes[0], 1) && !alive(&nodes[0], 2));
        // The two clones see each other as claiming their own UUID.
        assert!(clashes.contains(&with(1, 2, Clash::Me)) && clashes.contains(&with(2, 1, Clash::Me)));
    }

    #[test]
    fn under_ignore_a_holder_restarted_at_once_keeps_its_group() {
        // The answer to a new incarnation is a whole heartbeat, claims included: the peer drops the old life's
        // claims on the first datagram it takes from the new one, and under `ignore` it took the group over when
        // that datagram carried none (seen in the agent tests after kill -9).
        let s = Scenario::ignore_pair();
        let mut nodes: Vec<Node> =
            (0..2).map(|i| boot(&s, i, 1 + i as u8, 1, Duration::ZERO, Persisted::default())).collect();
        let mut persisted = vec![Persisted::default(); 2];
        let mut holder = None;
        for k in 0..30 {
            for (i, e) in exchange(&mut nodes, interval() * k) {
                match e {
                    Event::Persist(p) => persisted[i] = p,
                    Event::Acquired { .. } => holder = Some(i),
                    _ => {}
                }
            }
        }
        let h = holder.expect("someone holds the group under ignore");
        let now = interval() * 30;
        nodes[h] = boot(&s, h, 1 + h as u8, 2, now, persisted[h].clone());
        let mut events = Vec::new();
        for k in 0..20 {
            events.extend(exchange(&mut nodes, now + interval() * k));
        }
        let other = 1 - h;
        assert!(
            !events.iter().any(|(i, e)| *i == other && matches!(e, Event::Acquired { .. })),
            "the peer took the group over from a live holder: {events:?}"
        );
        assert!(events.iter().any(|(i, e)| *i == h && matches!(e, Event::Adopted { .. })), "{events:?}");
        assert!(alive(&nodes[other], h) && alive(&nodes[h], other));
    }
}
