//! The OS layer (STYLE.md "a pure core, a thin shell"): everything that touches the kernel lives here — the lease
//! clock, netlink, raw ARP/NDP sockets. The core never calls into the OS except through values handed to this layer.

pub mod clock;
pub mod net;
