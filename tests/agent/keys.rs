//! Key rotation without a restart (DESIGN.md §4.8): the agents re-read the key file at every resync and put
//! changed keys in force; a node with a key its peer lacks is alive but misconfigured, never dead.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{Cluster, Policy, cluster, ns};
use crate::support::agents::{Agents, ONE_LAB};
use crate::support::netns::{eventually, netns_available};

/// The agents' resync period plus a margin: every agent has read the key file again within this.
const RESYNC_AND_MARGIN: Duration = Duration::from_secs(7);

/// The key line of a file `hactl keygen` wrote.
fn new_key(work: &Path, name: &str) -> String {
    let path = work.join(name);
    assert!(Command::new(env!("CARGO_BIN_EXE_hactl")).arg("keygen").arg(&path).status().unwrap().success());
    key_line(&path)
}

fn key_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap().to_string()
}

/// Replaces the key file as an operator's tool would (mode 0600, atomic rename).
fn write_keys(path: &Path, keys: &[&str]) {
    let tmp = path.with_extension("new");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).unwrap();
    f.write_all((keys.join("\n") + "\n").as_bytes()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn status(c: &Cluster, node: &str) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .args(["status", "-o", "json"])
        .env("HACTL_SOCKET", Agents::socket(c.work.path(), node))
        .output()
        .unwrap();
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// `peer` as `node` reports it: its state and whether its datagrams fail authentication.
fn peer_seen(c: &Cluster, node: &str, peer: &str) -> Option<(String, bool)> {
    let s = status(c, node)?;
    let p = s["nodes"].as_array()?.iter().find(|n| n["name"] == peer)?;
    Some((p["state"].as_str()?.to_string(), p["auth_failing"].as_bool()?))
}

#[test]
fn cluster_keys_rotate_in_three_steps_without_a_restart() {
    if !netns_available("cluster_keys_rotate_in_three_steps_without_a_restart") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = cluster(Policy::Majority);
    let (first, pid) = c.settled();
    let other = if first == "ha1" { "ha2" } else { "ha1" };
    let path = c.work.path().join("authkey");
    let (old, new) = (key_line(&path), new_key(c.work.path(), "newkey"));
    // Each step is taken up by each agent at its own next resync, so for a while the nodes disagree: that is the
    // point of the three steps, and nothing may notice.
    for (step, keys) in [vec![old.as_str(), new.as_str()], vec![&new, &old], vec![&new]].iter().enumerate() {
        write_keys(&path, keys);
        c.keeps_serving(first, &pid, RESYNC_AND_MARGIN);
        let changed = c.agents.logs().matches("cluster keys changed").count();
        assert_eq!(changed, 3 * (step + 1), "step {step}: every agent took the keys\n{}", c.agents.logs());
    }
    assert!(!c.agents.logs().contains("failed authentication"), "{}", c.agents.logs());
    // The peer API took the new key too: a client signing with the file's only key (the new one) is accepted.
    let apply = ns(&c, first).cmd(env!("CARGO_BIN_EXE_hactl")).arg("apply").arg(&c.dir).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&apply.stdout), String::from_utf8_lossy(&apply.stderr));
    assert!(apply.status.success(), "apply signed with the new key: {said}\n{}", c.agents.logs());
    assert_eq!(peer_seen(&c, first, other), Some(("online".into(), false)), "{}", c.agents.logs());

    // A key file that became readable by others is refused; the keys in force stay.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = eventually(RESYNC_AND_MARGIN, || {
        let errors = status(&c, first)?["errors"].to_string();
        errors.contains("lets group or others read").then_some(())
    });
    assert!(refused.is_some(), "a readable key file is an error in status\n{}", c.agents.logs());
    c.keeps_serving(first, &pid, Duration::from_millis(500));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(peer_seen(&c, first, other), Some(("online".into(), false)), "{}", c.agents.logs());

    // Only `other` is given a key nobody else has (a bind mount in its agent's own mount namespace, which
    // `ip netns exec` made): the holder sees it alive and misconfigured, not dead, and keeps the group.
    let stray = c.work.path().join("straykey");
    new_key(c.work.path(), "straykey");
    let pid_other = c.agents.pid(other).to_string();
    let mount = Command::new("nsenter")
        .args(["-t", &pid_other, "-m", "mount", "--bind"])
        .arg(&stray)
        .arg(&path)
        .status()
        .unwrap();
    assert!(mount.success(), "bind mount in {other}'s agent's mount namespace");
    let misconfigured =
        eventually(RESYNC_AND_MARGIN, || (peer_seen(&c, first, other)? == ("online".into(), true)).then_some(()));
    assert!(misconfigured.is_some(), "{other}: {:?}\n{}", peer_seen(&c, first, other), c.agents.logs());
    // Longer than deadTime (600 ms): still alive, misconfigured.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(peer_seen(&c, first, other), Some(("online".into(), true)), "{}", c.agents.logs());
    c.keeps_serving(first, &pid, Duration::from_millis(500));
}
