//! The peer-leased ownership protocol (DESIGN.md §4) as a pure, deterministic core: no clock, no socket, no
//! randomness of its own. The agent feeds [`Node::handle`] with datagrams and timeouts and carries out the
//! [`Event`]s and [`Transmit`]s it drains; [`sim`] runs whole clusters of cores in virtual time from one seed.
//!
//! How it works, its safety argument and its timing: docs/protocol.md. A group without a floating address is
//! keyed by its name ([`config::keyless_group_key`]).

mod acceptor;
pub mod config;
mod ignore;
mod io;
mod lease;
pub mod membership;
mod node;
pub mod ops;
pub mod placement;
mod receive;
mod round;
pub mod sim;
mod trace;
pub mod wire;

pub use acceptor::PlantedBug;
pub use config::{Config, ConfigError};
pub use io::{AdoptionRecord, Boot, Event, Input, Persisted, QuorumKind, Trace, Transmit};
pub use membership::{Clash, PeerState};
pub use node::Node;
pub use ops::Operation;
