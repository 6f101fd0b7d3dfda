//! The simulation's stand-in kernel address table and its invariant checks (issue 3, item 7).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::proto::wire::{Ballot, LeaseKey};

/// The first invariant a run broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant, by its letter in the issue: "(a) two holders", …
    pub invariant: &'static str,
    /// Virtual time.
    pub at: Duration,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {:?}: {}", self.invariant, self.at, self.detail)
    }
}

/// A floating address configured in a simulated kernel, with the lease key it was added under (invariant (i)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KernelAddr {
    /// The lease key of the group the agent added it for.
    pub key: LeaseKey,
    /// Real time at which the kernel's lifetime runs out.
    pub expires: Duration,
    /// Set while its agent is hung or crashed: only the kernel lifetime bounds it (non-strict).
    pub stale: bool,
}

/// One node's kernel: floating addresses configured with carrier.
pub(crate) type Kernel = BTreeMap<IpAddr, KernelAddr>;

/// Whether a kernel holds any address under `key`.
pub(crate) fn holds(k: &Kernel, key: LeaseKey) -> bool {
    k.values().any(|a| a.key == key)
}

/// One acceptor's accept of a ballot: (acceptor, real accept time, real exclusion end).
type AcceptSeen = (usize, Duration, Duration);

/// Invariant state across a run.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    /// (a) is absolute under strict; otherwise stale addresses of hung/crashed agents may overlap.
    pub strict: bool,
    /// (a) applies only under majority.
    pub majority: bool,
    /// Accepts seen: (key, ballot, proposer) → (acceptor, real accept time, real exclusion end).
    accepts: HashMap<(LeaseKey, Ballot, usize), Vec<AcceptSeen>>,
    /// Ballots prepared, with the incarnation that used them.
    prepared: HashMap<(usize, Ballot), u64>,
    /// Current unique holder of each key, and its history of changes (time, node).
    pub holder: BTreeMap<LeaseKey, Option<usize>>,
    /// Holder changes (from one node to another) with their times.
    pub changes: Vec<(Duration, LeaseKey, usize, usize)>,
    /// When each key last got a holder after having none.
    pub last_holder: BTreeMap<LeaseKey, usize>,
    /// Count of tolerated stale overlaps.
    pub stale_overlaps: u64,
    /// A new holder after a vacancy longer than this is a refill, not a change of holder (a hand-over's gap is
    /// a stop and an add, well below the lease).
    pub refill_gap: Duration,
    vacant_since: BTreeMap<LeaseKey, Duration>,
    /// (h) yes-answers given: (key, ballot, Accept rather than Prepare) → (acceptor node, in quarantine then).
    answers: HashMap<(LeaseKey, Ballot, bool), Vec<(usize, bool)>>,
}

fn violation(invariant: &'static str, at: Duration, detail: String) -> Violation {
    Violation { invariant, at, detail }
}

impl Checker {
    /// Records acceptor `acceptor`'s accept.
    pub fn accepted(
        &mut self,
        key: LeaseKey,
        ballot: Ballot,
        (proposer, acceptor): (usize, usize),
        at: Duration,
        until: Duration,
    ) {
        self.accepts.entry((key, ballot, proposer)).or_default().push((acceptor, at, until));
    }

    /// (f) An acceptor that crashed enforces none of its exclusions any more (its quarantine stands in for them,
    /// judged by (h)). Forgetting them matters for a ballot its own proposer reuses after a failed write: the
    /// Accept-only renewal's own vote is taken before the write, and only by the acceptor that dies with it.
    pub fn acceptor_crashed(&mut self, acceptor: usize) {
        for list in self.accepts.values_mut() {
            list.retain(|(a, _, _)| *a != acceptor);
        }
    }

    /// (h) Records a yes-answer of node `node`'s acceptor, and whether it was quarantined (world truth).
    pub fn answered(&mut self, key: LeaseKey, ballot: Ballot, accept: bool, node: usize, quarantined: bool) {
        self.answers.entry((key, ballot, accept)).or_default().push((node, quarantined));
    }

    /// (h) Whether `node` answered yes to this ballot, and whether only while quarantined.
    pub fn answer(&self, key: LeaseKey, ballot: Ballot, accept: bool, node: usize) -> (bool, bool) {
        let mine = self.answers.get(&(key, ballot, accept)).into_iter().flatten().filter(|(n, _)| *n == node);
        mine.fold((false, true), |(_, all_q), (_, q)| (true, all_q && *q))
    }

