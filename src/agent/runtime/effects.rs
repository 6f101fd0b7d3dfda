//! Carrying out the plan: each effect runs in its own task with its own time limit and comes back as a
//! [`Done`] value; the member is `Busy` until then, so the planner never doubles an action.

use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{Agent, Msg, RETRY};
use crate::agent::plan::{Disposition, Effect, Member, Observed, plan};
use crate::manifest::model::{Announce, Resource, Service};
use crate::manifest::values::Name;
use crate::proto::Input;
use crate::sys::clock::LeaseClock;
use crate::sys::net::{self, FloatingAddr, Lifetime, Netlink, ProbeResult, Renewal, format_mac};
use crate::sys::service::{self, Action, Outcome, ProcessExit};

/// Stale holders' addresses expire by this much after the lease (DESIGN.md §4.6: kernel expiry is coarse).
const KERNEL_EXPIRY_SLACK: Duration = Duration::from_millis(1250);

/// The result of an effect.
#[derive(Debug)]
pub(crate) enum Done {
    /// An address was added (or not).
    Added(Name, Result<(), String>),
    /// An address was removed (or not).
    Removed(Name, Result<(), String>),
    /// A lifetime renewal finished.
    Renewed(Name, Result<Renewal, String>),
    /// A service action finished.
    Service(Name, Action, Outcome),
    /// The tear-down of a member that left the config finished (or not).
    Retired(Name, Result<(), String>),
}

impl Agent {
    /// The generation of the next removal of `ip` (renewals spawned before it are skipped).
    pub(super) fn next_removal(&mut self, ip: std::net::IpAddr) -> u64 {
        let g = self.removal_generation.entry(ip).or_insert(0);
        *g += 1;
        *g
    }

    pub(super) fn busy(&self, member: &Name) -> bool {
        self.observed.get(member) == Some(&Observed::Busy)
            || self.cooldown.get(member).is_some_and(|t| *t > Instant::now())
    }

    fn effective(&self, member: &Name) -> Observed {
        if self.busy(member) { Observed::Busy } else { self.observed.get(member).copied().unwrap_or(Observed::Busy) }
    }

    /// Plans every group from scratch and starts what is not running yet.
    pub(super) fn reconcile(&mut self) {
        self.reconcile_retired();
        // The config is shared, not copied: cloning every group on every pass cost more than planning them.
        let state = std::sync::Arc::clone(&self.state);
        for group in state.groups.values() {
            let disposition = self.disposition(&group.name);
            let members = Member::zip(group, |n| self.effective(n));
            for effect in plan(&group.name, disposition, &members) {
                if self.sweeping() && matches!(effect, Effect::AddAddress(_) | Effect::Start(_)) {
                    continue; // §4.1: left-overs of an earlier run go first
                }
                self.execute(&group.name, disposition, effect, &group.members);
            }
        }
    }

    fn execute(&mut self, group: &Name, disposition: Disposition, effect: Effect, members: &[Resource]) {
        let service = |name: &Name| {
            members.iter().find_map(|m| match m {
                Resource::Service(s) if s.name == *name => Some(s.clone()),
                _ => None,
            })
        };
        match effect {
            Effect::AddAddress(name) => self.spawn_add(group, &name),
            Effect::RemoveAddress(name) => self.spawn_remove(&name),
            Effect::Start(name) => {
                if let Some(s) = service(&name) {
                    self.spawn_service(s, Action::Start);
                }
            }
            Effect::Stop(name) => {
                if let Some(s) = service(&name) {
                    self.spawn_service(s, Action::Stop);
                }
            }
            Effect::Stopped(g) => {
                if disposition == Disposition::HandOver {
                    info!(group = %g, "members stopped: releasing the lease");
                    self.node.handle(LeaseClock::read(), Input::Stopped(g.clone()));
                    self.set_disposition(&g, Disposition::Elsewhere);
                }
            }
            Effect::StuckStopping(name) => {
                if self.stuck.insert(name.clone()) {
                    error!(member = %name, "could not be stopped and may still run; its addresses stay removed, retrying");
                }
                if let Some(s) = service(&name) {
                    self.spawn_service(s, Action::Stop);
                    self.cooldown.insert(name, Instant::now() + RETRY * 5);
                }
            }
        }
    }

