//! The library's view of a valid set: the desired state, its digest, and that no input panics the loader.

use std::path::{Path, PathBuf};

use hactl::manifest::{self, Resource};

fn lab() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/lab");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn lab_loads_into_a_resolved_desired_state() {
    let loaded = manifest::load_bytes(lab());
    let state = loaded.state.expect("the lab manifests are valid");
    let group = &state.groups.values().next().unwrap();
    assert_eq!(group.name.as_str(), "WebServices");
    let names: Vec<&str> = group.members.iter().map(|m| m.name().as_str()).collect();
    assert_eq!(names, ["ip1", "apache2"]);
    let Resource::FloatingIp(ip) = &group.members[0] else { panic!("ip1 is a FloatingIP") };
    assert_eq!(ip.address.to_string(), "192.0.2.100/24");
    assert_eq!(ip.label.as_deref(), Some("eth0:0"));
    assert_eq!(state.cluster.lease.duration, std::time::Duration::from_secs(1));
    assert_eq!(state.nodes.len(), 2);
}

#[test]
fn digest_ignores_layout_and_comments_but_not_meaning() {
    let original = manifest::load_bytes(lab()).state.unwrap().digest();
    // Same meaning: comments stripped, all documents in one file, defaults written out or left implicit.
    let mut joined = String::new();
    for (_, bytes) in lab() {
        let text = String::from_utf8(bytes).unwrap();
        for line in text.lines() {
            let code = line.split(" #").next().unwrap();
            if !code.trim_start().starts_with('#') {
                joined.push_str(code);
                joined.push('\n');
            }
        }
        joined.push_str("---\n");
    }
    let joined = joined.replace("  port: 694\n", "");
    let same = manifest::load_bytes(vec![(PathBuf::from("all.yaml"), joined.clone().into_bytes())]);
    assert_eq!(same.state.as_ref().map(|s| s.digest()), Some(original.clone()), "{:?}", same.diagnostics);
    let changed = joined.replace("prefer: {ha1: 50}", "prefer: {ha1: 60}");
    let other = manifest::load_bytes(vec![(PathBuf::from("all.yaml"), changed.into_bytes())]);
    assert_ne!(other.state.unwrap().digest(), original);
}

/// A small deterministic generator, so a failing input can be reproduced from the printed iteration.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_manifests_never_panic_the_loader() {
    let base: Vec<u8> = lab().into_iter().flat_map(|(_, b)| b.into_iter().chain(*b"---\n")).collect();
    let alphabet = b"{}[]:,-#&*!|>'\"%@`?\n \t0123456789abc\\~";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for iteration in 0..3_000 {
        let mut bytes = base.clone();
        for _ in 0..(1 + rng.next() % 8) {
            let at = (rng.next() as usize) % bytes.len();
            match rng.next() % 4 {
                0 => bytes[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
                _ => bytes[at] = rng.next() as u8,
            }
        }
        let result = std::panic::catch_unwind(|| manifest::load_bytes(vec![(PathBuf::from("m.yaml"), bytes.clone())]));
        assert!(result.is_ok(), "iteration {iteration} panicked on:\n{}", String::from_utf8_lossy(&bytes));
        let loaded = result.unwrap();
        // Either a valid state or at least one error: never "invalid" without saying why.
        assert!(loaded.state.is_some() || loaded.errors() > 0, "iteration {iteration}: no state and no error");
    }
}
