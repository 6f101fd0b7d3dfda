//! Floating addresses through rtnetlink: add (with prefix, label, `nodad`, kernel lifetime), renew on the lease's
//! path, remove, dump, and interface lookup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo};
use rtnetlink::AddressMessageBuilder;
use tokio::task::JoinHandle;

use super::NetError;
use super::lifetime::Lifetime;
use super::link::Link;
use super::raw::PacketSender;
use crate::manifest::model::FloatingIp;
use crate::sys::clock::LeaseTime;

/// A floating address as the kernel layer needs it: where, what, and its IPv4 label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingAddr {
    /// Interface name.
    pub ifname: String,
    /// Address with prefix length.
    pub address: IpNet,
    /// IPv4 label (`eth0:0`); ignored for IPv6, which has no labels.
    pub label: Option<String>,
}

impl From<&FloatingIp> for FloatingAddr {
    fn from(ip: &FloatingIp) -> FloatingAddr {
        FloatingAddr { ifname: ip.interface.0.clone(), address: ip.address, label: ip.label.clone() }
    }
}

impl std::fmt::Display for FloatingAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.address, self.ifname)
    }
}

/// An address as the kernel reports it (dump or event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub ifindex: u32,
    /// Address with prefix length.
    pub address: IpNet,
    /// IPv4 label, if the kernel reports one.
    pub label: Option<String>,
    /// A secondary IPv4 address (another address of the same subnet is primary).
    pub secondary: bool,
    /// IPv6 duplicate address detection still running (the address cannot be used yet).
    pub tentative: bool,
    /// IPv6 duplicate address detection failed: another node has it.
    pub dad_failed: bool,
    /// Added with `nodad`.
    pub nodad: bool,
    /// Seconds left before the kernel deletes it.
    pub valid: Lifetime,
    /// Seconds left before it becomes deprecated.
    pub preferred: Lifetime,
}

impl Address {
    /// Extracts the fields from an address message. `None` for a message without an address (never sent by the
    /// kernel for unicast addresses).
    pub(crate) fn from_message(msg: &AddressMessage) -> Option<Address> {
        let mut local = None;
        let mut peer = None;
        let mut label = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
        let (mut valid, mut preferred) = (Lifetime::Forever, Lifetime::Forever);
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => peer = Some(*ip),
                AddressAttribute::Label(l) => label = Some(l.clone()),
                AddressAttribute::Flags(f) => flags = *f,
                AddressAttribute::CacheInfo(ci) => {
                    valid = Lifetime::from_kernel(ci.ifa_valid);
                    preferred = Lifetime::from_kernel(ci.ifa_preferred);
                }
                _ => {}
            }
        }
        // IPv4: IFA_LOCAL is the interface's own address, IFA_ADDRESS the peer on point-to-point links.
        let ip = local.or(peer)?;
        let address = IpNet::new(ip, msg.header.prefix_len).ok()?;
        Some(Address {
            ifindex: msg.header.index,
            address,
            label,
            secondary: flags.contains(AddressFlags::Secondary),
            tentative: flags.contains(AddressFlags::Tentative),
            dad_failed: flags.contains(AddressFlags::Dadfailed),
            nodad: flags.contains(AddressFlags::Nodad),
            valid,
            preferred,
        })
    }
}

/// What a removal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The address was configured and is now deleted.
    Deleted,
    /// The address (or its interface) was already gone: removal is idempotent.
    Absent,
}

/// When a renewal was sent and acknowledged, on the lease clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckInfo {
    /// Lease clock read just before the netlink request was sent.
    pub sent_at: Duration,
    /// Lease clock read when the kernel's acknowledgement arrived.
    pub acked_at: Duration,
    /// The lifetime that was set (computed from `sent_at`).
    pub lifetime: Lifetime,
}

/// The outcome of a renewal (DESIGN.md §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The kernel took the new lifetime before the deadline.
    Renewed(AckInfo),
    /// The deadline had passed — before the request (`ack` is `None`) or by the time the acknowledgement came back —
    /// so the address was deleted at once.
    Fenced {
        /// The late acknowledgement, if the request was sent.
        ack: Option<AckInfo>,
    },
}

/// Lifetime requests acknowledged too late in a row before a renewal deletes the address (see [`Netlink::renew`]).
pub const LATE_RETRIES: u32 = 3;

