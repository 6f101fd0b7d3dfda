//! The JSON of the local API: the contract for scripts and monitoring (README, "Status JSON").

use serde::{Deserialize, Serialize};

/// The whole of `GET /v1/status`: the cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The Cluster manifest's name.
    pub cluster: String,
    /// The node answering.
    pub node: String,
    /// Quorum policy: `majority` or `ignore`.
    pub policy: String,
    /// Set under `ignore`: split brain is possible.
    pub warning: Option<String>,
    /// Digest of the config in force here (hex, 16 digits, as in heartbeats).
    pub digest: String,
    /// Every configured node, this one included.
    pub nodes: Vec<NodeStatus>,
    /// Every group.
    pub groups: Vec<GroupStatus>,
    /// Recent errors worth an operator's attention (a rejected manifest change first).
    pub errors: Vec<String>,
}

/// One node's own answer in `hactl status --all` (JSON/YAML: a list of these, one per configured node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node asked.
    pub node: String,
    /// Its status, when it answered.
    pub status: Option<Status>,
    /// Why it did not answer (unreachable, refused), when it did not.
    pub error: Option<String>,
}

/// One node as seen from the answering node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// `online`, `late`, `offline` or `unknown` (never heard since start).
    pub state: String,
    /// In standby by a replicated operation in force (whichever node issued it).
    pub standby: bool,
    /// Config digest it reports (hex), when heard.
    pub digest: Option<String>,
    /// Its digest differs from the answering node's.
    pub drift: bool,
    /// Its datagrams claim a UUID already used (by `this node` or `peer NAME`): a cloned state directory, so
    /// they are ignored until the clone gets a new UUID.
    #[serde(default)]
    pub uuid_clash: Option<String>,
    /// This is the answering node.
    pub local: bool,
    /// Its datagrams failed authentication within deadTime: alive but misconfigured (keys differ, §4.8).
    #[serde(default)]
    pub auth_failing: bool,
}

/// One group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// Its name.
    pub name: String,
    /// Who holds it: this node when it holds the lease, else the peer whose heartbeat claims it.
    pub holder: Option<String>,
    /// The holder's lease round (ballot), when known.
    pub round: Option<u64>,
    /// Milliseconds until the lease (or the peer's claim) runs out unless renewed.
    pub lease_remaining_ms: Option<u64>,
    /// Members in start order, as observed on the answering node.
    pub members: Vec<MemberStatus>,
    /// The move in force, if any, from the replicated operations (whichever node issued it).
    #[serde(rename = "move")]
    pub moved: Option<MoveStatus>,
    /// Replicated failures not expired or cleaned up, per node (only nodes with at least one); these count
    /// towards `migrationThreshold` on every node.
    #[serde(default)]
    pub failcounts: std::collections::BTreeMap<String, u32>,
}

/// One member of a group, observed on the answering node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its name.
    pub name: String,
    /// `FloatingIP` or `Service`.
    pub kind: String,
    /// `up`, `down`, `failed`, `busy` or `stop-failed`.
    pub state: String,
    /// Failures counted here and not yet expired or cleaned up.
    pub failcount: u32,
}

/// A move in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveStatus {
    /// Where the group is moved to.
    pub node: String,
    /// Milliseconds until it expires; `None` until `clear`.
    pub expires_in_ms: Option<u64>,
}

/// The body of `POST /v1/move`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveRequest {
    /// The group.
    pub group: String,
    /// Its target node.
    pub node: String,
    /// For how long, in milliseconds; `None` until `clear`.
    pub for_ms: Option<u64>,
}

/// The body of `POST /v1/clear`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRequest {
    /// The group.
    pub group: String,
}

/// The body of `POST /v1/standby` and `POST /v1/online`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRequest {
    /// The node.
    pub node: String,
}

/// The body of `POST /v1/cleanup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupRequest {
    /// The group.
    pub group: String,
    /// One node, or every node when absent.
    pub node: Option<String>,
}

/// What every `POST` answers, and every error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was accepted.
    pub ok: bool,
    /// What happened, or why not.
    pub message: String,
}

/// One step of the plan: what this node's planner would do for a group if a manifest set were applied now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    /// The group.
    pub group: String,
    /// The action, e.g. `start web` or `remove ip1`.
    pub action: String,
}

/// The answer of `POST /v1/plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The node whose planner answered.
    pub node: String,
    /// The steps, in the order the agent would start them.
    pub steps: Vec<PlanStep>,
}

/// A request to the agent's state-owning task.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiRequest {
    /// `GET /v1/status`.
    Status,
    /// `POST /v1/move`.
    Move(MoveRequest),
    /// `POST /v1/clear`.
    Clear(GroupRequest),
    /// `POST /v1/standby`.
    Standby(NodeRequest),
    /// `POST /v1/online`.
    Online(NodeRequest),
    /// `POST /v1/cleanup`.
    Cleanup(CleanupRequest),
    /// `GET /v1/manifests`: the manifest files of the config in force.
    Manifests,
    /// `POST /v1/plan`: what this node would do if the set were applied now.
    Plan(crate::agent::deliver::ManifestSet),
    /// Where a node's peer API is, for a request forwarded with `?node=` (internal, no endpoint).
    Locate(String),
}

/// The state-owning task's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiResponse {
    /// The status.
    Status(Box<Status>),
    /// An operation's outcome (or a refusal).
    Reply(Reply),
    /// The manifest files in force.
    Manifests(crate::agent::deliver::ManifestSet),
    /// A plan.
    Plan(Plan),
    /// A node's peer API address; `Ok(None)`: this node; `Err`: no such node.
    Located(Result<Option<std::net::SocketAddr>, String>),
}
