#!/usr/bin/env bash
# The main job: the guide's two-node web cluster (ha1 and ha2, the floating address 192.0.2.100, nginx as the
# group's service, stickiness 100) built on this one machine from network namespaces and run by two real
# `hactl agent`s, then a failover you can watch: a client requests the page every 10 ms while the holder is
# powered off. Root on Debian. The lab stays up afterwards for trying things by hand (commands printed at the end).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${HACTL_LAB_TAG:-demo}

if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: the lab creates network namespaces" >&2
  exit 2
fi
if command -v apt-get >/dev/null; then
  echo "== installing iproute2, nftables, nginx, curl (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 nftables nginx curl >/dev/null
fi

echo "== building hactl"
cargo build --release --quiet
hactl=target/release/hactl
"$hactl" validate manifests/lab

echo "== building the lab: namespaces hl-$tag-br (bridge), hl-$tag-ha1, hl-$tag-ha2, hl-$tag-client"
"$hactl" lab down --tag "$tag" >/dev/null 2>&1 || true
"$hactl" lab up --tag "$tag" >/dev/null
echo "   waiting for the agents to elect a holder (initDead is 2 s in the lab)"
holder=""
for _ in $(seq 100); do
  holder=$("$hactl" lab status --tag "$tag" | awk '/HOLDS/ {print $1}')
  page=$(ip netns exec "hl-$tag-client" curl -s -m 1 http://192.0.2.100/ || true)
  if [ -n "$holder" ] && [[ "$page" == *"served from $holder"* ]]; then break; fi
  sleep 0.2
done
"$hactl" lab status --tag "$tag"
if [ -z "$holder" ]; then
  echo "no holder elected; agent logs are in /run/hactl-lab/$tag/*/log/hactl.log" >&2
  exit 1
fi

echo
echo "== failover: the client asks http://192.0.2.100/ every 10 ms; in 3 s $holder is powered off"
echo "   (its veth is deleted and its agent and nginx are killed)"
"$hactl" lab watch --tag "$tag" --for 10s &
watcher=$!
sleep 3
"$hactl" lab power-off --tag "$tag" "$holder"
wait "$watcher"
echo
"$hactl" lab status --tag "$tag"
cat <<TXT

The lab is still up. Try:
  ip netns exec hl-$tag-client curl -s http://192.0.2.100/     # the page names the node serving it
  $hactl lab power-on --tag $tag $holder                       # it returns; the site stays put (stickiness)
  $hactl lab watch --tag $tag --for 30s                        # watch while you break things
  $hactl lab partition --tag $tag NODE   /   $hactl lab heal --tag $tag NODE
  tail -f /run/hactl-lab/$tag/*/log/hactl.log                  # the agents' logs
  $hactl lab down --tag $tag                                   # removes everything
TXT
