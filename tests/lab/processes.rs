//! Scenarios h, j and k of issue 6: processes on the holder killed or signalled (the web server, the agent), as
//! the client and the sampler see it.
//!
//! Scenario j has two halves: SIGTERM (graceful hand-over, the shortest outage) is
//! [`sigterm_of_the_holders_agent_hands_over_with_the_shortest_outage`]; SIGUSR2 (re-execute in place, no
//! outage) is [`sigusr2_to_the_holders_agent_costs_the_client_nothing`].

use std::time::Duration;

use hactl::lab::{self, HolderSample, Lab, LabGuard, LabSpec, double_holders, outage_after};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{ONE_LAB, Watch, between, eventually, hactl_daemon, lab_available, logs, settle, status, tag};

/// Pids of the web server's processes (master and workers) on `node`.
fn nginx_pids(lab: &Lab, node: &str) -> Vec<i32> {
    let comm = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    lab.pids(node).unwrap().into_iter().filter(|&pid| comm(pid).trim() == "nginx").collect()
}

/// The failcount of the web server as `node`'s agent reports it.
fn web_failcount(lab: &Lab, node: &str) -> Option<u64> {
    let s = status(lab, node)?;
    s["groups"][0]["members"].as_array()?.iter().find(|m| m["name"] == "apache2")?["failcount"].as_u64()
}

/// Every sample shows exactly `node` holding the address.
fn only(samples: &[HolderSample], node: &str) -> bool {
    samples.iter().all(|s| s.holders == [node])
}

