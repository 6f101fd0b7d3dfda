//! IPv6 announcements and probes. The announcement is an unsolicited neighbour advertisement (RFC 4861 §7.2.6) to
//! all nodes with the override flag, so neighbours switch their entry for a floating address to this node's MAC; it
//! goes through a raw ICMPv6 socket, and the kernel fills in the IPv6 header and the ICMPv6 checksum (RFC 3542
//! §3.1). The probe is the duplicate address detection message (RFC 4862 §5.4.2: a neighbour solicitation from the
//! unspecified address to the solicited-node group), built whole and sent through an AF_PACKET socket because the
//! kernel would not send from `::` on an ICMPv6 socket; a holder answers with an advertisement to all nodes.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::NetError;
use super::arp::ProbeResult;
use super::raw::PacketSocket;

/// EtherType of IPv6.
const ETH_P_IPV6: u16 = 0x86dd;
/// IPv6 next-header number of ICMPv6.
const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 type of a neighbour solicitation.
const NEIGHBOR_SOLICITATION: u8 = 135;
/// Option type: source link-layer address.
const OPT_SOURCE_LLADDR: u8 = 1;
/// A probe reads at most this many frames before giving up, so a flood cannot keep it looping past its wait.
const MAX_FRAMES: usize = 10_000;

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

/// The solicited-node multicast group of `ip` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The Ethernet address of an IPv6 multicast group (RFC 2464 §7): 33:33 and the group's last 32 bits.
fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The ICMPv6 checksum (RFC 4443 §2.3): one's complement sum over the pseudo-header and the message.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut pseudo = Vec::with_capacity(40 + message.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    pseudo.extend_from_slice(message);
    let mut sum: u32 = pseudo.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop folded the sum into 16 bits.
    !(sum as u16)
}

/// The DAD probe for `target`: IPv6 header and neighbour solicitation from `::` (no source link-layer option, as
/// RFC 4861 §4.3 requires for an unspecified source), ready for an AF_PACKET `SOCK_DGRAM` socket.
fn dad_probe(target: Ipv6Addr) -> [u8; 64] {
    let dst = solicited_node(target);
    let mut icmp = [0u8; 24];
    icmp[0] = NEIGHBOR_SOLICITATION;
    icmp[8..24].copy_from_slice(&target.octets());
    let sum = icmpv6_checksum(Ipv6Addr::UNSPECIFIED, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut b = [0u8; 64];
    b[0] = 0x60; // version 6, traffic class and flow label 0
    b[4..6].copy_from_slice(&24u16.to_be_bytes());
    b[6] = IPPROTO_ICMPV6;
    b[7] = 255; // RFC 4861 §7.1.1: hop limit 255
    // b[8..24] source: the unspecified address
    b[24..40].copy_from_slice(&dst.octets());
    b[40..].copy_from_slice(&icmp);
    b
}

/// A neighbour discovery message seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NdMessage {
    icmp_type: u8,
    source: Ipv6Addr,
    target: Ipv6Addr,
    lladdr: Option<[u8; 6]>,
}

/// Parses an IPv6 packet carrying a neighbour solicitation or advertisement; anything else is `None`.
fn parse_nd(b: &[u8]) -> Option<NdMessage> {
    let addr = |at: usize| -> Option<Ipv6Addr> { <[u8; 16]>::try_from(b.get(at..at + 16)?).ok().map(Ipv6Addr::from) };
    if b.first()? >> 4 != 6 || *b.get(6)? != IPPROTO_ICMPV6 || *b.get(7)? != 255 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*b.get(4)?, *b.get(5)?]));
    let icmp = b.get(40..40 + len)?;
    let icmp_type = *icmp.first()?;
    if !matches!(icmp_type, NEIGHBOR_SOLICITATION | NEIGHBOR_ADVERTISEMENT) || icmp.len() < 24 || icmp[1] != 0 {
        return None;
    }
    let target = <[u8; 16]>::try_from(&icmp[8..24]).ok().map(Ipv6Addr::from)?;
    let mut lladdr = None;
    let mut options = &icmp[24..];
    // Each option is at least 8 bytes long, so this ends within the message (RFC 4861 §4.6).
    while options.len() >= 8 {
        let opt_len = usize::from(options[1]) * 8;
        if opt_len == 0 || opt_len > options.len() {
            break;
        }
        if matches!(options[0], OPT_SOURCE_LLADDR | OPT_TARGET_LLADDR) && opt_len == 8 {
            lladdr = Some(std::array::from_fn(|i| options[2 + i]));
        }
        options = &options[opt_len..];
    }
    Some(NdMessage { icmp_type, source: addr(8)?, target, lladdr })
}

