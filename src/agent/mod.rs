//! The node agent's own logic (pure where it can be): which config is in force, and later the reconciler.
//! The runtime that binds it to the OS arrives with the protocol core (issue 4).

pub mod config;
pub mod deliver;
pub mod persist;
pub mod plan;
pub mod runtime;
pub mod started;
