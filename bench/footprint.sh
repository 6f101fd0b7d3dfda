#!/usr/bin/env bash
# Idle footprint benchmark (DESIGN.md §5: benchmarks report, tests assert): the CPU and memory an idle
# two-node cluster costs, hactl's agent and keepalived side by side, in the one-machine lab (`hactl lab`,
# network namespaces). Each row brings the lab up fresh (`hactl lab up --tag fp`), waits for the lab's own
# election to put 192.0.2.100 on ha1 (a start-up that ends on ha2 is retried once), rewrites every node's config
# in /run/hactl-lab/fp/<node>/ with bench/footprint-manifests.py, waits until ha1 holds all the row's addresses
# and ha2 none (then SETTLE more seconds, default 10, for the announcements to end), measures over WINDOW
# seconds (default 30) and tears the lab down again (`hactl lab down`, also on error).
#
# Rows: tool × interval (1s, 200ms, 50ms) × groups (1, 10, 100).
#   hactl:      manifests/lab/ as the lab writes it (WebServices: 192.0.2.100 + nginx, monitor every 5 s;
#               initDead 2 s) with heartbeat interval I, deadTime 5×I, warnTime 3×I, and groups − 1 more
#               groups of one FloatingIP each (203.0.113.11…/24 on eth0, prefer ha1: 50, stickiness 100).
#               Lease: the lab's (duration 1 s, margin 100 ms) at 200 ms and 50 ms; at 1 s the validator wants
#               duration > 3 × interval, so 5 s (hactl's default of 5 × interval), margin 100 ms. The new file
#               is moved over manifests/lab.yaml (the agent reloads it) after `hactl validate` accepts it.
#   keepalived: the lab's config (`--advert-int I`: VRRPv2 at 1 s, VRRPv3 below; unicast, nopreempt,
#               priority 150/140) with groups − 1 more vrrp_instance blocks copied from the lab's
#               (virtual_router_id 52…, the same 203.0.113.x addresses), reloaded with SIGHUP to the parent.
# Measured per node, over the daemon's processes only (hactl: the agent; keepalived: parent and VRRP child;
# never nginx): CPU = scheduler run time of every thread (/proc/PID/task/*/schedstat, ns) over WINDOW, in % of
# one core; RSS = VmRSS summed, at the end of the window. ha1_tx_pkt/s: packets ha1 sent on eth0 during the
# window (shows the interval took effect). ha1_syscalls/s: `strace -c -f` on ha1's daemon for STRACE_WINDOW
# seconds (default 10) after the CPU window, never during it (strace slows the traced process); "-" without
# strace. valid: "yes", or why not (not-settled: ha1 did not hold every address within SETTLE_TIMEOUT, default
# 120 s; ha1-holds/ha2-holds: at the end of the window; restarted: a daemon's pid changed; moved-under-strace:
# the addresses moved while strace ran). The ratios at the end compare ha1's CPU of the two tools.
#
# Usage: bench/footprint.sh [OUTPUT]   (OUTPUT: also write the table there, e.g. bench/results/…)
#   env: WINDOW=30 SETTLE=10 STRACE_WINDOW=10 TOOLS="hactl keepalived" INTERVALS="1s 200ms 50ms"
#        NGROUPS="1 10 100" (not GROUPS: bash ignores that name) NO_BUILD=1 (use target/release/hactl as is)
#        HACTL=PATH (measure that hactl binary instead, not built; e.g. one built from another commit)
#        NOTE="…" (one more header line, e.g. what HACTL was built from)
# Quick run: WINDOW=10 INTERVALS=200ms NGROUPS="1 10" bench/footprint.sh
# Root only; needs iproute2 nftables nginx keepalived python3 (strace optional). The daemons' logs of each row
# are kept in target/bench-logs/footprint/.
set -euo pipefail
cd "$(dirname "$0")/.."
window=${WINDOW:-30}
settle=${SETTLE:-10}
strace_window=${STRACE_WINDOW:-10}
tools=${TOOLS:-hactl keepalived}
intervals=${INTERVALS:-1s 200ms 50ms}
counts=${NGROUPS:-1 10 100}
out=${1:-/dev/null}
tag=fp
bin=${HACTL:-target/release/hactl}
gen=bench/footprint-manifests.py
logs=target/bench-logs/footprint
[ "$(id -u)" = 0 ] || { echo "footprint.sh: root only (hactl lab)" >&2; exit 1; }
[ "${NO_BUILD:-0}" = 1 ] || [ -n "${HACTL:-}" ] || cargo build --release --quiet --bin hactl
work=$(mktemp -d)
lab_down() { "$bin" lab down --tag "$tag" >>"$work/lab.log" 2>&1 || true; }
trap 'lab_down; rm -rf "$work"' EXIT
mkdir -p "$logs"
started=$(date +%s)

ns() { echo "hl-$tag-$1"; }
dir() { echo "/run/hactl-lab/$tag/$1"; }

# Pids of the daemon (command name $2) in node $1, sorted.
daemon_pids() {
  local pid comm
  for pid in $(ip netns pids "$(ns "$1")"); do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
    if [ "$comm" = "$2" ]; then echo "$pid"; fi
  done | sort -n
}