    fn spawn_add(&mut self, group: &Name, name: &Name) {
        let (Some((addr, ip)), Some(_)) = (self.floating_addr(name), self.deadlines.get(group)) else {
            return;
        };
        if !self.covered(group, addr.address.addr()) {
            // §4.3: an address the config just added to a held group waits until its own lease key is granted
            // (another node may still hold it under the old config); the renewal that grants it wakes us again.
            return;
        }
        self.observed.insert(name.clone(), Observed::Busy);
        // §4.11: no probe after a hand-over whose Release confirmed the address is gone (a move costs no probe).
        let probe_wait = if self.no_probe.contains(group) { Duration::ZERO } else { ip.announce.probe_wait };
        let (nl, tx, name) = (self.netlink.clone(), self.tx.clone(), name.clone());
        let lease = (self.deadlines.clone(), group.clone());
        tokio::spawn(async move {
            let result = add_address(&nl, &addr, probe_wait, lease).await;
            let _ = tx.send(Msg::Done(Done::Added(name, result))).await;
        });
    }

    fn spawn_remove(&mut self, name: &Name) {
        let Some((addr, _)) = self.floating_addr(name) else { return };
        if let Some(task) = self.announcers.remove(name) {
            task.abort();
        }
        self.observed.insert(name.clone(), Observed::Busy);
        let (tx, name) = (self.tx.clone(), name.clone());
        let removal = self.removal(addr);
        tokio::spawn(async move {
            let result = removal.await;
            let _ = tx.send(Msg::Done(Done::Removed(name, result))).await;
        });
    }

    /// Deletes `addr` so that no renewal spawned before this call runs after the delete: its RTM_NEWADDR would
    /// re-create the address (IPv4 creates even without NLM_F_CREATE) for a whole lifetime after the lease was
    /// given up. The removal's generation is published under the lock that renewals check.
    pub(super) fn removal(
        &mut self,
        addr: FloatingAddr,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let (nl, removals) = (self.netlink.clone(), self.removals.clone());
        let generation = self.next_removal(addr.address.addr());
        async move {
            let slot = removals.slot(addr.address.addr());
            let mut removed = slot.lock().await;
            *removed = generation;
            nl.remove(&addr).await.map(|_| ()).map_err(|e| e.to_string())
        }
    }

    pub(super) fn spawn_service(&mut self, service: Service, action: Action) {
        if action == Action::Start
            && let Err(e) = self.record_start(&service)
        {
            error!(service = %service.name, "not started: cannot record it in the state directory: {e}");
            self.remember_error(format!("{}: not started, cannot record it ({e})", service.name));
            self.retry_later(service.name, Observed::Failed);
            return;
        }
        self.observed.insert(service.name.clone(), Observed::Busy);
        let (ctx, tx) = (self.drivers.clone(), self.tx.clone());
        tokio::spawn(async move {
            let outcome = service::run(action, &service, &ctx).await;
            let _ = tx.send(Msg::Done(Done::Service(service.name.clone(), action, outcome))).await;
        });
    }

    pub(super) fn spawn_status(&mut self, service: Service) {
        self.spawn_service(service, Action::Status);
    }

