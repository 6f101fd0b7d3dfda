//! The protocol's persisted state on disk: what [`Event::Persist`](crate::proto::Event) asks the agent to
//! write before it sends anything more (DESIGN.md §4.2, §4.7). JSON, so an operator can read it while
//! debugging. The core asks for a write at every round (every renewal); [`Store`] turns that into an fsync
//! only when something that must survive a power loss changes:
//!
//! - `protocol.json` (atomic, file and directory fsynced): the round ceiling, the largest `T + m`, the voter
//!   sets. Rounds are reserved in blocks of [`ROUND_BLOCK`]: the file holds a ceiling at or above every round
//!   used, written before the first round beyond the previous ceiling is sent, so a restart (which starts above
//!   the ceiling) never reuses a ballot, and a holder renewing every `T/3` flushes the disk about once every
//!   few minutes instead of three times a second.
//! - `adoption.json` (a [`VolatileRecord`]: rewritten in place with one `pwrite`, checksummed, not fsynced):
//!   the adoption records. They are used only within the boot that wrote them (§4.7 adopts only with the same
//!   boot id), and within a boot the page cache outlives the agent, so a crashed or re-executed agent reads the
//!   last record written. After a power loss the file may be old, torn or empty: it then names an earlier boot,
//!   fails its checksum or holds nothing, and nothing is adopted. An unreadable `adoption.json` is therefore read
//!   as "no records", which only ever costs an adoption; an unreadable `protocol.json` stays an error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::manifest::values::Name;
use crate::proto::wire::{Ballot, NodeId};
use crate::proto::{AdoptionRecord, Persisted};
use crate::sys::state::{StateDir, StateError, VolatileRecord};

const FILE: &str = "protocol.json";
const ADOPTION: &str = "adoption.json";
/// Rounds reserved per durable write: at a renewal every `T/3` with `T = 1 s`, one fsync in about 5.5 minutes.
pub const ROUND_BLOCK: u64 = 1000;

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Written for every record at every renewal: no allocation per byte.
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
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

fn encode_records(records: &BTreeMap<IpAddr, AdoptionRecord>) -> Value {
    records
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
        .collect()
}

