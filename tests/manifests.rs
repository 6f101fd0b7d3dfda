//! Manifest validation through the real binary: one invalid manifest per rule, each with the exact diagnostic
//! (file, line, column, code, path and message) expected; exit codes; hostile input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A valid two-node set. Cases edit single lines of it, so the line numbers below stay readable.
const BASE: &str = "\
apiVersion: hactl/v1
kind: Cluster
metadata: {name: lab}
spec:
  quorum: {policy: ignore}
---
apiVersion: hactl/v1
kind: Node
metadata: {name: ha1}
spec: {address: 192.0.2.11}
---
apiVersion: hactl/v1
kind: Node
metadata: {name: ha2}
spec: {address: 192.0.2.12}
---
apiVersion: hactl/v1
kind: FloatingIP
metadata: {name: ip1}
spec: {address: 192.0.2.100/24, interface: eth0}
---
apiVersion: hactl/v1
kind: Service
metadata: {name: web}
spec:
  exec: {run: \"nginx -g 'daemon off;'\"}
---
apiVersion: hactl/v1
kind: Group
metadata: {name: WebServices}
spec:
  members: [ip1, web]
";

const EXTRA_IP: &str = "---\napiVersion: hactl/v1\nkind: FloatingIP\nmetadata: {name: ip2}\nspec: {address: 192.0.2.100/24, interface: eth0}\n";
const WITNESS: &str =
    "---\napiVersion: hactl/v1\nkind: Node\nmetadata: {name: wit}\nspec: {address: 192.0.2.13, role: witness}\n";

/// One rule broken: `(line, replacement)` edits of BASE (1-based; a replacement may span lines), text
/// appended to it, and the diagnostic line that must appear.
struct Case {
    name: &'static str,
    edits: &'static [(usize, &'static str)],
    append: &'static str,
    expect: &'static str,
}

