//! FloatingIPs and Services: addresses, labels, announcement timing, drivers and their time limits.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{Index, RawDoc, Report, Spec};
use crate::manifest::decode::At;
use crate::manifest::model::{Announce, Driver, FloatingIp, HttpCheck, Monitor, Resource, Service, Timeouts};
use crate::manifest::raw::{ExecDriver, FloatingIpSpec, OcfDriver, ServiceSpec};
use crate::manifest::values::Name;

const MS: fn(u64) -> Duration = Duration::from_millis;
const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Checks every FloatingIP and Service; returns the valid ones by name.
pub(super) fn resources(ix: &Index, report: &mut Report) -> BTreeMap<Name, Resource> {
    let node_addresses: BTreeMap<IpAddr, &RawDoc> = ix
        .nodes
        .values()
        .filter_map(|d| match &d.spec {
            Some(Spec::Node(n)) => Some((n.address.value.0, *d)),
            _ => None,
        })
        .collect();
    let mut seen: BTreeMap<IpAddr, &RawDoc> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for doc in ix.resources.values() {
        let resource = match &doc.spec {
            Some(Spec::FloatingIp(spec)) => {
                floating_ip(doc, spec, &node_addresses, &mut seen, report).map(Resource::FloatingIp)
            }
            Some(Spec::Service(spec)) => service(doc, spec, report).map(Resource::Service),
            _ => None,
        };
        if let Some(resource) = resource {
            out.insert(doc.name.value.clone(), resource);
        }
    }
    out
}

/// Why an address cannot float, if it cannot.
fn unusable(net: &IpNet) -> Option<&'static str> {
    let addr = net.addr();
    if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
        return Some("an unspecified, loopback or multicast address cannot float");
    }
    match net {
        IpNet::V4(v4) if v4.prefix_len() <= 30 && v4.addr() == v4.network() => {
            Some("this is the network address of its prefix")
        }
        IpNet::V4(v4) if v4.prefix_len() <= 30 && v4.addr() == v4.broadcast() => {
            Some("this is the broadcast address of its prefix")
        }
        IpNet::V4(v4) if v4.addr().is_broadcast() => Some("this is the broadcast address"),
        IpNet::V6(v6) if v6.prefix_len() <= 126 && v6.addr() == v6.network() => {
            Some("this is the subnet-router anycast address of its prefix (RFC 4291 §2.6.1)")
        }
        _ => None,
    }
}

fn floating_ip<'d>(
    doc: &'d RawDoc,
    spec: &FloatingIpSpec,
    node_addresses: &BTreeMap<IpAddr, &RawDoc>,
    seen: &mut BTreeMap<IpAddr, &'d RawDoc>,
    report: &mut Report,
) -> Option<FloatingIp> {
    let net = spec.address.value.0;
    let mut ok = true;
    if let Some(why) = unusable(&net) {
        report.error(
            doc,
            &spec.address,
            "invalid-address",
            format!("{net}: {why}; valid: a host address inside the prefix"),
        );
        ok = false;
    } else if let Some(first) = seen.get(&net.addr()) {
        let message = format!(
            "address {} is already used by FloatingIP \"{}\" ({}); each address floats in one place",
            net.addr(),
            first.name.value,
            first.place()
        );
        report.error(doc, &spec.address, "duplicate-address", message);
        ok = false;
    } else if let Some(node) = node_addresses.get(&net.addr()) {
        let message = format!(
            "address {} is the fixed address of node \"{}\" ({}); a floating address must differ from every node address",
            net.addr(),
            node.name.value,
            node.place()
        );
        report.error(doc, &spec.address, "duplicate-address", message);
        ok = false;
    } else {
        seen.insert(net.addr(), doc);
    }
    let label = spec.label.as_ref().and_then(|at| label(doc, spec, at, report));
    ok &= spec.label.is_none() || label.is_some();
    let announce = announce(doc, spec, report);
    if !ok {
        return None;
    }
    Some(FloatingIp {
        name: doc.name.value.clone(),
        address: net,
        interface: spec.interface.value.clone(),
        label,
        announce: announce?,
    })
}

fn label(doc: &RawDoc, spec: &FloatingIpSpec, at: &At<String>, report: &mut Report) -> Option<String> {
    let interface = &spec.interface.value.0;
    let text = &at.value;
    let problem = if spec.address.value.0.addr().is_ipv6() {
        Some("labels exist only for IPv4 addresses; remove it".to_string())
    } else if !text.starts_with(interface.as_str()) {
        Some(format!("label must start with the interface name \"{interface}\", e.g. \"{interface}:0\""))
    } else if text.len() > 15 {
        Some(format!("label is {} bytes; valid: at most 15 bytes (IFNAMSIZ − 1)", text.len()))
    } else if text.chars().any(|c| c.is_whitespace() || c == '/') {
        Some("label may not contain spaces or '/'".to_string())
    } else {
        None
    };
    match problem {
        Some(message) => {
            report.error(doc, at, "invalid-label", format!("\"{text}\": {message}"));
            None
        }
        None => Some(text.clone()),
    }
}

