//! The one module of hactl that uses `unsafe` (STYLE.md): an AF_PACKET socket needs a `sockaddr_ll` to bind to an
//! interface and to name the destination MAC, and socket2 builds only IP and Unix socket addresses safely. The
//! unsafe lines only: fill a zeroed `sockaddr_storage` as a `sockaddr_ll` and hand it to socket2; read the
//! `sockaddr_ll` the kernel returns with a frame; lend a `[u8]` buffer to `recvfrom` as `[MaybeUninit<u8>]`; and
//! register the socket with tokio's reactor (`AsyncFd::register` is unsafe since tokio 1.54 because it cannot check
//! that the descriptor stays open). Everything else goes through socket2's safe API.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;

use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type, socklen_t};
use tokio::io::unix::AsyncFd;

/// An AF_PACKET `SOCK_DGRAM` socket bound to one interface and one EtherType, for a probe's answers: the kernel
/// adds and strips the Ethernet header, so frames sent and received start at the payload (e.g. the ARP header).
///
/// The kernel waits for an RCU grace period (`synchronize_net`, 8–20 ms measured) whenever a packet socket's
/// receive hook is taken down: on close, and on a bind of a socket created with a protocol. Both would stall the
/// agent's single-threaded loop, a hundred probes at once for seconds (heartbeats missed, leases lost). So the
/// socket is created without a protocol (no hook yet), the bind installs the one hook, and the close runs on a
/// blocking thread.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    socket: Option<AsyncFd<Socket>>,
    ifindex: u32,
    ethertype: u16,
}

impl PacketSocket {
    /// Opens a non-blocking packet socket for `ethertype` on interface `ifindex` (needs CAP_NET_RAW). Must be called
    /// inside a tokio runtime with IO enabled.
    pub(crate) fn open(ifindex: u32, ethertype: u16) -> io::Result<PacketSocket> {
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, None)?;
        socket.set_nonblocking(true)?;
        socket.bind(&link_addr(ifindex, ethertype, None)?)?;
        // SAFETY: `Socket` owns a valid, open descriptor; the `AsyncFd` takes ownership of it and nothing here
        // closes or replaces it while registered (the only accesses afterwards are `get_ref` and `into_inner`).
        let socket = unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)?;
        Ok(PacketSocket { socket: Some(socket), ifindex, ethertype })
    }

    fn fd(&self) -> io::Result<&AsyncFd<Socket>> {
        self.socket.as_ref().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Sends one payload to `dest` (a MAC address; the broadcast address for announcements).
    pub(crate) fn send_to(&self, payload: &[u8], dest: [u8; 6]) -> io::Result<()> {
        send(self.fd()?.get_ref(), self.ifindex, self.ethertype, payload, dest)
    }

    /// Waits for the next frame that this host received (frames it sent itself are skipped) and copies its payload
    /// into `buf`; returns the payload's length and the sender's MAC address.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<[u8; 6]>)> {
        loop {
            let mut ready = self.fd()?.readable().await?;
            match ready.try_io(|fd| recv_from(fd.get_ref(), buf)) {
                Ok(Ok(Some(frame))) => return Ok(frame),
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        let Some(fd) = self.socket.take() else { return };
        let socket = fd.into_inner();
        // The close waits for the kernel's grace period: off the runtime's thread when there is one.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(socket))),
            Err(_) => drop(socket),
        }
    }
}

/// A send-only AF_PACKET `SOCK_DGRAM` socket for announcements on any interface: created without a protocol and
/// never bound, it has no receive hook, so it receives nothing and queues nothing. One is kept open for the
/// agent's life (see [`PacketSocket`] for why a socket per announcement stalled the agent).
#[derive(Debug)]
pub(crate) struct PacketSender(Socket);

impl PacketSender {
    /// Opens the sender in the calling thread's network namespace (needs CAP_NET_RAW).
    pub(crate) fn open() -> io::Result<PacketSender> {
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, None)?;
        socket.set_nonblocking(true)?;
        Ok(PacketSender(socket))
    }

    /// Sends one payload of `ethertype` to `dest` out of interface `ifindex`.
    pub(crate) fn send_to(&self, ifindex: u32, ethertype: u16, payload: &[u8], dest: [u8; 6]) -> io::Result<()> {
        send(&self.0, ifindex, ethertype, payload, dest)
    }
}

fn send(socket: &Socket, ifindex: u32, ethertype: u16, payload: &[u8], dest: [u8; 6]) -> io::Result<()> {
    let addr = link_addr(ifindex, ethertype, Some(dest))?;
    let sent = socket.send_to(payload, &addr)?;
    if sent == payload.len() {
        Ok(())
    } else {
        Err(io::Error::other(format!("short send: {sent} of {} bytes", payload.len())))
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
