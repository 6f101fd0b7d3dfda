//! Membership (DESIGN.md §4.10, Heartbeat's keepalive/warntime/deadtime): who is alive, late or dead, which peers
//! hear us back (one-way links), which config digest each runs, and which leases each claims to hold.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::manifest::values::Name;

use super::wire::{LeaseKey, NodeId};

/// How a peer looks from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Not heard since start.
    Unknown,
    /// Heard within warnTime.
    Alive,
    /// Silent for warnTime: worth a log line.
    Late,
    /// Silent for deadTime.
    Dead,
}

/// What we know of one peer.
#[derive(Debug, Clone)]
pub struct PeerView {
    /// Its identity, once a datagram of it was used (never one that clashed, see [`Clash`]).
    pub id: Option<NodeId>,
    /// The identity the replay window belongs to (the `id` of the last fresh datagram, clashing or not).
    window_id: Option<NodeId>,
    /// The incarnation the replay window belongs to (replays of an older one are rejected).
    pub incarnation: u64,
    /// The highest incarnation any authenticated header from it carried, used or not: echoed back in every
    /// datagram to it (0 while unknown), it proves to the peer that the datagram was made in its current life.
    pub echo: u64,
    /// Its datagrams claim an identity that is already taken (a cloned state directory), if they do.
    pub clash: Option<Clash>,
    /// Highest sequence seen in this incarnation, and a 64-wide window below it.
    seq_top: u64,
    seq_window: u64,
    /// Last authenticated datagram, on our lease clock.
    pub last_heard: Option<Duration>,
    /// State last reported.
    pub state: PeerState,
    /// Its config digest.
    pub digest: Option<[u8; 8]>,
    /// Peers it hears (from its last heartbeat).
    pub heard: BTreeSet<NodeId>,
    /// It says it could acquire a group now.
    pub ready: bool,
    /// Rounds it released per key: a reordered `Held` at or below them is stale.
    pub released: BTreeMap<LeaseKey, u64>,
    /// Leases it claims: round and claim expiry on our clock.
    pub held: BTreeMap<LeaseKey, (u64, Duration)>,
    /// Last HMAC failure from its address (alive but misconfigured, §4.8).
    pub auth_failed: Option<Duration>,
}

impl PeerView {
    fn new() -> PeerView {
        PeerView {
            id: None,
            window_id: None,
            incarnation: 0,
            echo: 0,
            clash: None,
            seq_top: 0,
            seq_window: 0,
            last_heard: None,
            state: PeerState::Unknown,
            digest: None,
            heard: BTreeSet::new(),
            ready: false,
            released: BTreeMap::new(),
            held: BTreeMap::new(),
            auth_failed: None,
        }
    }

    /// Learns the peer's incarnation from any authenticated header (only raised: a replay carries an older one).
    pub fn learn(&mut self, incarnation: u64) {
        self.echo = self.echo.max(incarnation);
    }

    /// The receive rule (invariant (l)): the records of a datagram are used only when it echoes our current
    /// incarnation — so it was made after this life began, and the in-memory window has seen every datagram
    /// made since — when it is of the newest incarnation heard from the peer, and when the window accepts it.
    /// Call [`PeerView::learn`] with its header first.
    pub fn admit(&mut self, id: NodeId, incarnation: u64, seq: u64, echo: u64, mine: u64) -> bool {
        echo == mine && incarnation >= self.echo && self.accept_seq(id, incarnation, seq)
    }

    /// Replay check (like IPsec's anti-replay window): accepts a fresh (incarnation, seq) once.
    pub fn accept_seq(&mut self, id: NodeId, incarnation: u64, seq: u64) -> bool {
        if self.window_id.is_some_and(|known| known != id) && incarnation <= self.incarnation {
            return false;
        }
        if incarnation < self.incarnation {
            return false;
        }
        if incarnation > self.incarnation || self.window_id != Some(id) {
            self.window_id = Some(id);
            self.incarnation = incarnation;
            self.seq_top = seq;
            self.seq_window = 1;
            self.held.clear();
            return true;
        }
        if seq > self.seq_top {
            let shift = seq - self.seq_top;
            self.seq_window = if shift >= 64 { 1 } else { (self.seq_window << shift) | 1 };
            self.seq_top = seq;
            return true;
        }
        let back = self.seq_top - seq;
        if back >= 64 || self.seq_window & (1 << back) != 0 {
            return false;
        }
        self.seq_window |= 1 << back;
        true
    }
}

