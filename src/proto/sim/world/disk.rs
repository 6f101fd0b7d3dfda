//! The simulated disk (invariant (g)): `Event::Persist` writes may fail, drawn from the seed. The agent answers a
//! failed write by exiting before it sends anything polled after the event (src/agent/runtime/events.rs, `drain`
//! returns the error and `run` ends), so the simulated agent crashes there too; its kernel keeps the addresses
//! (stale) and it restarts later, and a failed write at start-up (the first `Persist` of `Node::new`) means it
//! refuses to start and is tried again. Like `StateDir::write` (temp file, fsync, rename, fsync of the directory), a
//! failed write leaves the old state or, when only the last fsync failed, the new one.

use std::time::Duration;

use crate::proto::Persisted;

use super::super::check::Violation;
use super::World;

impl World {
    /// Writes node `i`'s protocol state; `false` when the write failed and the agent has exited.
    pub(super) fn write(&mut self, i: usize, p: Persisted) -> bool {
        let fails = !self.healed && self.disk_fail > 0.0 && self.rng.chance(self.disk_fail);
        if !fails {
            self.nodes[i].persisted = p;
            return true;
        }
        if self.s.ignore_failed_writes {
            self.stats.failed_writes += 1;
            return true; // planted bug: the agent logs the failure and carries on
        }
        if self.rng.chance(0.5) {
            self.nodes[i].persisted = p; // the rename happened, the directory's fsync failed
        }
        self.stats.failed_writes += 1;
        self.prepared.clear();
        let down = self.rng.between(Duration::from_millis(100), Duration::from_secs(1));
        if self.verbose {
            eprintln!("{:>12.6?} {} PERSIST FAILED: agent exits", self.now, self.nodes[i].name);
        }
        self.crash(i, false, down);
        false
    }

    /// (g) Before node `i`'s datagrams go out: every ballot it prepared during this input is on its disk, and no
    /// ballot goes out from two incarnations.
    pub(super) fn commit_prepared(&mut self, i: usize) -> Result<(), Violation> {
        let node = &self.nodes[i];
        let (on_disk, incarnation) = (node.persisted.max_round, node.incarnation);
        for ballot in std::mem::take(&mut self.prepared) {
            if ballot.round > on_disk {
                return Err(Violation {
                    invariant: "(g) Prepare sent with an unpersisted ballot",
                    at: self.now,
                    detail: format!("{} round {} sent, disk holds round {on_disk}", node.name, ballot.round),
                });
            }
            self.checker.prepared(self.now, i, ballot, incarnation)?;
        }
        Ok(())
    }
}
