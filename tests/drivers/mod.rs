//! Service drivers against real processes, real scripts and real OCF agents (DESIGN.md §1, §5): no mocks but
//! the stand-in `systemctl`, because systemd does not run in CI.
//!
//! Needs: `/bin/sh`, and Debian's `resource-agents` package for the OCF tests (they fail with a message saying
//! so when it is missing). Every process a test starts is killed by a guard when the test ends, by its own pid
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
