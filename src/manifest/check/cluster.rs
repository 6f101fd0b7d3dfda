//! Cluster settings, timers and quorum; nodes and their addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Index, RawDoc, Report, Spec};
use crate::manifest::decode::At;
use crate::manifest::model::{Cluster, Heartbeat, Lease, NodeConfig, Quorum};
use crate::manifest::raw::{ClusterSpec, HeartbeatSpec, LeaseSpec, NodeRole, QuorumPolicy};
use crate::manifest::values::{Dur, Name};

const MS: fn(u64) -> Duration = Duration::from_millis;
const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Pacemaker's INFINITY: scores and stickiness live within ±1,000,000.
pub(super) const SCORE_MAX: i64 = 1_000_000;

/// Per-group settings that the Cluster's `defaults` provide.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupDefaults {
    pub stickiness: i64,
    pub migration_threshold: u32,
    pub failure_timeout: Option<Duration>,
}

impl Default for GroupDefaults {
    fn default() -> Self {
        GroupDefaults { stickiness: 100, migration_threshold: 3, failure_timeout: Some(SECS(600)) }
    }
}

/// Checks every Node; returns the valid ones.
pub(super) fn nodes(ix: &Index, report: &mut Report) -> BTreeMap<Name, NodeConfig> {
    let mut out = BTreeMap::new();
    let mut by_address: BTreeMap<IpAddr, &RawDoc> = BTreeMap::new();
    for doc in ix.nodes.values() {
        let Some(Spec::Node(spec)) = &doc.spec else { continue };
        let votes = report.integer(doc, &spec.votes, 1, (0, 1));
        let role = spec.role.as_ref().map_or(NodeRole::Member, |r| r.value);
        if role == NodeRole::Witness && votes == Some(0) {
            if let Some(v) = &spec.votes {
                report.error(doc, v, "witness-votes", "a witness exists to vote; valid: votes 1 (or role: member)");
            }
        }
        let address = spec.address.value.0;
        if let Some(first) = by_address.get(&address) {
            let message = format!(
                "address {address} is already the address of node \"{}\" ({}); node addresses must be unique",
                first.name.value,
                first.place()
            );
            report.error(doc, &spec.address, "duplicate-address", message);
            continue;
        }
        by_address.insert(address, doc);
        if let Some(votes) = votes {
            out.insert(doc.name.value.clone(), NodeConfig { name: doc.name.value.clone(), address, votes, role });
        }
    }
    if !ix.nodes.is_empty()
        && ix.nodes.values().all(
            |d| matches!(&d.spec, Some(Spec::Node(s)) if s.role.as_ref().is_some_and(|r| r.value == NodeRole::Witness)),
        )
    {
        report.error_set(
            "no-member-node",
            "every Node is a witness; at least one Node with role: member must run the groups",
        );
    }
    out
}

/// Checks the one Cluster document; returns its settings and the group defaults.
pub(super) fn cluster(ix: &Index, report: &mut Report) -> Option<(Cluster, GroupDefaults)> {
    if ix.nodes.is_empty() {
        report.error_set("no-nodes", "no Node documents; add one per machine (kind: Node, spec: {address: ...})");
    }
    let Some(doc) = ix.clusters.first() else {
        report.error_set(
            "cluster-count",
            "no Cluster document; exactly one is needed (apiVersion: hactl/v1, kind: Cluster, metadata: {name: ...}, spec: {})",
        );
        return None;
    };
    for extra in &ix.clusters[1..] {
        let message = format!(
            "a second Cluster document; exactly one is allowed per manifest set (the first is \"{}\" at {})",
            doc.name.value,
            doc.place()
        );
        report.error_doc(extra, "cluster-count", message);
    }
    let Some(Spec::Cluster(spec)) = &doc.spec else { return None };
    let port = report.integer(doc, &spec.port, 694, (1, 65535));
    let auth_key_file = auth_key_file(doc, spec, report);
    let heartbeat = heartbeat(doc, spec.heartbeat.as_ref(), report);
    let lease = heartbeat.and_then(|hb| lease(doc, spec.lease.as_ref(), &hb, report));
    let quorum = quorum(doc, spec, ix, report);
    let defaults = group_defaults(doc, spec, report);
    let cluster = Cluster {
        name: doc.name.value.clone(),
        port: port?,
        auth_key_file: auth_key_file?,
        heartbeat: heartbeat?,
        lease: lease?,
        quorum: quorum?,
    };
    Some((cluster, defaults?))
}

