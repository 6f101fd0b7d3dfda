//! The node agent: which config is in force, the reconciler's planner (pure: desired + observed state in, the
//! next actions out), what it started and persisted, and the runtime that binds the protocol core to the OS.

pub mod config;
pub mod deliver;
pub mod persist;
pub mod plan;
pub mod runtime;
pub mod started;
