#!/usr/bin/env bash
# Prints the protocol benchmarks of issue 3 (item 10), measured in the deterministic simulation:
#  - failover after a holder's power-off, virtual time, p50/p99, default and tuned timers (and strict);
#  - CPU time and bytes/s per node for 16 nodes x 1,000 groups (HACTL_SIM_GROUPS to change).
# Numbers are virtual-time protocol figures: no service start, no real ARP, no real kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test main sim_bench_ -- --ignored --nocapture --test-threads 1 2>&1 \
  | grep -E '^(failover|scale)'
