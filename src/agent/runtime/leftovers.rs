//! Members started by an earlier run of this agent that the config it starts with does not define identically
//! (DESIGN.md §4.1: "at start-up it stops members of groups it does not hold"). A group removed from the
//! manifests while the agent was down is unknown to the new config, so only the agent's own records
//! ([`crate::agent::started`]) say that its members run and how to stop them.
//!
//! At start-up, before anything is added or started, every such member is queued for tear-down with its recorded
//! definition (the queue of `retire.rs`: stops in reverse member order, each within its recorded stop timeout,
//! retried until it succeeds, failures logged and shown in `status`). Nothing is added or started until the
//! first stop of each has returned (see [`Agent::sweeping`]); one that keeps failing is retried in the
//! background without holding the rest of the node back. A record that cannot be read is reported (log and
//! status) at every start and kept for the operator; it is never dropped silently.

use tracing::{error, info, warn};

use super::Agent;
use super::retire::Retired;
use crate::agent::plan::Observed;
use crate::agent::started::{StartedRecord, leftovers};
use crate::manifest::model::{Resource, Service};
use crate::manifest::values::Name;

impl Agent {
    /// Queues the left-overs of an earlier run for tear-down; call at start-up before any status or plan.
    pub(super) fn sweep_leftovers(&mut self) {
        let (records, unreadable) = self.started.load();
        for bad in unreadable {
            error!(
                file = bad.file,
                "unreadable record of a member started earlier: {}; whatever it describes may still run, and is not stopped",
                bad.reason
            );
            self.remember_error(format!(
                "{}: unreadable record of a started member ({}); check by hand what it describes",
                bad.file, bad.reason
            ));
        }
        for record in leftovers(records, &self.state) {
            let service = match record.service() {
                Ok(s) => s,
                Err(e) => {
                    error!(member = record.member, "record of a started member names no valid member: {e}");
                    self.remember_error(format!("record of {}: {e}", record.member));
                    continue;
                }
            };
            warn!(
                group = record.group,
                member = record.member,
                "started by an earlier run and not defined so by the config in force: stopping it"
            );
            let Ok(group) = Name::parse(&record.group) else { continue };
            let retired = Retired { resource: Resource::Service(service.clone()), group, position: record.position };
            self.observed.insert(service.name.clone(), Observed::Busy);
            self.sweep.insert(service.name.clone());
            self.retired.insert(service.name, retired);
        }
        if !self.sweep.is_empty() {
            info!(
                count = self.sweep.len(),
                "adding and starting nothing until the left-overs of an earlier run are stopped"
            );
        }
    }

    /// Whether start-up is still stopping left-overs: until then the plan adds and starts nothing.
    pub(super) fn sweeping(&self) -> bool {
        !self.sweep.is_empty()
    }

    /// Persists that `service` is about to be started, before it is. Fails the start if it cannot be written: an
    /// unrecorded member could outlive its group's removal.
    pub(super) fn record_start(&mut self, service: &Service) -> Result<(), String> {
        let place = self
            .state
            .groups
            .values()
            .find_map(|g| g.members.iter().position(|m| m.name() == &service.name).map(|i| (g.name.clone(), i)));
        let Some((group, position)) = place else {
            return Err(format!("{} is in no group of the config in force", service.name));
        };
        self.started.write(&StartedRecord::of(&group, position, service)).map_err(|e| e.to_string())
    }

    /// Forgets the record of a member after a confirmed stop. A failure only costs an idempotent stop at a later
    /// start-up, so it is reported, not fatal.
    pub(super) fn forget_started(&mut self, member: &Name) {
        if let Err(e) = self.started.clear(member) {
            warn!(member = %member, "cannot remove the record of a stopped member: {e}");
        }
    }
}
