//! What the protocol core and the kernel tell the agent: lease events become dispositions, persistence
//! happens before any datagram is sent, and addresses seen or lost update the observations.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{Agent, AgentError, BACKSTOP, RESYNC};
use crate::agent::plan::{Disposition, Observed};
use crate::manifest::model::Resource;
use crate::manifest::values::Name;
use crate::proto::Event;
use crate::sys::clock::LeaseClock;
use crate::sys::net::FloatingAddr;
use crate::sys::net::NetEvent;

impl Agent {
    /// Drains the core: events first, then datagrams. Every `Persist` of one drain carries the whole state, so
    /// only the last is written — after the other events (none of which sends anything) and before any datagram,
    /// which is all the core asks (with one renewal per group, one write per drain instead of one per group).
    /// Returns whether the core said anything but `Persist` (which the plan does not read).
    pub(super) fn drain(&mut self) -> Result<bool, AgentError> {
        let mut persist = None;
        let mut told = false;
        while let Some(event) = self.node.poll_event() {
            match event {
                Event::Persist(p) => persist = Some(p),
                event => {
                    told = true;
                    self.on_event(event)?;
                }
            }
        }
        if let Some(p) = persist {
            self.store.save(&self.dir, &p).map_err(|e| {
                error!("cannot persist protocol state: {e}; stopping before anything unsafe is sent");
                e
            })?;
        }
        while let Some(t) = self.node.poll_transmit() {
            // A full socket buffer drops the datagram: the protocol retransmits within the round.
            if let Err(e) = self.socket.try_send_to(&t.bytes, SocketAddr::new(t.to, self.port)) {
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    warn!(to = %t.to, "send: {e}");
                }
            }
        }
        Ok(told)
    }

    fn on_event(&mut self, event: Event) -> Result<(), AgentError> {
        match event {
            // `drain` writes the last one of each drain.
            Event::Persist(_) => {}
            Event::PeerState { node, state } => {
                info!(peer = %node, ?state, "peer");
                if state == crate::proto::PeerState::Alive {
                    // §4.8/§4.11: announce again on every change of peers. After a partition heals the peer that
                    // yields may have been the last to announce, so clients still send to its MAC; the keeper
                    // does not always see a conflict (the other side may yield first), so it re-announces here.
                    let held: Vec<Name> = self
                        .dispositions
                        .iter()
                        .filter(|(_, d)| **d == Disposition::Hold)
                        .map(|(g, _)| g.clone())
                        .collect();
                    for group in held {
                        self.reannounce(&group);
                    }
                }
            }
            Event::ConfigDrift { node, digest } => {
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                warn!(peer = %node, digest = hex, "peer runs a different config");
            }
            Event::IdentityClash { peer, with } => {
                let with = match with {
                    crate::proto::Clash::Me => "this node".to_string(),
                    crate::proto::Clash::Peer(n) => format!("peer {n}"),
                };
                error!(
                    peer = %peer,
                    "peer claims the UUID of {with} (a cloned state directory); its datagrams are ignored. Fix: \
                     remove node-uuid from the state directory (default /var/lib/hactl/node-uuid) on the cloned \
                     node and restart its agent"
                );
            }
            Event::AuthFailed { node } => warn!(peer = %node, "datagram failed authentication (key mismatch?)"),
            Event::Acquired { group, covers, deadline, ballot, handed, .. } => {
                info!(group = %group, round = ballot.round, handed, "lease acquired");
                self.covers.insert(group.clone(), covers.into_iter().collect());
                if handed {
                    self.no_probe.insert(group.clone());
                } else {
                    self.no_probe.remove(&group);
                }
                self.rounds.insert(group.clone(), ballot.round);
                self.hold(group, deadline);
            }
            Event::Adopted { group, covers, deadline, ballot, .. } => {
                info!(group = %group, round = ballot.round, "lease adopted after restart");
                self.covers.insert(group.clone(), covers.into_iter().collect());
                self.rounds.insert(group.clone(), ballot.round);
                self.hold(group, deadline);
            }
            Event::Renewed { group, covers, deadline, .. } => {
                self.covers.insert(group.clone(), covers.into_iter().collect());
                self.deadlines.insert(group.clone(), deadline);
                self.renew_addresses(&group, deadline);
            }
            Event::MustFence { group, .. } => {
                warn!(group = %group, "lease not renewed in time: fencing (addresses first)");
                self.set_disposition(&group, Disposition::Fence);
            }
            Event::MustStop { group, to } => {
                match to {
                    Some(to) => info!(group = %group, to = %to, "handing over: stopping members in reverse order"),
                    None => warn!(group = %group, "leaving and no other node can take the group now: stopping it"),
                }
                self.set_disposition(&group, Disposition::HandOver);
            }
            Event::Left => {
                info!("every group handed over; leaving");
                self.left = true;
            }
            Event::Released { group, .. } => {
                info!(group = %group, "lease released");
                self.set_disposition(&group, Disposition::Elsewhere);
            }
            Event::Conflict { group, with, yielded } => {
                warn!(group = %group, with = %with, yielded, "split brain seen (policy ignore)");
                if yielded {
                    self.set_disposition(&group, Disposition::Elsewhere);
                } else {
                    self.reannounce(&group);
                }
            }
        }
        Ok(())
    }

    fn hold(&mut self, group: Name, deadline: Duration) {
        self.adopt_until.remove(&group);
        self.deadlines.insert(group.clone(), deadline);
        self.set_disposition(&group, Disposition::Hold);
    }

    pub(super) fn set_disposition(&mut self, group: &Name, to: Disposition) {
        if to != Disposition::Hold {
            self.covers.remove(group);
            self.no_probe.remove(group);
            self.deadlines.remove(group);
            self.cancel_announcements(group);
        }
        if self.leaving && to == Disposition::Hold {
            return;
        }
        self.dispositions.insert(group.clone(), to);
    }

    /// The disposition in force for `group` now; adoption gives way to fencing at its deadline.
    pub(super) fn disposition(&mut self, group: &Name) -> Disposition {
        if let Some(until) = self.adopt_until.get(group).copied() {
            if LeaseClock::read() < until {
                return Disposition::Adopt;
            }
            warn!(group = %group, "adoption not confirmed before the persisted deadline: fencing");
            self.adopt_until.remove(group);
            self.dispositions.insert(group.clone(), Disposition::Fence);
        }
        self.dispositions.get(group).copied().unwrap_or(Disposition::Elsewhere)
    }

    /// Learns what runs at start-up: addresses on the interfaces, and each service's status.
    pub(super) async fn startup(&mut self) {
        self.sweep_leftovers();
        let groups: Vec<_> = self.state.groups.values().cloned().collect();
        for group in &groups {
            for member in &group.members {
                self.observed.insert(member.name().clone(), Observed::Busy);
            }
        }
        self.read_addresses().await;
        for group in &groups {
            for member in &group.members {
                // A left-over of the same name is stopped first; its tear-down asks the status afterwards.
                if let Resource::Service(service) = member
                    && !self.retired.contains_key(&service.name)
                {
                    self.spawn_status(service.clone());
                }
            }
        }
        let adopted: Vec<String> = self.adopt_until.keys().map(ToString::to_string).collect();
        if !adopted.is_empty() {
            info!(
                groups = adopted.join(","),
                "live leases from before the restart: adopting, adding nothing until confirmed"
            );
        }
    }

    /// Reads the kernel's addresses for every floating address of the config (start-up and resync).
    pub(super) async fn read_addresses(&mut self) {
        let ips: Vec<_> = self.state.groups.values().flat_map(|g| g.floating_ips().cloned()).collect();
        // One dump per interface, not per address: with a hundred addresses on one interface, a dump each kept
        // the agent's loop (and its heartbeats) waiting for seconds.
        let mut present: BTreeMap<String, Option<BTreeSet<IpAddr>>> = BTreeMap::new();
        for ip in &ips {
            if present.contains_key(&ip.interface.0) {
                continue;
            }
            let found = match self.netlink.addresses(&ip.interface.0).await {
                Ok(list) => Some(list.iter().map(|a| a.address.addr()).collect()),
                Err(e) => {
                    warn!("cannot read the addresses of {}: {e}", ip.interface.0);
                    None
                }
            };
            present.insert(ip.interface.0.clone(), found);
        }
        for ip in ips {
            if self.busy(&ip.name) && self.observed.get(&ip.name) != Some(&Observed::Busy) {
                continue;
            }
            let up =
                present.get(&ip.interface.0).and_then(Option::as_ref).is_some_and(|s| s.contains(&ip.address.addr()));
            self.observed.insert(ip.name.clone(), if up { Observed::Up } else { Observed::Down });
        }
    }

    /// The full look, at the backstop period or when asked for: manifests and key file again, kernel addresses
    /// again (events can be missed), stale failures.
    pub(super) async fn resync(&mut self) {
        self.next_resync = Instant::now() + BACKSTOP;
        self.next_tick = Instant::now() + RESYNC;
        self.rescan();
        self.read_addresses().await;
        self.expire_failures();
    }

    /// The cheap periodic checks: the key file only if its metadata changed (it may live outside the watched
    /// directory), the manifests only if the directory is not watched, stale failures.
    pub(super) fn tick(&mut self) {
        self.next_tick = Instant::now() + RESYNC;
        if self.watching {
            self.check_key_file();
        } else {
            self.rescan();
        }
        self.expire_failures();
    }

    fn expire_failures(&mut self) {
        let timeouts: BTreeMap<Name, Option<Duration>> = self
            .state
            .groups
            .values()
            .flat_map(|g| g.members.iter().map(move |m| (m.name().clone(), g.failure_timeout)))
            .collect();
        self.fails.expire(Instant::now(), |n| timeouts.get(n).copied().flatten());
    }

    /// Takes in what the kernel reported; false when it changes no observation (our own lifetime renewals
    /// come back as RTM_NEWADDR of an address that is up already, one per address and renewal).
    pub(super) fn on_net(&mut self, event: NetEvent) -> bool {
        let (address, present) = match &event {
            NetEvent::AddressAdded(a) => (a.address.addr(), true),
            NetEvent::AddressRemoved(a) => (a.address.addr(), false),
            NetEvent::Overrun => {
                warn!("netlink events were lost; re-reading addresses at the next resync");
                self.next_resync = Instant::now();
                return true;
            }
            _ => {
                // A link change: re-read everything soon (a link that went down flushes IPv6 addresses).
                self.next_resync = self.next_resync.min(Instant::now() + Duration::from_millis(50));
                return true;
            }
        };
        let Some(ip) =
            self.state.groups.values().flat_map(|g| g.floating_ips()).find(|ip| ip.address.addr() == address)
        else {
            return false;
        };
        let name = ip.name.clone();
        if self.busy(&name) {
            return false; // our own add/remove in flight: its result decides
        }
        let now = if present { Observed::Up } else { Observed::Down };
        let before = self.observed.insert(name.clone(), now);
        if before == Some(Observed::Up) && !present {
            warn!(address = %name, "floating address removed from outside; the plan repairs it if this node holds it");
        }
        before != Some(now)
    }

    /// Builds the kernel layer's view of a FloatingIP member.
    pub(super) fn floating_addr(&self, name: &Name) -> Option<(FloatingAddr, crate::manifest::model::FloatingIp)> {
        self.state
            .groups
            .values()
            .flat_map(|g| g.floating_ips())
            .find(|ip| ip.name == *name)
            .map(|ip| (FloatingAddr::from(ip), ip.clone()))
    }
}
