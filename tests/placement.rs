//! Placement decision tables (tests/fixtures/placement/*.txt): readable inputs with the expected holder.

use std::collections::BTreeMap;

use hactl::manifest::values::Name;
use hactl::proto::placement::{Candidate, choose, rank};

struct Case {
    name: String,
    prefer: BTreeMap<Name, i64>,
    stickiness: i64,
    holder: Option<Name>,
    moved: Option<Name>,
    nodes: Vec<Candidate>,
    expect: Option<Name>,
}

fn node(word: &str) -> Option<Name> {
    (word != "none").then(|| Name(word.to_string()))
}

fn parse(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        let mut case = Case {
            name: String::new(),
            prefer: BTreeMap::new(),
            stickiness: 0,
            holder: None,
            moved: None,
            nodes: Vec::new(),
            expect: None,
        };
        for line in lines {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "case" => case.name = rest.to_string(),
                "prefer" => {
                    for kv in rest.split_whitespace() {
                        let (n, s) = kv.split_once('=').unwrap();
                        case.prefer.insert(Name(n.to_string()), s.parse().unwrap());
                    }
                }
                "stickiness" => case.stickiness = rest.parse().unwrap(),
                "holder" => case.holder = node(rest),
                "move" => case.moved = node(rest),
                "nodes" => {
                    case.nodes = rest
                        .split_whitespace()
                        .map(|w| Candidate { name: Name(w.trim_end_matches('!').into()), eligible: !w.ends_with('!') })
                        .collect()
                }
                "expect" => case.expect = node(rest),
                other => panic!("unknown line {other:?}"),
            }
        }
        cases.push(case);
    }
    cases
}

#[test]
fn placement_decision_tables() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/placement");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        for case in parse(&std::fs::read_to_string(&path).unwrap()) {
            let ranked = rank(&case.prefer, case.stickiness, case.holder.as_ref(), case.moved.as_ref(), &case.nodes);
            let got = choose(&ranked, case.holder.as_ref());
            assert_eq!(got, case.expect, "{}: case {:?}: ranking {ranked:?}", path.display(), case.name);
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} cases found");
}
