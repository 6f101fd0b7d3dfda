//! Replicated operator operations and failure reports (DESIGN.md §4.2, §4.9): `move GROUP NODE [for D]`,
//! `clear GROUP`, `standby NODE`, `online NODE`, `cleanup GROUP [NODE]`, and failcounts. Each is stamped
//! (origin, incarnation, counter), applied at once by its origin, re-sent in heartbeats until every peer has
//! acknowledged it, and expires where it says so (`for D`, `failureTimeout`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::manifest::values::Name;

use super::wire::{NodeId, Reader, WireError};

/// Orders operations: a Lamport clock over (incarnation, counter) — an operation issued after another was known
/// on its origin is later — and origins break ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp {
    /// The origin's incarnation, or a higher one it had seen on a peer's operation (see `Ops::issue`).
    pub incarnation: u64,
    /// Grows per operation: above every counter known to the origin under the same incarnation value.
    pub counter: u64,
    /// The node that issued it.
    pub origin: NodeId,
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// +∞ for `node` on `group` (Pacemaker's cli-prefer).
    Move = 1,
    /// Cancels the move named by `cancels`.
    Clear = 2,
    /// `node` holds nothing.
    Standby = 3,
    /// Ends `node`'s standby.
    Online = 4,
    /// Forgets the failures of `group` (on `node`, or everywhere when empty).
    Cleanup = 5,
    /// One failure of `group` on `node`.
    Failure = 6,
}

/// An operation as replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// Its stamp.
    pub stamp: Stamp,
    /// What it does.
    pub kind: OpKind,
    /// The group, or empty.
    pub group: String,
    /// The node, or empty.
    pub node: String,
    /// Time left before it expires; `u32::MAX`: never.
    pub left_ms: u32,
    /// For `Clear`: the move it cancels.
    pub cancels: Option<Stamp>,
}

/// An operation as the operator (CLI) or the monitor hands it to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `move GROUP NODE [for D]`.
    Move {
        /// The group.
        group: Name,
        /// Its target.
        node: Name,
        /// How long; `None` until `clear`.
        duration: Option<Duration>,
    },
    /// `clear GROUP`.
    Clear {
        /// The group.
        group: Name,
    },
    /// `standby NODE`.
    Standby {
        /// The node.
        node: Name,
    },
    /// `online NODE`.
    Online {
        /// The node.
        node: Name,
    },
    /// `cleanup GROUP [NODE]`.
    Cleanup {
        /// The group.
        group: Name,
        /// One node, or all.
        node: Option<Name>,
    },
}

pub(crate) fn put_stamp(out: &mut Vec<u8>, s: &Stamp) {
    out.extend_from_slice(&s.incarnation.to_be_bytes());
    out.extend_from_slice(&s.counter.to_be_bytes());
    out.extend_from_slice(&s.origin.0);
}

pub(crate) fn read_stamp(r: &mut Reader<'_>) -> Result<Stamp, WireError> {
    Ok(Stamp { incarnation: r.u64()?, counter: r.u64()?, origin: NodeId(r.array()?) })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(255)];
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes);
}

fn read_str(r: &mut Reader<'_>) -> Result<String, WireError> {
    let n = r.u8()?;
    String::from_utf8(r.take(usize::from(n))?.to_vec()).map_err(|_| WireError::Malformed(n))
}

pub(crate) fn put_op(out: &mut Vec<u8>, op: &OpRecord) {
    put_stamp(out, &op.stamp);
    out.push(op.kind as u8);
    put_str(out, &op.group);
    put_str(out, &op.node);
    out.extend_from_slice(&op.left_ms.to_be_bytes());
    match &op.cancels {
        Some(s) => {
            out.push(1);
            put_stamp(out, s);
        }
        None => out.push(0),
    }
}

pub(crate) fn read_op(r: &mut Reader<'_>) -> Result<OpRecord, WireError> {
    let stamp = read_stamp(r)?;
    let kind = match r.u8()? {
        1 => OpKind::Move,
        2 => OpKind::Clear,
        3 => OpKind::Standby,
        4 => OpKind::Online,
        5 => OpKind::Cleanup,
        6 => OpKind::Failure,
        k => return Err(WireError::Malformed(k)),
    };
    let group = read_str(r)?;
    let node = read_str(r)?;
    let left_ms = r.u32()?;
    let cancels = match r.u8()? {
        0 => None,
        1 => Some(read_stamp(r)?),
        f => return Err(WireError::Malformed(f)),
    };
    Ok(OpRecord { stamp, kind, group, node, left_ms, cancels })
}

