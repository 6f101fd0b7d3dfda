//! What this node started, kept in the state directory (`<state-dir>/members/NAME.json`), so that an agent that
//! starts on a config which no longer defines a member still knows how to stop it (DESIGN.md §4.1: "at start-up
//! it stops members of groups it does not hold" — including groups removed while the agent was down).
//!
//! A record names the group, the member, its position in the group (stops run in reverse order) and everything
//! its driver needs to stop it (the driver spec and the time limits). It is written durably (fsync of the file
//! and the directory, [`StateDir::write`]) *before* a start, so a crash during the start still leaves it, and
//! removed after a confirmed stop. JSON, so an operator can read it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::manifest::DesiredState;
use crate::manifest::model::{Driver, Monitor, Resource, Service, Timeouts};
use crate::manifest::values::Name;
use crate::sys::state::{StateDir, StateError};

/// The subdirectory of the state directory that holds the records.
pub const DIR: &str = "members";

/// A member as it was started: enough to stop it without the manifests that defined it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedRecord {
    /// The group it was started for.
    pub group: String,
    /// The member's name.
    pub member: String,
    /// Its index in the group's member list (stops run from the highest down).
    pub position: usize,
    /// How it is driven.
    pub driver: RecordedDriver,
    /// Start, stop and monitor limits in milliseconds.
    pub timeouts_ms: [u64; 3],
}

/// [`Driver`] as stored: the manifest model is not deserializable (it only comes from validated manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordedDriver {
    /// systemctl.
    Systemd {
        /// Unit name.
        unit: String,
    },
    /// An LSB script.
    Lsb {
        /// Its path.
        script: String,
    },
    /// An OCF agent.
    Ocf {
        /// Provider.
        provider: String,
        /// Agent.
        kind: String,
        /// OCF_RESKEY_ parameters.
        params: BTreeMap<String, String>,
    },
    /// Shell commands.
    Exec {
        /// Start.
        start: String,
        /// Stop.
        stop: String,
        /// Status.
        status: String,
    },
    /// A supervised process.
    Run {
        /// The command.
        command: String,
    },
}

impl From<&Driver> for RecordedDriver {
    fn from(d: &Driver) -> RecordedDriver {
        match d.clone() {
            Driver::Systemd { unit } => RecordedDriver::Systemd { unit },
            Driver::Lsb { script } => RecordedDriver::Lsb { script: script.display().to_string() },
            Driver::Ocf { provider, kind, params } => RecordedDriver::Ocf { provider, kind, params },
            Driver::Exec { start, stop, status } => RecordedDriver::Exec { start, stop, status },
            Driver::Run { command } => RecordedDriver::Run { command },
        }
    }
}

