//! Answers the local API from the state-owning task: the status is built from the core's view and what is
//! observed here; operations are validated against the config in force and handed to the core, which
//! replicates them (DESIGN.md §4.9).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Agent;
use crate::agent::deliver::ManifestSet;
use crate::agent::plan::{Disposition, Effect, Member, Observed, plan};
use crate::api::types::{
    ApiRequest, ApiResponse, GroupStatus, MemberStatus, MoveStatus, NodeStatus, Plan, PlanStep, Reply, Status,
};
use crate::manifest;
use crate::manifest::model::Resource;
use crate::manifest::raw::QuorumPolicy;
use crate::manifest::values::Name;
use crate::proto::Clash;
use crate::proto::ops::{InForce, Operation};
use crate::proto::{Input, PeerState};
use crate::sys::clock::LeaseClock;

/// Errors kept for `status`, newest last.
pub(super) const MAX_ERRORS: usize = 10;

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Agent {
    /// Answers one local API request.
    pub(super) fn on_api(&mut self, request: ApiRequest) -> ApiResponse {
        let result = match request {
            ApiRequest::Status => return ApiResponse::Status(Box::new(self.status())),
            ApiRequest::Move(m) => self.group(&m.group).and_then(|group| {
                let node = self.node_name(&m.node)?;
                let duration = m.for_ms.map(Duration::from_millis);
                let text = format!("move of {group} to {node} issued");
                self.operate(Operation::Move { group, node, duration });
                Ok(text)
            }),
            ApiRequest::Clear(c) => self.group(&c.group).map(|group| {
                self.operate(Operation::Clear { group: group.clone() });
                format!("move of {group} cleared")
            }),
            ApiRequest::Standby(n) => self.node_name(&n.node).map(|node| {
                self.operate(Operation::Standby { node: node.clone() });
                format!("{node} is in standby")
            }),
            ApiRequest::Online(n) => self.node_name(&n.node).map(|node| {
                self.operate(Operation::Online { node: node.clone() });
                format!("{node} is online")
            }),
            ApiRequest::Cleanup(c) => self.cleanup(&c.group, c.node.as_deref()),
            ApiRequest::Manifests => match &self.running {
                Some(set) => return ApiResponse::Manifests(set.clone()),
                None => Err("the files of the config in force could not be read".to_string()),
            },
            ApiRequest::Plan(set) => match self.plan_for(&set) {
                Ok(plan) => return ApiResponse::Plan(plan),
                Err(e) => Err(e),
            },
            ApiRequest::Locate(name) => return ApiResponse::Located(self.locate(&name)),
        };
        ApiResponse::Reply(match result {
            Ok(message) => Reply { ok: true, message: message + self.isolation_note() },
            Err(message) => Reply { ok: false, message },
        })
    }

    /// This node's plan if `set` were the config: the planner run on what is observed here, with each
    /// group's current disposition; groups the set removes are planned as given up.
    fn plan_for(&self, set: &ManifestSet) -> Result<Plan, String> {
        let files = set.files.iter().map(|(n, c)| (PathBuf::from(n), c.clone().into_bytes())).collect();
        let loaded = manifest::load_bytes(files);
        let Some(state) = loaded.state else {
            return Err(manifest::diag::render(&loaded.diagnostics, manifest::Format::Text, false));
        };
        let observed = |n: &Name| self.observed.get(n).copied().unwrap_or(Observed::Down);
        let disposition = |g: &Name| self.dispositions.get(g).copied().unwrap_or(Disposition::Elsewhere);
        let mut steps = Vec::new();
        let mut push = |group: &Name, effects: Vec<Effect>| {
            for e in effects.into_iter().filter(|e| !matches!(e, Effect::Stopped(_))) {
                steps.push(PlanStep { group: group.0.clone(), action: e.to_string() });
            }
        };
        for g in state.groups.values() {
            push(&g.name, plan(&g.name, disposition(&g.name), &Member::zip(g, observed)));
        }
        for g in self.state.groups.values().filter(|g| !state.groups.contains_key(&g.name)) {
            push(&g.name, plan(&g.name, Disposition::Elsewhere, &Member::zip(g, observed)));
        }
        Ok(Plan { node: self.me.0.clone(), steps })
    }

    /// An operation issued on a node that hears no peer takes effect elsewhere only when it is heard again
    /// (operations replicate in heartbeats): the operator is told, and can issue it with `--via` a peer instead.
    fn isolation_note(&self) -> &'static str {
        let peers = &self.node.peers().peers;
        let heard = peers.values().any(|p| matches!(p.state, PeerState::Alive | PeerState::Late));
        if peers.is_empty() || heard {
            ""
        } else {
            " (this node hears no peer now: the others learn of it only when they hear this node again; to act \
             on them now, issue it on a connected node, e.g. with `--via NODE` if NODE is reachable from here)"
        }
    }

    /// The peer API address of `name` for a relayed request; `None` for this node.
    fn locate(&self, name: &str) -> Result<Option<std::net::SocketAddr>, String> {
        let node = self.node_name(name)?;
        if node == self.me {
            return Ok(None);
        }
        Ok(self.state.nodes.get(&node).map(|n| std::net::SocketAddr::new(n.address, self.port)))
    }

    fn cleanup(&mut self, group: &str, node: Option<&str>) -> Result<String, String> {
        let group = self.group(group)?;
        let node = node.map(|n| self.node_name(n)).transpose()?;
        if node.as_ref().is_none_or(|n| *n == self.me) {
            if let Some(g) = self.state.groups.get(&group) {
                self.fails.clear_group(g);
            }
        }
        let text = format!("failures of {group} cleaned up on {}", node.as_ref().map_or("every node", |n| &n.0));
        self.operate(Operation::Cleanup { group, node });
        Ok(text)
    }

    fn operate(&mut self, op: Operation) {
        self.node.handle(LeaseClock::read(), Input::Operate(op));
    }

    fn group(&self, name: &str) -> Result<Name, String> {
        let name = Name(name.to_string());
        if self.state.groups.contains_key(&name) { Ok(name) } else { Err(format!("no group {name}")) }
    }

    fn node_name(&self, name: &str) -> Result<Name, String> {
        let name = Name(name.to_string());
        if self.state.nodes.contains_key(&name) { Ok(name) } else { Err(format!("no node {name}")) }
    }

    /// Records an error for `status` (bounded).
    pub(super) fn remember_error(&mut self, error: String) {
        if self.errors.back() == Some(&error) {
            return;
        }
        self.errors.push_back(error);
        while self.errors.len() > MAX_ERRORS {
            self.errors.pop_front();
        }
    }

    fn status(&mut self) -> Status {
        let policy = self.state.cluster.quorum.policy;
        let mut errors: Vec<String> = self
            .tracker
            .rejected()
            .map(|f| f.iter().map(|f| format!("manifest change rejected: {f}")).collect())
            .unwrap_or_default();
        errors.extend(self.key_error().map(str::to_string));
        errors.extend(self.errors.iter().cloned());
        let now = LeaseClock::read();
        let ops = self.node.operations(now);
        Status {
            cluster: self.state.cluster.name.0.clone(),
            node: self.me.0.clone(),
            policy: format!("{policy:?}").to_lowercase(),
            warning: (policy == QuorumPolicy::Ignore)
                .then(|| "quorum policy ignore: a partition can make two holders (split brain)".to_string()),
            digest: hex(&self.node.config().digest),
            nodes: self.node_statuses(&ops, now),
            groups: self.group_statuses(&ops, now),
            errors,
        }
    }

    fn node_statuses(&self, ops: &InForce, now: Duration) -> Vec<NodeStatus> {
        let mine = self.node.config().digest;
        let dead_time = self.node.config().dead_time;
        self.state
            .nodes
            .keys()
            .map(|name| {
                let standby = ops.standby.contains(&name.0);
                if *name == self.me {
                    let digest = Some(hex(&mine));
                    return NodeStatus {
                        name: name.0.clone(),
                        state: "online".into(),
                        standby,
                        digest,
                        drift: false,
                        uuid_clash: None,
                        local: true,
                        auth_failing: false,
                    };
                }
                let peer = self.node.peers().peers.get(name);
                let state = match peer.map(|p| p.state) {
                    Some(PeerState::Alive) => "online",
                    Some(PeerState::Late) => "late",
                    Some(PeerState::Dead) => "offline",
                    Some(PeerState::Unknown) | None => "unknown",
                };
                let digest = peer.and_then(|p| p.digest);
                let drift = digest.is_some_and(|d| d != mine);
                let uuid_clash = peer.and_then(|p| p.clash.as_ref()).map(|c| match c {
                    Clash::Me => "this node".to_string(),
                    Clash::Peer(n) => format!("peer {n}"),
                });
                NodeStatus {
                    name: name.0.clone(),
                    state: state.into(),
                    standby,
                    digest: digest.map(|d| hex(&d)),
                    drift,
                    uuid_clash,
                    local: false,
                    // §4.8: its datagrams arrive but fail authentication (a key it has and we lack, or the
                    // reverse): alive, misconfigured, never counted as silence.
                    auth_failing: peer.and_then(|p| p.auth_failed).is_some_and(|at| now.saturating_sub(at) < dead_time),
                }
            })
            .collect()
    }

    fn group_statuses(&self, ops: &InForce, now: Duration) -> Vec<GroupStatus> {
        let at = Instant::now();
        let groups: Vec<_> = self.state.groups.values().cloned().collect();
        groups
            .iter()
            .map(|g| {
                let (holder, round, remaining) = self.holder(&g.name, now);
                let members = g
                    .members
                    .iter()
                    .map(|m| MemberStatus {
                        name: m.name().0.clone(),
                        kind: match m {
                            Resource::Service(_) => "Service".into(),
                            _ => "FloatingIP".into(),
                        },
                        state: observed_word(self.observed.get(m.name()).copied()).into(),
                        failcount: self.fails.count(m.name(), at, g.failure_timeout),
                    })
                    .collect();
                let moved = ops
                    .moves
                    .iter()
                    .find(|m| m.group == g.name.0)
                    .map(|m| MoveStatus { node: m.node.clone(), expires_in_ms: m.left.map(ms) });
                let failcounts = ops
                    .failures
                    .iter()
                    .filter(|((group, _), _)| *group == g.name.0)
                    .map(|((_, node), n)| (node.clone(), u32::try_from(*n).unwrap_or(u32::MAX)))
                    .collect();
                GroupStatus {
                    name: g.name.0.clone(),
                    holder,
                    round,
                    lease_remaining_ms: remaining,
                    members,
                    moved,
                    failcounts,
                }
            })
            .collect()
    }

    /// This node when it holds the lease, else the peer whose live heartbeat claims it.
    fn holder(&self, group: &Name, now: Duration) -> (Option<String>, Option<u64>, Option<u64>) {
        if let Some((_, deadline)) = self.node.holding().find(|(n, _)| *n == group) {
            return (Some(self.me.0.clone()), self.rounds.get(group).copied(), Some(ms(deadline.saturating_sub(now))));
        }
        let Some(key) = self.node.config().groups.get(group).map(|g| g.key) else { return (None, None, None) };
        let claim = self
            .node
            .peers()
            .peers
            .iter()
            .filter(|(_, p)| matches!(p.state, PeerState::Alive | PeerState::Late))
            .filter_map(|(n, p)| p.held.get(&key).filter(|(_, exp)| *exp > now).map(|(r, exp)| (n, *r, *exp)))
            .max_by_key(|(_, r, _)| *r);
        match claim {
            Some((n, r, exp)) => (Some(n.0.clone()), Some(r), Some(ms(exp.saturating_sub(now)))),
            None => (None, None, None),
        }
    }
}

fn observed_word(o: Option<Observed>) -> &'static str {
    match o {
        Some(Observed::Up) => "up",
        Some(Observed::Down) => "down",
        Some(Observed::Failed) => "failed",
        Some(Observed::StopFailed) => "stop-failed",
        Some(Observed::Busy) | None => "busy",
    }
}
