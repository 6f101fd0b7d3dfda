//! IPv4 announcements and probes on the wire (RFC 826 frames, RFC 5227 usage): the ARP announcement that makes
//! neighbours switch their entry for a floating address to this node's MAC (keepalived's and heartbeat's
//! gratuitous ARP), and the bounded probe of DESIGN.md §4.11 that detects another holder before the address is added.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::NetError;
use super::raw::{PacketSender, PacketSocket};

/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;
/// Length of an Ethernet/IPv4 ARP packet.
const ARP_LEN: usize = 28;
/// The Ethernet broadcast address.
const BROADCAST: [u8; 6] = [0xff; 6];
/// A probe reads at most this many frames before giving up, so a flood cannot keep it looping past its wait.
const MAX_FRAMES: usize = 10_000;

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Request = 1,
    Reply = 2,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ArpPacket {
    op: Op,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// RFC 5227 §2.3 ARP announcement: a request whose sender and target IP are both the address.
    fn announcement(mac: [u8; 6], ip: Ipv4Addr) -> ArpPacket {
        ArpPacket { op: Op::Request, sender_mac: mac, sender_ip: ip, target_mac: [0; 6], target_ip: ip }
    }

    /// RFC 5227 §2.1.1 ARP probe: a request from sender IP 0.0.0.0, so no neighbour caches are polluted.
    fn probe(mac: [u8; 6], ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: Op::Request,
            sender_mac: mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: [0; 6],
            target_ip: ip,
        }
    }

    fn encode(&self) -> [u8; ARP_LEN] {
        let mut b = [0u8; ARP_LEN];
        b[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
        b[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
        b[4] = 6;
        b[5] = 4;
        b[6..8].copy_from_slice(&(self.op as u16).to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        b
    }

    /// Parses an Ethernet/IPv4 ARP packet; anything else (other hardware, trailing padding aside) is `None`.
    fn decode(b: &[u8]) -> Option<ArpPacket> {
        let b: &[u8; ARP_LEN] = b.get(..ARP_LEN)?.try_into().ok()?;
        if b[0..6] != [0, 1, 8, 0, 6, 4] {
            return None;
        }
        let op = match u16::from_be_bytes([b[6], b[7]]) {
            1 => Op::Request,
            2 => Op::Reply,
            _ => return None,
        };
        let mac = |r: std::ops::Range<usize>| -> [u8; 6] { std::array::from_fn(|i| b[r.start + i]) };
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        Some(ArpPacket { op, sender_mac: mac(8..14), sender_ip: ip(14), target_mac: mac(18..24), target_ip: ip(24) })
    }
}

/// What a probe (ARP for IPv4, duplicate-address detection for IPv6) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// Nobody else claimed the address within the wait.
    Clear,
    /// Another host answered for the address (or probed for it at the same time): its MAC.
    Conflict {
        /// The other host's hardware address.
        mac: [u8; 6],
    },
}

/// RFC 5227 §2.1.1: a conflict is any ARP packet from another MAC whose sender IP is the address, or another host's
/// probe for the same address (sender IP 0, target IP the address).
fn conflict(pkt: &ArpPacket, own_mac: [u8; 6], ip: Ipv4Addr) -> Option<[u8; 6]> {
    let other = pkt.sender_mac != own_mac;
    let claims = pkt.sender_ip == ip;
    let probes = pkt.op == Op::Request && pkt.sender_ip.is_unspecified() && pkt.target_ip == ip;
    (other && (claims || probes)).then_some(pkt.sender_mac)
}

/// Sends one ARP announcement for `ip` from `mac` out of interface `ifindex`.
pub(crate) fn announce(
    sender: &PacketSender,
    ifname: &str,
    ifindex: u32,
    mac: [u8; 6],
    ip: Ipv4Addr,
) -> Result<(), NetError> {
    let raw = |op, source| NetError::Raw { ifname: ifname.to_string(), op, source };
    let frame = ArpPacket::announcement(mac, ip).encode();
    sender.send_to(ifindex, ETH_P_ARP, &frame, BROADCAST).map_err(|e| raw("send", e))
}

/// Sends one ARP probe for `ip` and listens for at most `wait` for a conflicting answer.
pub(crate) async fn probe(
    ifname: &str,
    ifindex: u32,
    mac: [u8; 6],
    ip: Ipv4Addr,
    wait: Duration,
) -> Result<ProbeResult, NetError> {
    let raw = |op, source| NetError::Raw { ifname: ifname.to_string(), op, source };
    // Bind before sending, so an answer that comes back at once is not missed.
    let socket = PacketSocket::open(ifindex, ETH_P_ARP).map_err(|e| raw("open", e))?;
    socket.send_to(&ArpPacket::probe(mac, ip).encode(), BROADCAST).map_err(|e| raw("send", e))?;
    let listen = async {
        let mut buf = [0u8; 1500];
        for _ in 0..MAX_FRAMES {
            let (len, _source) = socket.recv(&mut buf).await?;
            let found = ArpPacket::decode(&buf[..len]).and_then(|p| conflict(&p, mac, ip));
            if let Some(other) = found {
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

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff` (for logs and status).
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const THEIRS: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
    const IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    #[test]
    fn announcement_layout_matches_rfc_5227() {
        let b = ArpPacket::announcement(OURS, IP).encode();
        let expected: [u8; ARP_LEN] = [
            0, 1, 8, 0, 6, 4, 0, 1, // Ethernet, IPv4, request
            2, 0, 0, 0, 0, 1, 192, 0, 2, 10, // sender: our MAC, the address
            0, 0, 0, 0, 0, 0, 192, 0, 2, 10, // target: zero MAC, the address
        ];
        assert_eq!(b, expected);
    }

    #[test]
    fn probe_has_unspecified_sender() {
        let p = ArpPacket::decode(&ArpPacket::probe(OURS, IP).encode()).expect("round trip");
        assert_eq!(p.sender_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.target_ip, IP);
        assert_eq!(p.op, Op::Request);
    }

    #[test]
    fn decode_rejects_short_and_foreign_packets() {
        let good = ArpPacket::announcement(OURS, IP).encode();
        assert!(ArpPacket::decode(&good[..27]).is_none());
        let mut other_hw = good;
        other_hw[1] = 6; // IEEE 802 instead of Ethernet
        assert!(ArpPacket::decode(&other_hw).is_none());
        let mut padded = good.to_vec();
        padded.extend([0u8; 18]); // Ethernet minimum frame padding
        assert_eq!(ArpPacket::decode(&padded), Some(ArpPacket::announcement(OURS, IP)));
    }

    #[test]
    fn conflicts_follow_rfc_5227() {
        let reply = ArpPacket { op: Op::Reply, sender_mac: THEIRS, sender_ip: IP, target_mac: OURS, target_ip: IP };
        assert_eq!(conflict(&reply, OURS, IP), Some(THEIRS));
        // Our own frames, seen on the way out, are not a conflict.
        assert_eq!(conflict(&ArpPacket::announcement(OURS, IP), OURS, IP), None);
        // Another host probing for the same address at the same time is one.
        assert_eq!(conflict(&ArpPacket::probe(THEIRS, IP), OURS, IP), Some(THEIRS));
        // A different address is not.
        let elsewhere = ArpPacket::announcement(THEIRS, Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(conflict(&elsewhere, OURS, IP), None);
    }

    #[test]
    fn mac_format() {
        assert_eq!(format_mac([0x02, 0xab, 0, 0, 0x10, 0xff]), "02:ab:00:00:10:ff");
    }
}
