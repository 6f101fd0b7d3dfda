//! The planner: from what a group should be on this node and what is observed, the next effects to run.
//!
//! Pure and level-triggered (STYLE.md): it is called again after every change and every resync, never
//! remembers what it asked for, and asks only for steps whose preconditions hold now. A group's members start
//! one at a time in order and stop in reverse order, as a Pacemaker group does (order + colocation); a member
//! that is down forces the members after it down first, so they restart behind it. Fencing is different on
//! purpose: every address goes first, at once, and services stop only once no address is left (DESIGN.md
//! §4.1, §4.6: clients must stop reaching the node before anything else).

use std::fmt;

use crate::manifest::model::{Group, Resource};
use crate::manifest::values::Name;

/// What the ownership protocol says about one group on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// This node holds a confirmed lease: run every member, in order.
    Hold,
    /// Restarted within a persisted lease, not yet confirmed (DESIGN.md §4.7): keep what runs, add and start
    /// nothing.
    Adopt,
    /// Graceful hand-over: stop members in reverse order, then the group can be released.
    HandOver,
    /// The lease is lost or about to be: addresses first, then services.
    Fence,
    /// Not this node's group: nothing of it may run here.
    Elsewhere,
}

/// The observed state of one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Address configured / service running and healthy.
    Up,
    /// Address absent / service stopped.
    Down,
    /// A service whose monitor failed: it must be stopped before it is started again.
    Failed,
    /// An action on it is still running: wait for its result.
    Busy,
    /// A stop failed or timed out: it may still run. Never treated as stopped (DESIGN.md §4.1).
    StopFailed,
}

/// One step for the agent to run; its result comes back as a new observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Add a floating address (with its lease lifetime) and announce it.
    AddAddress(Name),
    /// Remove a floating address.
    RemoveAddress(Name),
    /// Start a service.
    Start(Name),
    /// Stop a service.
    Stop(Name),
    /// Everything of the group is down on this node: the hand-over may release the lease.
    Stopped(Name),
    /// A member could not be stopped: the group stays fenced (addresses gone) and this is reported loudly.
    StuckStopping(Name),
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::AddAddress(n) => write!(f, "add {n}"),
            Effect::RemoveAddress(n) => write!(f, "remove {n}"),
            Effect::Start(n) => write!(f, "start {n}"),
            Effect::Stop(n) => write!(f, "stop {n}"),
            Effect::Stopped(n) => write!(f, "stopped {n}"),
            Effect::StuckStopping(n) => write!(f, "stuck {n}"),
        }
    }
}

/// A member with what is observed of it.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// Its name.
    pub name: &'a Name,
    /// Whether it is a floating address (else a service).
    pub is_address: bool,
    /// What is observed.
    pub observed: Observed,
}

impl<'a> Member<'a> {
    /// Pairs a group's members with observations, in member order.
    pub fn zip(group: &'a Group, observed: impl Fn(&Name) -> Observed) -> Vec<Member<'a>> {
        group
            .members
            .iter()
            .map(|m| Member {
                name: m.name(),
                is_address: matches!(m, Resource::FloatingIp(_)),
                observed: observed(m.name()),
            })
            .collect()
    }

    fn stop(&self) -> Effect {
        if self.is_address { Effect::RemoveAddress(self.name.clone()) } else { Effect::Stop(self.name.clone()) }
    }

    fn start(&self) -> Effect {
        if self.is_address { Effect::AddAddress(self.name.clone()) } else { Effect::Start(self.name.clone()) }
    }

    /// Something of it may be running: up, failed, busy, or a stop that did not succeed.
    fn may_run(&self) -> bool {
        self.observed != Observed::Down
    }
}

/// The next effects for one group (`group` names it in `Stopped`).
pub fn plan(group: &Name, disposition: Disposition, members: &[Member]) -> Vec<Effect> {
    match disposition {
        Disposition::Hold => hold(members),
        Disposition::Adopt => Vec::new(),
        Disposition::HandOver => stop_in_reverse(group, members),
        // A group held elsewhere must not have its address here either: the fencing order is the safe one.
        Disposition::Fence | Disposition::Elsewhere => fence(group, members),
    }
}

fn hold(members: &[Member]) -> Vec<Effect> {
    if members.iter().any(|m| m.observed == Observed::Busy) {
        return Vec::new();
    }
    if let Some(stuck) = members.iter().find(|m| m.observed == Observed::StopFailed) {
        return vec![Effect::StuckStopping(stuck.name.clone())];
    }
    // The first member that is not up; everything before it is up.
    let Some(first_down) = members.iter().position(|m| m.observed != Observed::Up) else { return Vec::new() };
    // Members after it must be down before it starts (they depend on it), last one first.
    if let Some(later) = members[first_down + 1..].iter().rev().find(|m| m.may_run()) {
        return vec![later.stop()];
    }
    let member = &members[first_down];
    match member.observed {
        Observed::Failed => vec![member.stop()],
        _ => vec![member.start()],
    }
}

fn stop_in_reverse(group: &Name, members: &[Member]) -> Vec<Effect> {
    if members.iter().any(|m| m.observed == Observed::Busy) {
        return Vec::new();
    }
    match members.iter().rev().find(|m| m.may_run()) {
        None => vec![Effect::Stopped(group.clone())],
        Some(m) if m.observed == Observed::StopFailed => fence(group, members),
        Some(m) => vec![m.stop()],
    }
}

fn fence(group: &Name, members: &[Member]) -> Vec<Effect> {
    let live_addresses: Vec<&Member> = members.iter().filter(|m| m.is_address && m.may_run()).collect();
    if !live_addresses.is_empty() {
        // Addresses first, all at once; services wait until no address is left.
        return live_addresses.iter().filter(|m| m.observed != Observed::Busy).map(|m| m.stop()).collect();
    }
    // Then every service at once, as fast as they stop (no ordering once clients cannot reach the node).
    let effects: Vec<Effect> = members
        .iter()
        .rev()
        .filter_map(|m| match m.observed {
            Observed::Up | Observed::Failed => Some(m.stop()),
            Observed::StopFailed => Some(Effect::StuckStopping(m.name.clone())),
            Observed::Busy | Observed::Down => None,
        })
        .collect();
    if effects.is_empty() && members.iter().all(|m| m.observed == Observed::Down) {
        return vec![Effect::Stopped(group.clone())];
    }
    effects
}