    /// Renews the kernel lifetime of the group's addresses on the dedicated netlink socket (DESIGN.md §4.6).
    pub(super) fn renew_addresses(&mut self, group: &Name, deadline: Duration) {
        let Some(g) = self.state.groups.get(group) else { return };
        let ips: Vec<Name> = g.floating_ips().map(|ip| ip.name.clone()).collect();
        for name in ips {
            if self.observed.get(&name) != Some(&Observed::Up) {
                continue;
            }
            let Some((addr, _)) = self.floating_addr(&name) else { continue };
            if !self.covered(group, addr.address.addr()) {
                continue;
            }
            let (nl, tx, removals) = (self.renewals.clone(), self.tx.clone(), self.removals.clone());
            let seen = self.removal_generation.get(&addr.address.addr()).copied().unwrap_or(0);
            tokio::spawn(async move {
                // Skipped if a removal was spawned after this renewal (see `spawn_remove`).
                let slot = removals.slot(addr.address.addr());
                let renewing = slot.lock().await;
                if *renewing > seen {
                    return;
                }
                let result = nl.renew(&addr, deadline, &LeaseClock).await.map_err(|e| e.to_string());
                drop(renewing);
                let _ = tx.send(Msg::Done(Done::Renewed(name, result))).await;
            });
        }
    }

    /// Whether the group's lease covers `address` (each address is its own lease key, §4.3).
    fn covered(&self, group: &Name, address: std::net::IpAddr) -> bool {
        self.covers.get(group).is_some_and(|c| c.contains(&address))
    }

    pub(super) fn cancel_announcements(&mut self, group: &Name) {
        let Some(g) = self.state.groups.get(group) else { return };
        for ip in g.floating_ips() {
            if let Some(task) = self.announcers.remove(&ip.name) {
                task.abort();
            }
        }
    }

    /// Announces the group's addresses again (a heal, a change of peers): clients must learn the keeper's MAC.
    pub(super) fn reannounce(&mut self, group: &Name) {
        let Some(g) = self.state.groups.get(group).cloned() else { return };
        for ip in g.floating_ips() {
            if self.observed.get(&ip.name) == Some(&Observed::Up) {
                self.start_announcer(&ip.name, ip.announce);
            }
        }
    }

    fn start_announcer(&mut self, name: &Name, schedule: Announce) {
        let Some((addr, _)) = self.floating_addr(name) else { return };
        let (nl, lease) = (self.netlink.clone(), self.node.config().lease);
        let task = tokio::spawn(announce(nl, addr, schedule, lease + KERNEL_EXPIRY_SLACK));
        if let Some(old) = self.announcers.insert(name.clone(), task) {
            old.abort();
        }
    }

    pub(super) fn on_done(&mut self, done: Done) {
        match done {
            Done::Added(name, Ok(())) => {
                info!(address = %name, "floating address added");
                self.observed.insert(name.clone(), Observed::Up);
                if let Some((_, ip)) = self.floating_addr(&name) {
                    self.start_announcer(&name, ip.announce);
                }
            }
            Done::Added(name, Err(e)) => {
                warn!(address = %name, "add failed: {e}");
                self.retry_later(name, Observed::Down);
            }
            Done::Removed(name, Ok(())) => {
                info!(address = %name, "floating address removed");
                self.observed.insert(name, Observed::Down);
            }
            Done::Removed(name, Err(e)) => {
                error!(address = %name, "remove failed: {e}");
                self.retry_later(name, Observed::Up);
            }
            Done::Renewed(name, Ok(Renewal::Fenced { .. })) => {
                warn!(address = %name, "renewal came after the deadline: address deleted at once");
                self.observed.insert(name, Observed::Down);
            }
            Done::Renewed(_, Ok(Renewal::Renewed(_))) => {}
            Done::Renewed(name, Err(e)) => warn!(address = %name, "lifetime renewal failed: {e}"),
            Done::Service(name, action, outcome) => self.on_service(name, action, outcome),
            Done::Retired(name, result) => self.on_retired(name, result),
        }
    }

    fn retry_later(&mut self, name: Name, observed: Observed) {
        self.observed.insert(name.clone(), observed);
        self.cooldown.insert(name, Instant::now() + RETRY);
    }

