//! systemd's readiness and watchdog protocol (sd_notify(3)), written out because it is one datagram and a
//! crate would add more than it saves. With no `NOTIFY_SOCKET` (not under systemd) every call is a no-op.
//!
//! The unit (deploy/hactl.service) uses `Type=notify` and `WatchdogSec=`: the agent sends `READY=1` once it
//! has adopted or cleaned up what it found, and `WATCHDOG=1` from its state-owning task, so a hung event loop
//! (not merely a live process) gets the agent restarted.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Why a notification could not be sent.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// The socket named by NOTIFY_SOCKET refused the datagram.
    #[error("sd_notify to {socket}: {source}")]
    Send {
        /// The socket.
        socket: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A connection to the service manager, or nothing when not run by systemd.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(String, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (honouring `WATCHDOG_PID`) from the environment.
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET").ok();
        let watchdog_for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|p| p == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && watchdog_for_us)
            .map(Duration::from_micros);
        Notifier::new(socket, watchdog)
    }

    /// A notifier for an explicit socket (`@name` = abstract namespace), for tests and stand-in listeners.
    pub fn new(socket: Option<String>, watchdog: Option<Duration>) -> Notifier {
        let target = socket.and_then(|s| {
            let addr = match s.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
                None => SocketAddr::from_pathname(PathBuf::from(&s)).ok()?,
            };
            Some((s, addr))
        });
        Notifier { target, watchdog }
    }

    /// How often to send `WATCHDOG=1`: half the configured timeout, as sd_watchdog_enabled(3) advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one state string (`READY=1`, `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=...`).
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        let Some((name, addr)) = &self.target else { return Ok(()) };
        let err = |source| NotifyError::Send { socket: name.clone(), source };
        let socket = UnixDatagram::unbound().map_err(err)?;
        socket.send_to_addr(state.as_bytes(), addr).map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_systemd_every_call_is_a_no_op() {
        let n = Notifier::new(None, None);
        assert!(n.notify("READY=1").is_ok());
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn states_reach_a_stand_in_listener() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::new(Some(path.display().to_string()), Some(Duration::from_secs(10)));
        n.notify("READY=1").expect("ready");
        n.notify("WATCHDOG=1").expect("watchdog");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1");
        let len = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn abstract_socket_names_work() {
        let name = format!("hactl-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        Notifier::new(Some(format!("@{name}")), None).notify("STOPPING=1").expect("send");
        let mut buf = [0u8; 32];
        let len = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    #[test]
    fn a_dead_socket_is_an_error_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = Notifier::new(Some(dir.path().join("nobody").display().to_string()), None);
        assert!(n.notify("READY=1").is_err());
    }
}
