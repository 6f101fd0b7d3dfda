#!/usr/bin/env python3
"""Generate a large valid manifest set for the validate benchmark.

16 nodes and GROUPS groups; each group has 4 floating IPv6 addresses (documentation range 2001:db8::/32, so
thousands fit) and 5 services: 1 + 16 + 10 × GROUPS documents (10,017 for 1,000 groups), one file per 100
groups plus one for the cluster and nodes.
Usage: gen-manifests.py OUT_DIR [GROUPS]
"""
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    groups = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    out.mkdir(parents=True, exist_ok=True)
    head = [
        "apiVersion: hactl/v1\nkind: Cluster\nmetadata: {name: bench}\nspec:\n  quorum: {policy: majority}\n"
        "  heartbeat: {interval: 200ms, deadTime: 1s}\n"
    ]
    for n in range(16):
        head.append(f"apiVersion: hactl/v1\nkind: Node\nmetadata: {{name: node{n:02}}}\nspec: {{address: 198.51.100.{n + 1}}}\n")
    (out / "cluster.yaml").write_text("---\n".join(head))
    for chunk in range(0, groups, 100):
        docs = []
        for g in range(chunk, min(chunk + 100, groups)):
            members = []
            for i in range(4):
                name = f"g{g}-ip{i}"
                members.append(name)
                docs.append(
                    f"apiVersion: hactl/v1\nkind: FloatingIP\nmetadata: {{name: {name}}}\n"
                    f"spec: {{address: \"2001:db8:{g:x}::{i + 10:x}/64\", interface: eth0, announce: {{count: 3}}}}\n"
                )
            for s in range(5):
                name = f"g{g}-svc{s}"
                members.append(name)
                docs.append(
                    f"apiVersion: hactl/v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n"
                    f"  exec: {{start: \"true\", stop: \"true\", status: \"true\"}}\n"
                    f"  monitor: {{interval: 5s, timeout: 2s}}\n"
                )
            prefer = f"node{g % 16:02}"
            docs.append(
                f"apiVersion: hactl/v1\nkind: Group\nmetadata: {{name: group{g}}}\n"
                f"spec: {{members: [{', '.join(members)}], prefer: {{{prefer}: 10}}, stickiness: 5}}\n"
            )
        (out / f"groups-{chunk // 100:02}.yaml").write_text("---\n".join(docs))


if __name__ == "__main__":
    main()