#[test]
fn a_killed_web_server_restarts_in_place_until_the_migration_threshold_moves_it() {
    if !lab_available("hactl_web_killed") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag("hweb");
    let spec = LabSpec::new(&tag, &["ha1", "ha2"]).unwrap();
    // The guide's migrationThreshold 3; a 1 s monitor so a hung (not dead) server would be seen soon too.
    let tweaks = lab::Tweaks { monitor_interval: Some(Duration::from_secs(1)), ..lab::Tweaks::default() };
    let lab = LabGuard::new(Lab::up(spec, &hactl_daemon(tweaks)).unwrap());
    settle(&lab, "ha1", Duration::from_secs(20));
    let watch = Watch::start(&lab, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));

    let mut kills = Vec::new();
    for n in 1..=3u64 {
        let before = nginx_pids(&lab, "ha1");
        assert!(!before.is_empty(), "nginx runs on ha1 before kill {n}\n{}", logs(&lab));
        kills.push(watch.now());
        for &pid in &before {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if n == 3 {
            break;
        }
        // Restarted in place: a new nginx on ha1, counted once more, and the client served by ha1 again.
        let restarted = eventually(Duration::from_secs(15), || {
            let now = nginx_pids(&lab, "ha1");
            let fresh = !now.is_empty() && now.iter().all(|p| !before.contains(p));
            (fresh && web_failcount(&lab, "ha1") == Some(n)).then_some(())
        });
        assert!(restarted.is_some(), "nginx was not restarted on ha1 after kill {n}\n{}", logs(&lab));
        super::wait_served_at(&lab, lab.spec().floating, "ha1", Duration::from_secs(10));
        std::thread::sleep(Duration::from_secs(1));
    }
    // The third failure reaches migrationThreshold: the group leaves ha1 for ha2.
    let moved = eventually(Duration::from_secs(20), || (lab.holders().unwrap() == ["ha2"]).then_some(()));
    assert!(moved.is_some(), "three failures did not move the group: {:?}\n{}", lab.holders(), logs(&lab));
    super::wait_served_at(&lab, lab.spec().floating, "ha2", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let (records, samples) = watch.finish();

    assert!(only(between_samples(&samples, Duration::ZERO, kills[2]), "ha1"), "restarts stay on ha1");
    assert_eq!(double_holders(&samples), Vec::<&HolderSample>::new());
    for (i, at) in kills.iter().enumerate() {
        let end = kills.get(i + 1).copied().unwrap_or(Duration::MAX);
        let outage = outage_after(between(&records, *at, end), *at).and_then(|o| o.duration());
        eprintln!("nginx kill {}: client outage {outage:?}", i + 1);
    }
    let last = records.last().and_then(|r| r.node().map(String::from));
    assert_eq!(last.as_deref(), Some("ha2"), "ha2 serves after the migration");
    lab.down().unwrap();
}

/// The samples from `from` (inclusive) to `to` (exclusive).
fn between_samples(samples: &[HolderSample], from: Duration, to: Duration) -> &[HolderSample] {
    let start = samples.partition_point(|s| s.at < from);
    &samples[start..samples.partition_point(|s| s.at < to).max(start)]
}

/// The cluster a signal or restart test runs on.
#[derive(Clone, Copy)]
enum Cluster {
    /// Three nodes under `majority`: adoption of a live lease works there.
    Majority3,
    /// The guide's two nodes under `ignore`.
    Ignore2,
}

/// Watches the client and the holders while `disturb` acts on ha1's agent, and asserts that nobody noticed:
/// every request answered by ha1, ha1 the only holder in every sample.
fn agent_disturbance_costs_nothing(test: &str, short: &str, cluster: Cluster, disturb: impl FnOnce(&mut Lab)) {
    if !lab_available(test) {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag(short);
    let (nodes, majority): (&[&str], bool) = match cluster {
        Cluster::Majority3 => (&["ha1", "ha2", "ha3"], true),
        Cluster::Ignore2 => (&["ha1", "ha2"], false),
    };
    let spec = LabSpec::new(&tag, nodes).unwrap();
    let tweaks = lab::Tweaks { majority, ..lab::Tweaks::default() };
    let mut lab = LabGuard::new(Lab::up(spec, &hactl_daemon(tweaks)).unwrap());
    settle(&lab, "ha1", Duration::from_secs(20));
    let watch = Watch::start(&lab, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    disturb(&mut lab);
    // Longer than the 1 s lease and its renewals: a missed adoption would have lost the address by now.
    std::thread::sleep(Duration::from_secs(5));
    let answers = status(&lab, "ha1");
    let (records, samples) = watch.finish();

    let failed: Vec<_> = records.iter().filter(|r| r.node() != Some("ha1")).take(10).collect();
    assert!(failed.is_empty(), "{test}: the client noticed: {failed:?}\n{}", logs(&lab));
    assert!(records.len() > 400, "the client probed ({} requests)", records.len());
    let off: Vec<_> = samples.iter().filter(|s| s.holders != ["ha1"]).take(5).collect();
    assert!(off.is_empty(), "{test}: the address left ha1: {off:?}\n{}", logs(&lab));
    let answers = answers.unwrap_or_else(|| panic!("{test}: ha1's agent answers afterwards\n{}", logs(&lab)));
    assert_eq!(answers["groups"][0]["holder"], "ha1");
    eprintln!("{test}: {} requests, none failed; {} samples, all ha1 alone", records.len(), samples.len());
    lab.down().unwrap();
}

/// SIGUSR2: the agent re-executes itself (same pid) and adopts its live lease and its web server.
fn sigusr2(lab: &mut Lab) {
    let pid = lab.daemon_pid("ha1").unwrap().expect("ha1's agent runs");
    kill(Pid::from_raw(pid), Signal::SIGUSR2).unwrap();
    let log = lab.spec().node_dir("ha1").join("log/hactl.log");
    let reexec = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).ok()?.contains("SIGUSR2: re-executing").then_some(())
    });
    assert!(reexec.is_some(), "ha1's agent did not re-execute");
    assert_eq!(lab.daemon_pid("ha1").unwrap(), Some(pid), "re-executed in place: the same process");
}

