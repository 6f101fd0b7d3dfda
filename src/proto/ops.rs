//! Replicated operator operations and failure reports (DESIGN.md §4.2, §4.9): `move GROUP NODE [for D]`,
//! `clear GROUP`, `standby NODE`, `online NODE`, `cleanup GROUP [NODE]`, and failcounts. Each is stamped
//! (origin, incarnation, counter), applied at once by its origin, re-sent in heartbeats until every peer has
//! acknowledged it, and expires where it says so (`for D`, `failureTimeout`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::manifest::values::Name;

use super::wire::{NodeId, Reader, WireError};

/// Orders operations across nodes: `counter` is a Lamport clock (raised past every stamp a node stores, started
/// at its incarnation × 2^20 so a restarted node's operations follow those issued before it started), so an
/// operation issued after seeing another always orders after it, whichever node issues it; origins break ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stamp {
    /// The origin's incarnation.
    pub incarnation: u64,
    /// The origin's Lamport clock when it issued the operation.
    pub counter: u64,
    /// The node that issued it.
    pub origin: NodeId,
}

impl Ord for Stamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.counter, self.incarnation, self.origin).cmp(&(other.counter, other.incarnation, other.origin))
    }
}

impl PartialOrd for Stamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
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
    counter: u64,
}

impl Ops {
    /// Stamps and stores a local operation; it is re-sent to `peers` until acknowledged.
    pub fn issue(&mut self, now: Duration, mut op: OpRecord, origin: NodeId, inc: u64, peers: BTreeSet<Name>) {
        self.counter = self.counter.max(inc.saturating_mul(1 << 20)) + 1;
        op.stamp = Stamp { incarnation: inc, counter: self.counter, origin };
        self.unacked.insert(op.stamp, peers);
        self.store(now, op);
    }

    /// Stores an operation (ours or a peer's); duplicates change nothing.
    pub fn store(&mut self, now: Duration, op: OpRecord) {
        self.counter = self.counter.max(op.stamp.counter);
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
    /// it names and every earlier move of the group (Pacemaker's `crm resource clear` removes all constraints),
    /// so an older move never comes back.
    pub fn moved(&self, group: &str) -> Option<(String, Stamp)> {
        let clears: Vec<&OpRecord> = self.live().filter(|o| o.kind == OpKind::Clear && o.group == group).collect();
        let cleared = |m: &OpRecord| clears.iter().any(|c| c.cancels == Some(m.stamp) || c.stamp > m.stamp);
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
