//! Network faults inside a node (or the client) namespace, with nftables: a partition drops traffic from and to
//! chosen peers, packet loss drops a share of what arrives on `eth0` (`numgen random`). Everything lives in one
//! table, `inet hactl_lab`, so healing is deleting that table.

use std::net::Ipv4Addr;

use super::LabError;
use super::shell;

const TABLE: &str = "inet hactl_lab";

/// The nft command line that (re)creates the lab's table with its two chains (idempotent: add, flush).
fn base() -> String {
    format!(
        "add table {TABLE}; flush table {TABLE}; \
         add chain {TABLE} input {{ type filter hook input priority 0; policy accept; }}; \
         add chain {TABLE} output {{ type filter hook output priority 0; policy accept; }}"
    )
}

/// Rules for a partition from `peers` plus a loss of `loss_percent` (0: none) on `eth0` input.
pub(crate) fn ruleset(peers: &[Ipv4Addr], loss_percent: u8) -> String {
    let mut script = base();
    if !peers.is_empty() {
        let set = peers.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(", ");
        script.push_str(&format!("; add rule {TABLE} input ip saddr {{ {set} }} drop"));
        script.push_str(&format!("; add rule {TABLE} output ip daddr {{ {set} }} drop"));
    }
    if loss_percent > 0 {
        let n = loss_percent.min(100);
        script.push_str(&format!("; add rule {TABLE} input iifname \"eth0\" numgen random mod 100 < {n} drop"));
    }
    script
}

/// Replaces the faults in namespace `ns` with a partition from `peers` and `loss_percent` loss.
pub(crate) fn apply(ns: &str, peers: &[Ipv4Addr], loss_percent: u8) -> Result<(), LabError> {
    shell::exec_in(ns, "nft", &[&ruleset(peers, loss_percent)]).map(drop)
}

/// Removes every fault from namespace `ns` (idempotent: the table is created if needed, then deleted).
pub(crate) fn heal(ns: &str) -> Result<(), LabError> {
    shell::exec_in(ns, "nft", &[&format!("add table {TABLE}; delete table {TABLE}")]).map(drop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn partition_drops_both_directions_and_loss_is_random() {
        let s = ruleset(&[Ipv4Addr::new(192, 0, 2, 12), Ipv4Addr::new(192, 0, 2, 13)], 10);
        assert!(s.contains("input ip saddr { 192.0.2.12, 192.0.2.13 } drop"));
        assert!(s.contains("output ip daddr { 192.0.2.12, 192.0.2.13 } drop"));
        assert!(s.contains("numgen random mod 100 < 10 drop"));
        assert!(!ruleset(&[], 0).contains("drop"));
    }
}
