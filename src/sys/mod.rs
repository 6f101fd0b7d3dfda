//! The OS layer: everything that touches the kernel, the file system, processes or clocks lives here, so the
//! protocol core and the reconciler stay pure and testable in virtual time (STYLE.md).

pub mod clock;
pub mod keyfile;
pub mod net;
pub mod sdnotify;
pub mod service;
pub mod state;
pub mod watch;
