//! The peer port: UDP for the protocol, TCP for the peer API, both on the node's address.
//!
//! A restart right after kill -9 may find the port still bound for a few milliseconds: a killed multi-threaded
//! process shows as exited (its leader a zombie) while its other threads are still exiting, and the last of
//! them closes the sockets (measured: a bind at that moment failed in 33 of 40 kills). A supervisor that waits
//! for the old process to be reaped (systemd, the lab, the tests) never sees this; for one that does not, the
//! bind is retried for a short, bounded time instead of failing at once. Every socket the agent opens is
//! close-on-exec (std, tokio, socket2 and netlink-sys open them so), so no service inherits the port.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tracing::warn;

use super::AgentError;

/// How long a port held by an exiting process is waited for.
const BIND_PATIENCE: Duration = Duration::from_secs(1);
/// Between attempts.
const BIND_STEP: Duration = Duration::from_millis(20);

/// Binds UDP and TCP on `addr`, retrying "Address already in use" for [`BIND_PATIENCE`].
pub(super) async fn bind_peer_port(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), AgentError> {
    let attempts = BIND_PATIENCE.as_millis() / BIND_STEP.as_millis();
    let mut attempt = 0;
    loop {
        let result = match UdpSocket::bind(addr).await {
            Ok(udp) => TcpListener::bind(addr).await.map(|tcp| (udp, tcp)),
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < attempts => {
                if attempt == 0 {
                    warn!(%addr, "peer port still in use (a previous agent still exiting?): retrying for {BIND_PATIENCE:?}");
                }
                attempt += 1;
                tokio::time::sleep(BIND_STEP).await;
            }
            other => return other.map_err(|source| AgentError::Bind { addr, source }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_freed_meanwhile_is_bound_and_a_port_kept_is_an_error() {
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(held);
        });
        assert!(bind_peer_port(addr).await.is_ok(), "bound once the holder let go");
        release.await.unwrap();
        let kept = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = bind_peer_port(kept.local_addr().unwrap()).await.map(|_| ()).unwrap_err();
        assert!(matches!(err, AgentError::Bind { .. }), "{err}");
    }
}
