//! `hactl agent` as the lab's node daemon: every node runs the agent on one shared copy of `manifests/lab/`
//! (the guide's cluster on 192.0.2.0/24), and the agent starts nginx — the group's service — on the holder only.
//!
//! The lab's copy differs from `manifests/lab/` in three places, all written here: `authKeyFile` points at the
//! lab's own key (`/run/hactl-lab/<tag>/authkey`, never /etc), `initDead` is 2 s (the namespaces start within
//! milliseconds of each other, so waiting the default 10 s would only delay the demo), and `--timers tuned`
//! replaces the heartbeat and lease timers. Nodes beyond ha1 and ha2 are appended as Node documents. The
//! end-to-end tests change a few more lines through [`Tweaks`] (quorum policy, monitor interval, migration
//! threshold), never anything else.
//!
//! Every node gets its own copy in `<node dir>/manifests/` (as on real machines: `hactl apply` delivers into each
//! node's directory, and a file written straight into one node's directory must not reach the others), and its
//! own local API socket `<node dir>/hactl.sock`, which [`crate::lab::Lab::hactl`] points the CLI at.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::LabError;
use super::daemon::{DaemonCommand, NodeContext, NodeDaemon};
use crate::sys::keyfile;

const CLUSTER: &str = include_str!("../../manifests/lab/cluster.yaml");
const WEB: &str = include_str!("../../manifests/lab/webservices.yaml");

/// Which timers the lab's manifests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timers {
    /// hactl's defaults, as in `manifests/lab/`: heartbeat 200 ms, deadTime 1 s, lease 1 s.
    #[default]
    Default,
    /// Fast failover on a quiet network: heartbeat 50 ms, deadTime 200 ms, lease 250 ms, probe 20 ms.
    Tuned,
}

/// Lines of the lab's manifests a test may change, so each scenario runs the guide's cluster with one knob turned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tweaks {
    /// `quorum: {policy: majority}` instead of the guide's `ignore` (three-node partition tests).
    pub majority: bool,
    /// The web server's monitor interval instead of the guide's 5 s.
    pub monitor_interval: Option<std::time::Duration>,
    /// The cluster's default `migrationThreshold` instead of 3.
    pub migration_threshold: Option<u32>,
}

/// The hactl agent as a lab node daemon.
#[derive(Debug, Clone, Default)]
pub struct HactlAgent {
    /// Timers of the lab's manifests.
    pub timers: Timers,
    /// The hactl binary to run (default: this process's own executable).
    pub binary: Option<PathBuf>,
    /// Changes to the guide's manifests for one test.
    pub tweaks: Tweaks,
}

/// The local API socket of the agent whose node directory is `node_dir`.
pub fn api_socket(node_dir: &Path) -> PathBuf {
    node_dir.join("hactl.sock")
}

/// The manifest directory the agent of `node_dir` watches (and `hactl apply` delivers into).
pub fn manifest_dir(node_dir: &Path) -> PathBuf {
    node_dir.join("manifests")
}

