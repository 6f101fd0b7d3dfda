//! The holder sampler: at the probe's rate, which node namespaces hold the floating address, that is have it on
//! an interface that is up with carrier (DESIGN.md §4.1). One thread enters each node's namespace in turn
//! (setns) and reads the addresses through getifaddrs (netlink), so a sample covers all nodes within
//! microseconds and a sample listing two nodes is a real double holder.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::net::if_::InterfaceFlags;
use nix::sched::{CloneFlags, setns};

use super::LabError;

/// Which nodes held the address at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderSample {
    /// When, from the run's origin.
    pub at: Duration,
    /// The nodes holding it (empty: nobody).
    pub holders: Vec<String>,
}

/// Whether the calling thread's namespace holds `address` on an interface that is up with carrier.
fn holds_here(address: Ipv4Addr) -> Result<bool, nix::Error> {
    let carrier = InterfaceFlags::IFF_UP | InterfaceFlags::IFF_LOWER_UP;
    Ok(nix::ifaddrs::getifaddrs()?.any(|ifa| {
        ifa.flags.contains(carrier)
            && ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()).is_some_and(|sin| sin.ip() == address)
    }))
}

fn open_all(nodes: &[(String, String)]) -> Result<Vec<(String, OwnedFd)>, LabError> {
    nodes
        .iter()
        .map(|(node, ns)| {
            let path = format!("/run/netns/{ns}");
            let file = std::fs::File::open(&path).map_err(LabError::io(&path))?;
            Ok((node.clone(), OwnedFd::from(file)))
        })
        .collect()
}

fn sample(fds: &[(String, OwnedFd)], address: Ipv4Addr) -> Result<Vec<String>, LabError> {
    let mut holders = Vec::new();
    for (node, fd) in fds {
        setns(fd, CloneFlags::CLONE_NEWNET).map_err(|errno| LabError::Sys { what: format!("setns {node}"), errno })?;
        if holds_here(address).map_err(|errno| LabError::Sys { what: format!("getifaddrs in {node}"), errno })? {
            holders.push(node.clone());
        }
    }
    Ok(holders)
}

/// The nodes that hold `address` now; `nodes` are (node, namespace) pairs.
pub fn holders_now(nodes: &[(String, String)], address: Ipv4Addr) -> Result<Vec<String>, LabError> {
    let fds = open_all(nodes)?;
    // A thread of its own: setns must not move the caller's thread.
    std::thread::spawn(move || sample(&fds, address)).join().unwrap_or(Err(LabError::Panicked("sampler")))
}

/// A running sampler; [`Sampler::finish`] stops it and returns the samples.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Vec<HolderSample>, LabError>>,
}

impl Sampler {
    /// Samples `nodes` ((node, namespace) pairs) for `address` every `period`, for at most `limit`.
    pub fn start(
        nodes: &[(String, String)],
        address: Ipv4Addr,
        period: Duration,
        limit: Duration,
        origin: Instant,
    ) -> Result<Sampler, LabError> {
        let fds = open_all(nodes)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("lab-sampler".into())
            .spawn(move || {
                let mut samples = Vec::new();
                let ticks = limit.as_nanos() / period.as_nanos().max(1) + 1;
                let start = Instant::now();
                for _ in 0..ticks {
                    if flag.load(Ordering::Relaxed) || start.elapsed() >= limit {
                        break;
                    }
                    let at = Instant::now();
                    let holders = sample(&fds, address)?;
                    samples.push(HolderSample { at: at.duration_since(origin), holders });
                    std::thread::sleep(period.saturating_sub(at.elapsed()));
                }
                Ok(samples)
            })
            .map_err(LabError::io("thread"))?;
        Ok(Sampler { stop, handle })
    }

    /// Stops the sampler and returns its samples.
    pub fn finish(self) -> Result<Vec<HolderSample>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(Err(LabError::Panicked("sampler")))
    }
}
