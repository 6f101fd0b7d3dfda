//! The control plane through the real binary against real agents in network namespaces: `status` in text and
//! JSON (one node's, `--via` another's, `--all`), replicated `standby`/`move`/`clear` seen on both nodes with
//! their expiry, refusals, the local socket's permissions, `diff` with every node's plan, `apply --wait` until
//! converged (and its time-out naming the lagging node), and the peer API's authentication.

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
    lab: Lab,
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
    Cluster { agents, ha1, ha2, work, lab }
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
    assert_eq!(g["failcounts"], serde_json::json!({}), "no failure anywhere: {s}");
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

    // Every node's own view through the local agent (relayed over the signed peer API), and one other node's.
    let out = c.hactl("ha1", &["status", "--all", "-o", "json"]);
    assert!(out.status.success(), "{}\n{}", text(&out), c.agents.logs());
    let views: Value = serde_json::from_slice(&out.stdout).unwrap();
    let answered: Vec<(&str, &str)> = views
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["node"].as_str().unwrap(), v["status"]["node"].as_str().unwrap()))
        .collect();
    assert_eq!(answered, [("ha1", "ha1"), ("ha2", "ha2")], "{views}");
    assert_eq!(views[1]["status"]["groups"][0]["members"][1]["state"], "down", "ha2's own observation: {views}");
    assert!(views[1]["error"].is_null(), "{views}");
    let t = text(&c.hactl("ha1", &["status", "--all"]));
    assert!(t.contains("===== ha2 =====") && t.contains("Cluster t (seen from ha2)"), "{t}");
    let out = c.hactl("ha1", &["status", "--via", "ha2", "-o", "json"]);
    let via: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via["node"], "ha2", "{via}");
    let out = c.hactl("ha1", &["status", "--via", "ha9"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no node ha9"), "{}", text(&out));

    // Standby issued on ha1 is replicated: ha2's own status shows it, in JSON and text; `online` through ha2.
    let out = c.hactl("ha1", &["standby", "ha2"]);
    assert!(out.status.success(), "{}", text(&out));
    let standby = |node: &str, on: bool| {
        eventually(Duration::from_secs(10), || {
            let s = c.status(node)?;
            let ha2 = s["nodes"].as_array()?.iter().find(|n| n["name"] == "ha2")?.clone();
            (ha2["standby"] == on).then_some(())
        })
    };
    assert!(standby("ha2", true).is_some(), "ha2 learns of its standby\n{}", c.agents.logs());
    assert!(text(&c.hactl("ha2", &["status"])).contains("[standby]"));
    let out = c.hactl("ha1", &["online", "ha2", "--via", "ha2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(standby("ha1", false).is_some(), "ha1 learns that ha2 is online again\n{}", c.agents.logs());

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
    for node in ["ha1", "ha2"] {
        // Issued on ha1, replicated: both show it.
        let s = c.status(node).unwrap();
        assert_eq!(s["groups"][0]["move"]["node"], "ha2", "{node}: {s}");
        assert!(s["groups"][0]["move"]["expires_in_ms"].is_null(), "until cleared: {s}");
    }
    assert!(text(&c.hactl("ha2", &["status"])).contains("moved to ha2 (until cleared)"));

    // Cleared through ha2's agent (relayed by ha1's): gone on both.
    let out = c.hactl("ha1", &["clear", "WebServices", "--via", "ha2"]);
    assert!(out.status.success(), "{}", text(&out));
    for node in ["ha2", "ha1"] {
        let gone = eventually(Duration::from_secs(10), || c.status(node).filter(|s| s["groups"][0]["move"].is_null()));
        assert!(gone.is_some(), "{node} no longer shows the move\n{}", c.agents.logs());
    }

    // A move for a while: shown with its expiry, gone after it.
    let out = c.hactl("ha2", &["move", "WebServices", "ha1", "--for", "4s", "--timeout", "30s"]);
    assert!(out.status.success(), "{}\n{}", text(&out), c.agents.logs());
    let left = c.status("ha2").unwrap()["groups"][0]["move"]["expires_in_ms"].as_u64().unwrap();
    assert!(left <= 4000, "{left}");
    // The peer that did not issue it shows it with its expiry too.
    let s = c.status("ha1").unwrap();
    assert_eq!(s["groups"][0]["move"]["node"], "ha1", "{s}");
    assert!(s["groups"][0]["move"]["expires_in_ms"].as_u64().unwrap() <= 4000, "{s}");
    assert!(text(&c.hactl("ha1", &["status"])).contains("moved to ha1 (expires in"));
    for node in ["ha2", "ha1"] {
        let gone = eventually(Duration::from_secs(10), || c.status(node).filter(|s| s["groups"][0]["move"].is_null()));
        assert!(gone.is_some(), "the move expires by itself on {node}");
    }

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

    // Issued on a node that hears no peer: accepted, the answer says so, and the peer learns of it on rejoining.
    c.lab.unplug("ha2");
    let cut = eventually(Duration::from_secs(10), || {
        let s = c.status("ha1")?;
        (s["nodes"].as_array()?.iter().find(|n| n["name"] == "ha2")?["state"] == "offline").then_some(())
    });
    assert!(cut.is_some(), "ha1 declares ha2 offline\n{}", c.agents.logs());
    let out = c.hactl("ha1", &["standby", "ha2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("hears no peer"), "{}", text(&out));
    c.lab.plug("ha2");
    let learnt = eventually(Duration::from_secs(15), || {
        let s = c.status("ha2")?;
        (s["nodes"].as_array()?.iter().find(|n| n["name"] == "ha2")?["standby"] == true).then_some(())
    });
    assert!(learnt.is_some(), "ha2 learns of its standby once it hears ha1 again\n{}", c.agents.logs());
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

/// The manifests plus a second service `web2` in the group: a change the holder's planner acts on.
fn with_web2(dir: &Path, key: &Path) {
    manifests(dir, key, "1s");
    let file = dir.join("cluster.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap().replace("members: [ip1, web]", "members: [ip1, web, web2]")
        + "---\napiVersion: hactl/v1\nkind: Service\nmetadata: {name: web2}\nspec:\n  exec: {run: \"exec sleep 601\"}\n";
    std::fs::write(&file, yaml).unwrap();
}

/// The manifests plus a member `slow` whose start takes 3 s: a change the holder cannot finish at once.
fn with_slow_start(dir: &Path, key: &Path, marker: &Path) {
    manifests(dir, key, "2s");
    let file = dir.join("cluster.yaml");
    let m = marker.display();
    let yaml = std::fs::read_to_string(&file).unwrap().replace("members: [ip1, web]", "members: [ip1, web, slow]")
        + &format!(
            "---\napiVersion: hactl/v1\nkind: Service\nmetadata: {{name: slow}}\nspec:\n  exec: {{start: \"sleep 3; touch {m}\", stop: \"rm -f {m}\", status: \"test -e {m}\"}}\n"
        );
    std::fs::write(&file, yaml).unwrap();
}

/// The plan sections of `diff`'s output for ha1 and ha2 (the lines after each heading).
fn plans(out: &str) -> (String, String) {
    let section = |node: &str| {
        let Some(start) = out.find(&format!("Plan on {node}")) else { return String::new() };
        let rest = &out[start..];
        rest.lines().skip(1).take_while(|l| l.starts_with("  ")).map(|l| format!("{l}\n")).collect()
    };
    (section("ha1"), section("ha2"))
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
    with_web2(&change, &key);
    let new = digest_of(&change);
    assert_ne!(Some(new.as_str()), c.status("ha1").unwrap()["digest"].as_str());

    let out = c.hactl_in("ha1", &["apply", change.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    assert!(out.status.success(), "{}\n{}", text(&out), c.agents.logs());
    let t = text(&out);
    assert!(t.contains(&format!("every node runs config {new} and has nothing left to do")), "{t}");
    for want in ["What changed:", "cluster.yaml: modified", "ha1: WebServices: start web2", "ha2: no action"] {
        assert!(t.contains(want), "`{want}` in\n{t}");
    }
    let on_disk = std::fs::read_to_string(c.work.path().join("manifests-ha2/cluster.yaml")).unwrap();
    assert!(on_disk.contains("web2"), "written into ha2's watched directory");
    // Converged means done, not just delivered: web2 already runs on the holder when apply returns.
    let s = c.status("ha1").unwrap();
    let web2 = s["groups"][0]["members"].as_array().unwrap().iter().find(|m| m["name"] == "web2").cloned();
    assert_eq!(web2.map(|m| m["state"].clone()), Some(Value::from("up")), "{s}");

    // No time to converge: every lagging node is named with why. The holder cannot be done within the timeout
    // whatever the machine's speed: the new member's start takes seconds.
    with_slow_start(&change, &key, &c.work.path().join("slow-up"));
    let out = c.hactl_in("ha1", &["apply", change.to_str().unwrap(), "--wait", "--timeout", "0s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("not converged on config") && t.contains("  ha1: still "), "{t}");
    let seen = eventually(Duration::from_secs(15), || {
        c.status("ha2").filter(|s| s["digest"].as_str() == Some(digest_of(&change).as_str()))
    });
    assert!(seen.is_some(), "ha2 converges afterwards\n{}", c.agents.logs());
    let running = eventually(Duration::from_secs(15), || c.holder("ha1").filter(|h| h == "ha1"));
    assert!(running.is_some(), "the group keeps running, the slow member up too\n{}", c.agents.logs());

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
        // The operations and reads of the local API are served too, under the same signature rules.
        let op = br#"{"group":"WebServices","node":"ha2","for_ms":null}"#.to_vec();
        let unsigned_move = send(addr, "POST", "/v1/move", op.clone(), &[]).await.unwrap().0;
        let wrong_path = sign(&keys, "POST", "/v1/clear", &op, now_ms());
        let retargeted_move = send(addr, "POST", "/v1/move", op, &wrong_path).await.unwrap().0;
        let headers = sign(&keys, "GET", "/v1/status", b"", now_ms());
        let (code, status) = send(addr, "GET", "/v1/status", Vec::new(), &headers).await.unwrap();
        let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
        let headers = sign(&keys, "GET", "/v1/status?node=ha1", b"", now_ms());
        let relay = send(addr, "GET", "/v1/status?node=ha1", Vec::new(), &headers).await.unwrap().0;
        ((unsigned, tampered, stale, good, replayed), (unsigned_move, retargeted_move, code, relay), status)
    });
    let (codes, ops, status) = codes;
    assert_eq!(codes, (401, 401, 401, 200, 401), "unsigned, tampered, stale, good, replayed\n{}", c.agents.logs());
    assert_eq!(ops, (401, 401, 200, 400), "unsigned move, move signed as clear, status, relay\n{}", c.agents.logs());
    assert_eq!(status["node"], "ha2", "{status}");
    assert!(c.status("ha1").unwrap()["groups"][0]["move"].is_null(), "no refused move took effect");
    let logs = c.agents.logs();
    for why in ["unsigned request", "bad signature", "stale request", "replayed request"] {
        assert!(logs.contains(why), "`{why}` logged\n{logs}");
    }
}

#[test]
fn diff_shows_the_manifest_change_and_every_nodes_plan() {
    if !netns_available("diff_shows_the_manifest_change_and_every_nodes_plan") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut c = cluster();
    c.settle_on("ha1");
    let key = c.work.path().join("authkey");
    let same = c.work.path().join("same");
    manifests(&same, &key, "1s");
    let out = c.hactl("ha1", &["diff", same.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("(no change)"), "{t}");
    assert_eq!(plans(&t), ("  (nothing to do)\n".into(), "  (nothing to do)\n".into()), "{t}");

    // A second service in the group: the holder's planner would start it; the peer's would do nothing.
    let change = c.work.path().join("change");
    with_web2(&change, &key);
    let out = c.hactl("ha1", &["diff", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("--- running/cluster.yaml") && t.contains("+metadata: {name: web2}"), "{t}");
    assert!(t.contains("-  spec: {members: [ip1, web]") || t.contains("-spec: {members: [ip1, web]"), "{t}");
    let (ha1, ha2) = plans(&t);
    assert!(ha1.contains("WebServices: start web2"), "the holder's planner starts it\n{t}");
    assert!(ha2.contains("(nothing to do)") && !ha2.contains("web2"), "ha2 does not hold the group\n{t}");
    assert!(!t.contains("\x1b["), "no colour when not on a terminal");
    // Asked from ha2, the same plans: each node's own, relayed.
    let out = c.hactl("ha2", &["diff", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t2 = text(&out);
    assert_eq!(plans(&t2), (ha1, ha2), "{t2}");

    // A node that cannot be asked is named and makes the review incomplete: exit 2, the rest still printed.
    c.agents.kill("ha2");
    let out = c.hactl("ha1", &["diff", change.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no plan from: ha2") && plans(&t).1.contains("NOT KNOWN"), "{t}");
    assert!(plans(&t).0.contains("WebServices: start web2"), "{t}");

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