const fn case(name: &'static str, edits: &'static [(usize, &'static str)], expect: &'static str) -> Case {
    Case { name, edits, append: "", expect }
}

const fn case_append(name: &'static str, append: &'static str, expect: &'static str) -> Case {
    Case { name, edits: &[], append, expect }
}

const fn case_both(
    name: &'static str,
    edits: &'static [(usize, &'static str)],
    append: &'static str,
    expect: &'static str,
) -> Case {
    Case { name, edits, append, expect }
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    case("yaml syntax", &[(10, "spec: {address: 192.0.2.11")],
        "m/a.yaml:11:1: error[yaml-syntax]: YAML syntax error: while parsing a flow mapping, did not find expected ',' or '}'"),
    case("duplicate key", &[(10, "spec: {address: 192.0.2.11, address: 192.0.2.13}")],
        "m/a.yaml:10:29: error[duplicate-key]: duplicate key \"address\" (first at line 10); YAML keys must be unique"),
    case("unknown top-level field", &[(6, "status: {}\n---")],
        "m/a.yaml:6:1: error[unknown-field]: status: unknown field \"status\"; valid fields: apiVersion, kind, metadata, spec"),
    case("unknown field with a typo", &[(5, "  quorum: {polcy: ignore}")],
        "m/a.yaml:5:12: error[unknown-field]: spec.quorum.polcy: unknown field \"polcy\" (did you mean \"policy\"?); valid fields: policy, tieBreaker"),
    case("string where an integer belongs", &[(5, "  quorum: {policy: ignore}\n  port: \"694\"")],
        "m/a.yaml:6:9: error[type]: spec.port: expected an integer, found the string \"694\""),
    case("integer too large for its type", &[(5, "  quorum: {policy: ignore}\n  port: 70000")],
        "m/a.yaml:6:9: error[out-of-range]: spec.port: 70000 does not fit; valid: 0 to 65535"),
    case("port zero", &[(5, "  quorum: {policy: ignore}\n  port: 0")],
        "m/a.yaml:6:9: error[out-of-range]: spec.port: 0 is out of range; valid: 1 to 65535"),
    case("missing required field", &[(20, "spec: {interface: eth0}")],
        "m/a.yaml:20:7: error[missing-field]: spec: missing required field \"address\""),
    case("missing spec", &[(20, "")],
        "m/a.yaml:17:1: error[missing-field]: missing required field \"spec\" (write `spec: {}` for all defaults)"),
    case("wrong apiVersion", &[(1, "apiVersion: hactl/v2")],
        "m/a.yaml:1:13: error[api-version]: apiVersion: unsupported apiVersion \"hactl/v2\"; valid: hactl/v1"),
    case("unknown kind", &[(18, "kind: FloatingIp")],
        "m/a.yaml:18:7: error[unknown-kind]: kind: unknown kind \"FloatingIp\" (did you mean \"FloatingIP\"?); valid: Cluster, Node, FloatingIP, Service, Group"),
    case("invalid name", &[(24, "metadata: {name: 1web}"), (32, "  members: [ip1, 1web]")],
        "m/a.yaml:24:18: error[invalid-name]: metadata.name: invalid name \"1web\"; valid: 1 to 63 letters, digits and '-', starting with a letter (e.g. \"WebServices\", \"ha1\")"),
    case("invalid enum word", &[(5, "  quorum: {policy: quorate}")],
        "m/a.yaml:5:20: error[invalid-value]: spec.quorum.policy: \"quorate\" is not valid; valid: majority, ignore"),
    case("list expected", &[(32, "  members: ip1")],
        "m/a.yaml:32:12: error[type]: spec.members: expected a list, found the string \"ip1\""),
    case("empty group", &[(32, "  members: []")],
        "m/a.yaml:32:12: error[empty-group]: spec.members: a group needs at least one member (FloatingIP or Service names)"),
    case("unknown member", &[(32, "  members: [ip1, apache3]")],
        "m/a.yaml:32:18: error[unknown-member]: spec.members[1]: unknown member \"apache3\"; resources defined: ip1, web"),
    case("member of the wrong kind", &[(32, "  members: [ip1, web, ha1]")],
        "m/a.yaml:32:23: error[wrong-kind]: spec.members[2]: \"ha1\" is a Node (m/a.yaml:9); members must be FloatingIP or Service names; resources defined: ip1, web"),
    case("member listed twice", &[(32, "  members: [ip1, web, ip1]")],
        "m/a.yaml:32:23: error[duplicate-member]: spec.members[2]: \"ip1\" is listed twice; a member runs once"),
    case_append("resource in two groups", "---\napiVersion: hactl/v1\nkind: Group\nmetadata: {name: Other}\nspec: {members: [ip1]}\n",
        "m/a.yaml:37:18: error[multiple-groups]: spec.members[0]: \"ip1\" is already a member of group \"WebServices\" (m/a.yaml:30); a resource belongs to at most one group"),
    case_append("resource in no group", "---\napiVersion: hactl/v1\nkind: FloatingIP\nmetadata: {name: ip2}\nspec: {address: 192.0.2.101/24, interface: eth0}\n",
        "m/a.yaml:36:18: error[orphan-resource]: metadata.name: FloatingIP \"ip2\" is in no group, so nothing would run it; add it to a Group's spec.members"),
    case_append("duplicate node name", "---\napiVersion: hactl/v1\nkind: Node\nmetadata: {name: ha1}\nspec: {address: 192.0.2.13}\n",
        "m/a.yaml:36:18: error[duplicate-name]: metadata.name: duplicate Node name \"ha1\"; first defined as a Node at m/a.yaml:9; names must be unique"),
    case_append("FloatingIP and Service share names", "---\napiVersion: hactl/v1\nkind: Service\nmetadata: {name: ip1}\nspec: {exec: {run: sleep 100}}\n",
        "m/a.yaml:36:18: error[duplicate-name]: metadata.name: duplicate resource (FloatingIP or Service) name \"ip1\"; first defined as a FloatingIP at m/a.yaml:19; names must be unique"),
    case_append("second Cluster", "---\napiVersion: hactl/v1\nkind: Cluster\nmetadata: {name: other}\nspec: {}\n",
        "m/a.yaml:36:18: error[cluster-count]: metadata.name: a second Cluster document; exactly one is allowed per manifest set (the first is \"lab\" at m/a.yaml:3)"),
    case("no Cluster", &[(2, "kind: Node"), (3, "metadata: {name: ha3}"), (5, "  address: 192.0.2.14")],
        "<manifests>: error[cluster-count]: no Cluster document; exactly one is needed (apiVersion: hactl/v1, kind: Cluster, metadata: {name: ...}, spec: {})"),
    case("prefer names an unknown node", &[(32, "  members: [ip1, web]\n  prefer: {ha3: 10}")],
        "m/a.yaml:33:12: error[unknown-node]: spec.prefer.ha3: unknown node \"ha3\" (did you mean \"ha1\"?); nodes defined: ha1, ha2"),
    case("prefer score out of range", &[(32, "  members: [ip1, web]\n  prefer: {ha1: 2000000}")],
        "m/a.yaml:33:17: error[out-of-range]: spec.prefer.ha1: 2000000 is out of range; valid: -1000000 to 1000000"),
    case("negative stickiness", &[(32, "  members: [ip1, web]\n  stickiness: -1")],
        "m/a.yaml:33:15: error[out-of-range]: spec.stickiness: -1 is out of range; valid: 0 to 1000000"),
    case_both("prefer names a witness", &[(32, "  members: [ip1, web]\n  prefer: {wit: 5}")], WITNESS,
        "m/a.yaml:33:12: error[witness-preference]: spec.prefer.wit: \"wit\" is a witness and runs no groups; prefer member nodes only"),
    case("address without prefix", &[(20, "spec: {address: 192.0.2.100, interface: eth0}")],
        "m/a.yaml:20:17: error[invalid-address]: spec.address: invalid address \"192.0.2.100\"; valid: an IPv4 or IPv6 address with its prefix length, e.g. \"192.0.2.10/24\" or \"2001:db8::10/64\""),
    case("network address", &[(20, "spec: {address: 192.0.2.0/24, interface: eth0}")],
        "m/a.yaml:20:17: error[invalid-address]: spec.address: 192.0.2.0/24: this is the network address of its prefix; valid: a host address inside the prefix"),
    case("broadcast address", &[(20, "spec: {address: 192.0.2.255/24, interface: eth0}")],
        "m/a.yaml:20:17: error[invalid-address]: spec.address: 192.0.2.255/24: this is the broadcast address of its prefix; valid: a host address inside the prefix"),
    case("IPv6 subnet-router anycast", &[(20, "spec: {address: \"2001:db8::/64\", interface: eth0}")],
        "m/a.yaml:20:17: error[invalid-address]: spec.address: 2001:db8::/64: this is the subnet-router anycast address of its prefix (RFC 4291 §2.6.1); valid: a host address inside the prefix"),
    case("floating address equals a node address", &[(20, "spec: {address: 192.0.2.11/24, interface: eth0}")],
        "m/a.yaml:20:17: error[duplicate-address]: spec.address: address 192.0.2.11 is the fixed address of node \"ha1\" (m/a.yaml:9); a floating address must differ from every node address"),
    case_both("two floating IPs on one address", &[(32, "  members: [ip1, web, ip2]")], EXTRA_IP,
        "m/a.yaml:37:17: error[duplicate-address]: spec.address: address 192.0.2.100 is already used by FloatingIP \"ip1\" (m/a.yaml:19); each address floats in one place"),
    case("label not starting with the interface", &[(20, "spec: {address: 192.0.2.100/24, interface: eth0, label: \"eth1:0\"}")],
        "m/a.yaml:20:57: error[invalid-label]: spec.label: \"eth1:0\": label must start with the interface name \"eth0\", e.g. \"eth0:0\""),
    case("label longer than 15 bytes", &[(20, "spec: {address: 192.0.2.100/24, interface: eth0, label: \"eth0:0123456789ab\"}")],
        "m/a.yaml:20:57: error[invalid-label]: spec.label: \"eth0:0123456789ab\": label is 17 bytes; valid: at most 15 bytes (IFNAMSIZ − 1)"),
    case("label on IPv6", &[(20, "spec: {address: \"2001:db8::10/64\", interface: eth0, label: \"eth0:0\"}")],
        "m/a.yaml:20:60: error[invalid-label]: spec.label: \"eth0:0\": labels exist only for IPv4 addresses; remove it"),
    case("invalid interface name", &[(20, "spec: {address: 192.0.2.100/24, interface: \"eth0:0\"}")],
        "m/a.yaml:20:44: error[invalid-interface]: spec.interface: invalid interface name \"eth0:0\"; valid: 1 to 15 bytes without '/', ':' or spaces (e.g. \"eth0\")"),
    case("invalid duration", &[(5, "  quorum: {policy: ignore}\n  heartbeat: {interval: 5 s}")],
        "m/a.yaml:6:25: error[invalid-duration]: spec.heartbeat.interval: invalid duration \"5 s\"; valid: an integer with a unit ms, s, m or h, e.g. \"200ms\", \"5s\", \"2m\", \"1m30s\""),
    case("duration out of range", &[(5, "  quorum: {policy: ignore}\n  heartbeat: {interval: 5ms}")],
        "m/a.yaml:6:25: error[out-of-range]: spec.heartbeat.interval: 5ms is out of range; valid: 10ms to 10s"),
    case("deadTime not above 2 × interval", &[(5, "  quorum: {policy: ignore}\n  heartbeat: {interval: 500ms, deadTime: 1s}")],
        "m/a.yaml:6:42: error[timers]: spec.heartbeat.deadTime: deadTime 1s must exceed 2 × interval (1s), or one lost heartbeat declares a live peer dead"),
    case("warnTime not below deadTime", &[(5, "  quorum: {policy: ignore}\n  heartbeat: {deadTime: 1s, warnTime: 1s}")],
        "m/a.yaml:6:39: error[timers]: spec.heartbeat.warnTime: warnTime 1s must be below deadTime 1s (a peer is late before it is dead)"),
    case("lease not above 3 × interval", &[(5, "  quorum: {policy: ignore}\n  lease: {duration: 600ms}")],
        "m/a.yaml:6:21: error[timers]: spec.lease.duration: lease duration 600ms must exceed 3 × heartbeat.interval (600ms): renewals go out every duration / 3"),
    case("lease margin too large", &[(5, "  quorum: {policy: ignore}\n  lease: {margin: 400ms}")],
        "m/a.yaml:6:19: error[timers]: spec.lease.margin: lease margin 400ms must be below duration / 3 (333ms): the holder fences at deadline − margin and renews every duration / 3"),
    case("drift bound out of range", &[(5, "  quorum: {policy: ignore}\n  lease: {driftBound: 0.5}")],
        "m/a.yaml:6:23: error[out-of-range]: spec.lease.driftBound: 0.5 is out of range; valid: 0 to 0.1"),
    case("majority with two voters", &[(5, "  quorum: {policy: majority}")],
        "m/a.yaml:5:20: error[quorum]: spec.quorum.policy: policy majority needs at least 3 voters, found 2 (ha1, ha2): with 2 a lone survivor can never take over; add a Node with role: witness, or set quorum.policy: ignore (split brain possible)"),
    case("default majority with two voters", &[(4, "spec: {}"), (5, "")],
        "m/a.yaml:3:18: error[quorum]: metadata.name: policy majority needs at least 3 voters, found 2 (ha1, ha2): with 2 a lone survivor can never take over; add a Node with role: witness, or set quorum.policy: ignore (split brain possible)"),
    case_both("tie-breaker under majority", &[(5, "  quorum: {policy: majority, tieBreaker: {ping: 192.0.2.1}}")], WITNESS,
        "m/a.yaml:5:49: error[tie-breaker]: spec.quorum.tieBreaker.ping: a tie-breaker applies only under quorum.policy: ignore; majority needs none"),
    case("votes above 1", &[(10, "spec: {address: 192.0.2.11, votes: 2}")],
        "m/a.yaml:10:36: error[out-of-range]: spec.votes: 2 is out of range; valid: 0 to 1"),
    case("witness without a vote", &[(10, "spec: {address: 192.0.2.11, votes: 0, role: witness}")],
        "m/a.yaml:10:36: error[witness-votes]: spec.votes: a witness exists to vote; valid: votes 1 (or role: member)"),
    case("two nodes on one address", &[(15, "spec: {address: 192.0.2.11}")],
        "m/a.yaml:15:17: error[duplicate-address]: spec.address: address 192.0.2.11 is already the address of node \"ha1\" (m/a.yaml:9); node addresses must be unique"),
    case("relative key path", &[(5, "  quorum: {policy: ignore}\n  authKeyFile: authkey")],
        "m/a.yaml:6:16: error[invalid-path]: spec.authKeyFile: \"authkey\" is not an absolute path; valid: an absolute path such as /etc/hactl/authkey"),
    case("service without a driver", &[(26, "  timeouts: {start: 5s}")],
        "m/a.yaml:24:18: error[driver-count]: metadata.name: a Service needs exactly one driver; valid: spec.systemd, spec.lsb, spec.ocf or spec.exec"),
    case("service with two drivers", &[(26, "  exec: {run: sleep 100}\n  systemd: {unit: web.service}")],
        "m/a.yaml:27:12: error[driver-count]: spec.systemd: a second driver \"systemd\" besides \"exec\"; valid: exactly one of systemd, lsb, ocf, exec"),
    case("exec without status", &[(26, "  exec: {start: a, stop: b}")],
        "m/a.yaml:26:9: error[exec-form]: spec.exec: missing status; valid: start, stop and status together, or run alone"),
    case("exec run with start", &[(26, "  exec: {run: a, start: b}")],
        "m/a.yaml:26:15: error[exec-form]: spec.exec.run: run cannot be combined with start/stop/status; valid: run alone, or start, stop and status together"),
    case("ocf agent with class", &[(26, "  ocf: {agent: \"ocf:heartbeat:apache\"}")],
        "m/a.yaml:26:16: error[invalid-agent]: spec.ocf.agent: \"ocf:heartbeat:apache\" (leave out the \"ocf:\" class, it is implied); valid: PROVIDER:TYPE such as \"heartbeat:apache\""),
    case("ocf parameter name", &[(26, "  ocf: {agent: \"heartbeat:apache\", params: {1conf: x}}")],
        "m/a.yaml:26:45: error[invalid-param]: spec.ocf.params.1conf: \"1conf\" cannot be an environment variable name (OCF_RESKEY_1conf); valid: letters, digits and '_', not starting with a digit"),
    case("lsb script with a relative path", &[(26, "  lsb: {script: init.d/httpd}")],
        "m/a.yaml:26:17: error[invalid-script]: spec.lsb.script: \"init.d/httpd\"; valid: a script name in /etc/init.d (e.g. \"httpd\") or an absolute path"),
    case("systemd unit name", &[(26, "  systemd: {unit: \"web server\"}")],
        "m/a.yaml:26:19: error[invalid-unit]: spec.systemd.unit: \"web server\" is not a systemd unit name; valid: letters, digits and :_.\\@- such as \"nginx.service\""),
    case("https probe", &[(26, "  exec: {run: sleep 100}\n  monitor: {http: {url: \"https://192.0.2.100/\"}}")],
        "m/a.yaml:27:25: error[invalid-url]: spec.monitor.http.url: \"https://192.0.2.100/\"; valid: an http:// URL with a host, e.g. \"http://192.0.2.100/\""),
    case("expected status out of range", &[(26, "  exec: {run: sleep 100}\n  monitor: {http: {url: \"http://192.0.2.100/\", expectStatus: 700}}")],
        "m/a.yaml:27:62: error[out-of-range]: spec.monitor.http.expectStatus: 700 is out of range; valid: 100 to 599"),
    case("negative count", &[(20, "spec: {address: 192.0.2.100/24, interface: eth0, announce: {count: -1}}")],
        "m/a.yaml:20:68: error[out-of-range]: spec.announce.count: -1 does not fit; valid: 0 to 4294967295"),
    case("migration threshold zero", &[(5, "  quorum: {policy: ignore}\n  defaults: {migrationThreshold: 0}")],
        "m/a.yaml:6:34: error[out-of-range]: spec.defaults.migrationThreshold: 0 is out of range; valid: 1 to 1000000"),
    case("probe wait too long", &[(20, "spec: {address: 192.0.2.100/24, interface: eth0, announce: {probeWait: 2s}}")],
        "m/a.yaml:20:72: error[out-of-range]: spec.announce.probeWait: 2s is out of range; valid: 0s to 1s"),
    case("only witnesses", &[(10, "spec: {address: 192.0.2.11, role: witness}"), (15, "spec: {address: 192.0.2.12, role: witness}"), (32, "  members: [ip1, web]")],
        "<manifests>: error[no-member-node]: every Node is a witness; at least one Node with role: member must run the groups"),
];

