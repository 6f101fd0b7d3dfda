//! The one module of hactl that uses `unsafe` (STYLE.md): an AF_PACKET socket needs a `sockaddr_ll` to bind to an
//! interface and to name the destination MAC, and socket2 builds only IP and Unix socket addresses safely. The
//! unsafe lines only: fill a zeroed `sockaddr_storage` as a `sockaddr_ll` and hand it to socket2; read the
//! `sockaddr_ll` the kernel returns with a frame; lend a `[u8]` buffer to `recvfrom` as `[MaybeUninit<u8>]`; and
//! register the socket with tokio's reactor (`AsyncFd::register` is unsafe since tokio 1.54 because it cannot check
//! that the descriptor stays open). Everything else goes through socket2's safe API.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type, socklen_t};
use tokio::io::unix::AsyncFd;

/// An AF_PACKET `SOCK_DGRAM` socket bound to one interface and one EtherType: the kernel adds and strips the
/// Ethernet header, so frames sent and received start at the payload (e.g. the ARP header).
#[derive(Debug)]
pub(crate) struct PacketSocket {
    socket: AsyncFd<Socket>,
    ifindex: u32,
    ethertype: u16,
}

impl PacketSocket {
    /// Opens a non-blocking packet socket for `ethertype` on interface `ifindex` (needs CAP_NET_RAW). Must be called
    /// inside a tokio runtime with IO enabled.
    pub(crate) fn open(ifindex: u32, ethertype: u16) -> io::Result<PacketSocket> {
        let protocol = Protocol::from(i32::from(ethertype.to_be()));
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(protocol))?;
        socket.set_nonblocking(true)?;
        socket.bind(&link_addr(ifindex, ethertype, None)?)?;
        // SAFETY: `Socket` owns a valid, open descriptor; the `AsyncFd` takes ownership of it and nothing here
        // closes or replaces it while registered (the only access afterwards is `get_ref`).
        let socket = unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)?;
        Ok(PacketSocket { socket, ifindex, ethertype })
    }

    /// Sends one payload to `dest` (a MAC address; the broadcast address for announcements).
    pub(crate) fn send_to(&self, payload: &[u8], dest: [u8; 6]) -> io::Result<()> {
        let addr = link_addr(self.ifindex, self.ethertype, Some(dest))?;
        let sent = self.socket.get_ref().send_to(payload, &addr)?;
        if sent == payload.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!("short send: {sent} of {} bytes", payload.len())))
        }
    }

    /// Waits for the next frame that this host received (frames it sent itself are skipped) and copies its payload
    /// into `buf`; returns the payload's length and the sender's MAC address.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<[u8; 6]>)> {
        loop {
            let mut ready = self.socket.readable().await?;
            match ready.try_io(|fd| recv_from(fd.get_ref(), buf)) {
                Ok(Ok(Some(frame))) => return Ok(frame),
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// One `recvfrom`: the payload length and source MAC, or `None` for a frame this host sent (`PACKET_OUTGOING`).
fn recv_from(socket: &Socket, buf: &mut [u8]) -> io::Result<Option<(usize, Option<[u8; 6]>)>> {
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and `recv_from` only writes initialised bytes
    // into the buffer, so the `[u8]` stays initialised.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    let (len, addr) = socket.recv_from(uninit)?;
    if addr.family() != libc::AF_PACKET as libc::sa_family_t {
        return Ok(Some((len, None)));
    }
    let mut storage = addr.as_storage();
    // SAFETY: the kernel filled the storage with a `sockaddr_ll` (its family is AF_PACKET, checked above), one of the
    // platform's `sockaddr_*` types as `view_as` requires.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    if ll.sll_pkttype == libc::PACKET_OUTGOING {
        return Ok(None);
    }
    let mac = (ll.sll_halen == 6).then(|| std::array::from_fn(|i| ll.sll_addr[i]));
    Ok(Some((len, mac)))
}

/// Builds the `sockaddr_ll` for interface `ifindex`, EtherType `ethertype` and, when sending, destination `mac`.
fn link_addr(ifindex: u32, ethertype: u16, mac: Option<[u8; 6]>) -> io::Result<SockAddr> {
    let ifindex = i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_ll` is one of the platform's `sockaddr_*` types, as `view_as` requires, and it is smaller than
    // `sockaddr_storage` (view_as asserts that too). The storage is all zeros, a valid `sockaddr_ll`.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    // AF_PACKET is 17: it fits the u16 family field.
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ethertype.to_be();
    ll.sll_ifindex = ifindex;
    if let Some(mac) = mac {
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&mac);
    }
    // sockaddr_ll is 20 bytes: the cast cannot truncate.
    let len = size_of::<libc::sockaddr_ll>() as socklen_t;
    // SAFETY: the storage holds a fully initialised `sockaddr_ll` whose family is AF_PACKET, and `len` is exactly
    // the size of `sockaddr_ll`, so family, length and contents agree as `SockAddr::new` requires.
    Ok(unsafe { SockAddr::new(storage, len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_addr_is_a_packet_address() {
        let addr = link_addr(7, 0x0806, Some([2, 0, 0, 0, 0, 1])).expect("ifindex 7 fits an i32");
        assert_eq!(addr.family(), libc::AF_PACKET as libc::sa_family_t);
        assert_eq!(addr.len() as usize, size_of::<libc::sockaddr_ll>());
    }
}
