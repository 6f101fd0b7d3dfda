//! The one integration-test binary (one link instead of many). Each module covers one area through the real
//! `hactl` binary or the library's public API.
#![allow(clippy::unwrap_used)]
// Tests time real processes and kernels from outside; the no-clock rule is for the protocol core.
#![allow(clippy::disallowed_methods)]

mod agent;
mod ctl;
mod drivers;
mod lab;
mod manifests;
mod model;
mod net;
mod placement;
mod plan;
mod sim;
mod support;
mod watch;
