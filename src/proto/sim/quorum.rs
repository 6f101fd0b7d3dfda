//! Invariant (h), judged against the world's truth rather than the core's beliefs: every quorum a core acts on
//! (the promises that lead to Accept, the accepts that establish or renew a lease, the accepts that confirm an
//! adoption) counts only distinct nodes with their true identities, each of which really answered that ballot
//! outside its restart quarantine, and holds a majority of every voter set that any node may still be using.

use std::collections::BTreeSet;

use crate::manifest::values::Name;
use crate::proto::QuorumKind;
use crate::proto::wire::NodeId;

/// One voter a core counted, resolved by the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The name the core counted.
    pub name: Name,
    /// The simulated node at the address that name has in the proposer's config (`None`: no such node).
    pub node: Option<usize>,
    /// The identity the core associates with the name.
    pub claimed_id: Option<NodeId>,
    /// That node's real identity.
    pub true_id: Option<NodeId>,
    /// Whether that node's acceptor answered this ballot (promise or accept, as the quorum needs) with yes.
    pub answered: bool,
    /// Whether every such answer was given while the acceptor was in its restart quarantine.
    pub quarantined: bool,
}

/// What broke (h): the invariant's label and what was seen.
pub type Broken = (&'static str, String);

/// Judges one quorum: `me` is the proposer's node, `required` the voter sets of which the world requires a
/// majority at this instant (its own config's, and during a rollout every older one still in use).
pub fn judge(kind: QuorumKind, me: usize, counted: &[Counted], required: &[BTreeSet<Name>]) -> Result<(), Broken> {
    let dup = "(h) quorum with a duplicated identity";
    let mut nodes = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for c in counted {
        let Some(node) = c.node else {
            return Err(("(h) quorum counts a non-node", format!("{} is no node of the proposer's config", c.name)));
        };
        if c.claimed_id.is_none() || c.claimed_id != c.true_id {
            return Err((dup, format!("{} counted as {:?}, but it is {:?}", c.name, c.claimed_id, c.true_id)));
        }
        if !nodes.insert(node) {
            return Err((dup, format!("node #{node} counted twice (again as {})", c.name)));
        }
        if let Some(id) = c.claimed_id
            && !ids.insert(id)
        {
            return Err((dup, format!("identity {id:?} counted twice (again as {})", c.name)));
        }
        if kind == QuorumKind::Adopt && node == me {
            return Err(("(h) adoption counts itself", format!("{} confirmed its own adoption", c.name)));
        }
        if !c.answered {
            return Err(("(h) quorum counts a voter that did not answer", format!("{} never said yes", c.name)));
        }
        if c.quarantined {
            let what = format!("{} answered {kind:?} while quarantined", c.name);
            return Err(("(h) quorum with a quarantined acceptor", what));
        }
    }
    for set in required {
        let yes = counted.iter().filter(|c| set.contains(&c.name)).count();
        if 2 * yes <= set.len() {
            let names: Vec<&str> = counted.iter().map(|c| c.name.as_str()).collect();
            let sets: Vec<Vec<&str>> = required.iter().map(|s| s.iter().map(Name::as_str).collect()).collect();
            let what =
                format!("{kind:?} quorum {names:?}: {yes} of {} voters of {set:?} (required {sets:?})", set.len());
            return Err(("(h) quorum without a majority of every voter set", what));
        }
    }
    Ok(())
}