fn auth_key_file(doc: &RawDoc, spec: &ClusterSpec, report: &mut Report) -> Option<PathBuf> {
    let Some(at) = &spec.auth_key_file else { return Some(PathBuf::from("/etc/hactl/authkey")) };
    if !at.value.starts_with('/') {
        let message =
            format!("\"{}\" is not an absolute path; valid: an absolute path such as /etc/hactl/authkey", at.value);
        report.error(doc, at, "invalid-path", message);
        return None;
    }
    Some(PathBuf::from(&at.value))
}

/// The first field that was written, to point a cross-field error at something the operator wrote.
fn written<'a>(fields: &[&'a Option<At<Dur>>]) -> Option<&'a At<Dur>> {
    fields.iter().find_map(|f| f.as_ref())
}

fn timer_error(doc: &RawDoc, at: Option<&At<Dur>>, message: String, report: &mut Report) {
    match at {
        Some(at) => report.error(doc, at, "timers", message),
        None => report.error_doc(doc, "timers", message),
    }
}

fn heartbeat(doc: &RawDoc, spec: Option<&HeartbeatSpec>, report: &mut Report) -> Option<Heartbeat> {
    let empty = HeartbeatSpec { interval: None, dead_time: None, warn_time: None, init_dead: None };
    let spec = spec.unwrap_or(&empty);
    let interval = report.duration(doc, &spec.interval, MS(200), (MS(10), SECS(10)))?;
    // Derived defaults keep the ratios of the documented defaults (200ms / 1s / 600ms), so a cluster that
    // only slows its interval down (the guide's 2 s keepalive) stays consistent.
    let dead_time = report.duration(doc, &spec.dead_time, interval * 5, (MS(30), SECS(600)));
    let warn_time = report.duration(doc, &spec.warn_time, interval * 3, (MS(10), SECS(600)));
    let init_dead = report.duration(doc, &spec.init_dead, SECS(10), (Duration::ZERO, SECS(600)));
    let (dead_time, warn_time, init_dead) = (dead_time?, warn_time?, init_dead?);
    let mut ok = true;
    if dead_time <= interval * 2 {
        let at = written(&[&spec.dead_time, &spec.interval]);
        let message = format!(
            "deadTime {} must exceed 2 × interval ({}), or one lost heartbeat declares a live peer dead",
            Dur(dead_time),
            Dur(interval * 2)
        );
        timer_error(doc, at, message, report);
        ok = false;
    }
    if warn_time >= dead_time {
        let at = written(&[&spec.warn_time, &spec.dead_time]);
        let message = format!(
            "warnTime {} must be below deadTime {} (a peer is late before it is dead)",
            Dur(warn_time),
            Dur(dead_time)
        );
        timer_error(doc, at, message, report);
        ok = false;
    }
    ok.then_some(Heartbeat { interval, dead_time, warn_time, init_dead })
}