    /// (g) no ballot is reused across restarts.
    pub fn prepared(&mut self, now: Duration, node: usize, ballot: Ballot, incarnation: u64) -> Result<(), Violation> {
        // Per node: two nodes that share a UUID (a clone) do draw equal ballots; (g) is about one node's lives.
        match self.prepared.insert((node, ballot), incarnation) {
            Some(prev) if prev != incarnation => Err(violation(
                "(g) ballot reused",
                now,
                format!("round {} used in incarnations {prev} and {incarnation}", ballot.round),
            )),
            _ => Ok(()),
        }
    }

    /// (f) the holder's real fence time comes before every acceptor's real exclusion end for this ballot
    /// (accepts since `since`: an adopted ballot was accepted again after the holder's restart).
    pub fn lease(
        &self,
        now: Duration,
        key: LeaseKey,
        (ballot, holder): (Ballot, usize),
        since: Duration,
        fence_real: Duration,
    ) -> Result<(), Violation> {
        for (_, at, until) in self.accepts.get(&(key, ballot, holder)).into_iter().flatten() {
            if *at >= since && fence_real >= *until {
                return Err(violation(
                    "(f) fence after exclusion end",
                    now,
                    format!("{key} round {}: fence at {fence_real:?}, exclusion ends {until:?}", ballot.round),
                ));
            }
        }
        Ok(())
    }

    /// (a) at this instant no address is held by two nodes, and (i) none under two lease keys (both absolute under
    /// strict; otherwise a hung or crashed agent's stale address may overlap); also tracks holder changes per key
    /// for (b), (c), (k).
    pub fn holders<'a>(
        &mut self,
        now: Duration,
        kernels: impl Iterator<Item = &'a mut Kernel>,
    ) -> Result<(), Violation> {
        let mut by_addr: BTreeMap<IpAddr, Vec<(usize, LeaseKey, bool)>> = BTreeMap::new();
        let mut by_key: BTreeMap<LeaseKey, BTreeMap<usize, bool>> = BTreeMap::new();
        for (i, k) in kernels.enumerate() {
            k.retain(|_, a| a.expires > now);
            for (addr, a) in k.iter() {
                by_addr.entry(*addr).or_default().push((i, a.key, a.stale));
                let stale = by_key.entry(a.key).or_default().entry(i).or_insert(true);
                *stale = *stale && a.stale;
            }
        }
        for (addr, hs) in by_addr.iter().filter(|(_, hs)| hs.len() > 1 && self.majority) {
            if self.strict || hs.iter().filter(|(_, _, stale)| !stale).count() > 1 {
                let keys: std::collections::BTreeSet<LeaseKey> = hs.iter().map(|(_, k, _)| *k).collect();
                let inv = if keys.len() > 1 { "(i) one address under two lease keys" } else { "(a) two holders" };
                return Err(violation(inv, now, format!("{addr} held by (node, key, stale) {hs:?}")));
            }
            self.stale_overlaps += 1;
        }
        let keys: Vec<LeaseKey> = self.holder.keys().copied().chain(by_key.keys().copied()).collect();
        for key in keys {
            let hs: Vec<(usize, bool)> =
                by_key.get(&key).map(|m| m.iter().map(|(i, s)| (*i, *s)).collect()).unwrap_or_default();
            let live: Vec<usize> = hs.iter().filter(|(_, s)| !s).map(|(i, _)| *i).collect();
            let unique = match (live.as_slice(), hs.as_slice()) {
                ([one], _) => Some(*one),
                ([], [(one, _)]) => Some(*one),
                _ => None,
            };
            if let Some(h) = unique {
                let gap = self.vacant_since.remove(&key).map(|t| now - t).unwrap_or_default();
                if let Some(prev) = self.last_holder.insert(key, h)
                    && prev != h
                    && gap < self.refill_gap
                {
                    self.changes.push((now, key, prev, h));
                }
            } else if hs.is_empty() {
                self.vacant_since.entry(key).or_insert(now);
            }
            self.holder.insert(key, unique);
        }
        Ok(())
    }
}
