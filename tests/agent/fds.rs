//! A service started by the agent inherits none of the agent's sockets or files: an inherited peer socket
//! would keep the port bound after the agent dies, and its restart would fail with "Address already in use".

use std::collections::BTreeMap;

use super::{Policy, cluster};
use crate::support::agents::ONE_LAB;
use crate::support::netns::netns_available;

/// The open descriptors of `pid`: number → what it points to (`socket:[123]`, a path, ...).
fn fds(pid: &str) -> BTreeMap<u32, String> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    dir.flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            Some((fd, std::fs::read_link(e.path()).ok()?.display().to_string()))
        })
        .collect()
}

#[test]
fn a_service_holds_none_of_the_agents_sockets_or_files() {
    if !netns_available("a_service_holds_none_of_the_agents_sockets_or_files") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = cluster(Policy::Majority);
    let (first, service) = c.settled();
    let agent = fds(&c.agents.pid(first).to_string());
    let sockets = agent.values().filter(|t| t.starts_with("socket:")).count();
    // UDP, the peer API, the local API, netlink (two and the event subscription), ...: the check means something.
    assert!(sockets >= 4, "the agent's own sockets: {agent:?}");
    let held = fds(&service);
    let sockets: Vec<_> = held.values().filter(|t| t.starts_with("socket:")).collect();
    assert!(sockets.is_empty(), "the service {service} holds sockets {sockets:?}; the agent has {agent:?}");
    // stdin is /dev/null; stdout and stderr are the agent's log on purpose (the journal under systemd). Beyond
    // those, only what this test process handed down to the agent without close-on-exec (cargo's jobserver pipe)
    // may pass through: systemd starts the agent with none of that; nothing the agent opened may.
    let ours = fds("self");
    let extra: Vec<_> = held.iter().filter(|(fd, target)| **fd > 2 && ours.get(fd) != Some(target)).collect();
    assert!(extra.is_empty(), "the service {service} inherited {extra:?} from the agent {agent:?}");
}
