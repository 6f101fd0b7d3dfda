//! Authentication of the peer API (TCP on each node's address: `apply`, forwarded operations).
//!
//! Every request carries an HMAC-SHA256, with the cluster key, over the method, the path, a timestamp, a
//! random nonce and the SHA-256 of the body. The receiver rejects unsigned and badly signed requests, requests
//! whose timestamp lies outside a small window around its own wall clock, and nonces it has already seen
//! within that window (replays). Wall-clock time is right here, unlike in the lease protocol: the window only
//! has to bound how long a captured request stays replayable, and nodes of a cluster run NTP.
//! The caller passes `now`; this module reads no clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::sys::keyfile::{ClusterKeys, Key};

/// Header with the signer's wall-clock time, milliseconds since the Unix epoch.
pub const TIME_HEADER: &str = "x-hactl-time";
/// Header with a random nonce (hex, 16 bytes), unique per request.
pub const NONCE_HEADER: &str = "x-hactl-nonce";
/// Header with the signature (hex HMAC-SHA256).
pub const SIGNATURE_HEADER: &str = "x-hactl-signature";
/// How far a request's time may be from the receiver's: clocks under NTP agree far better; a captured
/// request is useless after this.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Nonces remembered at most; beyond this the oldest are forgotten early, which only shortens how long a
/// replay is caught for the oldest requests (they are near the end of their window anyway under such load).
const MAX_NONCES: usize = 100_000;

/// Why a request was refused; each is logged with the peer's address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// A signature header is missing.
    #[error("unsigned request (missing {0})")]
    Unsigned(&'static str),
    /// A header is not in the expected form.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The signature matches no accepted key: tampered, or signed with another cluster's key.
    #[error("bad signature (tampered, or another cluster key)")]
    BadSignature,
    /// The timestamp is outside the window.
    #[error("stale request: its time is {skew_ms} ms from ours (window ±{} s)", WINDOW.as_secs())]
    Stale {
        /// Signed time minus our time.
        skew_ms: i64,
    },
    /// The nonce was seen before within the window.
    #[error("replayed request")]
    Replayed,
}

/// The signed parts of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path with its query string.
    pub path: &'a str,
    /// The body.
    pub body: &'a [u8],
}

fn tag(key: &Key, req: &Request, time_ms: u64, nonce: &str) -> Hmac<Sha256> {
    // Length-free framing is safe here: method, path, time and nonce cannot contain '\n' in HTTP, and the body
    // enters only through its fixed-length hash.
    let body_hash: String = Sha256::digest(req.body).iter().map(|b| format!("{b:02x}")).collect();
    let text = format!("hactl-v1\n{}\n{}\n{time_ms}\n{nonce}\n{body_hash}", req.method, req.path);
    // HMAC accepts keys of any length; 32 bytes cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    mac
}

