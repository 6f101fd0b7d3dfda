//! The datagram format of the peer protocol (DESIGN.md §4.10): one authenticated datagram carries a header and
//! many records, so the renewals of many groups travel together.
//!
//! Layout (big-endian):
//! ```text
//! version u8 (=2) | sender uuid [16] | incarnation u64 | sequence u64 | echo u64 | record count u16 | records…
//!   | HMAC-SHA256 [32]
//! ```
//! The HMAC covers every byte before it. Proposer records carry only a round: the ballot is `(round, sender)`.
//! `echo` is the receiver's incarnation as the sender last authenticated it (0 while unknown): datagrams are built
//! per destination, and the receiver uses the records only when it matches its current incarnation (replays
//! across the receiver's restart, `src/proto/receive.rs`).
//!
//! Sizes: the fixed part is 43 + 32 = 75 bytes. An `Accept` or `Prepare` record for an IPv4 address is 26 bytes
//! (IPv6: 38), so one 1,400-byte datagram carries 50 IPv4 (34 IPv6) lease records; a renewal of one group needs one
//! `Prepare` and one `Accept` in successive datagrams. [`pack`] splits a longer list of records into as many datagrams
//! as needed, each under [`MAX_DATAGRAM`]; nothing is ever truncated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// The format version this code writes and reads.
pub const VERSION: u8 = 2;
/// The largest datagram [`pack`] produces: below a 1,500-byte MTU with room for IP/UDP headers and tunnels.
pub const MAX_DATAGRAM: usize = 1400;
const HEADER_LEN: usize = 1 + 16 + 8 + 8 + 8 + 2;
const MAC_LEN: usize = 32;

/// A node's persisted identity, created at first start (DESIGN.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 16]);

/// A Paxos ballot: round first, then the proposer's identity, so two proposers never share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ballot {
    /// 1 + the highest round the proposer has seen.
    pub round: u64,
    /// The proposer (and would-be holder).
    pub node: NodeId,
}

/// A lease is keyed by a floating address (DESIGN.md §4.3), so renaming a group never opens a second key.
pub type LeaseKey = IpAddr;

/// Who sent a datagram and where it sits in the sender's stream (replay rejection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's UUID.
    pub sender: NodeId,
    /// The sender's incarnation: grows on every start, so datagrams of an older life are rejected.
    pub incarnation: u64,
    /// Grows with every datagram of one incarnation.
    pub seq: u64,
    /// The receiver's incarnation as the sender last authenticated it (0: unknown); records are used only when it
    /// is the receiver's current one, proof that the datagram was made in the receiver's current life.
    pub echo: u64,
}

/// One record of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Membership: the sender's config digest and the peers it hears (so one-way links are visible).
    Heartbeat {
        /// First 8 bytes of the config digest.
        digest: [u8; 8],
        /// Peers the sender heard within deadTime.
        heard: Vec<NodeId>,
        /// The sender could acquire a group now (a hand-over target must confirm this first, §4.9).
        ready: bool,
    },
    /// The sender holds `key` under ballot `(round, sender)` for `left_ms` more.
    Held {
        /// The lease key.
        key: LeaseKey,
        /// The round of the holder's ballot.
        round: u64,
        /// Time left on the holder's lease.
        left_ms: u32,
    },
    /// Phase 1 of PaxosLease, ballot `(round, sender)`.
    Prepare(Proposal),
    /// Phase 2 of PaxosLease, ballot `(round, sender)`.
    Accept(Proposal),
    /// An acceptor's answer to `Prepare`.
    Promise(Answer),
    /// An acceptor's answer to `Accept`.
    Accepted(Answer),
    /// The sender gives up every ballot ≤ `(round, sender)` on `key`; `to` is the hand-over target, if any.
    Release {
        /// The lease key.
        key: LeaseKey,
        /// The highest round the sender used.
        round: u64,
        /// The node that should acquire at once.
        to: Option<NodeId>,
    },
    /// A replicated operator operation or failure report, re-sent until acknowledged.
    Op(super::ops::OpRecord),
    /// Acknowledges an operation.
    OpAck(super::ops::Stamp),
}

/// What a proposer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// The lease key.
    pub key: LeaseKey,
    /// The proposer's round.
    pub round: u64,
    /// `T + m` in milliseconds: acceptors exclude for `D_A` computed from the largest they saw.
    pub tm_ms: u32,
    /// Digest of the voter set the proposer counts (its joint sets folded in).
    pub voters: u64,
}

