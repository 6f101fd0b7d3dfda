//! Watching ARP from the client's side: which node announced the floating address, and when. tcpdump is not
//! part of the lab's tools, and the client's neighbour entry only shows the last MAC (a gratuitous ARP that
//! repeats the MAC already there changes nothing visible), so the lab listens itself: a thread in the client's
//! namespace with an AF_PACKET datagram socket for ARP (no unsafe code: socket2 opens it, `Read` reads it; it
//! is never bound, so it sees the ARP of every interface there, and the client has only `eth0`).

use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::LabError;
use super::probe::spawn_in;

/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;

/// One ARP packet the client's namespace saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRecord {
    /// When it arrived, from the run's origin.
    pub at: Duration,
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRecord {
    /// Whether this announces `address` (RFC 5227 §3: sender and target address are both the announced one).
    pub fn announces(&self, address: Ipv4Addr) -> bool {
        self.sender_ip == address && self.target_ip == address
    }

    /// The sender MAC as `ip link` prints it.
    pub fn mac(&self) -> String {
        let m = self.sender_mac;
        format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Parses an Ethernet/IPv4 ARP payload (the Ethernet header already stripped); `None` for anything else.
pub fn parse_arp(payload: &[u8], at: Duration) -> Option<ArpRecord> {
    let p = payload.get(..28)?;
    if p[0..2] != [0, 1] || p[2..4] != [0x08, 0x00] || p[4] != 6 || p[5] != 4 {
        return None;
    }
    let ip = |o: usize| Ipv4Addr::new(p[o], p[o + 1], p[o + 2], p[o + 3]);
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&p[8..14]);
    Some(ArpRecord { at, op: u16::from_be_bytes([p[6], p[7]]), sender_mac, sender_ip: ip(14), target_ip: ip(24) })
}

/// A running ARP watcher; [`ArpWatcher::finish`] stops it and returns what it saw.
#[derive(Debug)]
pub struct ArpWatcher {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Result<Vec<ArpRecord>, LabError>, LabError>>,
}

impl ArpWatcher {
    /// Starts watching ARP in namespace `ns` for at most `limit`; times are measured from `origin`.
    pub fn start(ns: &str, limit: Duration, origin: Instant) -> Result<ArpWatcher, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        // Opened inside the namespace's thread, before the caller goes on, so no announcement is missed.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = spawn_in(ns, "lab-arpwatch", move || {
            let socket = match open() {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(());
                    return Err(e);
                }
            };
            let _ = ready_tx.send(());
            watch(socket, &flag, limit, origin)
        })?;
        // The thread sends before anything else; a closed channel means it died, which `finish` reports.
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        Ok(ArpWatcher { stop, handle })
    }

    /// Stops the watcher and returns the ARP packets seen.
    pub fn finish(self) -> Result<Vec<ArpRecord>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(Err(LabError::Panicked("arp watcher")))?
    }
}

fn open() -> Result<Socket, LabError> {
    let protocol = Protocol::from(i32::from(ETH_P_ARP.to_be()));
    let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(protocol))
        .map_err(|e| LabError::Command { command: "socket(AF_PACKET, ARP)".into(), detail: e.to_string() })?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| LabError::Command { command: "SO_RCVTIMEO".into(), detail: e.to_string() })?;
    Ok(socket)
}

fn watch(mut socket: Socket, stop: &AtomicBool, limit: Duration, origin: Instant) -> Result<Vec<ArpRecord>, LabError> {
    let start = Instant::now();
    let mut records = Vec::new();
    let mut buf = [0u8; 1500];
    // Bounded: every read returns within 50 ms, and the loop ends at `limit` or when stopped.
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        match socket.read(&mut buf) {
            Ok(n) => records.extend(parse_arp(&buf[..n], origin.elapsed())),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LabError::Command { command: "read ARP".into(), detail: e.to_string() }),
        }
    }
    Ok(records)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp_is_parsed_and_recognized() {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
        p.extend([2, 0x48, 0x4c, 0, 0, 1]);
        p.extend([192, 0, 2, 100]);
        p.extend([0; 6]);
        p.extend([192, 0, 2, 100]);
        let r = parse_arp(&p, Duration::from_millis(5)).unwrap();
        assert_eq!((r.op, r.mac().as_str()), (1, "02:48:4c:00:00:01"));
        assert!(r.announces(Ipv4Addr::new(192, 0, 2, 100)));
        assert!(!r.announces(Ipv4Addr::new(192, 0, 2, 101)));
        p[27] = 50;
        assert!(!parse_arp(&p, Duration::ZERO).unwrap().announces(Ipv4Addr::new(192, 0, 2, 100)));
        assert_eq!(parse_arp(&p[..20], Duration::ZERO), None, "truncated");
        p[3] = 0xdd;
        assert_eq!(parse_arp(&p, Duration::ZERO), None, "not IPv4");
    }
}
