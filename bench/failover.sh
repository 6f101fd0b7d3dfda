#!/usr/bin/env bash
# Failover benchmark (issue 6 §3; DESIGN.md §5: benchmarks report, tests assert). In the one-machine lab
# (network namespaces, nginx on each node, a client probing http://192.0.2.100/ every 10 ms with a 100 ms
# timeout), runs TRIALS power-offs of the holder (or, for hactl, `hactl move`s of the group) per row and prints the client-observed outage
# min/median/max, the trials where no other node served within 20 s (failed), the samples (every 10 ms) with the
# address on two nodes (doubles), the trials in which the old holder's return cost the client an outage or
# took the address back despite nopreempt/stickiness (returns), and the daemon's idle RSS and CPU per node. Root only; needs iproute2 nftables nginx keepalived.
#
# Usage: bench/failover.sh [OUTPUT]   (OUTPUT: also write the table there, e.g. bench/results/…)
# The daemons' logs of each row are kept in target/bench-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${TRIALS:-10}
out=${1:-/dev/null}
cargo build --release --quiet --example failover --bin hactl
bin=target/release/examples/failover
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT

row() { "$bin" --trials "$trials" --tag bench "$@" 2>>"${rows}.log" | grep '^ROW' >>"$rows"; }

# keepalived (Debian's package, VRRP, unicast, nopreempt): its default advert_int 1 (VRRPv2) and 0.1 (VRRPv3).
row --daemon keepalived --advert-int 1s
row --daemon keepalived --advert-int 100ms
# hactl (`hactl agent` on manifests/lab/, lab::HactlAgent): default timers (heartbeat 200 ms, deadTime 1 s,
# lease 1 s) and tuned (50 ms, 200 ms, 250 ms). The ratio column compares each row with keepalived's advert_int 1.
row --daemon hactl --timers default
row --daemon hactl --timers tuned
# Scenario d, `hactl move WebServices OTHER` run on the holder against its own agent (lab::Disruption::Hactl),
# for both timer sets: the outage is the hand-over's (stop, release, acquire, start), no detection involved.
row --daemon hactl --timers default --scenario move
row --daemon hactl --timers tuned --scenario move

{
  echo "# Failover benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# machine: $(nproc) cores, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "# $(keepalived --version 2>&1 | head -1), $(nginx -v 2>&1), $trials trials per row"
  echo "# outage = client-observed: last answer before the power-off or move to the first answer after (seconds)"
  printf '%-11s %-16s %-10s %3s %7s %7s %7s %6s %7s %7s %9s %8s %6s\n' \
    tool setting scenario n min median max failed doubles returns idleRSS idleCPU ratio
  awk -F'\t' '
    $2 == "keepalived" && $3 == "advert_int 1.000" { base = $7 }
    { rows[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        split(rows[i], f, "\t")
        ratio = (base > 0) ? sprintf("%.2f", f[7] / base) : "-"
        printf "%-11s %-16s %-10s %3d %7.3f %7.3f %7.3f %6d %7d %7d %6.1fMiB %7.3f%% %6s\n",
          f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12] / 1024, f[13], ratio
      }
    }' "$rows"
  echo "# trials:"
  sed 's/^/#   /' "${rows}.log"
} | tee "$out"
rm -f "${rows}.log"
