//! The agent's APIs: the local one on a Unix socket for the CLI, and the authenticated peer one on each
//! node's address (issue 5).

pub mod auth;
pub mod client;
pub mod local;
pub mod peer;
pub mod types;