/// One stored operation.
#[derive(Debug, Clone)]
struct Stored {
    op: OpRecord,
    expires: Option<Duration>,
}

/// The replicated operations as this node knows them.
#[derive(Debug, Clone, Default)]
pub struct Ops {
    ops: BTreeMap<Stamp, Stored>,
    /// Peers that have not acknowledged each of our own operations.
    unacked: BTreeMap<Stamp, BTreeSet<Name>>,
    /// The greatest (incarnation, counter) issued or stored here; a new operation is stamped above it.
    clock: (u64, u64),
}

impl Ops {
    /// Stamps and stores a local operation; it is re-sent to `peers` until acknowledged.
    ///
    /// The stamp is above every stamp known here (a Lamport clock over (incarnation, counter)), not merely above
    /// this origin's own: otherwise `online` issued on ha2 after it learnt ha1's `standby` could lose to it
    /// because ha1 started a second later (higher incarnation) or the origins' tie-break favours ha1, and a
    /// `cleanup` could leave failures stamped by a later-started node in force. Stamps stay unique per origin
    /// because the clock only grows.
    pub fn issue(&mut self, now: Duration, mut op: OpRecord, origin: NodeId, inc: u64, peers: BTreeSet<Name>) {
        let (incarnation, counter) = self.clock.max((inc, 0));
        self.clock = (incarnation, counter + 1);
        op.stamp = Stamp { incarnation, counter: counter + 1, origin };
        self.unacked.insert(op.stamp, peers);
        self.store(now, op);
    }

    /// Stores an operation (ours or a peer's); duplicates change nothing.
    pub fn store(&mut self, now: Duration, op: OpRecord) {
        self.clock = self.clock.max((op.stamp.incarnation, op.stamp.counter));
        let expires = (op.left_ms != u32::MAX).then(|| now + Duration::from_millis(u64::from(op.left_ms)));
        self.ops.entry(op.stamp).or_insert(Stored { op, expires });
    }

    /// A peer acknowledged `stamp`.
    pub fn acked(&mut self, stamp: &Stamp, peer: &Name) {
        if let Some(set) = self.unacked.get_mut(stamp) {
            set.remove(peer);
            if set.is_empty() {
                self.unacked.remove(stamp);
            }
        }
    }

    /// Our operations `peer` has not acknowledged, with their time left, for its next heartbeat.
    pub fn pending_for(&self, now: Duration, peer: &Name) -> Vec<OpRecord> {
        self.unacked
            .iter()
            .filter(|(_, set)| set.contains(peer))
            .filter_map(|(s, _)| self.ops.get(s))
            .map(|st| {
                let mut op = st.op.clone();
                if let Some(e) = st.expires {
                    op.left_ms = u32::try_from(e.saturating_sub(now).as_millis()).unwrap_or(u32::MAX - 1);
                }
                op
            })
            .collect()
    }

    /// Drops expired operations.
    pub fn expire(&mut self, now: Duration) {
        self.ops.retain(|_, st| st.expires.is_none_or(|e| e > now));
        let live = &self.ops;
        self.unacked.retain(|s, _| live.contains_key(s));
    }

    fn live(&self) -> impl Iterator<Item = &OpRecord> {
        self.ops.values().map(|st| &st.op)
    }

    /// Whether `node` is in standby: its latest standby/online operation is a standby.
    pub fn standby(&self, node: &str) -> bool {
        self.live()
            .filter(|o| o.node == node && matches!(o.kind, OpKind::Standby | OpKind::Online))
            .max_by_key(|o| o.stamp)
            .is_some_and(|o| o.kind == OpKind::Standby)
    }

    /// The live move of `group` (the latest not cleared), if any: its target and stamp. A `clear` cancels the move
    /// it names and every move of the group ordered before it (Pacemaker's `crm resource clear` removes all the
    /// constraints), so an older move never comes back; a move issued concurrently elsewhere, unknown to the
    /// clearing node, orders after the named one and stays.
    pub fn moved(&self, group: &str) -> Option<(String, Stamp)> {
        let clears: Vec<Stamp> =
            self.live().filter(|o| o.kind == OpKind::Clear && o.group == group).filter_map(|o| o.cancels).collect();
        let cleared = |m: &OpRecord| clears.iter().any(|named| m.stamp <= *named);
        self.live()
            .filter(|o| o.kind == OpKind::Move && o.group == group && !cleared(o))
            .max_by_key(|o| o.stamp)
            .map(|o| (o.node.clone(), o.stamp))
    }

