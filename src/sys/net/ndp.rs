//! IPv6 announcements: an unsolicited neighbour advertisement (RFC 4861 §7.2.6) to all nodes with the override flag,
//! so neighbours switch their entry for a floating address to this node's MAC. Sent through a raw ICMPv6 socket (no
//! `unsafe` needed): the kernel fills in the IPv6 header and the ICMPv6 checksum (RFC 3542 §3.1).

use std::net::{Ipv6Addr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::NetError;

/// ICMPv6 type of a neighbour advertisement.
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The override flag: receivers replace a cached link-layer address (RFC 4861 §4.4).
const FLAG_OVERRIDE: u8 = 0x20;
/// Option type: target link-layer address.
const OPT_TARGET_LLADDR: u8 = 2;
/// All-nodes multicast, the destination of unsolicited advertisements.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// RFC 4861 §7.1.2: receivers drop neighbour discovery packets whose hop limit is not 255.
const ND_HOP_LIMIT: u32 = 255;

/// Builds the ICMPv6 part of an unsolicited advertisement for `target` at `mac` (checksum left to the kernel).
fn advertisement(target: Ipv6Addr, mac: [u8; 6]) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = NEIGHBOR_ADVERTISEMENT;
    // b[1] code 0, b[2..4] checksum filled by the kernel; flags: not a router, not solicited, override.
    b[4] = FLAG_OVERRIDE;
    b[8..24].copy_from_slice(&target.octets());
    b[24] = OPT_TARGET_LLADDR;
    b[25] = 1; // option length in units of 8 bytes
    b[26..32].copy_from_slice(&mac);
    b
}

/// Sends one unsolicited neighbour advertisement for `ip` (which must be configured on the interface, not
/// tentative: floating IPv6 addresses are added with `nodad`) out of interface `ifindex`.
pub(crate) fn announce(ifname: &str, ifindex: u32, mac: [u8; 6], ip: Ipv6Addr) -> Result<(), NetError> {
    let raw = |op, source| NetError::Raw { ifname: ifname.to_string(), op, source };
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(|e| raw("open", e))?;
    socket.bind_device(Some(ifname.as_bytes())).map_err(|e| raw("bind to device", e))?;
    socket.set_multicast_hops_v6(ND_HOP_LIMIT).map_err(|e| raw("set hop limit", e))?;
    socket.set_multicast_if_v6(ifindex).map_err(|e| raw("set multicast interface", e))?;
    // The advertisement comes from the address itself, as RFC 4861 §7.2.6 allows (any address of the interface).
    socket.bind(&SockAddr::from(SocketAddrV6::new(ip, 0, 0, 0))).map_err(|e| raw("bind to address", e))?;
    let dest = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, ifindex));
    let payload = advertisement(ip, mac);
    let sent = socket.send_to(&payload, &dest).map_err(|e| raw("send", e))?;
    if sent == payload.len() {
        Ok(())
    } else {
        Err(raw("send", std::io::Error::other(format!("short send: {sent} of {} bytes", payload.len()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_layout_matches_rfc_4861() {
        let target: Ipv6Addr = "2001:db8::10".parse().expect("literal");
        let b = advertisement(target, [2, 0, 0, 0, 0, 9]);
        assert_eq!(&b[..8], &[136, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(&b[8..24], &target.octets());
        assert_eq!(&b[24..], &[2, 1, 2, 0, 0, 0, 0, 9]);
    }
}