/// kill -9 of the agent and an immediate restart (as systemd's Restart=always), well within the 1 s lease: the
/// new agent adopts the lease and the web server the old one left running.
fn kill_9_and_restart(lab: &mut Lab) {
    let pid = lab.daemon_pid("ha1").unwrap().expect("ha1's agent runs");
    let mut web = nginx_pids(lab, "ha1");
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let dead = eventually(Duration::from_secs(2), || lab.daemon_pid("ha1").unwrap().is_none().then_some(()));
    assert!(dead.is_some(), "the agent survived SIGKILL");
    // At once: restart_daemon waits until the old agent is reaped (every thread gone, its sockets closed).
    lab.restart_daemon("ha1").unwrap();
    assert!(lab.daemon_pid("ha1").unwrap().is_some_and(|p| p != pid), "a new agent runs");
    std::thread::sleep(Duration::from_secs(2));
    let mut now = nginx_pids(lab, "ha1");
    now.sort_unstable();
    web.sort_unstable();
    assert_eq!(now, web, "the web server was adopted, not restarted");
}

#[test]
fn sigusr2_to_the_holders_agent_costs_the_client_nothing() {
    agent_disturbance_costs_nothing("hactl_sigusr2", "husr", Cluster::Majority3, sigusr2);
}

#[test]
fn kill_9_of_the_holders_agent_and_a_restart_within_the_lease_cost_the_client_nothing() {
    agent_disturbance_costs_nothing("hactl_kill9", "hk9", Cluster::Majority3, kill_9_and_restart);
}

/// The same under the guide's `ignore` policy (adoption records are written for self-granted leases too).
#[test]
fn sigusr2_under_ignore_costs_the_client_nothing() {
    agent_disturbance_costs_nothing("hactl_sigusr2_ignore", "husri", Cluster::Ignore2, sigusr2);
}

/// See [`sigusr2_under_ignore_costs_the_client_nothing`].
#[test]
fn kill_9_and_restart_under_ignore_cost_the_client_nothing() {
    agent_disturbance_costs_nothing("hactl_kill9_ignore", "hk9i", Cluster::Ignore2, kill_9_and_restart);
}

/// Scenario j, SIGTERM (`systemctl stop hactl` on the holder): the agent hands the group to ha2 (web server
/// stopped, address removed, lease released naming ha2, which acquires at once without a probe) and exits by
/// itself. Never two holders; the client's outage is printed and bounded generously (the protocol adds no
/// deadTime and no lease wait; bench/failover.sh reports real figures for the comparable `move`).
#[test]
fn sigterm_of_the_holders_agent_hands_over_with_the_shortest_outage() {
    if !lab_available("hactl_sigterm") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag("hterm");
    let spec = LabSpec::new(&tag, &["ha1", "ha2"]).unwrap();
    let lab = LabGuard::new(Lab::up(spec, &hactl_daemon(lab::Tweaks::default())).unwrap());
    settle(&lab, "ha1", Duration::from_secs(20));
    let watch = Watch::start(&lab, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let pid = lab.daemon_pid("ha1").unwrap().expect("ha1's agent runs");
    let at = watch.now();
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let exited = eventually(Duration::from_secs(15), || lab.daemon_pid("ha1").unwrap().is_none().then_some(()));
    assert!(exited.is_some(), "ha1's agent did not exit after SIGTERM\n{}", logs(&lab));
    super::wait_served_at(&lab, lab.spec().floating, "ha2", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let (records, samples) = watch.finish();

    assert_eq!(double_holders(&samples), Vec::<&HolderSample>::new(), "never two holders");
    assert!(nginx_pids(&lab, "ha1").is_empty(), "ha1's web server was stopped\n{}", logs(&lab));
    let log = logs(&lab);
    assert!(log.contains("every group handed over"), "a graceful hand-over, not a fence\n{log}");
    let outage = outage_after(&records, at).map_or(Some(Duration::ZERO), |o| o.duration());
    eprintln!("SIGTERM of the holder's agent: client outage {outage:?}");
    assert!(outage.is_some_and(|o| o < Duration::from_secs(3)), "clients waited {outage:?}\n{log}");
    let last = records.last().and_then(|r| r.node().map(String::from));
    assert_eq!(last.as_deref(), Some("ha2"), "ha2 serves afterwards");
    lab.down().unwrap();
}