fn lease(doc: &RawDoc, spec: Option<&LeaseSpec>, hb: &Heartbeat, report: &mut Report) -> Option<Lease> {
    let empty = LeaseSpec { duration: None, margin: None, drift_bound: None, strict: None };
    let spec = spec.unwrap_or(&empty);
    let duration = report.duration(doc, &spec.duration, hb.interval * 5, (MS(50), SECS(60)))?;
    let margin = report.duration(doc, &spec.margin, MS(100).min(duration / 5), (MS(1), SECS(10)))?;
    let drift_bound = match &spec.drift_bound {
        None => Some(0.001),
        Some(at) => report.in_range(doc, at, at.value, (0.0, 0.1), |v| v.to_string()),
    }?;
    let mut ok = true;
    if duration <= hb.interval * 3 {
        let at = written(&[&spec.duration, &spec.margin]);
        let message = format!(
            "lease duration {} must exceed 3 × heartbeat.interval ({}): renewals go out every duration / 3",
            Dur(duration),
            Dur(hb.interval * 3)
        );
        timer_error(doc, at, message, report);
        ok = false;
    }
    if margin * 3 >= duration {
        let at = written(&[&spec.margin, &spec.duration]);
        let message = format!(
            "lease margin {} must be below duration / 3 ({}): the holder fences at deadline − margin and renews every duration / 3",
            Dur(margin),
            Dur(duration / 3)
        );
        timer_error(doc, at, message, report);
        ok = false;
    }
    ok.then_some(Lease { duration, margin, drift_bound, strict: spec.strict.unwrap_or(false) })
}

fn quorum(doc: &RawDoc, spec: &ClusterSpec, ix: &Index, report: &mut Report) -> Option<Quorum> {
    let policy_at = spec.quorum.as_ref().and_then(|q| q.policy.as_ref());
    let policy = policy_at.map_or(QuorumPolicy::Majority, |p| p.value);
    let tie_breaker = spec.quorum.as_ref().and_then(|q| q.tie_breaker.as_ref()).map(|t| &t.ping);
    let voters: Vec<&str> = ix
        .nodes
        .values()
        // A Node whose spec had errors still counts, so its own error is not followed by a quorum error.
        .filter(|d| !matches!(&d.spec, Some(Spec::Node(s)) if s.votes.as_ref().is_some_and(|v| v.value == 0)))
        .map(|d| d.name.value.as_str())
        .collect();
    match policy {
        QuorumPolicy::Majority if voters.len() < 3 && !ix.nodes.is_empty() => {
            let message = format!(
                "policy majority needs at least 3 voters, found {} ({}): with 2 a lone survivor can never take over; add a Node with role: witness, or set quorum.policy: ignore (split brain possible)",
                voters.len(),
                voters.join(", ")
            );
            match policy_at {
                Some(at) => report.error(doc, at, "quorum", message),
                None => report.error_doc(doc, "quorum", message),
            }
            None
        }
        QuorumPolicy::Majority => {
            if let Some(at) = tie_breaker {
                report.error(
                    doc,
                    at,
                    "tie-breaker",
                    "a tie-breaker applies only under quorum.policy: ignore; majority needs none",
                );
                return None;
            }
            Some(Quorum { policy, tie_breaker: None })
        }
        QuorumPolicy::Ignore => {
            if let Some(at) = policy_at {
                report.warning(
                    doc,
                    at,
                    "split-brain",
                    "policy ignore: after a partition both sides may hold the floating address (split brain); a witness and policy majority prevent it",
                );
            }
            Some(Quorum { policy, tie_breaker: tie_breaker.map(|t| t.value.0) })
        }
    }
}

fn group_defaults(doc: &RawDoc, spec: &ClusterSpec, report: &mut Report) -> Option<GroupDefaults> {
    let base = GroupDefaults::default();
    let Some(d) = &spec.defaults else { return Some(base) };
    let stickiness = report.integer(doc, &d.stickiness, base.stickiness, (0, SCORE_MAX));
    let migration_threshold = report.integer(doc, &d.migration_threshold, base.migration_threshold, (1, 1_000_000));
    let failure_timeout = report.duration(doc, &d.failure_timeout, SECS(600), (Duration::ZERO, SECS(30 * 86_400)));
    Some(GroupDefaults {
        stickiness: stickiness?,
        migration_threshold: migration_threshold?,
        failure_timeout: Some(failure_timeout?).filter(|d| !d.is_zero()),
    })
}
