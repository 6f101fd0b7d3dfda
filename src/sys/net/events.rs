//! Address and link events (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_LINK), so that an address removed by
//! hand or a link going down is noticed at once. Events only say "look again" (STYLE.md, level-triggered): the
//! core still resyncs periodically, and [`NetEvent::Overrun`] says events were lost.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::channel::mpsc::UnboundedReceiver;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::AsyncSocket;
use rtnetlink::MulticastGroup;
use tokio::task::JoinHandle;

use super::NetError;
use super::addr::Address;
use super::link::Link;

/// The receive buffer [`NetEvents::subscribe`] asks for.
const DEFAULT_RECEIVE_BUFFER: usize = 1 << 20;

/// A change the kernel reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// An address was added or changed (a lifetime renewal also reports this).
    AddressAdded(Address),
    /// An address was deleted (by hand, by expiry of its lifetime, or with its interface).
    AddressRemoved(Address),
    /// A link appeared or changed (up/down, carrier).
    LinkChanged(Link),
    /// A link was deleted.
    LinkRemoved(Link),
    /// The socket's buffer overflowed and events were lost: the consumer must resync from a dump.
    Overrun,
}

/// The stream of [`NetEvent`]s from one subscribed netlink socket. Ends (`None`) if the socket fails; the consumer
/// resubscribes and resyncs.
#[derive(Debug)]
pub struct NetEvents {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, netlink_sys::SocketAddr)>,
    connection: JoinHandle<()>,
}

impl Drop for NetEvents {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl NetEvents {
    /// Subscribes in the calling thread's network namespace with a 1 MiB receive buffer (a burst of changes, such as
    /// an interface with many addresses going away, should not overrun it); spawns the socket's task on the current
    /// tokio runtime.
    pub fn subscribe() -> Result<NetEvents, NetError> {
        NetEvents::subscribe_with_buffer(DEFAULT_RECEIVE_BUFFER)
    }

    /// As [`NetEvents::subscribe`] with a receive buffer of `bytes` (the kernel doubles it and enforces a minimum).
    pub fn subscribe_with_buffer(bytes: usize) -> Result<NetEvents, NetError> {
        let groups = [MulticastGroup::Link, MulticastGroup::Ipv4Ifaddr, MulticastGroup::Ipv6Ifaddr];
        let (mut connection, _handle, messages) =
            rtnetlink::new_multicast_connection(&groups).map_err(NetError::Socket)?;
        let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        connection.socket_mut().socket_mut().set_rx_buf_sz(size).map_err(NetError::Socket)?;
        Ok(NetEvents { messages, connection: tokio::spawn(connection) })
    }

    /// The next event; `None` when the socket has closed.
    pub async fn next(&mut self) -> Option<NetEvent> {
        futures::StreamExt::next(self).await
    }
}

impl Stream for NetEvents {
    type Item = NetEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<NetEvent>> {
        loop {
            match Pin::new(&mut self.messages).poll_next(cx) {
                Poll::Ready(Some((msg, _))) => {
                    if let Some(event) = decode(msg.payload) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Maps one unsolicited netlink message to an event; other messages (other groups, noise) are skipped.
fn decode(payload: NetlinkPayload<RouteNetlinkMessage>) -> Option<NetEvent> {
    match payload {
        NetlinkPayload::Overrun(_) => Some(NetEvent::Overrun),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => {
            Address::from_message(&m).map(NetEvent::AddressAdded)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => {
            Address::from_message(&m).map(NetEvent::AddressRemoved)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
            Some(NetEvent::LinkChanged(Link::from_message(&m)))
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
            Some(NetEvent::LinkRemoved(Link::from_message(&m)))
        }
        _ => None,
    }
}
