//! An agent that restarts on a config other than the one it ran with: what its earlier run started and the new
//! config no longer defines is stopped at start-up (DESIGN.md §4.1).

use std::time::Duration;

use super::{Policy, cluster, ns};
use crate::support::agents::ONE_LAB;
use crate::support::netns::{eventually, netns_available};

/// Whether `pid` is a live process (not gone, not a zombie waiting for init).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// The manifests without the group and its members (the cluster and its nodes stay).
fn without_the_group(text: &str) -> String {
    let kinds = ["kind: FloatingIP", "kind: Service", "kind: Group"];
    let docs: Vec<&str> = text.split("---\n").filter(|d| !kinds.iter().any(|k| d.contains(k))).collect();
    docs.join("---\n")
}

#[test]
fn members_of_a_group_removed_while_the_agent_was_down_are_stopped_at_start() {
    if !netns_available("members_of_a_group_removed_while_the_agent_was_down_are_stopped_at_start") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut c = cluster(Policy::Majority);
    let (first, pid) = c.settled();
    c.agents.kill(first);
    let path = c.dir.join("cluster.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, without_the_group(&text)).unwrap();
    // kill -9 leaves the service's process group running: nothing else would ever stop it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(&pid), "precondition: the killed agent's service {pid} still runs\n{}", c.agents.logs());
    let (dir, work) = (c.dir.clone(), c.work.path().to_path_buf());
    let node_ns = ns(&c, first).clone();
    c.agents.start(&node_ns, first, &dir, &work);
    let gone = eventually(Duration::from_secs(15), || (!alive(&pid)).then_some(()));
    assert!(gone.is_some(), "the service {pid} of the removed group must be stopped\n{}", c.agents.logs());
    assert!(c.agents.logs().contains("started by an earlier run"), "{}", c.agents.logs());
    let record = work.join(format!("state-{first}")).join("members").join("web.json");
    let cleared = eventually(Duration::from_secs(5), || (!record.exists()).then_some(()));
    assert!(cleared.is_some(), "the record is cleared after the confirmed stop\n{}", c.agents.logs());
}

#[test]
fn members_still_defined_identically_are_adopted_not_stopped() {
    if !netns_available("members_still_defined_identically_are_adopted_not_stopped") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut c = cluster(Policy::Majority);
    let (first, pid) = c.settled();
    let record = c.work.path().join(format!("state-{first}")).join("members").join("web.json");
    assert!(record.exists(), "the holder records its started member\n{}", c.agents.logs());
    c.agents.kill(first);
    let (dir, work) = (c.dir.clone(), c.work.path().to_path_buf());
    let node_ns = ns(&c, first).clone();
    c.agents.start(&node_ns, first, &dir, &work);
    c.keeps_serving(first, &pid, Duration::from_secs(3));
    assert!(!c.agents.logs().contains("started by an earlier run"), "{}", c.agents.logs());
}

/// A member found running at start-up is recorded too (an agent upgraded from one that kept no records): if
/// its group is then removed while the agent is down, it is still stopped.
#[test]
fn a_member_found_running_is_recorded_and_stopped_when_its_group_goes() {
    if !netns_available("a_member_found_running_is_recorded_and_stopped_when_its_group_goes") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut c = cluster(Policy::Majority);
    let (first, pid) = c.settled();
    let (dir, work) = (c.dir.clone(), c.work.path().to_path_buf());
    let record = work.join(format!("state-{first}")).join("members").join("web.json");
    c.agents.kill(first);
    std::fs::remove_file(&record).unwrap();
    let node_ns = ns(&c, first).clone();
    c.agents.start(&node_ns, first, &dir, &work);
    let recorded = eventually(Duration::from_secs(10), || record.exists().then_some(()));
    assert!(recorded.is_some(), "the adopted member is recorded again\n{}", c.agents.logs());
    c.keeps_serving(first, &pid, Duration::from_secs(1));
    c.agents.kill(first);
    let path = c.dir.join("cluster.yaml");
    std::fs::write(&path, without_the_group(&std::fs::read_to_string(&path).unwrap())).unwrap();
    c.agents.start(&node_ns, first, &dir, &work);
    let gone = eventually(Duration::from_secs(15), || (!alive(&pid)).then_some(()));
    assert!(gone.is_some(), "the service {pid} of the removed group must be stopped\n{}", c.agents.logs());
    assert!(c.agents.logs().contains("started by an earlier run"), "stopped at start-up\n{}", c.agents.logs());
}
