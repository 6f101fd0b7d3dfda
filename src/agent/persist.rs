//! The protocol's persisted state on disk: what [`Event::Persist`](crate::proto::Event) asks the agent to
//! write before it sends anything more (DESIGN.md §4.2, §4.7). JSON, so an operator can read it while
//! debugging; written through [`StateDir::write`], which is atomic and fsynced.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::manifest::values::Name;
use crate::proto::wire::{Ballot, NodeId};
use crate::proto::{AdoptionRecord, Persisted};
use crate::sys::state::{StateDir, StateError};

const FILE: &str = "protocol.json";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn node_id(text: &str) -> Option<NodeId> {
    let mut id = [0u8; 16];
    if text.len() != 32 {
        return None;
    }
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(NodeId(id))
}

fn names(set: &BTreeSet<Name>) -> Value {
    set.iter().map(|n| n.as_str()).collect()
}

/// Renders the persisted state.
pub fn encode(p: &Persisted) -> Vec<u8> {
    let records: Vec<Value> = p
        .records
        .iter()
        .map(|(key, r)| {
            json!({
                "key": key.to_string(),
                "round": r.ballot.round,
                "node": hex(&r.ballot.node.0),
                "deadlineNs": u64::try_from(r.deadline.as_nanos()).unwrap_or(u64::MAX),
                "bootId": r.boot_id,
                "released": r.released,
            })
        })
        .collect();
    let doc = json!({
        "maxRound": p.max_round,
        "maxTmNs": u64::try_from(p.max_tm.as_nanos()).unwrap_or(u64::MAX),
        "records": records,
        "voters": names(&p.voters),
        "jointOld": p.joint_old.iter().map(names).collect::<Vec<_>>(),
        "jointUnknown": p.joint_unknown,
    });
    let mut text = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    text.push(b'\n');
    text
}

fn decode_value(doc: &Value) -> Option<Persisted> {
    let name_set = |v: &Value| -> Option<BTreeSet<Name>> {
        v.as_array()?.iter().map(|n| n.as_str().map(|s| Name(s.to_string()))).collect()
    };
    let mut records = BTreeMap::new();
    for r in doc.get("records")?.as_array()? {
        let key: IpAddr = r.get("key")?.as_str()?.parse().ok()?;
        let record = AdoptionRecord {
            ballot: Ballot { round: r.get("round")?.as_u64()?, node: node_id(r.get("node")?.as_str()?)? },
            deadline: Duration::from_nanos(r.get("deadlineNs")?.as_u64()?),
            boot_id: r.get("bootId")?.as_u64()?,
            released: r.get("released")?.as_bool()?,
        };
        records.insert(key, record);
    }
    Some(Persisted {
        max_round: doc.get("maxRound")?.as_u64()?,
        max_tm: Duration::from_nanos(doc.get("maxTmNs")?.as_u64()?),
        records,
        voters: name_set(doc.get("voters")?)?,
        joint_old: doc.get("jointOld")?.as_array()?.iter().map(name_set).collect::<Option<Vec<_>>>()?,
        joint_unknown: doc.get("jointUnknown")?.as_bool()?,
    })
}

/// Writes the state durably; on error the caller must not send what depends on it.
pub fn save(dir: &StateDir, p: &Persisted) -> Result<(), StateError> {
    dir.write(FILE, &encode(p))
}

/// Reads the state; a first start has none. A corrupt file is an error, never a silent reset: forgetting
/// a promise or a ballot is exactly what the protocol must not do.
pub fn load(dir: &StateDir) -> Result<Persisted, StateError> {
    let Some(bytes) = dir.read(FILE)? else { return Ok(Persisted::default()) };
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .as_ref()
        .and_then(decode_value)
        .ok_or_else(|| StateError::Corrupt { path: dir.path().join(FILE), what: "expected hactl's protocol state" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        assert_eq!(load(&state).expect("empty"), Persisted::default());
        let mut p = Persisted { max_round: 7, max_tm: Duration::from_millis(1100), ..Persisted::default() };
        p.records.insert(
            "192.0.2.100".parse().expect("ip"),
            AdoptionRecord {
                ballot: Ballot { round: 7, node: NodeId([3; 16]) },
                deadline: Duration::from_millis(123_456),
                boot_id: 42,
                released: false,
            },
        );
        p.voters.insert(Name("ha1".into()));
        p.joint_old.push(BTreeSet::from([Name("ha2".into())]));
        save(&state, &p).expect("save");
        assert_eq!(load(&state).expect("load"), p);
        state.write(FILE, b"{\"maxRound\": 1}").expect("write");
        assert!(load(&state).is_err(), "a partial file is corrupt, not a reset");
    }
}