    /// Failures of `group` on `node` not yet expired or cleaned up.
    pub fn failures(&self, group: &str, node: &str) -> usize {
        let cleanup = self
            .live()
            .filter(|o| o.kind == OpKind::Cleanup && o.group == group && (o.node.is_empty() || o.node == node))
            .map(|o| o.stamp)
            .max();
        self.live()
            .filter(|o| o.kind == OpKind::Failure && o.group == group && o.node == node)
            .filter(|o| cleanup.is_none_or(|c| o.stamp > c))
            .count()
    }
}

impl super::node::Node {
    fn issue(&mut self, now: Duration, kind: OpKind, group: &str, node: &str, left: Option<Duration>) {
        let cancels = (kind == OpKind::Clear).then(|| self.ops.moved(group).map(|(_, s)| s)).flatten();
        if kind == OpKind::Clear && cancels.is_none() {
            return; // nothing to clear
        }
        let left_ms = left.map_or(u32::MAX, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX - 1));
        let op = OpRecord {
            stamp: Stamp::default(),
            kind,
            group: group.to_string(),
            node: node.to_string(),
            left_ms,
            cancels,
        };
        let peers = self.members.peers.keys().cloned().collect();
        self.ops.issue(now, op, self.id, self.incarnation, peers);
    }

    pub(super) fn operate(&mut self, now: Duration, op: Operation) {
        match op {
            Operation::Move { group, node, duration } => self.issue(now, OpKind::Move, &group.0, &node.0, duration),
            Operation::Clear { group } => self.issue(now, OpKind::Clear, &group.0, "", None),
            Operation::Standby { node } => self.issue(now, OpKind::Standby, "", &node.0, None),
            Operation::Online { node } => self.issue(now, OpKind::Online, "", &node.0, None),
            Operation::Cleanup { group, node } => {
                let node = node.map(|n| n.0).unwrap_or_default();
                self.issue(now, OpKind::Cleanup, &group.0, &node, None)
            }
        }
    }

    pub(super) fn member_failed(&mut self, now: Duration, group: &Name) {
        let timeout = self.cfg.groups.get(group).and_then(|g| g.failure_timeout);
        let me = self.cfg.me.0.clone();
        self.issue(now, OpKind::Failure, &group.0, &me, timeout);
    }

    /// §4.9 −∞ rules from operations: standby, or failures ≥ `migrationThreshold` within `failureTimeout`.
    pub(super) fn excluded_by_ops(&self, group: &Name, node: &Name) -> bool {
        let threshold = self.cfg.groups.get(group).map_or(u32::MAX, |g| g.migration_threshold);
        let failures = u32::try_from(self.ops.failures(&group.0, &node.0)).unwrap_or(u32::MAX);
        self.ops.standby(&node.0) || (threshold > 0 && failures >= threshold)
    }

    /// The target of a live `move` of `group`.
    pub(super) fn moved_to(&self, group: &Name) -> Option<Name> {
        self.ops.moved(&group.0).map(|(n, _)| Name(n))
    }
}

/// A move in force, as this node knows it from the replicated table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveInForce {
    /// The group moved.
    pub group: String,
    /// Its target.
    pub node: String,
    /// Time left before it expires; `None` until `clear`.
    pub left: Option<Duration>,
}

/// The replicated operations in force: what `hactl status` shows, whichever node issued them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InForce {
    /// Live moves, one per group, by group name.
    pub moves: Vec<MoveInForce>,
    /// Nodes in standby, by name.
    pub standby: Vec<String>,
    /// Failures not expired or cleaned up, per (group, node), only where there is at least one.
    pub failures: BTreeMap<(String, String), usize>,
}

impl Ops {
    /// The operations in force at `now` (ignoring those past their expiry that `expire` has not dropped yet).
    pub fn in_force(&self, now: Duration) -> InForce {
        let mut live = self.clone();
        live.expire(now);
        let groups: BTreeSet<&str> = live.live().filter(|o| o.kind == OpKind::Move).map(|o| o.group.as_str()).collect();
        let moves = groups
            .into_iter()
            .filter_map(|g| live.moved(g).map(|(node, stamp)| (g, node, stamp)))
            .map(|(g, node, stamp)| MoveInForce {
                group: g.to_string(),
                node,
                left: live.ops.get(&stamp).and_then(|st| st.expires).map(|e| e.saturating_sub(now)),
            })
            .collect();
        let nodes: BTreeSet<&str> = live
            .live()
            .filter(|o| matches!(o.kind, OpKind::Standby | OpKind::Online))
            .map(|o| o.node.as_str())
            .collect();
        let standby = nodes.into_iter().filter(|n| live.standby(n)).map(str::to_string).collect();
        let pairs: BTreeSet<(&str, &str)> =
            live.live().filter(|o| o.kind == OpKind::Failure).map(|o| (o.group.as_str(), o.node.as_str())).collect();
        let failures = pairs
            .into_iter()
            .map(|(g, n)| ((g.to_string(), n.to_string()), live.failures(g, n)))
            .filter(|(_, count)| *count > 0)
            .collect();
        InForce { moves, standby, failures }
    }
}