fn announce(doc: &RawDoc, spec: &FloatingIpSpec, report: &mut Report) -> Option<Announce> {
    let Some(a) = &spec.announce else {
        return Some(Announce { count: 5, interval: MS(200), probe_wait: MS(100), refresh: Some(SECS(10)) });
    };
    let count = report.integer(doc, &a.count, 5, (0, 100));
    if let (Some(0), Some(at)) = (count, &a.count) {
        report.warning(
            doc,
            at,
            "no-announce",
            "announce.count 0: clients and switches may keep the old holder's MAC until their ARP cache expires",
        );
    }
    let interval = report.duration(doc, &a.interval, MS(200), (MS(10), SECS(10)));
    let probe_wait = report.duration(doc, &a.probe_wait, MS(100), (Duration::ZERO, SECS(1)));
    let refresh = match &a.refresh {
        Some(at) if at.value.0.is_zero() => Some(None),
        field => report.duration(doc, field, SECS(10), (SECS(1), SECS(3600))).map(Some),
    };
    Some(Announce { count: count?, interval: interval?, probe_wait: probe_wait?, refresh: refresh? })
}

fn service(doc: &RawDoc, spec: &ServiceSpec, report: &mut Report) -> Option<Service> {
    let given: Vec<(&str, crate::manifest::yaml::Pos, &str)> = [
        spec.systemd.as_ref().map(|a| ("systemd", a.pos, a.path.as_str())),
        spec.lsb.as_ref().map(|a| ("lsb", a.pos, a.path.as_str())),
        spec.ocf.as_ref().map(|a| ("ocf", a.pos, a.path.as_str())),
        spec.exec.as_ref().map(|a| ("exec", a.pos, a.path.as_str())),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Report the driver written later as the extra one.
    let mut given = given;
    given.sort_by_key(|(_, pos, _)| *pos);
    let driver = match given.as_slice() {
        [] => {
            report.error_doc(
                doc,
                "driver-count",
                "a Service needs exactly one driver; valid: spec.systemd, spec.lsb, spec.ocf or spec.exec",
            );
            None
        }
        [_] => driver(doc, spec, report),
        [(first, ..), rest @ ..] => {
            for (name, pos, path) in rest {
                let message = format!(
                    "a second driver \"{name}\" besides \"{first}\"; valid: exactly one of systemd, lsb, ocf, exec"
                );
                report.error_at(doc, *pos, path, "driver-count", message);
            }
            None
        }
    };
    let t = spec.timeouts.as_ref();
    let limit = (MS(100), SECS(3600));
    let start = report.duration(doc, &t.and_then(|t| t.start.clone()), SECS(20), limit);
    let stop = report.duration(doc, &t.and_then(|t| t.stop.clone()), SECS(20), limit);
    let monitor_limit = report.duration(doc, &t.and_then(|t| t.monitor.clone()), SECS(20), limit);
    let monitor = monitor_limit.and_then(|m| monitor(doc, spec, m, report));
    Some(Service {
        name: doc.name.value.clone(),
        driver: driver?,
        timeouts: Timeouts { start: start?, stop: stop?, monitor: monitor_limit? },
        monitor: monitor?,
    })
}

fn driver(doc: &RawDoc, spec: &ServiceSpec, report: &mut Report) -> Option<Driver> {
    if let Some(s) = &spec.systemd {
        let unit = &s.value.unit;
        let valid = !unit.value.is_empty()
            && unit.value.len() <= 255
            && unit.value.chars().all(|c| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c));
        if !valid {
            report.error(
                doc,
                unit,
                "invalid-unit",
                format!(
                    "\"{}\" is not a systemd unit name; valid: letters, digits and :_.\\@- such as \"nginx.service\"",
                    unit.value
                ),
            );
            return None;
        }
        return Some(Driver::Systemd { unit: unit.value.clone() });
    }
    if let Some(l) = &spec.lsb {
        let script = &l.value.script;
        let name_ok =
            !script.value.is_empty() && !script.value.contains('/') && script.value != "." && script.value != "..";
        return if script.value.starts_with('/') {
            Some(Driver::Lsb { script: PathBuf::from(&script.value) })
        } else if name_ok {
            Some(Driver::Lsb { script: PathBuf::from("/etc/init.d").join(&script.value) })
        } else {
            report.error(
                doc,
                script,
                "invalid-script",
                format!(
                    "\"{}\"; valid: a script name in /etc/init.d (e.g. \"httpd\") or an absolute path",
                    script.value
                ),
            );
            None
        };
    }
    if let Some(o) = &spec.ocf {
        return ocf(doc, &o.value, report);
    }
    spec.exec.as_ref().and_then(|e| exec(doc, e, report))
}

