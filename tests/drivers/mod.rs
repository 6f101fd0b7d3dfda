//! Service drivers against real processes, real scripts and real OCF agents (DESIGN.md §1, §5): no mocks but
//! the stand-in `systemctl`, because systemd does not run in CI.
//!
//! Needs: `/bin/sh`, and Debian's packages `resource-agents` (the OCF tests) and `nginx` (the
//! `ocf:heartbeat:nginx` test): `apt-get install -y resource-agents nginx`. A test whose package is missing fails
//! with a message saying which to install. Every process a test starts is killed by a guard when the test ends, by its own pid
//! or process group.

// The tests measure how long actions take; the rule against clock reads is for the core, not for tests.
#![allow(clippy::disallowed_methods)]

mod exec;
mod nginx;
mod ocf;
mod probes;
mod run;
mod scripts;
mod support;
