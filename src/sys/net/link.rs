//! Interface lookup through rtnetlink: a floating address names its interface, and a missing interface must be an
//! error value reported in status, never a crash.

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};

/// What the agent needs to know about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Kernel interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Ethernet address, if the link has a 6-byte one (announcements need it).
    pub mac: Option<[u8; 6]>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`): DESIGN.md §4.1 counts an address as held only on a link with carrier.
    pub carrier: bool,
    /// Operational state is `UP` (or `UNKNOWN`, as drivers without carrier detection report it).
    pub oper_up: bool,
}

impl Link {
    /// Extracts the fields from a link message (a dump answer or an event).
    pub(crate) fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
            oper_up: false,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name.clone_from(name),
                LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                LinkAttribute::OperState(state) => link.oper_up = matches!(state, State::Up | State::Unknown),
                _ => {}
            }
        }
        link
    }
}
