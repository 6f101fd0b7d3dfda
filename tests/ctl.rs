//! The control plane through the real binary against real agents in network namespaces: `status` in text and
//! JSON, `move` (waiting, `--for` expiry), `clear`, refusals, and the local socket's permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::agents::{Agents, ONE_LAB};
use crate::support::netns::{Lab, Ns, eventually, netns_available};

const FLOATING: &str = "192.0.2.100";

fn manifests(dir: &Path, key: &Path, monitor: &str) {
    let text = format!(
        "apiVersion: hactl/v1\nkind: Cluster\nmetadata: {{name: t}}\nspec:\n  authKeyFile: {}\n  quorum: {{policy: ignore}}\n  heartbeat: {{interval: 100ms, deadTime: 600ms, warnTime: 300ms, initDead: 1s}}\n  lease: {{duration: 2s}}\n---\n\
         apiVersion: hactl/v1\nkind: Node\nmetadata: {{name: ha1}}\nspec: {{address: 192.0.2.11}}\n---\n\
         apiVersion: hactl/v1\nkind: Node\nmetadata: {{name: ha2}}\nspec: {{address: 192.0.2.12}}\n---\n\
         apiVersion: hactl/v1\nkind: FloatingIP\nmetadata: {{name: ip1}}\nspec: {{address: {FLOATING}/24, interface: eth0, announce: {{probeWait: 50ms}}}}\n---\n\
         apiVersion: hactl/v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  exec: {{run: \"exec sleep 600\"}}\n  monitor: {{interval: {monitor}}}\n---\n\
         apiVersion: hactl/v1\nkind: Group\nmetadata: {{name: WebServices}}\nspec: {{members: [ip1, web], prefer: {{ha1: 50}}}}\n",
        key.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cluster.yaml"), text).unwrap();
}

/// Two agents in a lab, with their sockets in the test's work directory.
struct Cluster {
    agents: Agents,
    ha1: Ns,
    ha2: Ns,
    work: tempfile::TempDir,
    _lab: Lab,
}

fn cluster() -> Cluster {
    let mut lab = Lab::start();
    let (ha1, ha2) = (lab.add_node("ha1"), lab.add_node("ha2"));
    ha1.ip(&["addr", "add", "192.0.2.11/24", "dev", "eth0"]);
    ha2.ip(&["addr", "add", "192.0.2.12/24", "dev", "eth0"]);
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("authkey");
    assert!(Command::new(env!("CARGO_BIN_EXE_hactl")).arg("keygen").arg(&key).status().unwrap().success());
    // Each node watches its own directory, as on real machines (apply writes into each).
    let mut agents = Agents::default();
    for (node, ns) in [("ha1", &ha1), ("ha2", &ha2)] {
        let dir = work.path().join(format!("manifests-{node}"));
        manifests(&dir, &key, "1s");
        agents.start(ns, node, &dir, work.path());
    }
    Cluster { agents, ha1, ha2, work, _lab: lab }
}

impl Cluster {
    fn socket(&self, node: &str) -> PathBuf {
        Agents::socket(self.work.path(), node)
    }

    /// Runs `hactl ARGS` against `node`'s agent (through `HACTL_SOCKET`).
    fn hactl(&self, node: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hactl")).args(args).env("HACTL_SOCKET", self.socket(node)).output().unwrap()
    }

    fn ns(&self, node: &str) -> &Ns {
        if node == "ha1" { &self.ha1 } else { &self.ha2 }
    }

    /// Runs `hactl ARGS` inside `node`'s namespace (the peer API is reachable only on the lab's network).
    fn hactl_in(&self, node: &str, args: &[&str]) -> Output {
        self.ns(node)
            .cmd(env!("CARGO_BIN_EXE_hactl"))
            .args(args)
            .env("HACTL_SOCKET", self.socket(node))
            .output()
            .unwrap()
    }

    fn status(&self, node: &str) -> Option<Value> {
        let out = self.hactl(node, &["status", "-o", "json"]);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// The group's holder as `node` reports it, once every member there is up (or it is a peer's claim).
    fn holder(&self, node: &str) -> Option<String> {
        let s = self.status(node)?;
        let g = &s["groups"][0];
        let holder = g["holder"].as_str()?.to_string();
        let up = g["members"].as_array()?.iter().all(|m| m["state"] == "up");
        (holder != node || up).then_some(holder)
    }

    fn holds(&self, node: &str) -> bool {
        self.ns(node).ip(&["-br", "addr", "show", "dev", "eth0"]).contains(FLOATING)
    }

    fn settle_on(&self, node: &str) {
        let seen = eventually(Duration::from_secs(20), || {
            (self.holder("ha1").as_deref() == Some(node) && self.holder("ha2").as_deref() == Some(node)).then_some(())
        });
        assert!(seen.is_some(), "both agents should report {node} as the holder\n{}", self.agents.logs());
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn status_reports_the_cluster_in_text_and_json() {
    if !netns_available("status_reports_the_cluster_in_text_and_json") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = cluster();
    c.settle_on("ha1");
    let mode = std::fs::metadata(c.socket("ha1")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the local API socket is root-only");

    let s = c.status("ha1").unwrap();
    assert_eq!(s["cluster"], "t");
    assert_eq!(s["node"], "ha1");
    assert_eq!(s["policy"], "ignore");
    assert!(s["warning"].as_str().unwrap().contains("split brain"), "{s}");
    let nodes = s["nodes"].as_array().unwrap();
    let ha2 = nodes.iter().find(|n| n["name"] == "ha2").unwrap();
    assert_eq!(ha2["state"], "online", "{s}");
    assert_eq!(ha2["digest"], s["digest"], "same config, no drift: {s}");
    assert_eq!(ha2["drift"], false);
    assert_eq!(ha2["standby"], false);
    let g = &s["groups"][0];
    assert_eq!(g["name"], "WebServices");
    assert_eq!(g["holder"], "ha1");
    let left = g["lease_remaining_ms"].as_u64().unwrap();
    assert!(left > 0 && left <= 2000, "lease remaining within the 2 s lease: {left}");
    assert!(g["round"].as_u64().is_some(), "{s}");
    let members: Vec<(&str, &str, u64)> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["state"].as_str().unwrap(), m["failcount"].as_u64().unwrap()))
        .collect();
    assert_eq!(members, [("ip1", "up", 0), ("web", "up", 0)]);
    assert!(g["move"].is_null());
    // The peer's view: the holder is learned from ha1's heartbeats, members are down on ha2.
    let s2 = c.status("ha2").unwrap();
    assert_eq!(s2["groups"][0]["holder"], "ha1", "{s2}");
    assert_eq!(s2["groups"][0]["members"][1]["state"], "down", "{s2}");

    let out = c.hactl("ha1", &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    for want in ["Cluster t (seen from ha1)", "Quorum policy: ignore", "WARNING", "WebServices: on ha1", "ha2 "] {
        assert!(t.contains(want), "`{want}` in\n{t}");
    }
    let yaml = text(&c.hactl("ha1", &["status", "-o", "yaml"]));
    assert!(yaml.contains("cluster: t") && yaml.contains("holder: ha1"), "{yaml}");

    // A broken manifest change is reported as an error, and the group keeps running.
    std::fs::write(
        c.work.path().join("manifests-ha1/broken.yaml"),
        "apiVersion: hactl/v1\nkind: Group\nmetadata: {name: G2}\nspec: {members: [nope]}\n",
    )
    .unwrap();
    let rejected = eventually(Duration::from_secs(15), || {
        let s = c.status("ha1")?;
        s["errors"].as_array()?.iter().any(|e| e.as_str().is_some_and(|e| e.contains("rejected"))).then_some(s)
    });
    assert!(rejected.is_some(), "a rejected change shows in status\n{}", c.agents.logs());
    assert_eq!(c.holder("ha1").as_deref(), Some("ha1"));
}

#[test]
fn move_waits_for_the_target_and_clear_and_expiry_end_it() {
    if !netns_available("move_waits_for_the_target_and_clear_and_expiry_end_it") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = cluster();
    c.settle_on("ha1");

    let out = c.hactl("ha1", &["move", "WebServices", "ha2", "--timeout", "30s"]);
    assert!(out.status.success(), "{}\n{}", text(&out), c.agents.logs());
    assert!(text(&out).contains("WebServices runs on ha2"), "{}", text(&out));
    assert!(c.holds("ha2") && !c.holds("ha1"), "the address moved\n{}", c.agents.logs());
    let s = c.status("ha1").unwrap();
    assert_eq!(s["groups"][0]["move"]["node"], "ha2", "{s}");
    assert!(s["groups"][0]["move"]["expires_in_ms"].is_null(), "until cleared: {s}");

    let out = c.hactl("ha1", &["clear", "WebServices"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(c.status("ha1").unwrap()["groups"][0]["move"].is_null());

    // A move for a while: shown with its expiry, gone after it.
    let out = c.hactl("ha2", &["move", "WebServices", "ha1", "--for", "4s", "--timeout", "30s"]);
    assert!(out.status.success(), "{}\n{}", text(&out), c.agents.logs());
    let left = c.status("ha2").unwrap()["groups"][0]["move"]["expires_in_ms"].as_u64().unwrap();
    assert!(left <= 4000, "{left}");
    let gone = eventually(Duration::from_secs(10), || c.status("ha2").filter(|s| s["groups"][0]["move"].is_null()));
    assert!(gone.is_some(), "the move expires by itself");

    // Refusals: unknown group and node are exit 1 with the reason; no agent is exit 2.
    let out = c.hactl("ha1", &["move", "Nope", "ha2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no group Nope"), "{}", text(&out));
    let out = c.hactl("ha1", &["standby", "ha9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no node ha9"), "{}", text(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .args(["status", "--api-socket"])
        .arg(c.work.path().join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn completions_and_man_page_are_generated() {
    let out = Command::new(env!("CARGO_BIN_EXE_hactl")).args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("hactl") && script.contains("status"), "{script}");
    let out = Command::new(env!("CARGO_BIN_EXE_hactl")).arg("man").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(".ie"), "roff");
}

fn digest_of(dir: &Path) -> String {
    let loaded = hactl::manifest::load_paths(&[dir.to_path_buf()]).unwrap();
    loaded.state.unwrap().digest()[..16].to_string()
}

#[test]
fn apply_delivers_to_every_node_and_names_the_unreachable_one() {
    if !netns_available("apply_delivers_to_every_node_and_names_the_unreachable_one") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut c = cluster();
    c.settle_on("ha1");
    let key = c.work.path().join("authkey");
    let change = c.work.path().join("change");
    manifests(&change, &key, "2s");
    let new = digest_of(&change);
    assert_ne!(Some(new.as_str()), c.status("ha1").unwrap()["digest"].as_str());

    let out = c.hactl_in("ha1", &["apply", change.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    assert!(out.status.success(), "{}\n{}", text(&out), c.agents.logs());
    assert!(text(&out).contains(&format!("every node runs config {new}")), "{}", text(&out));
    let on_disk = std::fs::read_to_string(c.work.path().join("manifests-ha2/cluster.yaml")).unwrap();
    assert!(on_disk.contains("interval: 2s"), "written into ha2's watched directory");
    assert_eq!(c.holder("ha1").as_deref(), Some("ha1"), "the group keeps running\n{}", c.agents.logs());

    // ha2 goes away: apply names it and exits 1; ha1 still gets the change.
    c.agents.kill("ha2");
    manifests(&change, &key, "3s");
    let newer = digest_of(&change);
    let out = c.hactl_in("ha1", &["apply", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("ha1 (192.0.2.11:") && text(&out).contains("not applied on: ha2"), "{}", text(&out));
    let seen = eventually(Duration::from_secs(15), || {
        c.status("ha1").filter(|s| s["digest"].as_str() == Some(newer.as_str()))
    });
    assert!(seen.is_some(), "ha1 runs the new config\n{}", c.agents.logs());

    // A watched directory in a git work tree refuses delivery.
    std::fs::create_dir(c.work.path().join("manifests-ha1/.git")).unwrap();
    let out = c.hactl_in("ha1", &["apply", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("deploy with git there"), "{}", text(&out));

    // An invalid directory is exit 2 with the validator's diagnostics, and nothing is delivered.
    std::fs::write(
        change.join("broken.yaml"),
        "apiVersion: hactl/v1\nkind: Group\nmetadata: {name: G2}\nspec: {members: [nope]}\n",
    )
    .unwrap();
    let out = c.hactl_in("ha1", &["apply", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nope"), "{}", text(&out));
}

#[test]
fn the_peer_api_rejects_unsigned_tampered_stale_and_replayed_requests() {
    if !netns_available("the_peer_api_rejects_unsigned_tampered_stale_and_replayed_requests") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = cluster();
    c.settle_on("ha1");
    let keys = hactl::sys::keyfile::load(&c.work.path().join("authkey")).unwrap();
    let set = hactl::agent::deliver::read_set(&c.work.path().join("manifests-ha1")).unwrap();
    let codes = c.ha1.block_on(move || async move {
        use hactl::api::peer::{MANIFESTS_PATH, now_ms, send, sign};
        let addr: std::net::SocketAddr = "192.0.2.12:694".parse().unwrap();
        let body = serde_json::to_vec(&set).unwrap();
        let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| async move {
            send(addr, "POST", MANIFESTS_PATH, body, &headers).await.unwrap().0
        };
        let unsigned = post(Vec::new(), body.clone()).await;
        let signed = sign(&keys, "POST", MANIFESTS_PATH, &body, now_ms());
        let mut tampered_body = body.clone();
        tampered_body.extend_from_slice(b" ");
        let tampered = post(signed.clone(), tampered_body).await;
        let stale = post(sign(&keys, "POST", MANIFESTS_PATH, &body, now_ms() - 120_000), body.clone()).await;
        let good = post(signed.clone(), body.clone()).await;
        let replayed = post(signed, body).await;
        (unsigned, tampered, stale, good, replayed)
    });
    assert_eq!(codes, (401, 401, 401, 200, 401), "unsigned, tampered, stale, good, replayed\n{}", c.agents.logs());
    let logs = c.agents.logs();
    for why in ["unsigned request", "bad signature", "stale request", "replayed request"] {
        assert!(logs.contains(why), "`{why}` logged\n{logs}");
    }
}

#[test]
fn diff_shows_the_manifest_change_and_the_holders_plan() {
    if !netns_available("diff_shows_the_manifest_change_and_the_holders_plan") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = cluster();
    c.settle_on("ha1");
    let key = c.work.path().join("authkey");
    let same = c.work.path().join("same");
    manifests(&same, &key, "1s");
    let out = c.hactl("ha1", &["diff", same.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("(no change)") && text(&out).contains("(nothing to do)"), "{}", text(&out));

    // A second service in the group: the holder's planner would start it; the peer's would do nothing.
    let change = c.work.path().join("change");
    manifests(&change, &key, "1s");
    let file = change.join("cluster.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap().replace("members: [ip1, web]", "members: [ip1, web, web2]")
        + "---\napiVersion: hactl/v1\nkind: Service\nmetadata: {name: web2}\nspec:\n  exec: {run: \"exec sleep 601\"}\n";
    std::fs::write(&file, yaml).unwrap();
    let out = c.hactl("ha1", &["diff", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("--- running/cluster.yaml") && t.contains("+metadata: {name: web2}"), "{t}");
    assert!(t.contains("-  spec: {members: [ip1, web]") || t.contains("-spec: {members: [ip1, web]"), "{t}");
    assert!(t.contains("Plan on ha1") && t.contains("WebServices: start web2"), "{t}");
    assert!(!t.contains("\x1b["), "no colour when not on a terminal");
    let out = c.hactl("ha2", &["diff", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("start web2"), "ha2 does not hold the group\n{}", text(&out));

    // Invalid: exit 2 with the validator's diagnostics.
    std::fs::write(
        change.join("broken.yaml"),
        "apiVersion: hactl/v1\nkind: Group\nmetadata: {name: G2}\nspec: {members: [nope]}\n",
    )
    .unwrap();
    let out = c.hactl("ha1", &["diff", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nope"), "{}", text(&out));
}
