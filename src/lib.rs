//! hactl: a declarative high-availability cluster manager. One binary is the node agent and the CLI; this
//! library holds everything the binary calls, so tests and tools use the same code.

pub mod agent;
pub mod api;
pub mod cli;
pub mod lab;
pub mod manifest;
pub mod proto;
pub mod sys;
