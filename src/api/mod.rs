//! The agent's APIs: the local one on a Unix socket for the CLI, and the authenticated peer one on each
//! node's address (issue 5). Request authentication is here first because every peer request depends on it.

pub mod auth;
