//! The peer API: HTTP on TCP at the node's address and the cluster port, every request signed with the
//! cluster key (src/api/auth.rs). Unsigned, tampered, stale and replayed requests are refused and logged.
//! `POST /v1/manifests` installs a manifest set delivered by `hactl apply`; every endpoint of the local API
//! (status, manifests, plan, move, clear, standby, online, cleanup) is served too, answered by the same
//! state-owning task, so an agent can relay an operator's request to any node (`?node=` on the local API).
//! The peer API itself never relays further: a `node` parameter here is refused.
// The signature window is wall-clock time on purpose (see auth.rs); the lease protocol never reads it.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::auth::{self, Verifier};
use super::local::{Call, json};
use super::types::Reply;
use crate::agent::deliver::{self, DeliverError, ManifestSet};
use crate::sys::keyfile::{ClusterKeys, SharedKeys};

/// Path of the manifest delivery.
pub const MANIFESTS_PATH: &str = "/v1/manifests";
/// Largest manifest set accepted.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How long a peer may take to connect and answer.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// The wall clock in milliseconds since the epoch, for signatures.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// What the peer API server needs.
#[derive(Debug)]
pub struct PeerServer {
    /// The cluster keys requests are checked against (replaced in place on a rotation).
    pub keys: SharedKeys,
    /// The watched manifest directory.
    pub manifests: PathBuf,
    /// The agent's state-owning task, which answers the local API's requests.
    calls: mpsc::Sender<Call>,
    verifier: Mutex<Verifier>,
}

impl PeerServer {
    /// A server for `manifests`, checking with `keys`, answering other requests through `calls`.
    pub fn new(keys: SharedKeys, manifests: PathBuf, calls: mpsc::Sender<Call>) -> PeerServer {
        PeerServer { keys, manifests, calls, verifier: Mutex::new(Verifier::default()) }
    }
}

/// Serves connections until the agent goes away.
pub async fn serve(listener: TcpListener, server: Arc<PeerServer>) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("peer API accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, from, server.clone()));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                warn!(peer = %from, "peer API connection: {e}");
            }
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    from: SocketAddr,
    server: Arc<PeerServer>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await.map(|b| b.to_bytes()) else {
        return Ok(refuse(StatusCode::BAD_REQUEST, "unreadable or oversized body".into()));
    };
    let signed = auth::Request { method: parts.method.as_str(), path: &path, body: &body };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let verdict = match server.verifier.lock() {
        Ok(mut v) => v.verify(&server.keys.get(), &signed, header, now_ms()),
        Err(poisoned) => poisoned.into_inner().verify(&server.keys.get(), &signed, header, now_ms()),
    };
    if let Err(e) = verdict {
        warn!(peer = %from, method = %parts.method, path, "peer API request refused: {e}");
        return Ok(refuse(StatusCode::UNAUTHORIZED, e.to_string()));
    }
    if super::local::target(parts.uri.query()).is_some() {
        return Ok(refuse(StatusCode::BAD_REQUEST, "the peer API does not relay (`node` parameter)".into()));
    }
    if (&parts.method, parts.uri.path()) != (&Method::POST, MANIFESTS_PATH) {
        return Ok(match super::local::parse(&parts.method, parts.uri.path(), &body) {
            Ok(request) => {
                debug!(peer = %from, method = %parts.method, path, "peer API request");
                super::local::answer(&server.calls, request).await
            }
            Err((code, message)) => refuse(code, message),
        });
    }
    let set: ManifestSet = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return Ok(refuse(StatusCode::BAD_REQUEST, format!("bad manifest set: {e}"))),
    };
    let dir = server.manifests.clone();
    let result = tokio::task::spawn_blocking(move || deliver::install(&dir, &set)).await;
    Ok(match result {
        Ok(Ok(())) => {
            info!(peer = %from, "manifest set delivered and installed");
            json(StatusCode::OK, &Reply { ok: true, message: "installed".into() })
        }
        Ok(Err(e)) => {
            warn!(peer = %from, "manifest delivery refused: {e}");
            let code = match e {
                DeliverError::GitTree(_) => StatusCode::CONFLICT,
                DeliverError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            refuse(code, e.to_string())
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })
}

fn refuse(code: StatusCode, message: String) -> Response<Full<Bytes>> {
    json(code, &Reply { ok: false, message })
}

/// Why a peer request failed.
#[derive(Debug, Error)]
pub enum PeerError {
    /// The peer could not be reached in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The HTTP exchange failed.
    #[error("peer API: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("peer API request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The answer is not the expected JSON.
    #[error("peer API answer: {0}")]
    Json(#[from] serde_json::Error),
    /// The peer refused.
    #[error("refused ({code}): {message}")]
    Refused {
        /// HTTP status.
        code: u16,
        /// Its reason.
        message: String,
    },
}

/// The signature headers for a request at `time_ms` with a fresh random nonce.
pub fn sign(keys: &ClusterKeys, method: &str, path: &str, body: &[u8], time_ms: u64) -> Vec<(&'static str, String)> {
    let mut nonce = [0u8; 16];
    // Without randomness a nonce could repeat and be refused as a replay; an all-zero one still signs.
    let _ = getrandom::fill(&mut nonce);
    auth::sign(keys, &auth::Request { method, path, body }, time_ms, nonce).to_vec()
}

/// Sends one request with the given headers; returns the status and body (for tests of refusals too).
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(u16, Bytes), PeerError> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| PeerError::Unreachable(format!("{addr}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header(hyper::header::HOST, addr.to_string());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = sender.send_request(req.body(Full::new(Bytes::from(body)))?).await?;
        let code = resp.status().as_u16();
        Ok((code, resp.into_body().collect().await?.to_bytes()))
    };
    tokio::time::timeout(PEER_TIMEOUT, exchange)
        .await
        .map_err(|_| PeerError::Unreachable(format!("{addr}: no answer within {}s", PEER_TIMEOUT.as_secs())))?
}

/// Sends one request signed now with `keys`: how an agent relays an operator's request to a peer.
pub async fn forward(
    addr: SocketAddr,
    keys: &ClusterKeys,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Bytes), PeerError> {
    let headers = sign(keys, method, path, &body, now_ms());
    send(addr, method, path, body, &headers).await
}

/// Delivers a manifest set to the agent at `addr`.
pub async fn deliver(addr: SocketAddr, keys: &ClusterKeys, set: &ManifestSet) -> Result<(), PeerError> {
    let (code, answer) = forward(addr, keys, "POST", MANIFESTS_PATH, serde_json::to_vec(set)?).await?;
    if code == 200 {
        return Ok(());
    }
    let message = serde_json::from_slice::<Reply>(&answer)
        .map(|r| r.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&answer).into_owned());
    Err(PeerError::Refused { code, message })
}
