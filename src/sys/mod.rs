//! The OS layer: everything that touches processes, sockets or the clock lives here, so the protocol core
//! and the reconciler stay pure (STYLE.md, "a pure core, a thin shell").

pub mod service;