/// The three headers that sign `req` at `time_ms` with a fresh `nonce` (16 random bytes from the caller).
pub fn sign(keys: &ClusterKeys, req: &Request, time_ms: u64, nonce: [u8; 16]) -> [(&'static str, String); 3] {
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let signature: String =
        tag(&keys.current, req, time_ms, &nonce).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    [(TIME_HEADER, time_ms.to_string()), (NONCE_HEADER, nonce), (SIGNATURE_HEADER, signature)]
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// Checks requests and remembers nonces for replay detection.
#[derive(Debug, Default)]
pub struct Verifier {
    /// Nonce → the signed time it was seen with, for expiry.
    seen: BTreeMap<String, u64>,
    order: VecDeque<(u64, String)>,
}

impl Verifier {
    /// Verifies a request; `header` looks a header up by lower-case name; `now_ms` is our wall clock.
    pub fn verify<'h>(
        &mut self,
        keys: &ClusterKeys,
        req: &Request,
        header: impl Fn(&str) -> Option<&'h str>,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        self.forget_before(now_ms.saturating_sub(WINDOW.as_millis() as u64));
        let time = header(TIME_HEADER).ok_or(AuthError::Unsigned(TIME_HEADER))?;
        let nonce = header(NONCE_HEADER).ok_or(AuthError::Unsigned(NONCE_HEADER))?;
        let signature = header(SIGNATURE_HEADER).ok_or(AuthError::Unsigned(SIGNATURE_HEADER))?;
        let time_ms: u64 = time.parse().map_err(|_| AuthError::Malformed(TIME_HEADER))?;
        if nonce.len() != 32 || unhex(nonce).is_none() {
            return Err(AuthError::Malformed(NONCE_HEADER));
        }
        let signature = unhex(signature).filter(|s| s.len() == 32).ok_or(AuthError::Malformed(SIGNATURE_HEADER))?;
        // The signature is checked before the clock, so an attacker learns nothing from the error kind.
        let accepted = std::iter::once(&keys.current).chain(&keys.accepted);
        if !accepted.into_iter().any(|key| tag(key, req, time_ms, nonce).verify_slice(&signature).is_ok()) {
            return Err(AuthError::BadSignature);
        }
        let skew_ms =
            i64::try_from(time_ms).unwrap_or(i64::MAX).saturating_sub(i64::try_from(now_ms).unwrap_or(i64::MAX));
        if skew_ms.unsigned_abs() > WINDOW.as_millis() as u64 {
            return Err(AuthError::Stale { skew_ms });
        }
        if self.seen.contains_key(nonce) {
            return Err(AuthError::Replayed);
        }
        self.seen.insert(nonce.to_string(), time_ms);
        self.order.push_back((time_ms, nonce.to_string()));
        while self.order.len() > MAX_NONCES {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        Ok(())
    }

    /// Drops nonces signed before `cutoff_ms` (such requests are refused as stale anyway), oldest first; the
    /// queue is in arrival order, which follows signed time closely enough for a cache of this kind.
    fn forget_before(&mut self, cutoff_ms: u64) {
        while let Some((time, _)) = self.order.front() {
            if *time >= cutoff_ms {
                break;
            }
            if let Some((_, nonce)) = self.order.pop_front() {
                self.seen.remove(&nonce);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn keys(byte: u8) -> ClusterKeys {
        ClusterKeys { current: Key([byte; 32]), accepted: Vec::new() }
    }

    const REQ: Request = Request { method: "POST", path: "/v1/manifests", body: b"cluster.yaml: ..." };
    const NOW: u64 = 1_800_000_000_000;

    fn headers(signed: [(&'static str, String); 3]) -> HashMap<&'static str, String> {
        signed.into_iter().collect()
    }

    fn verify(
        v: &mut Verifier,
        k: &ClusterKeys,
        req: &Request,
        h: &HashMap<&'static str, String>,
        now: u64,
    ) -> Result<(), AuthError> {
        v.verify(k, req, |name| h.get(name).map(String::as_str), now)
    }

    #[test]
    fn a_signed_request_passes_once() {
        let k = keys(1);
        let h = headers(sign(&k, &REQ, NOW, [7; 16]));
        let mut v = Verifier::default();
        assert_eq!(verify(&mut v, &k, &REQ, &h, NOW + 5), Ok(()));
        assert_eq!(verify(&mut v, &k, &REQ, &h, NOW + 6), Err(AuthError::Replayed));
    }

    #[test]
    fn unsigned_tampered_foreign_and_stale_requests_are_refused() {
        let k = keys(1);
        let mut v = Verifier::default();
        let h = headers(sign(&k, &REQ, NOW, [1; 16]));
        assert_eq!(verify(&mut v, &k, &REQ, &HashMap::new(), NOW), Err(AuthError::Unsigned(TIME_HEADER)));
        let tampered = Request { body: b"cluster.yaml: evil", ..REQ };
        assert_eq!(verify(&mut v, &k, &tampered, &h, NOW), Err(AuthError::BadSignature));
        let moved = Request { path: "/v1/move", ..REQ };
        assert_eq!(verify(&mut v, &k, &moved, &h, NOW), Err(AuthError::BadSignature));
        assert_eq!(verify(&mut v, &keys(2), &REQ, &h, NOW), Err(AuthError::BadSignature));
        let old = headers(sign(&k, &REQ, NOW - 31_000, [2; 16]));
        assert_eq!(verify(&mut v, &k, &REQ, &old, NOW), Err(AuthError::Stale { skew_ms: -31_000 }));
        let mut bad = h.clone();
        bad.insert(SIGNATURE_HEADER, "zz".into());
        assert_eq!(verify(&mut v, &k, &REQ, &bad, NOW), Err(AuthError::Malformed(SIGNATURE_HEADER)));
    }

    #[test]
    fn the_second_key_of_a_rotation_is_accepted() {
        let old = keys(1);
        let rotating = ClusterKeys { current: Key([2; 32]), accepted: vec![Key([1; 32])] };
        let h = headers(sign(&old, &REQ, NOW, [3; 16]));
        assert_eq!(verify(&mut Verifier::default(), &rotating, &REQ, &h, NOW), Ok(()));
    }

    #[test]
    fn nonces_are_forgotten_only_after_the_window() {
        let k = keys(1);
        let mut v = Verifier::default();
        let h = headers(sign(&k, &REQ, NOW, [4; 16]));
        assert_eq!(verify(&mut v, &k, &REQ, &h, NOW), Ok(()));
        assert_eq!(verify(&mut v, &k, &REQ, &h, NOW + 29_000), Err(AuthError::Replayed));
        assert!(matches!(verify(&mut v, &k, &REQ, &h, NOW + 31_000), Err(AuthError::Stale { .. })));
        assert!(v.seen.is_empty(), "expired nonces are dropped");
    }
}