fn ocf(doc: &RawDoc, o: &OcfDriver, report: &mut Report) -> Option<Driver> {
    let part_ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    let agent = &o.agent;
    let parsed = match agent.value.split(':').collect::<Vec<_>>().as_slice() {
        [provider, kind] if part_ok(provider) && part_ok(kind) => Some((provider.to_string(), kind.to_string())),
        _ => None,
    };
    let hint = if agent.value.starts_with("ocf:") { " (leave out the \"ocf:\" class, it is implied)" } else { "" };
    if parsed.is_none() {
        report.error(
            doc,
            agent,
            "invalid-agent",
            format!("\"{}\"{hint}; valid: PROVIDER:TYPE such as \"heartbeat:apache\"", agent.value),
        );
    }
    let mut params = BTreeMap::new();
    let mut ok = true;
    for (key, value) in o.params.iter().flat_map(|p| &p.0) {
        let valid = key.value.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            report.error(doc, key, "invalid-param", format!("\"{}\" cannot be an environment variable name (OCF_RESKEY_{}); valid: letters, digits and '_', not starting with a digit", key.value, key.value));
            ok = false;
        }
        params.insert(key.value.clone(), value.0.clone());
    }
    let (provider, kind) = parsed?;
    ok.then_some(Driver::Ocf { provider, kind, params })
}

fn exec(doc: &RawDoc, e: &At<ExecDriver>, report: &mut Report) -> Option<Driver> {
    let x = &e.value;
    for at in [&x.start, &x.stop, &x.status, &x.run].into_iter().flatten() {
        if at.value.trim().is_empty() {
            report.error(doc, at, "empty-command", "empty command; valid: a shell command line");
            return None;
        }
    }
    match (&x.start, &x.stop, &x.status, &x.run) {
        (None, None, None, Some(run)) => Some(Driver::Run { command: run.value.clone() }),
        (Some(start), Some(stop), Some(status), None) => {
            Some(Driver::Exec { start: start.value.clone(), stop: stop.value.clone(), status: status.value.clone() })
        }
        (_, _, _, Some(run)) => {
            report.error(
                doc,
                run,
                "exec-form",
                "run cannot be combined with start/stop/status; valid: run alone, or start, stop and status together",
            );
            None
        }
        _ => {
            let missing: Vec<&str> = [("start", &x.start), ("stop", &x.stop), ("status", &x.status)]
                .into_iter()
                .filter(|(_, f)| f.is_none())
                .map(|(n, _)| n)
                .collect();
            report.error(
                doc,
                e,
                "exec-form",
                format!("missing {}; valid: start, stop and status together, or run alone", missing.join(", ")),
            );
            None
        }
    }
}

fn monitor(doc: &RawDoc, spec: &ServiceSpec, default_timeout: Duration, report: &mut Report) -> Option<Monitor> {
    let Some(m) = &spec.monitor else {
        return Some(Monitor { interval: SECS(10), timeout: default_timeout, http: None, tcp: None });
    };
    let interval = report.duration(doc, &m.interval, SECS(10), (MS(100), SECS(86_400)));
    let timeout = report.duration(doc, &m.timeout, default_timeout, (MS(100), SECS(3600)));
    let http = match &m.http {
        None => Some(None),
        Some(h) => {
            let url_ok = h.url.value.strip_prefix("http://").is_some_and(|rest| {
                let host = rest.split('/').next().unwrap_or("");
                !host.is_empty() && !host.contains(char::is_whitespace)
            });
            if !url_ok {
                report.error(
                    doc,
                    &h.url,
                    "invalid-url",
                    format!("\"{}\"; valid: an http:// URL with a host, e.g. \"http://192.0.2.100/\"", h.url.value),
                );
            }
            let status = report.integer(doc, &h.expect_status, 200, (100, 599));
            if url_ok { status.map(|s| Some(HttpCheck { url: h.url.value.clone(), expect_status: s })) } else { None }
        }
    };
    let tcp = match &m.tcp {
        None => Some(None),
        Some(t) => report
            .integer(doc, &Some(t.port.clone()), 1, (1, 65535))
            .map(|port| Some(SocketAddr::new(t.address.value.0, port))),
    };
    Some(Monitor { interval: interval?, timeout: timeout?, http: http?, tcp: tcp? })
}