fn hactl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hactl"))
}

fn apply_case(case: &Case) -> String {
    let mut lines: Vec<String> = BASE.lines().map(str::to_string).collect();
    for (line, text) in case.edits {
        lines[line - 1] = (*text).to_string();
    }
    lines.join("\n") + "\n" + case.append
}

/// Writes `files` under a fresh directory `m/` and validates it from the parent, so paths read `m/a.yaml`.
fn validate(files: &[(&str, &str)], extra_args: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join("m").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let out = hactl().current_dir(dir.path()).arg("validate").args(extra_args).arg("m").output().unwrap();
    (out, dir)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn base_manifest_is_valid() {
    let (out, _dir) = validate(&[("a.yaml", BASE)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("valid: 1 file(s), 2 node(s), 1 group(s)"), "{}", stdout(&out));
}

#[test]
fn every_invalid_manifest_gets_its_exact_diagnostic() {
    assert!(CASES.len() >= 40, "the issue asks for at least 40 rules");
    let mut failures = Vec::new();
    for case in CASES {
        let (text, expect) = (apply_case(case), case.expect);
        let (out, _dir) = validate(&[("a.yaml", &text)], &[]);
        let shown = stdout(&out);
        if out.status.code() != Some(1) || !shown.lines().any(|l| l == expect) {
            failures.push(format!(
                "{}: exit {:?}\n  expected: {expect}\n  got:\n{shown}",
                case.name,
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn all_errors_are_reported_at_once_and_sorted() {
    let text = BASE
        .replace("spec: {address: 192.0.2.11}", "spec: {address: 192.0.2.11, votes: 7}")
        .replace("192.0.2.100/24", "192.0.2.100")
        .replace("  members: [ip1, web]", "  members: [ip1, web, nope]");
    let (out, _dir) = validate(&[("a.yaml", &text)], &[]);
    let lines: Vec<String> = stdout(&out).lines().filter(|l| l.contains(": error[")).map(str::to_string).collect();
    let codes: Vec<&str> = lines.iter().map(|l| l.split("error[").nth(1).unwrap().split(']').next().unwrap()).collect();
    assert_eq!(codes, ["out-of-range", "invalid-address", "unknown-member"], "{lines:#?}");
}

#[test]
fn duplicate_names_across_files_point_at_the_second_file() {
    let second = "apiVersion: hactl/v1\nkind: Node\nmetadata: {name: ha2}\nspec: {address: 192.0.2.20}\n";
    let (out, _dir) = validate(&[("a.yaml", BASE), ("sub/b.yml", second)], &[]);
    let expect = "m/sub/b.yml:3:18: error[duplicate-name]: metadata.name: duplicate Node name \"ha2\"; first defined as a Node at m/a.yaml:14; names must be unique";
    assert!(stdout(&out).lines().any(|l| l == expect), "{}", stdout(&out));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn hidden_files_and_editor_temporaries_are_skipped() {
    let broken = "this: is: not: yaml";
    let files =
        [("a.yaml", BASE), (".a.yaml.swp", broken), (".#a.yaml", broken), ("a.yaml~", broken), (".git/x.yaml", broken)];
    let (out, _dir) = validate(&files, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn warnings_fail_only_under_strict() {
    let text = BASE.replace("  members: [ip1, web]", "  members: [ip1, web]\n  prefer: {ha1: 50}");
    let (out, _dir) = validate(&[("a.yaml", &text)], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("m/a.yaml:5:20: warning[split-brain]"), "{}", stdout(&out));
    assert!(stdout(&out).contains("m/a.yaml:33:12: warning[never-fails-back]"), "{}", stdout(&out));
    let (out, _dir) = validate(&[("a.yaml", &text)], &["--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("m/a.yaml:5:20: error[split-brain]"), "{}", stdout(&out));
}

#[test]
fn announce_count_zero_is_a_warning() {
    let text = BASE.replace("interface: eth0}", "interface: eth0, announce: {count: 0}}");
    let (out, _dir) = validate(&[("a.yaml", &text)], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("m/a.yaml:20:68: warning[no-announce]: spec.announce.count"), "{}", stdout(&out));
}

#[test]
fn json_and_github_formats() {
    let text = BASE.replace("  members: [ip1, web]", "  members: [ip1, nope]");
    let (out, _dir) = validate(&[("a.yaml", &text)], &["--format", "json"]);
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unknown = findings.as_array().unwrap().iter().find(|f| f["code"] == "unknown-member").unwrap();
    assert_eq!(
        (unknown["file"].as_str(), unknown["line"].as_u64(), unknown["column"].as_u64()),
        (Some("m/a.yaml"), Some(32), Some(18))
    );
    assert_eq!(unknown["severity"], "error");
    assert_eq!(unknown["path"], "spec.members[1]");
    let (out, _dir) = validate(&[("a.yaml", &text)], &["--format", "github"]);
    assert!(
        stdout(&out).contains(
            "::error file=m/a.yaml,line=32,col=18,title=hactl unknown-member::spec.members[1]: unknown member \"nope\""
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn examples_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for (dir, strict) in [("catalog", false), ("lab", false), ("witness", true)] {
        let mut cmd = hactl();
        cmd.arg("validate").arg(root.join(dir));
        if strict {
            cmd.arg("--strict");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{dir}: {}", stdout(&out));
    }
    // The catalog passes --strict apart from the split-brain warning its comments explain.
    let out = hactl().args(["validate", "--strict", "--format", "json"]).arg(root.join("catalog")).output().unwrap();
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = findings.as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["split-brain"]);
}

#[test]
fn usage_and_io_errors_exit_2() {
    let out = hactl().args(["validate", "/nonexistent/hactl-manifests"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/hactl-manifests"));
    let empty = tempfile::tempdir().unwrap();
    let out = hactl().arg("validate").arg(empty.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest files"));
    let out = hactl().args(["validate", "--format", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Runs validate on `files` and asserts it ends quickly with `code` and a line containing `needle`.
fn hostile(files: &[(&str, Vec<u8>)], code: i32, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join("m").join(name), bytes).unwrap();
    }
    let started = Instant::now();
    let out = hactl().current_dir(dir.path()).args(["validate", "m"]).output().unwrap();
    // A generous bound: the point is "no hang", not speed (the benchmark measures speed).
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let text = stdout(&out) + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{text}");
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

#[test]
fn empty_file_alone_lacks_a_cluster() {
    hostile(&[("a.yaml", Vec::new())], 1, "error[cluster-count]");
}

#[test]
fn binary_garbage_is_an_encoding_error() {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    hostile(&[("a.yaml", garbage)], 1, "m/a.yaml:1:");
}

#[test]
fn control_characters_are_an_encoding_error() {
    hostile(&[("a.yaml", b"a: \x01\x02\x03\n".to_vec())], 1, "m/a.yaml:1:4: error[encoding]: control character U+0001");
}

#[test]
fn file_over_the_size_cap_is_refused() {
    let big = vec![b'#'; 50 * 1024 * 1024];
    hostile(&[("a.yaml", big)], 1, "m/a.yaml:1:1: error[file-too-large]: file is 52428800 bytes");
}

#[test]
fn deep_nesting_is_refused() {
    hostile(&[("a.yaml", "[".repeat(100_000).into_bytes())], 1, "m/a.yaml:");
    let mut nested = String::new();
    for depth in 0..200 {
        nested.push_str(&" ".repeat(depth));
        nested.push_str("a:\n");
    }
    hostile(&[("b.yaml", nested.into_bytes())], 1, "error[yaml-too-deep]");
}

#[test]
fn alias_bomb_is_refused() {
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    hostile(&[("a.yaml", bomb.into_bytes())], 1, "error[yaml-too-large]");
}

#[test]
fn unreadable_directory_exits_2() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::write(locked.join("a.yaml"), BASE).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads through permission bits, so as root the check runs as nobody (setpriv, util-linux).
    let is_root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    let out = if is_root {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_hactl"));
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary)
            .arg("validate")
            .arg(&locked)
            .output()
            .expect("setpriv (util-linux) is needed to test permissions as root")
    } else {
        hactl().arg("validate").arg(&locked).output().unwrap()
    };
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn committed_schema_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let out = hactl().args(["schema", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names.len(), 6, "one schema per kind and one for any document");
    for name in names {
        let fresh = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        let old = std::fs::read_to_string(committed.join(&name)).unwrap_or_default();
        assert!(
            fresh == old,
            "schema/{} is stale: run `cargo run -- schema --out schema` and commit",
            name.to_string_lossy()
        );
    }
}

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let out = hactl().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    let prefix = format!("hactl {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = text.trim().strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(')'));
    let commit = commit.unwrap_or_else(|| panic!("--version printed {text:?}, expected {prefix}COMMIT)"));
    // Built from this checkout: the commit is HEAD's (possibly marked dirty); outside git it is `unknown`.
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) => assert!(
            commit == head || commit == format!("{head}-dirty"),
            "--version names commit {commit:?}, the checkout is at {head}"
        ),
        None => assert_eq!(commit, "unknown"),
    }
}
