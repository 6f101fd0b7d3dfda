//! The planner's decision table, read from tests/fixtures/plan.txt so that a reviewer reads inputs and
//! expected effects side by side.

use std::path::Path;

use hactl::agent::plan::{Disposition, Effect, Member, Observed, plan};
use hactl::manifest::values::Name;

fn disposition(word: &str) -> Disposition {
    match word {
        "hold" => Disposition::Hold,
        "adopt" => Disposition::Adopt,
        "handover" => Disposition::HandOver,
        "fence" => Disposition::Fence,
        "elsewhere" => Disposition::Elsewhere,
        other => panic!("unknown disposition {other}"),
    }
}

fn observed(word: &str) -> Observed {
    match word {
        "up" => Observed::Up,
        "down" => Observed::Down,
        "failed" => Observed::Failed,
        "busy" => Observed::Busy,
        "stopfailed" => Observed::StopFailed,
        other => panic!("unknown observation {other}"),
    }
}

#[test]
fn planner_decision_table() {
    let table = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan.txt")).unwrap();
    let group = Name("G".into());
    let mut rows = 0;
    let mut failures = Vec::new();
    for (index, line) in table.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cols.len(), 3, "line {}: three columns expected", index + 1);
        let specs: Vec<(Name, bool, Observed)> = cols[1]
            .split_whitespace()
            .map(|m| {
                let (name, rest) = m.split_once(':').unwrap();
                let (kind, obs) = rest.split_once('=').unwrap();
                (Name(name.into()), kind == "ip", observed(obs))
            })
            .collect();
        let members: Vec<Member> = specs
            .iter()
            .map(|(name, is_address, observed)| Member { name, is_address: *is_address, observed: *observed })
            .collect();
        let effects: Vec<Effect> = plan(&group, disposition(cols[0]), &members);
        let shown = if effects.is_empty() {
            "-".to_string()
        } else {
            effects.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        if shown != cols[2] {
            failures.push(format!("line {}: {line}\n   got: {shown}", index + 1));
        }
        rows += 1;
    }
    assert!(rows >= 25, "the table lost rows ({rows})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