impl HactlAgent {
    /// The lab's manifest set for the nodes of `ctx` (one file; the same text for every node).
    pub fn manifests(&self, ctx: &NodeContext<'_>, key: &Path) -> String {
        let (heartbeat, lease, announce) = match self.timers {
            Timers::Default => (None, None, None),
            Timers::Tuned => (
                Some("  heartbeat: {interval: 50ms, deadTime: 200ms, warnTime: 150ms, initDead: 2s}"),
                Some("  lease: {duration: 250ms, margin: 50ms, driftBound: 0.001, strict: false}"),
                Some("  announce: {count: 5, interval: 50ms, probeWait: 20ms, refresh: 10s}"),
            ),
        };
        let mut out = String::new();
        for line in CLUSTER.lines() {
            let replaced = if line.starts_with("  authKeyFile:") {
                format!("  authKeyFile: {}", key.display())
            } else if line.starts_with("  heartbeat:") {
                heartbeat.map_or_else(|| line.replace("initDead: 10s", "initDead: 2s"), str::to_string)
            } else if line.starts_with("  lease:") {
                lease.unwrap_or(line).to_string()
            } else if line.starts_with("  quorum:") && self.tweaks.majority {
                "  quorum: {policy: majority}".to_string()
            } else if let Some(n) = self.tweaks.migration_threshold.filter(|_| line.starts_with("  defaults:")) {
                line.replace("migrationThreshold: 3", &format!("migrationThreshold: {n}"))
            } else {
                line.to_string()
            };
            out.push_str(&replaced);
            out.push('\n');
        }
        let mut names: Vec<(&str, std::net::Ipv4Addr)> = vec![(ctx.node, ctx.address)];
        names.extend(ctx.peers.iter().map(|p| (p.name.as_str(), p.address)));
        names.sort();
        for (name, address) in names.into_iter().filter(|(n, _)| !CLUSTER.contains(&format!("name: {n}}}"))) {
            // write! to a String cannot fail.
            let _ = write!(
                out,
                "---\napiVersion: hactl/v1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{address: {address}}}\n"
            );
        }
        out.push_str("---\n");
        for line in WEB.lines() {
            match (announce, self.tweaks.monitor_interval) {
                (Some(a), _) if line.starts_with("  announce:") => out.push_str(a),
                (_, Some(every)) if line.starts_with("    interval: 5s") => {
                    // write! to a String cannot fail.
                    let _ = write!(out, "    interval: {}ms", every.as_millis());
                }
                _ => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }
}

impl NodeDaemon for HactlAgent {
    fn name(&self) -> &str {
        "hactl"
    }

    fn starts_web_server(&self) -> bool {
        true
    }

    fn prepare(&self, ctx: &NodeContext<'_>) -> Result<Option<DaemonCommand>, LabError> {
        // The page and nginx config the group's service uses on this node; the agent starts nginx, not the lab.
        super::web::prepare(ctx.node, ctx.dir)?;
        let lab_dir = ctx.dir.parent().unwrap_or(ctx.dir);
        let key = lab_dir.join("authkey");
        if !key.exists() {
            keyfile::generate(&key).map_err(|e| LabError::Daemon(e.to_string()))?;
        }
        let manifests = manifest_dir(ctx.dir);
        std::fs::create_dir_all(&manifests).map_err(LabError::io(&manifests))?;
        let file = manifests.join("lab.yaml");
        std::fs::write(&file, self.manifests(ctx, &key)).map_err(LabError::io(&file))?;
        let binary = match &self.binary {
            Some(b) => b.clone(),
            None => std::env::current_exe().map_err(|e| LabError::Daemon(format!("cannot find hactl itself: {e}")))?,
        };
        let s = |p: &Path| p.display().to_string();
        Ok(Some(DaemonCommand {
            label: "hactl".into(),
            argv: vec![
                s(&binary),
                "agent".into(),
                "--manifests".into(),
                s(&manifests),
                "--node".into(),
                ctx.node.to_string(),
                "--state-dir".into(),
                s(&ctx.dir.join("state")),
                "--api-socket".into(),
                s(&api_socket(ctx.dir)),
            ],
            env: vec![("HACTL_LOG".into(), "info".into())],
            log: ctx.dir.join("log/hactl.log"),
            run_files: Vec::new(),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lab::PeerContext;
    use crate::manifest;

    fn ctx<'a>(dir: &'a Path, peers: Vec<PeerContext>) -> NodeContext<'a> {
        NodeContext {
            node: "ha1",
            rank: 0,
            address: "192.0.2.11".parse().unwrap(),
            peers,
            floating: "192.0.2.100".parse().unwrap(),
            dir,
        }
    }

    fn valid(text: &str) -> manifest::DesiredState {
        let loaded = manifest::load_bytes(vec![(PathBuf::from("lab.yaml"), text.as_bytes().to_vec())]);
        loaded.state.unwrap_or_else(|| panic!("{:#?}", loaded.diagnostics))
    }

    #[test]
    fn lab_manifests_are_valid_for_both_timer_sets_and_extra_nodes() {
        let dir = Path::new("/run/hactl-lab/t/ha1");
        let peers = vec![
            PeerContext { name: "ha2".into(), address: "192.0.2.12".parse().unwrap() },
            PeerContext { name: "ha3".into(), address: "192.0.2.13".parse().unwrap() },
        ];
        let key = Path::new("/run/hactl-lab/t/authkey");
        let default = valid(&HactlAgent::default().manifests(&ctx(dir, peers.clone()), key));
        assert_eq!(default.cluster.auth_key_file, key);
        assert_eq!(default.cluster.heartbeat.init_dead, std::time::Duration::from_secs(2));
        assert_eq!(default.nodes.len(), 3, "ha3 is appended");
        let tuned = HactlAgent { timers: Timers::Tuned, ..HactlAgent::default() };
        let tuned = valid(&tuned.manifests(&ctx(dir, peers.clone()), key));
        assert_eq!(tuned.cluster.lease.duration, std::time::Duration::from_millis(250));
        assert_ne!(default.digest(), tuned.digest());
        let tweaks = Tweaks {
            majority: true,
            monitor_interval: Some(std::time::Duration::from_millis(500)),
            migration_threshold: Some(2),
        };
        let text = HactlAgent { tweaks, ..HactlAgent::default() }.manifests(&ctx(dir, peers), key);
        let tweaked = valid(&text);
        assert_eq!(tweaked.cluster.quorum.policy, crate::manifest::model::QuorumPolicy::Majority);
        assert!(text.contains("migrationThreshold: 2") && text.contains("    interval: 500ms"), "{text}");
        assert_ne!(default.digest(), tweaked.digest());
    }
}
