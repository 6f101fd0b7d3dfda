//! Groups: members resolved to resources, each resource in exactly one group, location preferences and
//! stickiness.

use std::collections::BTreeMap;

use super::cluster::{GroupDefaults, SCORE_MAX};
use super::{Index, RawDoc, Report, Spec};
use crate::manifest::decode::closest;
use crate::manifest::model::{Group, Resource};
use crate::manifest::raw::{GroupSpec, NodeRole};
use crate::manifest::values::Name;

/// A list of names for a message, cut short when a generated set has thousands.
fn listing<'a>(names: impl Iterator<Item = &'a Name>) -> String {
    let names: Vec<&str> = names.map(Name::as_str).collect();
    match names.len() {
        0 => "none".to_string(),
        n if n <= 12 => names.join(", "),
        n => format!("{}, … ({} more)", names[..12].join(", "), n - 12),
    }
}

fn did_you_mean<'a>(word: &Name, names: impl Iterator<Item = &'a Name>) -> String {
    let names: Vec<&str> = names.map(Name::as_str).collect();
    closest(word.as_str(), &names).map(|n| format!(" (did you mean \"{n}\"?)")).unwrap_or_default()
}

/// Checks every Group and that every resource is in exactly one; returns the valid groups.
pub(super) fn groups(
    ix: &Index,
    resources: &BTreeMap<Name, Resource>,
    defaults: &GroupDefaults,
    report: &mut Report,
) -> BTreeMap<Name, Group> {
    let mut owner: BTreeMap<Name, &RawDoc> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for doc in ix.groups.values() {
        let Some(Spec::Group(spec)) = &doc.spec else { continue };
        let members = members(ix, doc, spec, resources, &mut owner, report);
        let prefer = prefer(ix, doc, spec, report);
        let stickiness = report.integer(doc, &spec.stickiness, defaults.stickiness, (0, SCORE_MAX));
        let (Some(members), Some(prefer), Some(stickiness)) = (members, prefer, stickiness) else { continue };
        warn_never_fails_back(ix, doc, spec, &prefer, stickiness, report);
        let group = Group {
            name: doc.name.value.clone(),
            members,
            prefer,
            stickiness,
            migration_threshold: defaults.migration_threshold,
            failure_timeout: defaults.failure_timeout,
        };
        out.insert(doc.name.value.clone(), group);
    }
    for doc in ix.resources.values() {
        let name = &doc.name.value;
        if !owner.contains_key(name) {
            let message = format!(
                "{} \"{name}\" is in no group, so nothing would run it; add it to a Group's spec.members",
                doc.kind
            );
            report.error(doc, &doc.name, "orphan-resource", message);
        }
    }
    out
}

