//! keepalived (Debian's package, VRRP) as a lab node daemon: the incumbent that the benchmark compares hactl
//! with. One VRRP instance moves 192.0.2.100/24 on `eth0` between the nodes with unicast adverts; nginx runs on
//! every node permanently, since keepalived only moves the address.

use std::fmt::Write as _;
use std::time::Duration;

use super::LabError;
use super::daemon::{DaemonCommand, NodeContext, NodeDaemon};

/// keepalived settings for the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keepalived {
    /// VRRP advertisement interval: 1 s is keepalived's default; below a second needs VRRPv3.
    pub advert_int: Duration,
    /// `nopreempt`: a returning higher-priority node does not take the address back (the guide's stickiness).
    pub nopreempt: bool,
}

impl Default for Keepalived {
    fn default() -> Self {
        Keepalived { advert_int: Duration::from_secs(1), nopreempt: true }
    }
}

impl Keepalived {
    /// VRRP priority by rank: 150 for the preferred node, 10 less for each next one.
    pub fn priority(rank: usize) -> u32 {
        150u32.saturating_sub(10 * u32::try_from(rank).unwrap_or(14)).max(1)
    }

    /// The config file of one node.
    pub fn config(&self, ctx: &NodeContext<'_>) -> String {
        let secs = self.advert_int.as_secs_f64();
        // VRRPv2 (RFC 3768) counts adverts in whole seconds; sub-second intervals are VRRPv3 (RFC 5798) only.
        let version = if self.advert_int.subsec_nanos() == 0 { 2 } else { 3 };
        let mut c = String::new();
        // write! to a String cannot fail.
        let _ = writeln!(c, "# Written by hactl lab for {}: keepalived moves the floating address only.", ctx.node);
        let _ = writeln!(c, "global_defs {{\n    router_id {}\n    max_auto_priority\n}}", ctx.node);
        let _ = writeln!(c, "vrrp_instance WebServices {{");
        let _ = writeln!(c, "    state BACKUP\n    interface eth0\n    virtual_router_id 51");
        let _ = writeln!(
            c,
            "    version {version}\n    priority {}\n    advert_int {secs}",
            Keepalived::priority(ctx.rank)
        );
        if self.nopreempt {
            let _ = writeln!(c, "    nopreempt");
        }
        let _ = writeln!(c, "    unicast_src_ip {}\n    unicast_peer {{", ctx.address);
        for peer in &ctx.peers {
            let _ = writeln!(c, "        {}", peer.address);
        }
        let _ = writeln!(
            c,
            "    }}\n    virtual_ipaddress {{\n        {}/24 dev eth0 label eth0:0\n    }}\n}}",
            ctx.floating
        );
        c
    }
}

impl NodeDaemon for Keepalived {
    fn name(&self) -> &str {
        "keepalived"
    }

    fn starts_web_server(&self) -> bool {
        false
    }

    fn prepare(&self, ctx: &NodeContext<'_>) -> Result<Option<DaemonCommand>, LabError> {
        let dir = ctx.dir.join("keepalived");
        std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
        let conf = dir.join("keepalived.conf");
        std::fs::write(&conf, self.config(ctx)).map_err(LabError::io(&conf))?;
        let s = |name: &str| dir.join(name).display().to_string();
        // -n: stay in the foreground (the lab records the pid); -l -G: log to the console, not syslog;
        // -P: VRRP only; -p/-r: pid files in the node's tree, so instances never see each other's.
        let argv = ["keepalived", "-n", "-l", "-G", "-P", "-f", &s("keepalived.conf"), "-p", &s("keepalived.pid")]
            .into_iter()
            .map(String::from)
            .chain(["-r".to_string(), s("vrrp.pid")])
            .collect();
        let run_files = vec![dir.join("keepalived.pid"), dir.join("vrrp.pid")];
        Ok(Some(DaemonCommand {
            label: "keepalived".into(),
            argv,
            env: Vec::new(),
            log: dir.join("keepalived.log"),
            run_files,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use super::*;
    use crate::lab::daemon::PeerContext;

    fn ctx(rank: usize) -> NodeContext<'static> {
        NodeContext {
            node: "ha1",
            rank,
            address: Ipv4Addr::new(192, 0, 2, 11),
            peers: vec![PeerContext { name: "ha2".into(), address: Ipv4Addr::new(192, 0, 2, 12) }],
            floating: Ipv4Addr::new(192, 0, 2, 100),
            dir: Path::new("/run/hactl-lab/t/ha1"),
        }
    }

    #[test]
    fn default_is_vrrp2_one_second_with_unicast_peers() {
        let c = Keepalived::default().config(&ctx(0));
        for want in [
            "version 2",
            "advert_int 1\n",
            "priority 150",
            "nopreempt",
            "unicast_src_ip 192.0.2.11",
            "        192.0.2.12",
        ] {
            assert!(c.contains(want), "{want:?} missing in\n{c}");
        }
        assert!(c.contains("192.0.2.100/24 dev eth0 label eth0:0"));
    }

    #[test]
    fn sub_second_adverts_use_vrrp3_and_priorities_fall_by_rank() {
        let k = Keepalived { advert_int: Duration::from_millis(100), nopreempt: false };
        let c = k.config(&ctx(1));
        assert!(c.contains("version 3") && c.contains("advert_int 0.1\n") && c.contains("priority 140"));
        assert!(!c.contains("nopreempt"));
        assert!(Keepalived::priority(0) > Keepalived::priority(1));
    }
}