/// Whom a peer's claimed identity clashes with (DESIGN.md §4.2: a VM cloned with /var/lib/hactl copies the UUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clash {
    /// It claims this node's own UUID.
    Me,
    /// It claims the UUID this other configured peer already uses.
    Peer(Name),
}

/// The membership table.
#[derive(Debug, Clone)]
pub struct Membership {
    /// Every other node by name.
    pub peers: BTreeMap<Name, PeerView>,
}

impl Membership {
    /// A table with every configured peer unknown.
    pub fn new<'a>(names: impl Iterator<Item = &'a Name>, me: &Name) -> Membership {
        Membership { peers: names.filter(|n| *n != me).map(|n| (n.clone(), PeerView::new())).collect() }
    }

    /// Follows a config change: new peers start unknown, removed ones are forgotten.
    pub fn reconfigure<'a>(&mut self, names: impl Iterator<Item = &'a Name>, me: &Name) {
        let wanted: BTreeSet<&Name> = names.filter(|n| *n != me).collect();
        self.peers.retain(|n, _| wanted.contains(n));
        for n in wanted {
            self.peers.entry(n.clone()).or_insert_with(PeerView::new);
        }
    }

    /// Whether `id`, claimed by a datagram from `from`, is already taken: by `me`, or by another peer whose
    /// datagrams were used under it. The first claimant heard keeps it (each life of this node serves at most one
    /// claimant of a UUID, so its acceptor never answers two nodes as one proposer).
    pub fn clash(&self, from: &Name, id: NodeId, me: NodeId) -> Option<Clash> {
        if id == me {
            return Some(Clash::Me);
        }
        self.peers.iter().find(|(n, p)| *n != from && p.id == Some(id)).map(|(n, _)| Clash::Peer(n.clone()))
    }

    /// The peer with this identity.
    pub fn by_id(&self, id: NodeId) -> Option<&Name> {
        self.peers.iter().find(|(_, p)| p.id == Some(id)).map(|(n, _)| n)
    }

    /// Whether `name` is alive (heard within deadTime).
    pub fn alive(&self, name: &Name) -> bool {
        self.peers.get(name).is_some_and(|p| matches!(p.state, PeerState::Alive | PeerState::Late))
    }

    /// Whether we hear `name` and it hears `me` (DESIGN.md §4.9: one-way links make a node ineligible).
    pub fn both_ways(&self, name: &Name, me: NodeId) -> bool {
        self.alive(name) && self.peers.get(name).is_some_and(|p| p.heard.contains(&me))
    }

    /// Identities of the peers we hear, for our heartbeat.
    pub fn heard(&self) -> Vec<NodeId> {
        self.peers
            .values()
            .filter(|p| matches!(p.state, PeerState::Alive | PeerState::Late))
            .filter_map(|p| p.id)
            .collect()
    }

    /// Recomputes states; returns the changes to report.
    pub fn update(&mut self, now: Duration, warn: Duration, dead: Duration) -> Vec<(Name, PeerState)> {
        let mut changes = Vec::new();
        for (name, p) in &mut self.peers {
            let Some(last) = p.last_heard else { continue };
            let silent = now.saturating_sub(last);
            let state = if silent >= dead {
                PeerState::Dead
            } else if silent >= warn {
                PeerState::Late
            } else {
                PeerState::Alive
            };
            if state != p.state {
                p.state = state;
                if state == PeerState::Dead {
                    p.held.clear();
                }
                changes.push((name.clone(), state));
            }
        }
        changes
    }

    /// The next instant a peer's state can change without input.
    pub fn next_change(&self, warn: Duration, dead: Duration) -> Option<Duration> {
        self.peers
            .values()
            .filter_map(|p| {
                let last = p.last_heard?;
                match p.state {
                    PeerState::Alive => Some(last + warn),
                    PeerState::Late => Some(last + dead),
                    _ => None,
                }
            })
            .min()
    }

    /// Our own pause of `excess` does not count as the peers' silence: their last-heard times and claims move
    /// forward by it (never past `now`).
    pub fn discount_pause(&mut self, excess: Duration, now: Duration) {
        for p in self.peers.values_mut() {
            if let Some(last) = p.last_heard.as_mut() {
                *last = (*last + excess).min(now);
            }
            for (_, expiry) in p.held.values_mut() {
                *expiry += excess;
            }
        }
    }

    /// The live claim on `key` by a peer other than `me`, if any: (holder, round).
    pub fn claim(&self, key: &LeaseKey, now: Duration) -> Option<(&Name, u64)> {
        self.peers
            .iter()
            .filter(|(_, p)| matches!(p.state, PeerState::Alive | PeerState::Late))
            .filter_map(|(n, p)| p.held.get(key).filter(|(_, exp)| *exp > now).map(|(r, _)| (n, *r)))
            .max_by_key(|(_, r)| *r)
    }

    /// The configured peer at `address`.
    pub fn name_at<'a>(&'a self, nodes: &'a BTreeMap<Name, super::config::Peer>, address: IpAddr) -> Option<&'a Name> {
        nodes.iter().find(|(n, p)| p.address == address && self.peers.contains_key(*n)).map(|(n, _)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_window_rejects_duplicates_and_old_incarnations() {
        let mut p = PeerView::new();
        let id = NodeId([1; 16]);
        assert!(p.accept_seq(id, 5, 10));
        assert!(!p.accept_seq(id, 5, 10));
        assert!(p.accept_seq(id, 5, 8), "reordered but fresh");
        assert!(!p.accept_seq(id, 5, 8));
        assert!(p.accept_seq(id, 5, 100));
        assert!(!p.accept_seq(id, 5, 20), "below the window");
        assert!(!p.accept_seq(id, 4, 500), "older incarnation");
        assert!(p.accept_seq(id, 6, 1), "a restart");
    }

    #[test]
    fn records_are_used_only_when_the_echo_is_our_current_incarnation() {
        let (id, mine) = (NodeId([1; 16]), 7);
        let mut p = PeerView::new();
        // Made before we restarted into 7 (it echoes 6) or before the sender knew us (0): not used.
        p.learn(3);
        assert!(!p.admit(id, 3, 1, 6, mine));
        assert!(!p.admit(id, 3, 2, 0, mine));
        assert_eq!(p.echo, 3, "the sender's incarnation is learned from the header all the same");
        assert!(p.admit(id, 3, 3, mine, mine));
        assert!(!p.admit(id, 3, 3, mine, mine), "the window still rejects a duplicate");
    }

    #[test]
    fn a_replayed_header_never_lowers_the_learned_incarnation() {
        let (id, mine) = (NodeId([1; 16]), 2);
        let mut p = PeerView::new();
        p.learn(9);
        p.learn(4);
        assert_eq!(p.echo, 9);
        // A datagram of an older life that echoes us correctly (sent just before the peer restarted) is still
        // refused: the peer is known to live in 9 now.
        assert!(!p.admit(id, 4, 1, mine, mine));
        assert!(p.admit(id, 9, 1, mine, mine));
    }

    #[test]
    fn the_first_claimant_of_a_uuid_keeps_it() {
        let names = [Name("a".into()), Name("b".into()), Name("c".into())];
        let mut m = Membership::new(names.iter(), &names[0]);
        let (me, shared) = (NodeId([0; 16]), NodeId([5; 16]));
        assert_eq!(m.clash(&names[1], me, me), Some(Clash::Me));
        assert_eq!(m.clash(&names[1], shared, me), None);
        if let Some(p) = m.peers.get_mut(&names[1]) {
            p.id = Some(shared);
        }
        assert_eq!(m.clash(&names[1], shared, me), None, "its own UUID is no clash");
        assert_eq!(m.clash(&names[2], shared, me), Some(Clash::Peer(names[1].clone())));
    }
}