fn members<'d>(
    ix: &Index,
    doc: &'d RawDoc,
    spec: &GroupSpec,
    resources: &BTreeMap<Name, Resource>,
    owner: &mut BTreeMap<Name, &'d RawDoc>,
    report: &mut Report,
) -> Option<Vec<Resource>> {
    if spec.members.value.is_empty() {
        report.error(
            doc,
            &spec.members,
            "empty-group",
            "a group needs at least one member (FloatingIP or Service names)",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, member) in spec.members.value.iter().enumerate() {
        let name = &member.value;
        if ix.resources.contains_key(name) {
            if spec.members.value[..i].iter().any(|m| m.value == *name) {
                report.error(
                    doc,
                    member,
                    "duplicate-member",
                    format!("\"{name}\" is listed twice; a member runs once"),
                );
                ok = false;
            } else if let Some(other) = owner.get(name).filter(|o| !std::ptr::eq(**o, doc)) {
                let message = format!(
                    "\"{name}\" is already a member of group \"{}\" ({}); a resource belongs to at most one group",
                    other.name.value,
                    other.place()
                );
                report.error(doc, member, "multiple-groups", message);
                ok = false;
            } else {
                owner.insert(name.clone(), doc);
            }
            // A resource with errors of its own has them reported at its definition.
            match resources.get(name) {
                Some(r) => out.push(r.clone()),
                None => ok = false,
            }
            continue;
        }
        ok = false;
        let wrong_kind = ix
            .nodes
            .get(name)
            .or_else(|| ix.groups.get(name))
            .copied()
            .or_else(|| ix.clusters.iter().find(|c| c.name.value == *name).copied());
        let message = match wrong_kind {
            Some(other) => format!(
                "\"{name}\" is a {} ({}); members must be FloatingIP or Service names; resources defined: {}",
                other.kind,
                other.place(),
                listing(ix.resources.keys())
            ),
            None => format!(
                "unknown member \"{name}\"{}; resources defined: {}",
                did_you_mean(name, ix.resources.keys()),
                listing(ix.resources.keys())
            ),
        };
        let code = if wrong_kind.is_some() { "wrong-kind" } else { "unknown-member" };
        report.error(doc, member, code, message);
    }
    ok.then_some(out)
}

fn prefer(ix: &Index, doc: &RawDoc, spec: &GroupSpec, report: &mut Report) -> Option<BTreeMap<Name, i64>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, score) in spec.prefer.iter().flat_map(|p| &p.0) {
        let node = match Name::parse(&key.value) {
            Ok(name) => ix.nodes.get(&name).map(|d| (name, *d)),
            Err(_) => None,
        };
        match node {
            None => {
                let name = Name(key.value.clone());
                let message = format!(
                    "unknown node \"{}\"{}; nodes defined: {}",
                    key.value,
                    did_you_mean(&name, ix.nodes.keys()),
                    listing(ix.nodes.keys())
                );
                report.error(doc, key, "unknown-node", message);
                ok = false;
            }
            Some((_, node)) if matches!(&node.spec, Some(Spec::Node(n)) if n.role.as_ref().is_some_and(|r| r.value == NodeRole::Witness)) =>
            {
                report.error(
                    doc,
                    key,
                    "witness-preference",
                    format!("\"{}\" is a witness and runs no groups; prefer member nodes only", key.value),
                );
                ok = false;
            }
            Some((name, _)) => match report.integer(doc, &Some(score.clone()), 0, (-SCORE_MAX, SCORE_MAX)) {
                Some(v) => {
                    out.insert(name, v);
                }
                None => ok = false,
            },
        }
    }
    ok.then_some(out)
}

/// Warns when no preference difference exceeds the stickiness: the group then stays wherever it landed,
/// also after its preferred node returns. That is often intended (the guide relies on it), so it is a warning.
fn warn_never_fails_back(
    ix: &Index,
    doc: &RawDoc,
    spec: &GroupSpec,
    prefer: &BTreeMap<Name, i64>,
    stickiness: i64,
    report: &mut Report,
) {
    let members = ix.nodes.values().map(|d| (&d.name.value, *d)).filter(
        |(_, d)| matches!(&d.spec, Some(Spec::Node(n)) if n.role.as_ref().is_none_or(|r| r.value == NodeRole::Member)),
    );
    let scores: Vec<(&Name, i64)> = members.map(|(name, _)| (name, prefer.get(name).copied().unwrap_or(0))).collect();
    let (Some(best), Some(worst)) = (scores.iter().max_by_key(|s| s.1), scores.iter().min_by_key(|s| s.1)) else {
        return;
    };
    let spread = best.1 - worst.1;
    if spread > 0 && spread <= stickiness {
        let message = format!(
            "stickiness {stickiness} is at least every preference difference (largest {spread}): once the group leaves \"{}\" it never fails back on its own; use hactl move, or lower stickiness below {spread} if it should",
            best.0
        );
        if let Some(at) = &spec.stickiness {
            report.warning(doc, at, "never-fails-back", message);
        } else if let Some((key, _)) = spec.prefer.as_ref().and_then(|p| p.0.first()) {
            report.warning(doc, key, "never-fails-back", message);
        }
    }
}