/// An acceptor's answer; a refusal carries the time left so the candidate retries at the right moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The lease key.
    pub key: LeaseKey,
    /// The round being answered (the ballot is `(round, receiver)`).
    pub round: u64,
    /// Whether the acceptor promised / accepted.
    pub ok: bool,
    /// The acceptor's promise (the highest ballot it answered), so a refused proposer can go higher.
    pub promised: Ballot,
    /// A live accepted ballot (holder = its node), if any.
    pub accepted: Option<Ballot>,
    /// Time left on that accepted lease, on the acceptor's clock.
    pub left_ms: u32,
}

/// Why a datagram was rejected. Decoding never panics; nothing is changed by a rejected datagram.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Shorter than its fields say.
    #[error("datagram truncated")]
    Truncated,
    /// A version this code does not read.
    #[error("unknown version {0}")]
    Version(u8),
    /// The HMAC matches none of the configured keys (wrong key, or tampered).
    #[error("authentication failed")]
    BadMac,
    /// An unknown record tag or address family.
    #[error("malformed record (tag {0})")]
    Malformed(u8),
    /// Bytes after the last record.
    #[error("trailing bytes")]
    Trailing,
}

/// Keys that authenticate datagrams: the first signs; all verify (old + new during a key rotation).
#[derive(Debug, Clone)]
pub struct Keys(pub Vec<Vec<u8>>);

type HmacSha256 = Hmac<Sha256>;

impl Keys {
    fn mac(key: &[u8], data: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length (RFC 2104 §2), so new_from_slice cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        mac
    }

    fn sign(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let key = self.0.first().map(Vec::as_slice).unwrap_or(&[]);
        Self::mac(key, data).finalize().into_bytes().into()
    }

    fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        self.0.iter().any(|k| Self::mac(k, data).verify_slice(tag).is_ok())
    }
}

/// Encodes one datagram (the caller keeps it under [`MAX_DATAGRAM`]; see [`pack`]).
pub fn encode(header: &Header, records: &[Record], keys: &Keys) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len() * 32 + MAC_LEN);
    out.push(VERSION);
    out.extend_from_slice(&header.sender.0);
    out.extend_from_slice(&header.incarnation.to_be_bytes());
    out.extend_from_slice(&header.seq.to_be_bytes());
    out.extend_from_slice(&header.echo.to_be_bytes());
    let count = u16::try_from(records.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for r in records.iter().take(usize::from(count)) {
        put_record(&mut out, r);
    }
    let tag = keys.sign(&out);
    out.extend_from_slice(&tag);
    out
}

/// Appends the MAC to arbitrary bytes: lets fuzzers and tests reach the record parser behind the MAC check.
pub fn seal(mut body: Vec<u8>, keys: &Keys) -> Vec<u8> {
    let tag = keys.sign(&body);
    body.extend_from_slice(&tag);
    body
}

/// Splits records into groups that each encode to at most [`MAX_DATAGRAM`] bytes.
pub fn pack(records: Vec<Record>) -> Vec<Vec<Record>> {
    let mut out: Vec<Vec<Record>> = Vec::new();
    let mut size = HEADER_LEN + MAC_LEN;
    for r in records {
        let len = record_len(&r);
        match out.last_mut() {
            Some(last) if size + len <= MAX_DATAGRAM && last.len() < usize::from(u16::MAX) => last.push(r),
            _ => {
                size = HEADER_LEN + MAC_LEN;
                out.push(vec![r]);
            }
        }
        size += len;
    }
    out
}

/// The encoded size of one record.
pub fn record_len(r: &Record) -> usize {
    let mut v = Vec::new();
    put_record(&mut v, r);
    v.len()
}

/// Decodes and authenticates one datagram; any input gives a value or an error, never a panic.
pub fn decode(bytes: &[u8], keys: &Keys) -> Result<(Header, Vec<Record>), WireError> {
    if bytes.len() < HEADER_LEN + MAC_LEN {
        return Err(WireError::Truncated);
    }
    if bytes[0] != VERSION {
        return Err(WireError::Version(bytes[0]));
    }
    let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    if !keys.verify(body, tag) {
        return Err(WireError::BadMac);
    }
    let mut r = Reader { buf: &body[1..] };
    let header = Header { sender: NodeId(r.array()?), incarnation: r.u64()?, seq: r.u64()?, echo: r.u64()? };
    let count = r.u16()?;
    let mut records = Vec::with_capacity(usize::from(count).min(128));
    for _ in 0..count {
        records.push(r.record()?);
    }
    if !r.buf.is_empty() {
        return Err(WireError::Trailing);
    }
    Ok((header, records))
}