    fn on_service(&mut self, name: Name, action: Action, outcome: Outcome) {
        let interval = self.service(&name).map_or(Duration::from_secs(10), |s| s.monitor.interval);
        let observed = match (action, &outcome) {
            (Action::Stop, o) if o.is_stopped() => {
                self.stuck.remove(&name);
                self.forget_started(&name);
                info!(service = %name, "stopped ({outcome})");
                Observed::Down
            }
            (Action::Stop, _) => {
                error!(service = %name, "stop failed: {outcome}; it may still run");
                self.remember_error(format!("{name}: stop failed ({outcome}); it may still run"));
                Observed::StopFailed
            }
            (_, Outcome::Running) => {
                if action == Action::Start {
                    info!(service = %name, "started");
                }
                // Found running (at start-up, or new in the config): recorded too, so that one started by an agent
                // that kept no records (an upgrade) is stopped if its group goes while the agent is down.
                if action == Action::Status
                    && let Some(service) = self.service(&name).cloned()
                    && let Err(e) = self.record_start(&service)
                {
                    warn!(service = %name, "cannot record a running member: {e}");
                }
                self.next_monitor.insert(name.clone(), Instant::now() + interval);
                Observed::Up
            }
            (Action::Status, Outcome::Stopped) => Observed::Down,
            (Action::Start, _) => {
                warn!(service = %name, "start failed: {outcome}");
                self.remember_error(format!("{name}: start failed ({outcome})"));
                self.count_failure(&name);
                self.cooldown.insert(name.clone(), Instant::now() + RETRY);
                Observed::Failed
            }
            _ => {
                warn!(service = %name, "monitor failed: {outcome}; restarting it in place");
                self.count_failure(&name);
                Observed::Failed
            }
        };
        self.observed.insert(name, observed);
    }

    pub(super) fn on_exit(&mut self, exit: ProcessExit) {
        if self.observed.get(&exit.service) == Some(&Observed::Up) {
            warn!(service = %exit.service, pid = exit.pid, status = exit.status, "process exited by itself; restarting it in place");
            self.count_failure(&exit.service);
            self.observed.insert(exit.service, Observed::Failed);
        }
    }

    /// Counts a failure here and reports it to the core, which replicates it: a group over its
    /// migration threshold on this node is placed elsewhere (DESIGN.md §4.9).
    fn count_failure(&mut self, name: &Name) {
        let now = Instant::now();
        self.fails.record(name, now);
        let Some(group) = self.state.groups.values().find(|g| g.members.iter().any(|m| m.name() == name)) else {
            return;
        };
        let (group_name, threshold) = (group.name.clone(), group.migration_threshold);
        let over = self.fails.over_threshold(group, now).is_some();
        self.node.handle(LeaseClock::read(), Input::MemberFailed(group_name.clone()));
        if over {
            error!(group = %group_name, threshold, "migration threshold reached here: the group moves to a peer");
            self.remember_error(format!("{group_name}: {name} failed {threshold} times here (migration threshold)"));
        }
    }

    pub(super) fn service(&self, name: &Name) -> Option<&Service> {
        self.state.groups.values().flat_map(|g| &g.members).find_map(|m| match m {
            Resource::Service(s) if s.name == *name => Some(s),
            _ => None,
        })
    }

    /// Starts due monitors of the services of groups this node runs.
    pub(super) fn monitor(&mut self) {
        let now = Instant::now();
        let due: Vec<Service> = self
            .state
            .groups
            .values()
            .filter(|g| matches!(self.dispositions.get(&g.name), Some(Disposition::Hold)))
            .flat_map(|g| g.members.iter())
            .filter_map(|m| match m {
                Resource::Service(s) if self.effective(&s.name) == Observed::Up => Some(s.clone()),
                _ => None,
            })
            .filter(|s| self.next_monitor.get(&s.name).is_none_or(|t| *t <= now))
            .collect();
        for s in due {
            self.next_monitor.insert(s.name.clone(), now + s.monitor.interval);
            self.spawn_service(s, Action::Monitor);
        }
    }
}

/// Per address, the generation of its last removal, each behind a lock of its own that a renewal holds across
/// its netlink request and a removal across its delete: a renewal spawned before a removal can never re-create
/// the deleted address, and renewals of different addresses still run side by side (one lock for all of them
/// made a hundred addresses' renewals queue behind each other for longer than a lease).
#[derive(Debug, Clone, Default)]
pub(crate) struct Removals(
    std::sync::Arc<
        std::sync::Mutex<std::collections::BTreeMap<std::net::IpAddr, std::sync::Arc<tokio::sync::Mutex<u64>>>>,
    >,
);