impl From<&RecordedDriver> for Driver {
    fn from(d: &RecordedDriver) -> Driver {
        match d.clone() {
            RecordedDriver::Systemd { unit } => Driver::Systemd { unit },
            RecordedDriver::Lsb { script } => Driver::Lsb { script: script.into() },
            RecordedDriver::Ocf { provider, kind, params } => Driver::Ocf { provider, kind, params },
            RecordedDriver::Exec { start, stop, status } => Driver::Exec { start, stop, status },
            RecordedDriver::Run { command } => Driver::Run { command },
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl StartedRecord {
    /// The record of `service`, started as member `position` of `group`.
    pub fn of(group: &Name, position: usize, service: &Service) -> StartedRecord {
        let t = service.timeouts;
        StartedRecord {
            group: group.0.clone(),
            member: service.name.0.clone(),
            position,
            driver: RecordedDriver::from(&service.driver),
            timeouts_ms: [millis(t.start), millis(t.stop), millis(t.monitor)],
        }
    }

    /// The service to stop, rebuilt from the record (no probes: only its driver's stop and status are used).
    pub fn service(&self) -> Result<Service, String> {
        let [start, stop, monitor] = self.timeouts_ms.map(Duration::from_millis);
        Ok(Service {
            name: Name::parse(&self.member)?,
            driver: Driver::from(&self.driver),
            timeouts: Timeouts { start, stop, monitor },
            monitor: Monitor { interval: monitor, timeout: monitor, http: None, tcp: None },
        })
    }

    /// Whether `state` defines this member identically: the same group, the same name, the same driver spec.
    /// Anything else is left over from an earlier config and must be stopped.
    pub fn defined_in(&self, state: &DesiredState) -> bool {
        let Some(group) = state.groups.values().find(|g| g.name.0 == self.group) else { return false };
        group.members.iter().any(|m| match m {
            Resource::Service(s) => s.name.0 == self.member && RecordedDriver::from(&s.driver) == self.driver,
            Resource::FloatingIp(_) => false,
        })
    }
}

/// A record file that cannot be used: it is reported, and kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// The records of one state directory.
#[derive(Debug, Clone)]
pub struct StartedRecords {
    dir: StateDir,
}

impl StartedRecords {
    /// Opens (creating) `<state_dir>/members`.
    pub fn open(state_dir: &Path) -> Result<StartedRecords, StateError> {
        Ok(StartedRecords { dir: StateDir::open(&state_dir.join(DIR))? })
    }

    fn file(member: &str) -> String {
        format!("{member}.json")
    }

    /// Persists `record` durably; call before the start it describes.
    pub fn write(&self, record: &StartedRecord) -> Result<(), StateError> {
        // Serializing plain strings, numbers and maps cannot fail.
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        self.dir.write(&Self::file(&record.member), &bytes)
    }

    /// Forgets `member` after a confirmed stop (a missing record is fine).
    pub fn clear(&self, member: &Name) -> Result<(), StateError> {
        self.dir.remove(&Self::file(&member.0))
    }

    /// Every record, and every file that could not be read as one (never dropped silently).
    pub fn load(&self) -> (Vec<StartedRecord>, Vec<Unreadable>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        let names = match self.dir.names() {
            Ok(names) => names,
            Err(e) => {
                bad.push(Unreadable { file: self.dir.path().display().to_string(), reason: e.to_string() });
                return (good, bad);
            }
        };
        for name in names {
            let file = self.dir.path().join(&name).display().to_string();
            let parsed = match self.dir.read(&name) {
                Ok(Some(bytes)) => serde_json::from_slice::<StartedRecord>(&bytes).map_err(|e| e.to_string()),
                Ok(None) => continue, // removed meanwhile
                Err(e) => Err(e.to_string()),
            };
            match parsed {
                Ok(r) if Self::file(&r.member) == name => good.push(r),
                Ok(r) => bad.push(Unreadable { file, reason: format!("names member `{}`", r.member) }),
                Err(reason) => bad.push(Unreadable { file, reason }),
            }
        }
        (good, bad)
    }
}

/// The records `state` does not define identically, in stop order: by group, the last member first.
pub fn leftovers(records: Vec<StartedRecord>, state: &DesiredState) -> Vec<StartedRecord> {
    let mut left: Vec<StartedRecord> = records.into_iter().filter(|r| !r.defined_in(state)).collect();
    left.sort_by(|a, b| a.group.cmp(&b.group).then(b.position.cmp(&a.position)));
    left
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = "apiVersion: hactl/v1\nkind: Cluster\nmetadata: {name: t}\nspec: {authKeyFile: /k, quorum: {policy: ignore}}\n---\n\
        apiVersion: hactl/v1\nkind: Node\nmetadata: {name: ha1}\nspec: {address: 192.0.2.11}\n---\n\
        apiVersion: hactl/v1\nkind: Node\nmetadata: {name: ha2}\nspec: {address: 192.0.2.12}\n---\n\
        apiVersion: hactl/v1\nkind: Service\nmetadata: {name: a}\nspec: {exec: {run: \"sleep 1\"}}\n---\n\
        apiVersion: hactl/v1\nkind: Service\nmetadata: {name: b}\nspec: {systemd: {unit: b.service}}\n---\n\
        apiVersion: hactl/v1\nkind: Group\nmetadata: {name: G}\nspec: {members: [a, b]}\n";

    fn state(text: &str) -> DesiredState {
        let loaded = crate::manifest::load_bytes(vec![("m.yaml".into(), text.as_bytes().to_vec())]);
        loaded.state.unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    fn records(s: &DesiredState) -> Vec<StartedRecord> {
        s.groups
            .values()
            .flat_map(|g| {
                g.members.iter().enumerate().filter_map(move |(i, m)| match m {
                    Resource::Service(svc) => Some(StartedRecord::of(&g.name, i, svc)),
                    Resource::FloatingIp(_) => None,
                })
            })
            .collect()
    }

    #[test]
    fn members_defined_identically_are_not_left_over() {
        let s = state(BASE);
        assert_eq!(leftovers(records(&s), &s), vec![]);
    }

    #[test]
    fn a_removed_group_leaves_its_members_over_last_first() {
        let old = state(BASE);
        let nodes_only: Vec<&str> = BASE.split("---\n").take(3).collect();
        let new = state(&nodes_only.join("---\n"));
        let left: Vec<String> = leftovers(records(&old), &new).into_iter().map(|r| r.member).collect();
        assert_eq!(left, ["b", "a"]);
        let gone = state(&BASE.replace("name: G}", "name: H}"));
        let left: Vec<String> = leftovers(records(&old), &gone).into_iter().map(|r| r.member).collect();
        assert_eq!(left, ["b", "a"], "another group's member of the same name is another member");
    }

    #[test]
    fn a_changed_driver_is_left_over_and_other_settings_are_not() {
        let old = state(BASE);
        let new = state(&BASE.replace("sleep 1", "sleep 2"));
        let left: Vec<String> = leftovers(records(&old), &new).into_iter().map(|r| r.member).collect();
        assert_eq!(left, ["a"]);
    }

    #[test]
    fn records_round_trip_and_unreadable_ones_are_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = StartedRecords::open(dir.path()).unwrap();
        let s = state(BASE);
        let written = records(&s);
        for r in &written {
            store.write(r).unwrap();
        }
        let bad = dir.path().join(DIR).join("c.json");
        std::fs::write(&bad, b"{not json").unwrap();
        let (good, unreadable) = store.load();
        assert_eq!(good, written);
        assert_eq!(unreadable.len(), 1);
        assert!(unreadable[0].file.ends_with("c.json"), "{unreadable:?}");
        assert!(bad.exists(), "an unreadable record is kept for the operator");
        let rebuilt = good[0].service().unwrap();
        assert_eq!(rebuilt.name, Name::parse("a").unwrap());
        assert_eq!(
            rebuilt.timeouts,
            s.groups
                .values()
                .next()
                .and_then(|g| match &g.members[0] {
                    Resource::Service(a) => Some(a.timeouts),
                    Resource::FloatingIp(_) => None,
                })
                .unwrap()
        );
        assert_eq!(rebuilt.driver, Driver::Run { command: "sleep 1".into() });
        store.clear(&rebuilt.name).unwrap();
        assert_eq!(store.load().0.len(), 1);
    }
}
