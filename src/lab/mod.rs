//! The one-machine lab (issue 6, DESIGN.md §5): the guide's cluster built from network namespaces, with a real
//! web server per node, a node daemon (keepalived now, `hactl agent` later) and a client that counts every failed
//! request. The CLI (`hactl lab …`), the end-to-end tests and the failover benchmark all drive this code.
//!
//! Topology of one lab instance, tag `T` (every name starts with `hl-T-`, so instances never collide):
//! - `hl-T-br`: a namespace holding the bridge `br0` and one port `v-<node>` per node; nothing is created in the
//!   root namespace.
//! - `hl-T-<node>` per node (`ha1`, `ha2`, …): a veth called `eth0` with the node's address (192.0.2.11/24, .12,
//!   …). Its files live under `/run/hactl-lab/T/<node>/` (nginx config, page, pid files, logs, the daemon's
//!   config): nodes share no state through separate paths, not a private mount namespace, which keeps the
//!   processes visible and killable from the host by pid.
//! - `hl-T-client` with 192.0.2.50/24, where the probe runs.
//!
//! `/run/hactl-lab/T/state.json` lists what was created and started *before* it is created, so [`teardown`] is
//! idempotent and also works after a crash halfway. Only documentation addresses are used (192.0.2.0/24).
//!
//! Node daemons: [`Keepalived`] (the incumbent, nginx runs on every node) and [`HactlAgent`] (`hactl agent` on
//! a shared copy of `manifests/lab/`; it starts nginx on the holder only). The lab sets `HACTL_LAB_NODE_DIR` for
//! every process it starts in a node, which `manifests/lab/` uses to start that node's nginx with [`web`]'s
//! config. Power-off, partitions, the probe, the sampler and the benchmark trials ([`trial`]) work the same for
//! both; `move` is [`Disruption::Command`].
// OS-facing tooling: the probe and sampler time real kernels and processes, so they read the clock.
#![allow(clippy::disallowed_methods)]

mod arpwatch;
mod bench;
mod daemon;
mod guard;
mod hactl;
mod instance;
mod keepalived;
mod netfilter;
mod outage;
mod probe;
mod procs;
mod sampler;
mod shell;
mod spec;
mod state;
mod status;
pub mod web;

pub use arpwatch::{ArpRecord, ArpWatcher, parse_arp};
pub use bench::{Disruption, Trial, TrialTiming, idle_usage, sole_holder, trial};
pub use daemon::{DaemonCommand, NoDaemon, NodeContext, NodeDaemon, PeerContext};
pub use guard::LabGuard;
pub use hactl::{HactlAgent, Timers, Tweaks, api_socket, manifest_dir};
pub use instance::{Lab, sweep_orphans, teardown};
pub use keepalived::Keepalived;
pub use outage::{Outage, double_holders, first_answer_from, outage_after, summarize};
pub use probe::{Answer, ProbeRecord, Prober, parse_page};
pub use procs::{ProcessUsage, usage_of};
pub use sampler::{HolderSample, Sampler, holders_now};
pub use spec::{LabSpec, NodeSpec};
pub use state::STATE_ROOT;
pub use status::{LabStatus, NodeStatus};

use std::path::PathBuf;

/// What went wrong in the lab; each variant names the step, so a failed `up` says where it stopped (`down`
/// cleans up whatever it got to).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command (ip, nft, nginx …) could not be run or failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and output, or the spawn error.
        detail: String,
    },
    /// A file of the lab could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The lab's state file is unreadable.
    #[error("lab state {path}: {detail}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The lab description is not acceptable (names, addresses outside the documentation range …).
    #[error("invalid lab: {0}")]
    Spec(String),
    /// No single node held the floating address within the time given.
    #[error("no single holder of the floating address within {0:?}")]
    NoHolder(std::time::Duration),
    /// A node name that the lab does not have.
    #[error("no node {0:?} in this lab")]
    UnknownNode(String),
    /// A lab with this tag already exists (run `hactl lab down` first).
    #[error("lab {0:?} already exists ({1}); tear it down first")]
    Exists(String, PathBuf),
    /// No lab with this tag exists.
    #[error("no lab {0:?} ({1} is missing)")]
    Missing(String, PathBuf),
    /// The node daemon could not be prepared (its key, its binary).
    #[error("node daemon: {0}")]
    Daemon(String),
    /// A probe or sampler thread panicked (a bug).
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// Entering a namespace or a system call failed.
    #[error("{what}: {errno}")]
    Sys {
        /// What was being done.
        what: String,
        /// The error.
        errno: nix::Error,
    },
}

impl LabError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LabError {
        let path = path.into();
        move |source| LabError::Io { path, source }
    }
}