/// Peeks at the claimed sender without authenticating: only to attribute an HMAC failure to a peer (§4.8).
pub fn peek_sender(bytes: &[u8]) -> Option<NodeId> {
    let id: [u8; 16] = bytes.get(1..17)?.try_into().ok()?;
    Some(NodeId(id))
}

fn put_key(out: &mut Vec<u8>, key: &LeaseKey) {
    match key {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

fn put_ballot(out: &mut Vec<u8>, b: &Ballot) {
    out.extend_from_slice(&b.round.to_be_bytes());
    out.extend_from_slice(&b.node.0);
}

fn put_proposal(out: &mut Vec<u8>, tag: u8, p: &Proposal) {
    out.push(tag);
    put_key(out, &p.key);
    out.extend_from_slice(&p.round.to_be_bytes());
    out.extend_from_slice(&p.tm_ms.to_be_bytes());
    out.extend_from_slice(&p.voters.to_be_bytes());
}

fn put_answer(out: &mut Vec<u8>, tag: u8, a: &Answer) {
    out.push(tag);
    put_key(out, &a.key);
    out.extend_from_slice(&a.round.to_be_bytes());
    out.push(u8::from(a.ok) | if a.accepted.is_some() { 2 } else { 0 });
    put_ballot(out, &a.promised);
    if let Some(b) = &a.accepted {
        put_ballot(out, b);
    }
    out.extend_from_slice(&a.left_ms.to_be_bytes());
}

fn put_record(out: &mut Vec<u8>, r: &Record) {
    match r {
        Record::Heartbeat { digest, heard, ready } => {
            out.push(1);
            out.extend_from_slice(digest);
            out.push(u8::from(*ready));
            let n = u8::try_from(heard.len()).unwrap_or(u8::MAX);
            out.push(n);
            for id in heard.iter().take(usize::from(n)) {
                out.extend_from_slice(&id.0);
            }
        }
        Record::Held { key, round, left_ms } => {
            out.push(2);
            put_key(out, key);
            out.extend_from_slice(&round.to_be_bytes());
            out.extend_from_slice(&left_ms.to_be_bytes());
        }
        Record::Prepare(p) => put_proposal(out, 3, p),
        Record::Accept(p) => put_proposal(out, 4, p),
        Record::Promise(a) => put_answer(out, 5, a),
        Record::Accepted(a) => put_answer(out, 6, a),
        Record::Release { key, round, to } => {
            out.push(7);
            put_key(out, key);
            out.extend_from_slice(&round.to_be_bytes());
            match to {
                Some(id) => {
                    out.push(1);
                    out.extend_from_slice(&id.0);
                }
                None => out.push(0),
            }
        }
        Record::Op(op) => {
            out.push(8);
            super::ops::put_op(out, op);
        }
        Record::OpAck(stamp) => {
            out.push(9);
            super::ops::put_stamp(out, stamp);
        }
    }
}

/// A cursor over a datagram; every read checks the length first.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn key(&mut self) -> Result<LeaseKey, WireError> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            f => Err(WireError::Malformed(f)),
        }
    }

    fn ballot(&mut self) -> Result<Ballot, WireError> {
        Ok(Ballot { round: self.u64()?, node: NodeId(self.array()?) })
    }

    fn proposal(&mut self) -> Result<Proposal, WireError> {
        Ok(Proposal { key: self.key()?, round: self.u64()?, tm_ms: self.u32()?, voters: self.u64()? })
    }

    fn answer(&mut self) -> Result<Answer, WireError> {
        let key = self.key()?;
        let round = self.u64()?;
        let flags = self.u8()?;
        if flags > 3 {
            return Err(WireError::Malformed(flags));
        }
        let promised = self.ballot()?;
        let accepted = if flags & 2 != 0 { Some(self.ballot()?) } else { None };
        Ok(Answer { key, round, ok: flags & 1 != 0, promised, accepted, left_ms: self.u32()? })
    }

    fn record(&mut self) -> Result<Record, WireError> {
        let tag = self.u8()?;
        Ok(match tag {
            1 => {
                let digest = self.array()?;
                let ready = match self.u8()? {
                    0 => false,
                    1 => true,
                    f => return Err(WireError::Malformed(f)),
                };
                let n = self.u8()?;
                let heard = (0..n).map(|_| self.array().map(NodeId)).collect::<Result<_, _>>()?;
                Record::Heartbeat { digest, heard, ready }
            }
            2 => Record::Held { key: self.key()?, round: self.u64()?, left_ms: self.u32()? },
            3 => Record::Prepare(self.proposal()?),
            4 => Record::Accept(self.proposal()?),
            5 => Record::Promise(self.answer()?),
            6 => Record::Accepted(self.answer()?),
            7 => {
                let key = self.key()?;
                let round = self.u64()?;
                let to = match self.u8()? {
                    0 => None,
                    1 => Some(NodeId(self.array()?)),
                    f => return Err(WireError::Malformed(f)),
                };
                Record::Release { key, round, to }
            }
            8 => Record::Op(super::ops::read_op(self)?),
            9 => Record::OpAck(super::ops::read_stamp(self)?),
            t => return Err(WireError::Malformed(t)),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys(vec![b"new key".to_vec(), b"old key".to_vec()])
    }

    fn sample() -> Vec<Record> {
        let key: LeaseKey = "192.0.2.10".parse().unwrap();
        let b = Ballot { round: 7, node: NodeId([3; 16]) };
        vec![
            Record::Heartbeat { digest: [1; 8], heard: vec![NodeId([2; 16])], ready: true },
            Record::Held { key, round: 9, left_ms: 800 },
            Record::Prepare(Proposal { key, round: 4, tm_ms: 1100, voters: 42 }),
            Record::Accept(Proposal { key: "2001:db8::1".parse().unwrap(), round: 4, tm_ms: 1100, voters: 42 }),
            Record::Promise(Answer { key, round: 4, ok: false, promised: b, accepted: Some(b), left_ms: 300 }),
            Record::Accepted(Answer { key, round: 4, ok: true, promised: b, accepted: None, left_ms: 0 }),
            Record::Release { key, round: 4, to: Some(NodeId([5; 16])) },
            Record::Release { key, round: 4, to: None },
            Record::Op(crate::proto::ops::OpRecord {
                stamp: crate::proto::ops::Stamp { incarnation: 2, counter: 3, origin: NodeId([4; 16]) },
                kind: crate::proto::ops::OpKind::Clear,
                group: "WebServices".into(),
                node: String::new(),
                left_ms: u32::MAX,
                cancels: Some(crate::proto::ops::Stamp::default()),
            }),
            Record::OpAck(crate::proto::ops::Stamp::default()),
        ]
    }

    #[test]
    fn round_trip_and_rotation() {
        let h = Header { sender: NodeId([9; 16]), incarnation: 3, seq: 11, echo: 2 };
        let bytes = encode(&h, &sample(), &keys());
        assert_eq!(decode(&bytes, &keys()).unwrap(), (h, sample()));
        // A node that already has only the new key, and one that still signs with the old key.
        assert!(decode(&bytes, &Keys(vec![b"new key".to_vec()])).is_ok());
        let old = encode(&h, &sample(), &Keys(vec![b"old key".to_vec()]));
        assert!(decode(&old, &keys()).is_ok());
        assert_eq!(decode(&old, &Keys(vec![b"other".to_vec()])), Err(WireError::BadMac));
    }

    #[test]
    fn fifty_ipv4_accepts_fit_in_one_datagram() {
        let key: LeaseKey = "192.0.2.10".parse().unwrap();
        let rec = Record::Accept(Proposal { key, round: u64::MAX, tm_ms: 1, voters: 1 });
        assert_eq!(record_len(&rec), 26);
        let packed = pack(vec![rec; 51]);
        assert_eq!(packed.iter().map(Vec::len).collect::<Vec<_>>(), vec![50, 1]);
        let h = Header { sender: NodeId([9; 16]), incarnation: 3, seq: 11, echo: 4 };
        assert!(encode(&h, &packed[0], &keys()).len() <= MAX_DATAGRAM);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes, &keys());
        }

        #[test]
        fn decode_of_signed_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            // Garbage with a valid MAC exercises the record parser, not just the MAC check.
            let mut bytes = vec![VERSION];
            bytes.extend_from_slice(&body);
            let tag = keys().sign(&bytes);
            bytes.extend_from_slice(&tag);
            let _ = decode(&bytes, &keys());
        }

        #[test]
        fn round_trip_any_header(inc in any::<u64>(), seq in any::<u64>(), echo in any::<u64>(), n in 0usize..8) {
            let h = Header { sender: NodeId([1; 16]), incarnation: inc, seq, echo };
            let recs: Vec<Record> = sample().into_iter().cycle().take(n).collect();
            prop_assert_eq!(decode(&encode(&h, &recs, &keys()), &keys()).unwrap(), (h, recs));
        }
    }
}