impl super::node::Node {
    /// The replicated operations in force, for the operator's status (read-only).
    pub fn operations(&self, now: Duration) -> InForce {
        self.ops.in_force(now)
    }
}

#[cfg(test)]
mod in_force_tests {
    use super::*;

    fn op(counter: u64, kind: OpKind, group: &str, node: &str, left_ms: u32, cancels: Option<Stamp>) -> OpRecord {
        let stamp = Stamp { incarnation: 1, counter, origin: NodeId([counter as u8; 16]) };
        OpRecord { stamp, kind, group: group.into(), node: node.into(), left_ms, cancels }
    }

    #[test]
    fn in_force_lists_moves_with_time_left_standby_and_failures() {
        let mut ops = Ops::default();
        let t0 = Duration::from_secs(10);
        let forever = op(1, OpKind::Move, "A", "ha2", u32::MAX, None);
        ops.store(t0, forever.clone());
        ops.store(t0, op(2, OpKind::Move, "B", "ha1", 4_000, None));
        ops.store(t0, op(3, OpKind::Standby, "", "ha3", u32::MAX, None));
        ops.store(t0, op(4, OpKind::Failure, "A", "ha1", 60_000, None));
        ops.store(t0, op(5, OpKind::Failure, "A", "ha1", 60_000, None));
        ops.store(t0, op(6, OpKind::Failure, "B", "ha2", 60_000, None));
        ops.store(t0, op(7, OpKind::Cleanup, "B", "", u32::MAX, None));
        let seen = ops.in_force(t0 + Duration::from_secs(1));
        assert_eq!(
            seen.moves,
            [
                MoveInForce { group: "A".into(), node: "ha2".into(), left: None },
                MoveInForce { group: "B".into(), node: "ha1".into(), left: Some(Duration::from_secs(3)) },
            ]
        );
        assert_eq!(seen.standby, ["ha3"]);
        assert_eq!(seen.failures.into_iter().collect::<Vec<_>>(), [(("A".into(), "ha1".into()), 2)]);

        // Later: B's move has expired (not yet dropped by `expire`), A's is cleared, ha3 is back online.
        ops.store(t0, op(8, OpKind::Clear, "A", "", u32::MAX, Some(forever.stamp)));
        ops.store(t0, op(9, OpKind::Online, "", "ha3", u32::MAX, None));
        let later = ops.in_force(t0 + Duration::from_secs(5));
        assert!(later.moves.is_empty(), "{later:?}");
        assert!(later.standby.is_empty(), "{later:?}");
    }

    #[test]
    fn an_operation_issued_after_a_peers_wins_over_it_whatever_the_incarnations() {
        // ha1 started later (incarnation 200) and put ha2 in standby; ha2 (incarnation 100) learns it, then
        // issues `online`: the later operation must win.
        let mut ha2 = Ops::default();
        let standby = OpRecord {
            stamp: Stamp { incarnation: 200, counter: 5, origin: NodeId([9; 16]) },
            kind: OpKind::Standby,
            group: String::new(),
            node: "ha2".into(),
            left_ms: u32::MAX,
            cancels: None,
        };
        let t = Duration::from_secs(1);
        ha2.store(t, standby.clone());
        assert!(ha2.standby("ha2"));
        let online = OpRecord { kind: OpKind::Online, stamp: Stamp::default(), ..standby.clone() };
        ha2.issue(t, online.clone(), NodeId([1; 16]), 100, BTreeSet::new());
        assert!(!ha2.standby("ha2"), "online issued after the standby was known wins");
        // Two operations of one origin in a row keep distinct, growing stamps.
        ha2.issue(t, online, NodeId([1; 16]), 100, BTreeSet::new());
        let mine: Vec<Stamp> = ha2.ops.keys().filter(|s| s.origin == NodeId([1; 16])).copied().collect();
        assert_eq!(mine.len(), 2);
        assert!(mine[0] < mine[1] && mine[0] > standby.stamp, "{mine:?}");
    }
}
