//! What a lab is made of: its tag, its nodes and addresses, and the names derived from them.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::LabError;

/// The lab's subnet: TEST-NET-1 (RFC 5737), the only range the lab ever configures or sends to.
pub const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(192, 0, 2, 0), 24);

/// One node of the lab: a namespace with `eth0` on the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// The node's name (`ha1`), as in the manifests.
    pub name: String,
    /// Its fixed address on `eth0` (/24).
    pub address: Ipv4Addr,
}

/// A whole lab: what `up` builds and `down` removes. Serialized into the state file so later commands (and a
/// `down` after a crash) know the instance without being told again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Per-instance tag: every namespace is `hl-<tag>-…`, every file under `<root>/<tag>/`.
    pub tag: String,
    /// The nodes, in order of preference (the first is the guide's `ha1`).
    pub nodes: Vec<NodeSpec>,
    /// The client namespace's address.
    pub client: Ipv4Addr,
    /// The floating address the daemons move (/24 on `eth0`).
    pub floating: Ipv4Addr,
    /// Directory holding every lab's files (normally [`super::STATE_ROOT`]).
    pub root: PathBuf,
}

impl LabSpec {
    /// The guide's cluster: nodes named `names` at 192.0.2.11, .12, …, the client at .50, floating IP .100.
    pub fn new(tag: &str, names: &[&str]) -> Result<LabSpec, LabError> {
        let nodes = names
            .iter()
            .zip(11u8..)
            .map(|(name, host)| NodeSpec { name: (*name).to_string(), address: Ipv4Addr::new(192, 0, 2, host) })
            .collect();
        let spec = LabSpec {
            tag: tag.to_string(),
            nodes,
            client: Ipv4Addr::new(192, 0, 2, 50),
            floating: Ipv4Addr::new(192, 0, 2, 100),
            root: PathBuf::from(super::STATE_ROOT),
        };
        spec.check()?;
        Ok(spec)
    }

    /// Refuses names that would not fit interface or namespace names, and any address outside 192.0.2.0/24.
    pub fn check(&self) -> Result<(), LabError> {
        let word = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        if !word(&self.tag, 12) {
            return Err(LabError::Spec(format!("tag {:?}: 1-12 lowercase letters and digits", self.tag)));
        }
        if self.nodes.is_empty() || self.nodes.len() > 8 {
            return Err(LabError::Spec("a lab has 1 to 8 nodes".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut addresses = std::collections::BTreeSet::new();
        for node in &self.nodes {
            // Bridge ports are `v-<node>`: at most 10 bytes of the 15 an interface name may have.
            if !word(&node.name, 8) || node.name == "br" || node.name == "client" {
                return Err(LabError::Spec(format!("node name {:?}: 1-8 lowercase letters and digits", node.name)));
            }
            if !names.insert(node.name.as_str()) || !addresses.insert(node.address) {
                return Err(LabError::Spec(format!("node {} repeats a name or address", node.name)));
            }
        }
        for addr in self.nodes.iter().map(|n| n.address).chain([self.client, self.floating]) {
            if !in_subnet(addr) {
                return Err(LabError::Spec(format!("{addr} is outside the documentation range 192.0.2.0/24")));
            }
        }
        Ok(())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&NodeSpec, LabError> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| LabError::UnknownNode(name.to_string()))
    }

    /// Prefix of every namespace of this instance.
    pub fn prefix(&self) -> String {
        format!("hl-{}-", self.tag)
    }

    /// The bridge's namespace.
    pub fn bridge_ns(&self) -> String {
        format!("{}br", self.prefix())
    }

    /// The client's namespace.
    pub fn client_ns(&self) -> String {
        format!("{}client", self.prefix())
    }

    /// A node's namespace.
    pub fn node_ns(&self, node: &str) -> String {
        format!("{}{node}", self.prefix())
    }

    /// The bridge port (in the bridge namespace) whose peer is the node's `eth0`.
    pub fn port(node: &str) -> String {
        format!("v-{node}")
    }

    /// This instance's directory (state file, node trees).
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.tag)
    }

    /// A node's own directory tree.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir().join(node)
    }

    /// A MAC for the node's `eth0`: locally administered (02:…), fixed per node so logs read the same each run.
    pub fn mac(&self, node: &str) -> Result<String, LabError> {
        let index = self.nodes.iter().position(|n| n.name == node).ok_or_else(|| LabError::UnknownNode(node.into()))?;
        Ok(format!("02:48:4c:00:00:{:02x}", index + 1))
    }
}

/// Whether `addr` is in 192.0.2.0/24.
pub fn in_subnet(addr: Ipv4Addr) -> bool {
    addr.octets()[..3] == SUBNET.0.octets()[..3]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn guide_lab_names_and_addresses() {
        let spec = LabSpec::new("t1", &["ha1", "ha2"]).unwrap();
        assert_eq!(spec.node("ha2").unwrap().address, Ipv4Addr::new(192, 0, 2, 12));
        assert_eq!(spec.node_ns("ha1"), "hl-t1-ha1");
        assert_eq!(spec.bridge_ns(), "hl-t1-br");
        assert_eq!(spec.mac("ha2").unwrap(), "02:48:4c:00:00:02");
        assert!(matches!(spec.node("ha3"), Err(LabError::UnknownNode(_))));
    }

    #[test]
    fn refuses_bad_names_and_addresses() {
        assert!(LabSpec::new("T", &["ha1"]).is_err());
        assert!(LabSpec::new("t", &["client"]).is_err());
        assert!(LabSpec::new("t", &["ha1", "ha1"]).is_err());
        assert!(LabSpec::new("t", &["averylongname"]).is_err());
        let mut spec = LabSpec::new("t", &["ha1"]).unwrap();
        spec.floating = Ipv4Addr::new(10, 0, 0, 1);
        assert!(spec.check().is_err());
    }
}