# "tid ns-on-CPU" for every thread of the daemon's processes.
thread_times() {
  local pid f tid t
  for pid in $(daemon_pids "$1" "$2"); do
    for f in /proc/"$pid"/task/*/schedstat; do
      read -r t _ <"$f" 2>/dev/null || continue
      tid=${f#/proc/"$pid"/task/}
      echo "${tid%/schedstat} $t"
    done
  done
}

# CPU ns between two thread_times snapshots (threads present at the end; a thread that exited meanwhile is lost,
# and counted in the second number).
cpu_delta() {
  awk 'NR == FNR { a[$1] = $2; next }
       { d += $2 - (($1 in a) ? a[$1] : 0); seen[$1] = 1 }
       END { for (t in a) if (!(t in seen)) gone++; printf "%d %d\n", d, gone }' "$1" "$2"
}

rss_kib() {
  local pid total=0 kib
  for pid in $(daemon_pids "$1" "$2"); do
    kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || kib=0
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

# How many of the row's addresses (192.0.2.100, 203.0.113.x) node $1 holds.
held() {
  ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null |
    grep -cE 'inet (192\.0\.2\.100|203\.0\.113\.[0-9]+)/' || true
}

tx_packets() { ip netns exec "$(ns "$1")" cat /sys/class/net/eth0/statistics/tx_packets; }

# Polls until ha1 holds all $1 addresses and ha2 none; false after SETTLE_TIMEOUT seconds (default 120).
wait_settled() {
  local deadline=$(($(date +%s) + ${SETTLE_TIMEOUT:-120}))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(held ha1)" = "$1" ] && [ "$(held ha2)" = 0 ] && return 0
    sleep 0.5
  done
  return 1
}

# Rewrites node $1's config for tool $2, interval $3, $4 groups.
reconfigure() {
  local node=$1 tool=$2 interval=$3 n=$4 d
  d=$(dir "$node")
  if [ "$tool" = hactl ]; then
    python3 "$gen" hactl "$d/manifests/lab.yaml" "$interval" "$n" >"$d/lab.yaml.new" 2>"$work/lease"
    rm -rf "$work/check" && mkdir "$work/check" && cp "$d/lab.yaml.new" "$work/check/lab.yaml"
    "$bin" validate --quiet "$work/check" >>"$work/row.log" 2>&1 ||
      { echo "footprint.sh: generated manifests invalid:" >&2; "$bin" validate "$work/check" >&2; exit 1; }
    mv -f "$d/lab.yaml.new" "$d/manifests/lab.yaml"
  else
    python3 "$gen" keepalived "$d/keepalived/keepalived.conf" "$n" >"$d/keepalived/keepalived.conf.new"
    mv -f "$d/keepalived/keepalived.conf.new" "$d/keepalived/keepalived.conf"
    ip netns exec "$(ns "$node")" keepalived -t -f "$d/keepalived/keepalived.conf" >>"$work/row.log" 2>&1 ||
      { echo "footprint.sh: keepalived -t rejects the generated config" >&2; exit 1; }
    kill -HUP "$(cat "$d/keepalived/keepalived.pid")"
  fi
}

row() {
  local tool=$1 interval=$2 n=$3 comm=$1 valid=() node
  local t0 t1 tx0 tx1 p1 p2 s1 s2 c1 c2 gone1 gone2 sys="-" lease="-"
  echo "row: $tool $interval $n groups" >&2
  lab_down
  : >"$work/row.log"
  # The lab's own election first (ha1 holds 192.0.2.100), so the reload never races the daemons' start-up: a
  # keepalived reloaded within its first advert intervals lets ha2 win, and nopreempt keeps it there. A start-up
  # that still ends on ha2 is retried once with a fresh lab.
  local attempt
  for attempt in 1 2; do
    if [ "$tool" = hactl ]; then
      "$bin" lab up --tag "$tag" --daemon hactl >>"$work/row.log" 2>&1
    else
      "$bin" lab up --tag "$tag" --daemon keepalived --advert-int "$interval" >>"$work/row.log" 2>&1
    fi
    wait_settled 1 && break
    echo "  note: the lab's start-up election did not end on ha1 (attempt $attempt)" >&2
    if [ "$attempt" = 2 ]; then valid+=("start-not-on-ha1"); else lab_down; fi
  done
  for node in ha1 ha2; do reconfigure "$node" "$tool" "$interval" "$n"; done
  [ "$tool" = hactl ] && lease=$(head -1 "$work/lease" | awk '{ print $2 }')
  wait_settled "$n" || valid+=("not-settled")
  sleep "$settle"
  p1="$(daemon_pids ha1 "$comm") / $(daemon_pids ha2 "$comm")"
  tx0=$(tx_packets ha1)
  t0=$(date +%s%N)
  thread_times ha1 "$comm" >"$work/a1"
  thread_times ha2 "$comm" >"$work/a2"
  sleep "$window"
  thread_times ha1 "$comm" >"$work/b1"
  thread_times ha2 "$comm" >"$work/b2"
  t1=$(date +%s%N)
  tx1=$(tx_packets ha1)
  p2="$(daemon_pids ha1 "$comm") / $(daemon_pids ha2 "$comm")"
  read -r c1 gone1 < <(cpu_delta "$work/a1" "$work/b1")
  read -r c2 gone2 < <(cpu_delta "$work/a2" "$work/b2")
  s1=$(rss_kib ha1 "$comm")
  s2=$(rss_kib ha2 "$comm")
  [ "$p1" = "$p2" ] || valid+=("restarted")
  local h1 h2
  h1=$(held ha1) h2=$(held ha2)
  [ "$h1" = "$n" ] || valid+=("ha1-holds-$h1/$n")
  [ "$h2" = 0 ] || valid+=("ha2-holds-$h2")
  if command -v strace >/dev/null; then
    local args=()
    for pid in $(daemon_pids ha1 "$comm"); do args+=(-p "$pid"); done
    timeout -s INT "$strace_window" strace -c -f -o "$work/strace" "${args[@]}" 2>>"$work/row.log" || true
    sys=$(awk -v w="$strace_window" '$NF == "total" { printf "%.0f", $4 / w }' "$work/strace")
    if [ ${#valid[@]} -eq 0 ] && { [ "$(held ha1)" != "$n" ] || [ "$(held ha2)" != 0 ]; }; then
      valid+=("moved-under-strace")
    fi
  fi
  [ "$gone1" = 0 ] && [ "$gone2" = 0 ] || echo "  note: threads exited during the window (ha1 $gone1, ha2 $gone2)" >&2
  local name="$tool-$interval-$n" ok="yes"
  [ ${#valid[@]} -eq 0 ] || { ok=$(IFS=,; echo "${valid[*]}"); echo "WARNING: $name: $ok" >&2; }
  rm -rf "${logs:?}/$name" && mkdir -p "$logs/$name"
  cp "$work/row.log" "$logs/$name/"
  for node in ha1 ha2; do
    find "$(dir "$node")" -name '*.log' | while read -r f; do cp "$f" "$logs/$name/$node-$(basename "$f")"; done
  done
  lab_down
  awk -v tool="$tool" -v iv="$interval" -v n="$n" -v c1="$c1" -v c2="$c2" -v dt="$((t1 - t0))" \
    -v s1="$s1" -v s2="$s2" -v sys="$sys" -v tx="$((tx1 - tx0))" -v lease="$lease" -v ok="$ok" 'BEGIN {
      printf "%s\t%s\t%d\t%.3f\t%.3f\t%.1f\t%.1f\t%s\t%.1f\t%s\t%s\n", tool, iv, n, 100 * c1 / dt, 100 * c2 / dt,
        s1 / 1024, s2 / 1024, sys, tx / (dt / 1e9), lease, ok }' >>"$work/rows"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/rows"
for tool in $tools; do
  for interval in $intervals; do
    for n in $counts; do row "$tool" "$interval" "$n"; done
  done
done
took=$(($(date +%s) - started))

{
  echo "# Idle footprint benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  # shellcheck source=/dev/null
  echo "# machine: $(nproc) cores, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
  if [ -n "${HACTL:-}" ]; then
    echo "# $("$bin" --version), binary $bin"
  else
    dirty=$(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock | wc -l)
    echo "# $("$bin" --version), work tree at $(git rev-parse --short HEAD)$([ "$dirty" = 0 ] || echo " with $dirty files modified")"
  fi
  [ -z "${NOTE:-}" ] || echo "# $NOTE"
  echo "# $(keepalived --version 2>&1 | head -1), $(nginx -v 2>&1)"
  echo "# window ${window}s after ha1 held every address + ${settle}s; syscalls: strace -c -f over ${strace_window}s after the window$(command -v strace >/dev/null || echo ' (no strace)')"
  echo "# CPU in % of one core (daemon processes only, all threads); RSS summed over them; lease: hactl's lease duration"
  echo "# load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg); run took $((took / 60))m$((took % 60))s"
  printf '%-10s %-8s %6s %8s %8s %11s %11s %14s %12s %6s %s\n' tool interval groups 'ha1_cpu%' 'ha2_cpu%' \
    ha1_rss_MiB ha2_rss_MiB 'ha1_syscalls/s' 'ha1_tx_pkt/s' lease valid
  awk -F'\t' '{ printf "%-10s %-8s %6d %8.3f %8.3f %11.1f %11.1f %14s %12.1f %6s %s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$work/rows"
  echo "# hactl ha1 CPU / keepalived master (ha1) CPU, same interval and groups:"
  awk -F'\t' '{ key = $2 " " $3 } $11 != "yes" { bad[key] = 1 }
    $1 == "hactl" { h[key] = $4; order[++k] = key } $1 == "keepalived" { ka[key] = $4 }
    END { for (i = 1; i <= k; i++) { key = order[i]; if (key in ka) {
      split(key, f, " ")
      printf "#   interval %-6s groups %4d: %s%s\n", f[1], f[2], (ka[key] > 0) ? sprintf("%.1f x", h[key] / ka[key]) : "-",
        (key in bad) ? "   (a row is not valid)" : "" } } }' "$work/rows"
} | tee "$out"
