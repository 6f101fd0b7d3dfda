#!/usr/bin/env python3
"""Rewrite one lab node's daemon config for the footprint benchmark (bench/footprint.sh).

hactl: reads the lab's manifest file (one node's manifests/lab.yaml) and prints it with the heartbeat set to
INTERVAL (deadTime 5 x INTERVAL, warnTime 3 x INTERVAL, the lab's initDead kept), the lease kept unless the
validator's rule "duration > 3 x interval" rejects it (then 5 x INTERVAL, hactl's own default, margin kept), and
GROUPS - 1 extra groups, each one FloatingIP 203.0.113.(10+k)/24 on eth0 preferring ha1 as WebServices does.
keepalived: reads one node's keepalived.conf and prints it with GROUPS - 1 copies of its vrrp_instance block,
each with its own virtual_router_id (51 + k) and address 203.0.113.(10+k)/24 on eth0.
The first line of stderr says which lease was used (hactl).

Usage: footprint-manifests.py hactl LAB_YAML INTERVAL GROUPS > NEW_YAML
       footprint-manifests.py keepalived KEEPALIVED_CONF GROUPS > NEW_CONF
"""
import re
import sys
from pathlib import Path


def ms(text: str) -> int:
    """A duration as hactl writes them (50ms, 1s, 1.5s) in milliseconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", text.strip())
    if not m:
        sys.exit(f"cannot read duration {text!r}")
    value = float(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
    return int(round(value))


def dur(millis: int) -> str:
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def field(line: str, name: str) -> str:
    m = re.search(rf"\b{name}:\s*([^,}}]+)", line)
    if not m:
        sys.exit(f"no {name} in {line!r}")
    return m.group(1).strip()


def hactl(text: str, interval: int, groups: int) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("  heartbeat:"):
            init_dead = field(line, "initDead")
            line = (
                f"  heartbeat: {{interval: {dur(interval)}, deadTime: {dur(5 * interval)}, "
                f"warnTime: {dur(3 * interval)}, initDead: {init_dead}}}"
            )
        elif line.startswith("  lease:"):
            duration = ms(field(line, "duration"))
            if duration <= 3 * interval:
                margin = ms(field(line, "margin"))
                new = 5 * interval
                if margin * 3 >= new:
                    sys.exit(f"lease margin {dur(margin)} too large for duration {dur(new)}")
                line = line.replace(f"duration: {field(line, 'duration')}", f"duration: {dur(new)}")
                print(f"lease {dur(new)} (lab's {dur(duration)} is not above 3 x interval)", file=sys.stderr)
            else:
                print(f"lease {dur(duration)} (the lab's)", file=sys.stderr)
        out.append(line)
    docs = []
    for k in range(1, groups):
        docs.append(
            f"apiVersion: hactl/v1\nkind: FloatingIP\nmetadata: {{name: fp-ip{k + 1}}}\n"
            f"spec: {{address: 203.0.113.{10 + k}/24, interface: eth0}}\n"
            "---\n"
            f"apiVersion: hactl/v1\nkind: Group\nmetadata: {{name: Footprint{k + 1}}}\n"
            f"spec: {{members: [fp-ip{k + 1}], prefer: {{ha1: 50}}, stickiness: 100}}\n"
        )
    body = "\n".join(out).rstrip("\n") + "\n"
    if docs:
        if not body.endswith("---\n"):
            body += "---\n"
        body += "---\n".join(docs)
    return body


def keepalived(text: str, groups: int) -> str:
    start = text.find("vrrp_instance WebServices {")
    if start < 0:
        sys.exit("no vrrp_instance WebServices in the config")
    depth, end = 0, start
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                end = i + 1
                break
    block = text[start:end]
    if "virtual_router_id 51" not in block or "192.0.2.100/24 dev eth0 label eth0:0" not in block:
        sys.exit("the lab's vrrp_instance block is not as expected")
    copies = []
    for k in range(1, groups):
        copy = block.replace("vrrp_instance WebServices", f"vrrp_instance Footprint{k + 1}")
        copy = copy.replace("virtual_router_id 51", f"virtual_router_id {51 + k}")
        copy = copy.replace("192.0.2.100/24 dev eth0 label eth0:0", f"203.0.113.{10 + k}/24 dev eth0")
        copies.append(copy)
    return text[:end] + "".join("\n" + c for c in copies) + text[end:]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "hactl":
        sys.stdout.write(hactl(Path(sys.argv[2]).read_text(), ms(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) == 4 and sys.argv[1] == "keepalived":
        sys.stdout.write(keepalived(Path(sys.argv[2]).read_text(), int(sys.argv[3])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
