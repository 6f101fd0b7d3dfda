//! Helpers shared by the integration tests; later lab tests (agents in namespaces) reuse them.
#![allow(dead_code)]

pub mod agents;
pub mod netns;
