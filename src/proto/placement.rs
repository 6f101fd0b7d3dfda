//! Placement (DESIGN.md §4.9): who should hold a group, from `prefer` scores and stickiness.
//!
//! Stickiness here is the group's own `stickiness`, added once to the current holder's score. Pacemaker instead
//! sums `resource-stickiness` over every member of a group, so a group of three members with stickiness 100 has an
//! effective stickiness of 300 there; with hactl write the total you want once on the group.

use std::collections::BTreeMap;

use crate::manifest::values::Name;

/// The score of a node that may not hold the group (Pacemaker's −INFINITY).
pub const MINUS_INFINITY: i64 = i64::MIN;

/// One candidate's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node.
    pub name: Name,
    /// Online, not in standby, heard in both directions, under the failure threshold, not excluded by a move.
    pub eligible: bool,
}

/// The score of a `move` target (Pacemaker's cli-prefer, +INFINITY).
pub const PLUS_INFINITY: i64 = i64::MAX;

/// Scores every candidate: `prefer` + stickiness for the holder, +∞ for a move's target, −∞ when not eligible;
/// sorted best first, ties by name so every node computes the same ranking from the same view.
pub fn rank(
    prefer: &BTreeMap<Name, i64>,
    stickiness: i64,
    holder: Option<&Name>,
    moved_to: Option<&Name>,
    candidates: &[Candidate],
) -> Vec<(Name, i64)> {
    let mut scored: Vec<(Name, i64)> = candidates
        .iter()
        .map(|c| {
            let score = if !c.eligible {
                MINUS_INFINITY
            } else if moved_to == Some(&c.name) {
                PLUS_INFINITY
            } else {
                let base = prefer.get(&c.name).copied().unwrap_or(0);
                if holder == Some(&c.name) { base.saturating_add(stickiness) } else { base }
            };
            (c.name.clone(), score)
        })
        .collect();
    scored.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    scored
}

/// The node that should hold the group: the best eligible candidate; the holder keeps it on a tie (a move needs a
/// strictly higher score, so equal scores never flap).
pub fn choose(ranked: &[(Name, i64)], holder: Option<&Name>) -> Option<Name> {
    let (best, score) = ranked.first().filter(|(_, s)| *s > MINUS_INFINITY)?;
    if let Some(h) = holder
        && let Some((_, hs)) = ranked.iter().find(|(n, _)| n == h)
        && *hs > MINUS_INFINITY
        && hs >= score
    {
        return Some(h.clone());
    }
    Some(best.clone())
}