impl Removals {
    fn slot(&self, address: std::net::IpAddr) -> std::sync::Arc<tokio::sync::Mutex<u64>> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(address).or_default().clone()
    }
}

/// Each held group's lease deadline, shared with the address adds in flight. An add reads it when it adds (after
/// its probe), not when it was spawned: a hundred groups acquired at once keep the netlink socket busy for longer
/// than a lease, and an add that waited behind the others must use the lease as renewed meanwhile — or not be
/// made at all when the lease was lost meanwhile.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deadlines(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<Name, Duration>>>);

impl Deadlines {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<Name, Duration>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The group's deadline while it is held.
    pub(crate) fn get(&self, group: &Name) -> Option<Duration> {
        self.map().get(group).copied()
    }

    /// A new or renewed lease.
    pub(crate) fn insert(&self, group: Name, deadline: Duration) {
        self.map().insert(group, deadline);
    }

    /// The group is no longer held here.
    pub(crate) fn remove(&self, group: &Name) {
        self.map().remove(group);
    }
}

/// Probes (bounded), then adds the address with a lifetime up to the group's lease deadline as it is then.
async fn add_address(
    nl: &Netlink,
    addr: &FloatingAddr,
    probe_wait: Duration,
    (deadlines, group): (Deadlines, Name),
) -> Result<(), String> {
    let ip = addr.address.addr();
    if !probe_wait.is_zero() {
        match net::probe(nl, &addr.ifname, ip, probe_wait).await {
            // RFC 5227 §2.1.1 would back off; the lease says this node may hold it, so it proceeds (§4.11).
            Ok(ProbeResult::Conflict { mac }) => {
                warn!(address = %ip, mac = format_mac(mac), "address conflict: another host answered the probe; proceeding under the lease")
            }
            Ok(ProbeResult::Clear) => {}
            Err(e) => warn!(address = %ip, "probe failed: {e}; proceeding"),
        }
    }
    let deadline = deadlines.get(&group).ok_or("the lease was lost before the add")?;
    let lifetime = Lifetime::until(deadline, LeaseClock::read()).ok_or("the lease deadline passed before the add")?;
    nl.add(addr, lifetime).await.map_err(|e| e.to_string())?;
    // The add's interface look-up and sysctl ran after the clock read: set the lifetime again if the kernel may
    // count it from too late (the renewal path bounds it, or deletes the address).
    if lifetime.overshoots(LeaseClock::read(), deadline) {
        match nl.renew(addr, deadline, &LeaseClock).await.map_err(|e| e.to_string())? {
            Renewal::Renewed(_) => {}
            Renewal::Fenced { .. } => return Err("the lease deadline passed while the address was added".into()),
        }
    }
    Ok(())
}

/// The announcement schedule of DESIGN.md §4.11: `count` gratuitous ARPs (or NAs) `interval` apart, one more
/// after a stale holder's lifetime has run out, then a slow refresh. Aborted when the address goes.
async fn announce(nl: std::sync::Arc<Netlink>, addr: FloatingAddr, schedule: Announce, stale_after: Duration) {
    let ip = addr.address.addr();
    let started = tokio::time::Instant::now();
    for i in 0..schedule.count {
        if let Err(e) = net::announce(&nl, &addr.ifname, ip).await {
            warn!(address = %ip, "announce: {e}");
        }
        if i + 1 < schedule.count {
            tokio::time::sleep(schedule.interval).await;
        }
    }
    if schedule.count > 0 {
        tokio::time::sleep_until(started + stale_after).await;
        let _ = net::announce(&nl, &addr.ifname, ip).await;
    }
    let Some(refresh) = schedule.refresh else { return };
    loop {
        tokio::time::sleep(refresh).await;
        let _ = net::announce(&nl, &addr.ifname, ip).await;
    }
}
