//! The kernel-networking layer of the node agent: floating addresses through rtnetlink, their kernel lifetime
//! (DESIGN.md §4.6), address and link events, and announcements on the wire (gratuitous ARP, unsolicited neighbour
//! advertisements, the RFC 5227 probe; DESIGN.md §4.11). The schedule of announcements belongs to the core; this
//! layer only provides the primitives and reports every result as a value.
//!
//! # Secondary addresses and `promote_secondaries`
//! When an IPv4 address is deleted and it is the *primary* address of its subnet on that interface, the kernel also
//! deletes every *secondary* address of the same subnet, unless `net.ipv4.conf.IFACE.promote_secondaries` is 1.
//! A floating address is the primary when it is the first address of its subnet on the interface, so releasing it
//! could silently take other addresses (another group's floating address, or an administrator's address) with it.
//! [`Netlink::add`] therefore sets `promote_secondaries=1` on the interface (through `/proc/sys` of the calling
//! thread's network namespace) before adding an IPv4 address; a failure to set it is an error and nothing is added.
//! The setting stays after the agent exits; it only changes what happens when a primary address is deleted (a
//! secondary is promoted instead of being dropped), which is what an administrator expects.
//!
//! # Lifetimes and the renewal path
//! Every floating address carries `valid_lft = preferred_lft = ceil(time left on the lease)` in whole seconds, so a
//! killed or hung agent loses it by itself. [`Netlink::renew`] reads the lease clock just before the netlink request
//! and again when the acknowledgement arrives; an acknowledgement after the deadline deletes the address at once.
//! Each [`Netlink`] owns its own netlink socket and connection task, so the agent keeps one `Netlink` for renewals
//! alone and that path never waits behind dumps or other requests.
//!
//! # Links going down
//! A link that loses carrier keeps its addresses, but the address is no longer *held* (DESIGN.md §4.1): the event
//! stream reports [`NetEvent::LinkChanged`] with `carrier: false`. A link set administratively down keeps its IPv4
//! addresses but the kernel flushes IPv6 addresses that have a lifetime (all floating ones), which the stream
//! reports as [`NetEvent::AddressRemoved`]; the core re-adds them when the link comes back.

mod addr;
mod arp;
mod events;
mod lifetime;
mod link;
mod ndp;
mod raw;

use std::io;

pub use addr::{AckInfo, Address, FloatingAddr, LATE_RETRIES, Netlink, Removed, Renewal};
pub use arp::{ProbeResult, format_mac};
pub use events::{NetEvent, NetEvents};
pub use lifetime::Lifetime;
pub use link::Link;

/// Errors of the kernel-networking layer; each says what failed and whether anything was changed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The named interface does not exist (in this network namespace).
    #[error("interface {0:?} does not exist; nothing was changed")]
    NoSuchInterface(String),
    /// The interface has no 6-byte Ethernet address, so ARP/NDP announcements cannot be built.
    #[error("interface {0:?} has no Ethernet hardware address; nothing was sent")]
    NoHardwareAddress(String),
    /// The netlink socket could not be opened or bound.
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// A netlink request was refused or failed.
    #[error("netlink {op} {what} failed: {source}; nothing was changed by this request")]
    Netlink {
        /// The operation (`add address`, `delete address`, …).
        op: &'static str,
        /// What it was about (`192.0.2.10/24 on eth0`).
        what: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// A sysctl under /proc/sys could not be written.
    #[error("cannot set {path}: {source}; the address was not added")]
    Sysctl {
        /// The /proc/sys path.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The lease ran out during a renewal and deleting the address failed: it may still be configured.
    #[error("lease deadline passed but deleting {what} failed: {source}; the address may STILL be configured")]
    FenceFailed {
        /// The address.
        what: String,
        /// Why the delete failed.
        #[source]
        source: Box<NetError>,
    },
    /// A raw (AF_PACKET or ICMPv6) socket operation failed.
    #[error("raw socket on {ifname}: {op} failed: {source}")]
    Raw {
        /// The interface.
        ifname: String,
        /// The operation (`open`, `bind`, `send`, `receive`).
        op: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl NetError {
    /// The negative errno of a netlink refusal, if this is one (`-libc::ENODEV`, …).
    pub fn netlink_errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { source: rtnetlink::Error::NetlinkError(msg), .. } => Some(msg.raw_code()),
            _ => None,
        }
    }

    /// The interface index a request named is gone (the interface was deleted or re-created).
    pub(crate) fn no_device(&self) -> bool {
        self.netlink_errno() == Some(-libc::ENODEV)
    }
}

/// Sends one announcement for `ip` on `ifname`: a gratuitous ARP (RFC 5227 §2.3 ARP announcement) for IPv4, an
/// unsolicited neighbour advertisement with the override flag (RFC 4861 §7.2.6) for IPv6. Peers that already have a
/// neighbour entry for `ip` switch it to this interface's MAC. The IPv6 address must be configured (it is the
/// advertisement's source); the schedule (count × interval, the later round, refresh, cancel) is the core's.
pub async fn announce(nl: &Netlink, ifname: &str, ip: std::net::IpAddr) -> Result<(), NetError> {
    let link = nl.link(ifname).await?;
    let mac = link.mac.ok_or_else(|| NetError::NoHardwareAddress(ifname.to_string()))?;
    match ip {
        std::net::IpAddr::V4(v4) => {
            let sender =
                nl.packet_sender().map_err(|source| NetError::Raw { ifname: link.name.clone(), op: "open", source })?;
            arp::announce(sender, &link.name, link.index, mac, v4)
        }
        std::net::IpAddr::V6(v6) => ndp::announce(&link.name, link.index, mac, v6),
    }
}

/// Probes whether another host already answers for `ip` on `ifname`, sending one probe and waiting at most `wait`:
/// an RFC 5227 §2.1.1 ARP probe for IPv4, an RFC 4862 §5.4.2 duplicate-address probe for IPv6 (floating IPv6
/// addresses are added with `nodad`, so this is their only check). A conflict is reported, not acted on: the lease
/// decides ownership (DESIGN.md §4.11). With a zero `wait` the probe is sent and nothing is awaited.
pub async fn probe(
    nl: &Netlink,
    ifname: &str,
    ip: std::net::IpAddr,
    wait: std::time::Duration,
) -> Result<ProbeResult, NetError> {
    let link = nl.link(ifname).await?;
    let mac = link.mac.ok_or_else(|| NetError::NoHardwareAddress(ifname.to_string()))?;
    match ip {
        std::net::IpAddr::V4(v4) => arp::probe(&link.name, link.index, mac, v4, wait).await,
        std::net::IpAddr::V6(v6) => ndp::probe(&link.name, link.index, mac, v6, wait).await,
    }
}
