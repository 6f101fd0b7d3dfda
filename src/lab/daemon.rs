//! The node daemon abstraction: what runs in each node namespace to move the floating address. keepalived is
//! one; `hactl agent` will be another. A daemon only writes its config files into the node's directory and
//! returns a command line; the lab runs it with `ip netns exec`, records its pid, SIGKILLs it at power-off and
//! runs the same command again at power-on.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;

/// Environment variable set for every process the lab starts in a node: the node's own directory. The lab
/// manifests use it so that one manifest set serves every node (`nginx -c "$HACTL_LAB_NODE_DIR/nginx.conf"`).
pub const NODE_DIR_ENV: &str = "HACTL_LAB_NODE_DIR";

/// A command to run inside a node namespace, as recorded in the state file (power-on runs it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonCommand {
    /// Short label for status and logs (`nginx`, `keepalived`).
    pub label: String,
    /// Program and arguments; the program is looked up in PATH inside the namespace.
    pub argv: Vec<String>,
    /// Extra environment (the lab adds [`NODE_DIR_ENV`]).
    pub env: Vec<(String, String)>,
    /// File that receives stdout and stderr (appended).
    pub log: PathBuf,
    /// Runtime files (pid files) removed before every start, as a reboot empties /run: keepalived refuses to
    /// start ("daemon is already running") while its pid file names a process that is not yet reaped.
    #[serde(default)]
    pub run_files: Vec<PathBuf>,
}

/// Another node, as a daemon's config needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerContext {
    /// The peer's name.
    pub name: String,
    /// Its address on the lab network.
    pub address: Ipv4Addr,
}

/// What a daemon knows about the node it configures.
#[derive(Debug, Clone)]
pub struct NodeContext<'a> {
    /// The node's name (`ha1`).
    pub node: &'a str,
    /// 0 for the preferred node (`ha1`), 1 for the next …: keepalived turns it into priorities.
    pub rank: usize,
    /// The node's own address on `eth0`.
    pub address: Ipv4Addr,
    /// The other nodes.
    pub peers: Vec<PeerContext>,
    /// The floating address (/24 on `eth0`).
    pub floating: Ipv4Addr,
    /// The node's own directory: the daemon writes its config, pid files and state only here.
    pub dir: &'a Path,
}

/// A daemon that moves the floating address between lab nodes.
pub trait NodeDaemon: std::fmt::Debug {
    /// Its name, recorded in the state file and shown by `status`.
    fn name(&self) -> &str;
    /// Whether the daemon starts the web server itself (hactl: the group's service, on the holder only). When
    /// false the lab runs nginx permanently on every node (keepalived only moves the address).
    fn starts_web_server(&self) -> bool;
    /// Writes the node's config under `ctx.dir` and returns the command to run in the node's namespace;
    /// `None` when nothing runs (the lab's own tests).
    fn prepare(&self, ctx: &NodeContext<'_>) -> Result<Option<DaemonCommand>, LabError>;
}

/// No daemon: the lab with web servers only (nobody adds the floating address). For testing the lab itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDaemon;

impl NodeDaemon for NoDaemon {
    fn name(&self) -> &str {
        "none"
    }

    fn starts_web_server(&self) -> bool {
        false
    }

    fn prepare(&self, _ctx: &NodeContext<'_>) -> Result<Option<DaemonCommand>, LabError> {
        Ok(None)
    }
}
