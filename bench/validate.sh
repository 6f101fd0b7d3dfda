#!/usr/bin/env bash
# Validate throughput: time `hactl validate` on a generated set of 10,017 documents (16 nodes, 1,000 groups
# with 9 resources each). Prints the figures; asserts nothing (DESIGN.md §5: benchmarks report, tests assert).
# Goal (issue 2): under 1 s on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-7}
work=bench/work/validate
rm -rf "$work"
python3 bench/gen-manifests.py "$work" "${BENCH_GROUPS:-1000}"
cargo build --release --quiet
bin=target/release/hactl
docs=$(grep -c '^kind:' "$work"/*.yaml | awk -F: '{s += $2} END {print s}')
bytes=$(cat "$work"/*.yaml | wc -c)
"$bin" validate --quiet "$work"   # must be valid, or the timing means nothing
times=()
for _ in $(seq "$runs"); do
  start=$(date +%s%N)
  "$bin" validate --quiet "$work"
  end=$(date +%s%N)
  times+=($(( (end - start) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
rss=$( { /usr/bin/time -f '%M' "$bin" validate --quiet "$work" >/dev/null; } 2>&1 | tail -n 1 || echo "?")
echo "validate: $docs documents, $bytes bytes, $(nproc) cores, $runs runs"
echo "  min ${sorted[0]} ms, median ${sorted[$(( runs / 2 ))]} ms, max ${sorted[$(( runs - 1 ))]} ms, peak RSS ${rss} KiB"
