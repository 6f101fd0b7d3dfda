//! What crosses the core's boundary: inputs, events, datagrams to send, and what the agent persists for it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::manifest::values::Name;

use super::acceptor::PlantedBug;
use super::config::Config;
use super::membership::{Clash, PeerState};
use super::wire::{Ballot, Keys, LeaseKey, NodeId};

/// What one node must keep across restarts (DESIGN.md §4.2, §4.7). The agent writes it (file and directory
/// fsynced) when it sees [`Event::Persist`], before it sends any datagram polled after that event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persisted {
    /// The highest round this node ever used: a restart never reuses a ballot.
    pub max_round: u64,
    /// The largest `T + m` this node's acceptor ever honoured: a restart stays silent for its `D_A`.
    pub max_tm: Duration,
    /// The adoption record of each lease key.
    pub records: BTreeMap<LeaseKey, AdoptionRecord>,
    /// The voter set of the config this node runs (empty: never ran).
    pub voters: BTreeSet<Name>,
    /// During a rollout, the previous voter sets (joint majorities survive a restart).
    pub joint_old: Vec<BTreeSet<Name>>,
    /// Set from the first start until every voter reported our digest: the voter set a rollout comes from is
    /// unknown, so no majority is ever enough (DESIGN.md §4.4).
    pub joint_unknown: bool,
}

/// What lets a restarted agent adopt a running group (DESIGN.md §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdoptionRecord {
    /// The ballot of the last round this node started on the key.
    pub ballot: Ballot,
    /// That round's deadline on the lease clock.
    pub deadline: Duration,
    /// The kernel boot the deadline refers to.
    pub boot_id: u64,
    /// Written before a Release is sent.
    pub released: bool,
}

/// What the agent hands the core at start-up.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The persisted node UUID.
    pub id: NodeId,
    /// This start's incarnation, already persisted (max(previous + 1, wall-clock seconds)); at least 1, since an
    /// echo of 0 in a header means "unknown" and must never match.
    pub incarnation: u64,
    /// The kernel's boot id: adoption is only possible within one boot.
    pub boot_id: u64,
    /// The cluster keys (first signs, all verify).
    pub keys: Keys,
    /// What the previous run persisted.
    pub persisted: Persisted,
    /// Simulation self-test only: a deliberately planted bug.
    #[doc(hidden)]
    pub bug: Option<PlantedBug>,
    /// Simulation only: record [`Trace`] entries for the invariant checker.
    #[doc(hidden)]
    pub trace: bool,
    /// Simulation only: the acceptor decides Accept by its promise alone (`Acceptor::textbook`).
    #[doc(hidden)]
    pub textbook_acceptor: bool,
}

/// Which quorum a [`Trace::Quorum`] reports: the checker judges each the same way, adoption also without ourselves.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuorumKind {
    /// Promises that made the proposer send Accept.
    Prepare,
    /// Accepts that established or renewed a lease.
    Accept,
    /// Accepts of the other voters that confirmed an adoption after a restart (§4.7).
    Adopt,
}

/// What the simulation's checker observes inside a core (never used by the agent).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trace {
    /// This node's acceptor accepted `ballot` on `key` and excludes others until `until` (lease clock).
    Accepted {
        /// The key.
        key: LeaseKey,
        /// The ballot accepted.
        ballot: Ballot,
        /// End of the exclusion.
        until: Duration,
    },
    /// This node started a round with `ballot` (after persisting it).
    Prepared {
        /// The ballot.
        ballot: Ballot,
        /// Whether the round skipped Prepare (an Accept-only renewal).
        skipped: bool,
    },
    /// This node's acceptor promised `ballot` on `key`.
    Promised {
        /// The key.
        key: LeaseKey,
        /// The ballot promised.
        ballot: Ballot,
    },
    /// This node's proposer acted on a quorum (invariant (h)): the voters it counted, with the identity it
    /// believes each has, and the voter sets it required a majority of.
    Quorum {
        /// The key.
        key: LeaseKey,
        /// The round's ballot.
        ballot: Ballot,
        /// Which quorum.
        kind: QuorumKind,
        /// Every voter counted: name and the identity this node associates with it.
        voters: Vec<(Name, Option<NodeId>)>,
        /// The voter sets a majority of each was required.
        sets: Vec<BTreeSet<Name>>,
    },
}