fn pretty(doc: &Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(doc).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Renders what must survive a power loss (`protocol.json`), with `max_round` as given (the ceiling).
fn encode_durable(p: &Persisted) -> Vec<u8> {
    pretty(&json!({
        "maxRound": p.max_round,
        "maxTmNs": u64::try_from(p.max_tm.as_nanos()).unwrap_or(u64::MAX),
        "voters": names(&p.voters),
        "jointOld": p.joint_old.iter().map(names).collect::<Vec<_>>(),
        "jointUnknown": p.joint_unknown,
    }))
}

fn decode_records(doc: &Value) -> Option<BTreeMap<IpAddr, AdoptionRecord>> {
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
    Some(records)
}

fn decode_value(doc: &Value) -> Option<Persisted> {
    let name_set = |v: &Value| -> Option<BTreeSet<Name>> {
        v.as_array()?.iter().map(|n| n.as_str().map(|s| Name(s.to_string()))).collect()
    };
    Some(Persisted {
        max_round: doc.get("maxRound")?.as_u64()?,
        max_tm: Duration::from_nanos(doc.get("maxTmNs")?.as_u64()?),
        // Files written before the records moved to `adoption.json` still hold them here.
        records: if doc.get("records").is_some() { decode_records(doc)? } else { BTreeMap::new() },
        voters: name_set(doc.get("voters")?)?,
        joint_old: doc.get("jointOld")?.as_array()?.iter().map(name_set).collect::<Option<Vec<_>>>()?,
        joint_unknown: doc.get("jointUnknown")?.as_bool()?,
    })
}

/// What was last written, so a `Persist` that changes nothing durable costs no fsync (see the module doc).
#[derive(Debug, Default)]
pub struct Store {
    /// The durable part as on disk, `max_round` being the ceiling.
    durable: Option<Persisted>,
    /// The records as in `adoption.json`.
    records: Option<BTreeMap<IpAddr, AdoptionRecord>>,
    /// `adoption.json`, opened at the first write and kept open.
    adoption: Option<VolatileRecord>,
}

impl Store {
    /// Writes what changed of `p`: the durable part (fsynced) when a round passes the ceiling or another durable
    /// field changed, the records (not fsynced) when they changed. On error the caller must not send what
    /// depends on it.
    pub fn save(&mut self, dir: &StateDir, p: &Persisted) -> Result<(), StateError> {
        // Everything but the records (a clone of those per renewal would cost more than writing them).
        let mut durable = Persisted {
            max_round: p.max_round,
            max_tm: p.max_tm,
            records: BTreeMap::new(),
            voters: p.voters.clone(),
            joint_old: p.joint_old.clone(),
            joint_unknown: p.joint_unknown,
        };
        let ceiling = self.durable.as_ref().map_or(0, |d| d.max_round);
        let same_rest = self.durable.as_ref().is_some_and(|d| {
            d.max_tm == durable.max_tm
                && d.voters == durable.voters
                && d.joint_old == durable.joint_old
                && d.joint_unknown == durable.joint_unknown
        });
        if !(same_rest && p.max_round <= ceiling) {
            durable.max_round = if p.max_round <= ceiling { ceiling } else { p.max_round.saturating_add(ROUND_BLOCK) };
            dir.write(FILE, &encode_durable(&durable))?;
            self.durable = Some(durable);
        }
        if self.records.as_ref() != Some(&p.records) {
            let file = match &mut self.adoption {
                Some(file) => file,
                none => none.insert(dir.volatile(ADOPTION)?),
            };
            // One line, not pretty-printed: rewritten at every renewal round (`jq` reads it as well).
            let mut text = serde_json::to_vec(&json!({ "records": encode_records(&p.records) })).unwrap_or_default();
            text.push(b'\n');
            file.replace(&text)?;
            self.records = Some(p.records.clone());
        }
        Ok(())
    }
}

/// Reads the state; a first start has none. A corrupt `protocol.json` is an error, never a silent reset:
/// forgetting a promise or a ballot is exactly what the protocol must not do. Returns the store that knows what
/// is on disk.
pub fn load(dir: &StateDir) -> Result<(Persisted, Store), StateError> {
    let Some(bytes) = dir.read(FILE)? else { return Ok((Persisted::default(), Store::default())) };
    let mut p =
        serde_json::from_slice::<Value>(&bytes).ok().as_ref().and_then(decode_value).ok_or_else(|| {
            StateError::Corrupt { path: dir.path().join(FILE), what: "expected hactl's protocol state" }
        })?;
    let store =
        Store { durable: Some(Persisted { records: BTreeMap::new(), ..p.clone() }), records: None, adoption: None };
    match dir.read_volatile(ADOPTION) {
        Ok(Some(bytes)) => match serde_json::from_slice::<Value>(&bytes).ok().as_ref().and_then(decode_records) {
            Some(records) => p.records = records,
            None => {
                tracing::warn!("{} cannot be read (after a power loss?): nothing is adopted", ADOPTION);
                p.records.clear();
            }
        },
        Ok(None) => {}
        Err(e) => {
            tracing::warn!("{e}: nothing is adopted");
            p.records.clear();
        }
    }
    Ok((p, store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(round: u64) -> AdoptionRecord {
        AdoptionRecord {
            ballot: Ballot { round, node: NodeId([3; 16]) },
            deadline: Duration::from_millis(123_456),
            boot_id: 42,
            released: false,
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        assert_eq!(load(&state).expect("empty").0, Persisted::default());
        let mut p = Persisted { max_round: 7, max_tm: Duration::from_millis(1100), ..Persisted::default() };
        p.records.insert("192.0.2.100".parse().expect("ip"), record(7));
        p.voters.insert(Name("ha1".into()));
        p.joint_old.push(BTreeSet::from([Name("ha2".into())]));
        Store::default().save(&state, &p).expect("save");
        let (back, _) = load(&state).expect("load");
        assert_eq!(back.records, p.records);
        assert_eq!(back.max_round, 7 + ROUND_BLOCK, "the ceiling of the reserved block");
        assert_eq!((back.max_tm, &back.voters, &back.joint_old), (p.max_tm, &p.voters, &p.joint_old));
        state.write(FILE, b"{\"maxRound\": 1}").expect("write");
        assert!(load(&state).is_err(), "a partial file is corrupt, not a reset");
    }

    #[test]
    fn renewals_within_the_reserved_block_touch_only_the_adoption_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        let key: IpAddr = "192.0.2.100".parse().expect("ip");
        let mut store = Store::default();
        let mut p = Persisted { max_round: 1, ..Persisted::default() };
        p.records.insert(key, record(1));
        store.save(&state, &p).expect("save");
        let durable = std::fs::read(dir.path().join(FILE)).expect("protocol.json");
        let modified = std::fs::metadata(dir.path().join(FILE)).and_then(|m| m.modified()).expect("mtime");
        for round in 2..=ROUND_BLOCK {
            p.max_round = round;
            p.records.insert(key, record(round));
            store.save(&state, &p).expect("save");
        }
        assert_eq!(std::fs::read(dir.path().join(FILE)).expect("protocol.json"), durable, "no durable write");
        assert_eq!(std::fs::metadata(dir.path().join(FILE)).and_then(|m| m.modified()).expect("mtime"), modified);
        let (back, _) = load(&state).expect("load");
        assert_eq!(back.records[&key], record(ROUND_BLOCK), "the newest record is read back");
        assert!(back.max_round >= ROUND_BLOCK, "every round used is at or below the ceiling");
        // The first round past the ceiling reserves the next block before it is used.
        p.max_round = 1 + ROUND_BLOCK + 1;
        store.save(&state, &p).expect("save");
        assert_eq!(load(&state).expect("load").0.max_round, p.max_round + ROUND_BLOCK);
        // A restart starts above the ceiling: no ballot it ever used comes back.
        let (_, mut restarted) = load(&state).expect("load");
        p.max_round += 1;
        restarted.save(&state, &p).expect("save");
        assert!(load(&state).expect("load").0.max_round >= p.max_round);
    }

    #[test]
    fn a_changed_voter_set_is_written_durably_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        let mut store = Store::default();
        let mut p = Persisted { max_round: 3, ..Persisted::default() };
        store.save(&state, &p).expect("save");
        p.voters.insert(Name("ha3".into()));
        store.save(&state, &p).expect("save");
        assert!(load(&state).expect("load").0.voters.contains(&Name("ha3".into())));
    }

    #[test]
    fn unreadable_adoption_records_mean_no_adoption_not_a_refusal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        let mut p = Persisted { max_round: 5, ..Persisted::default() };
        p.records.insert("192.0.2.100".parse().expect("ip"), record(5));
        Store::default().save(&state, &p).expect("save");
        std::fs::write(dir.path().join(ADOPTION), b"").expect("truncate");
        let (back, _) = load(&state).expect("a torn adoption file is not fatal");
        assert!(back.records.is_empty());
        assert_eq!(back.max_round, 5 + ROUND_BLOCK);
    }

    #[test]
    fn records_in_an_older_protocol_file_are_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        let mut p = Persisted { max_round: 9, ..Persisted::default() };
        let key: IpAddr = "192.0.2.100".parse().expect("ip");
        p.records.insert(key, record(9));
        let mut old = serde_json::from_slice::<Value>(&encode_durable(&p)).expect("json");
        old["records"] = encode_records(&p.records);
        state.write(FILE, &pretty(&old)).expect("write");
        assert_eq!(load(&state).expect("load").0.records, p.records);
    }
}