/// RFC 4862 §5.4.3–5.4.4: a conflict is an advertisement for the address, or another node's DAD solicitation for
/// it; `sender` is the frame's source MAC (our own frames never reach here).
fn nd_conflict(msg: &NdMessage, ip: Ipv6Addr, sender: Option<[u8; 6]>) -> Option<[u8; 6]> {
    let advertises = msg.icmp_type == NEIGHBOR_ADVERTISEMENT && msg.target == ip;
    let probes = msg.icmp_type == NEIGHBOR_SOLICITATION && msg.target == ip && msg.source.is_unspecified();
    (advertises || probes).then(|| sender.or(msg.lladdr).unwrap_or([0; 6]))
}

/// Sends one DAD probe for `ip` out of interface `ifindex` and listens for at most `wait` for another holder.
pub(crate) async fn probe(
    ifname: &str,
    ifindex: u32,
    mac: [u8; 6],
    ip: Ipv6Addr,
    wait: Duration,
) -> Result<ProbeResult, NetError> {
    let raw = |op, source| NetError::Raw { ifname: ifname.to_string(), op, source };
    let socket = PacketSocket::open(ifindex, ETH_P_IPV6).map_err(|e| raw("open", e))?;
    socket.send_to(&dad_probe(ip), multicast_mac(solicited_node(ip))).map_err(|e| raw("send", e))?;
    let listen = async {
        let mut buf = [0u8; 1500];
        for _ in 0..MAX_FRAMES {
            let (len, sender) = socket.recv(&mut buf).await?;
            // Frames from our own MAC (looped back by a bridge, say) are not another holder.
            if sender == Some(mac) {
                continue;
            }
            if let Some(other) = parse_nd(&buf[..len]).and_then(|m| nd_conflict(&m, ip, sender)) {
                return Ok(ProbeResult::Conflict { mac: other });
            }
        }
        Ok(ProbeResult::Clear)
    };
    match tokio::time::timeout(wait, listen).await {
        Ok(result) => result.map_err(|e| raw("receive", e)),
        Err(_elapsed) => Ok(ProbeResult::Clear),
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

    #[test]
    fn solicited_node_group_and_its_mac() {
        let ip: Ipv6Addr = "2001:db8::1:2:3:abcd:ef12".parse().expect("literal");
        let group = solicited_node(ip);
        assert_eq!(group, "ff02::1:ffcd:ef12".parse::<Ipv6Addr>().expect("literal"));
        assert_eq!(multicast_mac(group), [0x33, 0x33, 0xff, 0xcd, 0xef, 0x12]);
    }

    #[test]
    fn checksum_of_a_correct_message_folds_to_zero() {
        let target: Ipv6Addr = "2001:db8::10".parse().expect("literal");
        let probe = dad_probe(target);
        // Summing a message with its checksum in place gives 0xffff, whose complement is 0 (RFC 1071). That the
        // kernel accepts it is shown by the namespace test, where the holder answers the probe.
        assert_eq!(icmpv6_checksum(Ipv6Addr::UNSPECIFIED, solicited_node(target), &probe[40..]), 0);
    }

    #[test]
    fn probe_parses_back_and_is_its_own_kind_of_conflict() {
        let target: Ipv6Addr = "2001:db8::10".parse().expect("literal");
        let msg = parse_nd(&dad_probe(target)).expect("parses");
        assert_eq!((msg.icmp_type, msg.source, msg.target, msg.lladdr), (135, Ipv6Addr::UNSPECIFIED, target, None));
        let them = [2, 0, 0, 0, 0, 7];
        // Another node probing the same address at the same time is a conflict; another address is not.
        assert_eq!(nd_conflict(&msg, target, Some(them)), Some(them));
        assert_eq!(nd_conflict(&msg, "2001:db8::11".parse().expect("literal"), Some(them)), None);
    }

    #[test]
    fn advertisement_for_the_address_is_a_conflict() {
        let target: Ipv6Addr = "2001:db8::10".parse().expect("literal");
        let mut packet = vec![0x60, 0, 0, 0, 0, 32, IPPROTO_ICMPV6, 255];
        packet.extend_from_slice(&target.octets()); // source: the holder itself
        packet.extend_from_slice(&ALL_NODES.octets());
        packet.extend_from_slice(&advertisement(target, [2, 0, 0, 0, 0, 9]));
        let msg = parse_nd(&packet).expect("parses");
        assert_eq!(msg.lladdr, Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(nd_conflict(&msg, target, None), Some([2, 0, 0, 0, 0, 9]));
        packet[7] = 64; // not from the link: RFC 4861 §7.1.2 says drop it
        assert_eq!(parse_nd(&packet), None);
        assert_eq!(parse_nd(&packet[..50]), None);
    }
}