/// An input to the core.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// A datagram from `from`.
    Datagram {
        /// Its source address.
        from: IpAddr,
        /// Its bytes.
        bytes: &'a [u8],
    },
    /// The armed timeout (or any wake-up) fired.
    Timeout,
    /// The group was stopped after [`Event::MustStop`]; the core releases it.
    Stopped(Name),
    /// A new valid configuration.
    Config(Box<Config>),
    /// Whether the `ignore` tie-breaker answers.
    TieBreaker(bool),
    /// An operator operation from the CLI (replicated to every peer).
    Operate(super::ops::Operation),
    /// The monitor saw a member of this group fail here (a failcount report, replicated).
    MemberFailed(Name),
    /// The node is taken out (SIGTERM): hand every group over, then report [`Event::Left`] (DESIGN.md §4.7).
    Leave,
}

/// Something the agent must act on or record.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Write this before sending anything polled afterwards.
    Persist(Persisted),
    /// A peer changed state.
    PeerState {
        /// The peer.
        node: Name,
        /// Its new state.
        state: PeerState,
    },
    /// A peer runs a different config.
    ConfigDrift {
        /// The peer.
        node: Name,
        /// Its digest prefix.
        digest: [u8; 8],
    },
    /// A peer's datagrams claim a UUID already taken (a cloned /var/lib/hactl): they are ignored until it changes.
    IdentityClash {
        /// The peer whose datagrams are ignored.
        peer: Name,
        /// Who already uses that UUID: this node, or another peer.
        with: Clash,
    },
    /// A datagram from a peer's address failed authentication (alive but misconfigured, §4.8).
    AuthFailed {
        /// The peer.
        node: Name,
    },
    /// The group is ours: add its addresses (lifetime ⌈deadline − now⌉) and start its members.
    Acquired {
        /// The group.
        group: Name,
        /// Its lease key.
        key: LeaseKey,
        /// The addresses (lease keys) the lease covers: the only ones to configure and keep (§4.3).
        covers: Vec<LeaseKey>,
        /// Fence before `deadline − m` unless renewed.
        deadline: Duration,
        /// The lease's ballot.
        ballot: Ballot,
        /// Taken over by a hand-over whose Release confirmed the address is gone: no ARP probe (§4.11).
        handed: bool,
    },
    /// The lease was renewed: refresh the addresses' lifetimes.
    Renewed {
        /// The group.
        group: Name,
        /// Its lease key.
        key: LeaseKey,
        /// The addresses (lease keys) the lease covers: the only ones to configure and keep (§4.3).
        covers: Vec<LeaseKey>,
        /// The new deadline.
        deadline: Duration,
        /// The round's ballot.
        ballot: Ballot,
    },
    /// After a restart the running group was adopted: keep it, and now start what is missing.
    Adopted {
        /// The group.
        group: Name,
        /// Its lease key.
        key: LeaseKey,
        /// The addresses (lease keys) the lease covers: the only ones to configure and keep (§4.3).
        covers: Vec<LeaseKey>,
        /// The new deadline.
        deadline: Duration,
        /// The ballot renewed.
        ballot: Ballot,
    },
    /// The lease could not be renewed: delete the addresses now, then stop the members.
    MustFence {
        /// The group.
        group: Name,
        /// Its lease key.
        key: LeaseKey,
    },
    /// Graceful hand-over: stop the members in reverse order, then report [`Input::Stopped`].
    MustStop {
        /// The group.
        group: Name,
        /// Where it goes; `None` when this node leaves and no other node can take it now.
        to: Option<Name>,
    },
    /// The lease was released after a stop; the target acquires at once.
    Released {
        /// The group.
        group: Name,
        /// Its lease key.
        key: LeaseKey,
    },
    /// After [`Input::Leave`]: nothing is held here any more and every hand-over was taken up (or its Release
    /// repeated for deadTime); the agent may exit.
    Left,
    /// Under `ignore`: another node claims a group we hold (split brain seen); `yielded` says who gave way.
    Conflict {
        /// The group.
        group: Name,
        /// The other claimant.
        with: Name,
        /// Whether this node yielded.
        yielded: bool,
    },
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The peer's configured address.
    pub to: IpAddr,
    /// The authenticated datagram.
    pub bytes: Vec<u8>,
}
