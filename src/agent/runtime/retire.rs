//! Members that left the config in force (a group removed from the manifests, a member dropped from a group, or a
//! member whose definition changed): their old definition is torn down here, addresses first and then services
//! (the fencing order, DESIGN.md §4.6), idempotently and retried until it succeeds (issue 4: "removing a group
//! stops it and releases its addresses"). A member of the new config with the same name waits (`Busy`) until its
//! old self is gone, so a changed service is stopped before its new definition starts. Services of one group
//! stop in reverse member order, as a hand-over stops them.
//!
//! The same queue stops what an earlier run of the agent started and the config it starts with no longer
//! defines identically (a group removed while the agent was down: DESIGN.md §4.1), from the records of
//! [`crate::agent::started`]; see [`Agent::sweep_leftovers`].

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::{error, info};

use super::effects::Done;
use super::{Agent, Msg, RETRY};
use crate::agent::plan::Observed;
use crate::manifest::DesiredState;
use crate::manifest::model::Resource;
use crate::manifest::values::Name;
use crate::sys::net::FloatingAddr;
use crate::sys::service::{self, Action};

/// Whether `new` is still the same thing on the host as `old`: the same address on the same interface with the
/// same label, or a service driven the same way. Announcement, timeout and monitor settings change in place.
fn same_instance(old: &Resource, new: &Resource) -> bool {
    match (old, new) {
        (Resource::FloatingIp(a), Resource::FloatingIp(b)) => FloatingAddr::from(a) == FloatingAddr::from(b),
        (Resource::Service(a), Resource::Service(b)) => a.driver == b.driver,
        _ => false,
    }
}

/// Every member of `state` by name, with its group and position.
fn members(state: &DesiredState) -> BTreeMap<&Name, (&Name, usize, &Resource)> {
    state
        .groups
        .values()
        .flat_map(|g| g.members.iter().enumerate().map(move |(i, m)| (m.name(), (&g.name, i, m))))
        .collect()
}

/// A member being torn down: its old definition, and where it stood (services stop in reverse order).
#[derive(Debug, Clone)]
pub(crate) struct Retired {
    /// The definition to tear down.
    pub resource: Resource,
    /// Its group then.
    pub group: Name,
    /// Its index in that group.
    pub position: usize,
}

impl Agent {
    /// Called before `new` replaces the config in force: what is gone or changed is queued for tear-down; what
    /// is new is looked at (service status now, addresses at the next resync, which is brought forward).
    /// Returns the services that are new under their name: their status is asked once the new config is in force.
    pub(super) fn retire_changed(&mut self, new: &DesiredState) -> Vec<crate::manifest::model::Service> {
        let old_state = self.state.clone();
        let (old, fresh) = (members(&old_state), members(new));
        for (name, (group, position, resource)) in &old {
            if !fresh.get(name).is_some_and(|(_, _, new)| same_instance(resource, new)) {
                info!(member = %name, "no longer in the config in force (or changed): tearing its old definition down");
                let retired = Retired { resource: (*resource).clone(), group: (*group).clone(), position: *position };
                self.retired.insert((*name).clone(), retired);
                self.observed.insert((*name).clone(), Observed::Busy);
            }
        }
        let mut look = Vec::new();
        for (name, (_, _, resource)) in &fresh {
            if old.get(name).is_some_and(|(_, _, was)| same_instance(was, resource)) {
                continue;
            }
            self.observed.insert((*name).clone(), Observed::Busy);
            if let Resource::Service(s) = resource
                && !self.retired.contains_key(*name)
            {
                look.push(s.clone());
            }
        }
        self.next_resync = Instant::now();
        look
    }

    /// Whether `r` may be torn down now: addresses at once; a service once no retired address is left and no
    /// later member of its group is still up (reverse order).
    fn retire_due(&self, r: &Retired) -> bool {
        if matches!(r.resource, Resource::FloatingIp(_)) {
            return true;
        }
        !self
            .retired
            .values()
            .any(|o| matches!(o.resource, Resource::FloatingIp(_)) || (o.group == r.group && o.position > r.position))
    }

    /// Starts the tear-down of retired members that is not in flight and is due (see `retire_due`).
    pub(super) fn reconcile_retired(&mut self) {
        let now = Instant::now();
        let due: Vec<(Name, Resource)> = self
            .retired
            .iter()
            .filter(|(n, r)| !self.retiring.contains(*n) && self.retire_due(r))
            .filter(|(n, _)| self.retire_after.get(*n).is_none_or(|t| *t <= now))
            .map(|(n, r)| (n.clone(), r.resource.clone()))
            .collect();
        for (name, resource) in due {
            self.retiring.insert(name.clone());
            let tx = self.tx.clone();
            match resource {
                Resource::FloatingIp(ip) => {
                    if let Some(task) = self.announcers.remove(&name) {
                        task.abort();
                    }
                    let removal = self.removal(FloatingAddr::from(&ip));
                    tokio::spawn(async move {
                        let result = removal.await;
                        let _ = tx.send(Msg::Done(Done::Retired(name, result))).await;
                    });
                }
                Resource::Service(s) => {
                    let ctx = self.drivers.clone();
                    tokio::spawn(async move {
                        let outcome = service::run(Action::Stop, &s, &ctx).await;
                        let result = if outcome.is_stopped() { Ok(()) } else { Err(outcome.to_string()) };
                        let _ = tx.send(Msg::Done(Done::Retired(s.name.clone(), result))).await;
                    });
                }
            }
        }
    }

    /// The result of one tear-down: done (the member of the new config, if any, is looked at afresh), or retried.
    pub(super) fn on_retired(&mut self, name: Name, result: Result<(), String>) {
        self.retiring.remove(&name);
        self.sweep.remove(&name);
        match result {
            Ok(()) => {
                info!(member = %name, "old definition torn down");
                if self.retired.remove(&name).is_some_and(|r| matches!(r.resource, Resource::Service(_))) {
                    self.forget_started(&name);
                }
                self.retire_after.remove(&name);
                self.observed.remove(&name);
                if let Some(s) = self.service(&name).cloned() {
                    self.spawn_status(s);
                }
                self.next_resync = Instant::now();
            }
            Err(e) => {
                error!(member = %name, "tear-down of its old definition failed: {e}; retrying");
                self.remember_error(format!("{name}: tear-down after a config change failed ({e})"));
                self.retire_after.insert(name, Instant::now() + RETRY);
            }
        }
    }
}
