//! The agent's APIs: the local one on a Unix socket for the CLI (which relays a request, signed, to another
//! node's peer API when asked to), and the authenticated peer one on each node's address.

pub mod auth;
pub mod client;
pub mod local;
pub mod peer;
pub mod types;
