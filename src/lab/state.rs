//! The lab's state file, `<root>/<tag>/state.json`: what was created and started, written *before* each step so a
//! crash halfway leaves a record that `down` can follow. Written atomically (temporary file, rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;
use super::daemon::DaemonCommand;
use super::spec::LabSpec;

/// Where labs keep their state and node trees: tmpfs, so a reboot (which also removes namespaces) clears it.
pub const STATE_ROOT: &str = "/run/hactl-lab";

/// A process the lab started, recorded with its kernel start time so a reused pid is never signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// Process id (of `ip netns exec`, which execs the program: the same process).
    pub pid: i32,
    /// /proc/PID/stat field 22, clock ticks since boot.
    pub start_ticks: u64,
}

/// Per node: what runs there at power-on, and what is running now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Whether the node is powered on (its veth exists).
    pub powered: bool,
    /// Commands started at every power-on, in order (the web server if the lab runs it, then the daemon).
    pub commands: Vec<DaemonCommand>,
    /// Processes started since the last power-on.
    pub processes: Vec<ProcRecord>,
}

/// Everything `down` needs to know, and what `status` and `power-on` read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The lab's description.
    pub spec: LabSpec,
    /// The node daemon's name (`keepalived`, `none`, later `hactl`).
    pub daemon: String,
    /// Namespaces in creation order (recorded just before `ip netns add`).
    pub namespaces: Vec<String>,
    /// Per node state.
    pub nodes: BTreeMap<String, NodeState>,
    /// The process that owns the lab and must tear it down (a test, through [`super::LabGuard`]); `None` for
    /// labs built by `hactl lab up`, which live until `hactl lab down`. A lab whose owner is gone is an orphan
    /// of a crashed run, and [`super::sweep_orphans`] removes it.
    #[serde(default)]
    pub owner: Option<ProcRecord>,
}

impl State {
    /// The state file of the lab `tag` under `root`.
    pub fn path(root: &Path, tag: &str) -> PathBuf {
        root.join(tag).join("state.json")
    }

    /// Reads a lab's state.
    pub fn load(root: &Path, tag: &str) -> Result<State, LabError> {
        let path = State::path(root, tag);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LabError::Missing(tag.to_string(), path));
            }
            Err(e) => return Err(LabError::io(path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| LabError::State { path, detail: e.to_string() })
    }

    /// Writes the state atomically.
    pub fn save(&self) -> Result<(), LabError> {
        let path = State::path(&self.spec.root, &self.spec.tag);
        let dir = self.spec.dir();
        std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
        let tmp = dir.join(".state.json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| LabError::State { path: path.clone(), detail: e.to_string() })?;
        std::fs::write(&tmp, text).map_err(LabError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(LabError::io(&path))
    }

    /// A node's state.
    pub fn node_mut(&mut self, node: &str) -> Result<&mut NodeState, LabError> {
        self.nodes.get_mut(node).ok_or_else(|| LabError::UnknownNode(node.to_string()))
    }
}