/// A netlink route socket with its own connection task. Keep one for lease renewals alone so that path is never
/// queued behind other requests (DESIGN.md §4.6).
#[derive(Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    connection: JoinHandle<()>,
    /// The namespace's send-only packet socket for announcements, opened at the first one.
    sender: std::sync::OnceLock<PacketSender>,
    /// Interface indexes by name for renewals: a look-up per renewal was a link dump's worth of kernel work per
    /// address and renewal. An index that stopped naming the interface (it was re-created) answers ENODEV, which
    /// drops it and looks the name up again.
    indexes: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink {
    /// Opens a netlink socket in the calling thread's network namespace and spawns its connection task on the
    /// current tokio runtime (panics outside one, as `tokio::spawn` does).
    pub fn connect() -> Result<Netlink, NetError> {
        let (connection, handle, _unsolicited) = rtnetlink::new_connection().map_err(NetError::Socket)?;
        Ok(Netlink {
            handle,
            connection: tokio::spawn(connection),
            sender: std::sync::OnceLock::new(),
            indexes: std::sync::Mutex::default(),
        })
    }

    /// The packet socket announcements go out on, kept open (closing one costs the kernel's grace period).
    pub(crate) fn packet_sender(&self) -> std::io::Result<&PacketSender> {
        if let Some(sender) = self.sender.get() {
            return Ok(sender);
        }
        let opened = PacketSender::open()?;
        Ok(self.sender.get_or_init(|| opened))
    }

    /// Looks an interface up by name; a missing interface is [`NetError::NoSuchInterface`].
    pub async fn link(&self, ifname: &str) -> Result<Link, NetError> {
        // The kernel rejects names longer than IFNAMSIZ − 1 with EINVAL; such an interface cannot exist.
        if ifname.is_empty() || ifname.len() > 15 {
            return Err(NetError::NoSuchInterface(ifname.to_string()));
        }
        let mut answers = self.handle.link().get().match_name(ifname).execute();
        match first_of(&mut answers).await {
            Ok(Some(msg)) => Ok(Link::from_message(&msg)),
            Ok(None) => Err(NetError::NoSuchInterface(ifname.to_string())),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
                Err(NetError::NoSuchInterface(ifname.to_string()))
            }
            Err(source) => Err(NetError::Netlink { op: "get link", what: ifname.to_string(), source }),
        }
    }

    /// Looks an interface up by index, to name the interface of an [`Address`] event.
    pub async fn link_by_index(&self, index: u32) -> Result<Link, NetError> {
        let mut answers = self.handle.link().get().match_index(index).execute();
        let missing = || NetError::NoSuchInterface(format!("#{index}"));
        match first_of(&mut answers).await {
            Ok(Some(msg)) => Ok(Link::from_message(&msg)),
            Ok(None) => Err(missing()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Err(missing()),
            Err(source) => Err(NetError::Netlink { op: "get link", what: format!("#{index}"), source }),
        }
    }

    /// Adds `addr` with `lifetime`, or updates the lifetime of an address already there (NLM_F_REPLACE), so adding
    /// is idempotent and also serves adoption. IPv6 is added with `nodad` (the lease decides ownership, and a
    /// tentative address could not be announced). IPv4 first sets `promote_secondaries` (see the module docs).
    pub async fn add(&self, addr: &FloatingAddr, lifetime: Lifetime) -> Result<(), NetError> {
        let link = self.link(&addr.ifname).await?;
        if addr.address.addr().is_ipv4() {
            set_promote_secondaries(&link.name)?;
        }
        self.remember_index(&link);
        self.put(link.index, addr, lifetime).await
    }

    /// Renews the kernel lifetime of `addr` to `ceil(deadline − now)` seconds, reading `clock` just before the
    /// request and again when the acknowledgement arrives; if the deadline has passed at either point the address is
    /// deleted at once ([`Renewal::Fenced`]). The kernel counts the lifetime from when it takes the request, so one
    /// acknowledged too late to be sure of the rounding bound ([`Lifetime::overshoots`]) is set again from a fresh
    /// read, at most [`LATE_RETRIES`] times; after that the address is deleted rather than left with an expiry
    /// nobody can bound (the planner adds it again). The kernel re-creates an address that was removed since (it
    /// ignores the absence of NLM_F_CREATE); the event stream reports such a removal, so the core re-announces.
    pub async fn renew(
        &self,
        addr: &FloatingAddr,
        deadline: Duration,
        clock: &impl LeaseTime,
    ) -> Result<Renewal, NetError> {
        // The lookup happens before the clock is read, so it does not count against the lease.
        let mut index = self.index(&addr.ifname).await?;
        let (mut late, mut relooked) = (0, false);
        loop {
            let sent_at = clock.now();
            let Some(lifetime) = Lifetime::until(deadline, sent_at) else {
                self.fence(addr).await?;
                return Ok(Renewal::Fenced { ack: None });
            };
            let result = self.put(index, addr, lifetime).await;
            if !relooked && result.as_ref().is_err_and(NetError::no_device) {
                relooked = true;
                self.forget_index(&addr.ifname);
                index = self.index(&addr.ifname).await?;
                continue;
            }
            let acked_at = clock.now();
            let ack = AckInfo { sent_at, acked_at, lifetime };
            if acked_at >= deadline {
                self.fence(addr).await?;
                return Ok(Renewal::Fenced { ack: Some(ack) });
            }
            if result.is_ok() && lifetime.overshoots(acked_at, deadline) {
                late += 1;
                if late > LATE_RETRIES {
                    self.fence(addr).await?;
                    return Ok(Renewal::Fenced { ack: Some(ack) });
                }
                continue;
            }
            return result.map(|()| Renewal::Renewed(ack));
        }
    }

    /// Deletes `addr`; an address or interface already gone is [`Removed::Absent`], so cleanup is idempotent.
    pub async fn remove(&self, addr: &FloatingAddr) -> Result<Removed, NetError> {
        let link = match self.link(&addr.ifname).await {
            Ok(link) => link,
            Err(NetError::NoSuchInterface(_)) => return Ok(Removed::Absent),
            Err(e) => return Err(e),
        };
        let prefix = addr.address.prefix_len();
        let mut msg = match addr.address.addr() {
            IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new().index(link.index).address(ip, prefix).build(),
            IpAddr::V6(ip) => AddressMessageBuilder::<Ipv6Addr>::new().index(link.index).address(ip, prefix).build(),
        };
        // Only what identifies the address: local address, prefix and interface (as `ip addr del` sends).
        msg.attributes.retain(|a| matches!(a, AddressAttribute::Local(_) | AddressAttribute::Address(_)));
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(Removed::Deleted),
            Err(rtnetlink::Error::NetlinkError(e))
                if [-libc::EADDRNOTAVAIL, -libc::ENOENT, -libc::ENODEV].contains(&e.raw_code()) =>
            {
                Ok(Removed::Absent)
            }
            Err(source) => Err(NetError::Netlink { op: "delete address", what: addr.to_string(), source }),
        }
    }

    /// All addresses of `ifname` (both families), as the kernel reports them.
    pub async fn addresses(&self, ifname: &str) -> Result<Vec<Address>, NetError> {
        let link = self.link(ifname).await?;
        let mut dump = self.handle.address().get().set_link_index_filter(link.index).execute();
        let mut out = Vec::new();
        loop {
            match dump.try_next().await {
                Ok(Some(msg)) => out.extend(Address::from_message(&msg)),
                Ok(None) => return Ok(out),
                Err(source) => {
                    return Err(NetError::Netlink { op: "dump addresses", what: ifname.to_string(), source });
                }
            }
        }
    }

    /// Sends one RTM_NEWADDR with NLM_F_CREATE | NLM_F_REPLACE and waits for the acknowledgement.
    /// The index of `ifname`, from the cache or the kernel.
    async fn index(&self, ifname: &str) -> Result<u32, NetError> {
        let cached = self.indexes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(ifname).copied();
        if let Some(index) = cached {
            return Ok(index);
        }
        let link = self.link(ifname).await?;
        self.remember_index(&link);
        Ok(link.index)
    }

    fn remember_index(&self, link: &Link) {
        self.indexes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(link.name.clone(), link.index);
    }

    fn forget_index(&self, ifname: &str) {
        self.indexes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(ifname);
    }

    async fn put(&self, index: u32, addr: &FloatingAddr, lifetime: Lifetime) -> Result<(), NetError> {
        let mut req = self.handle.address().add(index, addr.address.addr(), addr.address.prefix_len()).replace();
        let msg = req.message_mut();
        match addr.address.addr() {
            IpAddr::V4(_) => {
                if let Some(label) = &addr.label {
                    msg.attributes.push(AddressAttribute::Label(label.clone()));
                }
            }
            IpAddr::V6(_) => {
                msg.header.flags |= AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        let mut info = CacheInfo::default();
        info.ifa_valid = lifetime.as_kernel();
        info.ifa_preferred = lifetime.as_kernel();
        msg.attributes.push(AddressAttribute::CacheInfo(info));
        req.execute().await.map_err(|source| NetError::Netlink { op: "add address", what: addr.to_string(), source })
    }

    /// Deletes the address because its lease ran out; a failure here is loud (the address may still be up).
    async fn fence(&self, addr: &FloatingAddr) -> Result<(), NetError> {
        self.remove(addr)
            .await
            .map(|_| ())
            .map_err(|e| NetError::FenceFailed { what: addr.to_string(), source: Box::new(e) })
    }
}

/// The first answer of a request, reading the rest of the stream too (the kernel's acknowledgement): a stream
/// dropped before its end leaves rtnetlink an answer it cannot deliver, and it logs a warning for each.
async fn first_of<T>(
    answers: &mut (impl futures::Stream<Item = Result<T, rtnetlink::Error>> + Unpin),
) -> Result<Option<T>, rtnetlink::Error> {
    let first = answers.try_next().await?;
    if first.is_some() {
        while answers.try_next().await?.is_some() {}
    }
    Ok(first)
}

/// Sets `net.ipv4.conf.IFACE.promote_secondaries = 1` in the calling thread's network namespace.
fn set_promote_secondaries(ifname: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/promote_secondaries");
    match std::fs::read_to_string(&path) {
        Ok(v) if v.trim() == "1" => Ok(()),
        _ => std::fs::write(&path, b"1\n").map_err(|source| NetError::Sysctl { path, source }),
    }
}
