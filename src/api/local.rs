//! The local API server: HTTP/JSON on a Unix socket (mode 0600, parent 0700) for the CLI on this node. Each
//! request becomes a [`Call`] answered by the agent's state-owning task, so no state is shared.
//!
//! Any request may name another node with `?node=NAME`: this agent then relays it, signed with the cluster key,
//! to NAME's peer API and passes the answer on unchanged (`502` with a reason when NAME cannot be reached).
//! The CLI uses this for `--via NODE`, `status --all`, the per-node plans of `diff` and `apply --wait`; the
//! key stays with the agent, and the CLI needs no more than the local socket.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::types::{ApiRequest, ApiResponse, Reply};
use crate::sys::keyfile::{ClusterKeys, SharedKeys};

/// Largest request body accepted (a manifest set for `plan`).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// One request for the state-owning task, with where to send its answer.
#[derive(Debug)]
pub struct Call {
    /// What is asked.
    pub request: ApiRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ApiResponse>,
}

/// Why the local API could not be served.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The socket or its directory cannot be prepared.
    #[error("local API socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Binds the socket (replacing a stale one) with mode 0600 in a 0700 directory it creates.
pub fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let err = |source| ServeError::Socket { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::create_dir_all(parent).map_err(err)?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    // The umask closes the window between bind and chmod.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(listener)
}

/// Serves connections until the agent goes away; `keys` sign the requests forwarded to peers (`?node=`).
pub async fn serve(listener: UnixListener, calls: mpsc::Sender<Call>, keys: SharedKeys) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!("local API accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (calls, keys) = (calls.clone(), keys.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, calls.clone(), keys.clone()));
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                warn!("local API connection: {e}");
            }
        });
    }
}

/// The `node` parameter of a query string: the node whose agent should answer instead of this one.
pub fn target(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("node=")).filter(|n| !n.is_empty())
}

async fn handle(
    req: Request<Incoming>,
    calls: mpsc::Sender<Call>,
    keys: SharedKeys,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let node = target(req.uri().query()).map(str::to_string);
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "unreadable or oversized body")),
    };
    if let Some(node) = node {
        match ask(&calls, ApiRequest::Locate(node.clone())).await {
            Ok(ApiResponse::Located(Ok(Some(addr)))) => {
                return Ok(forward(addr, &node, &keys.get(), &method, &path, body).await);
            }
            Ok(ApiResponse::Located(Ok(None))) => {} // this node: answered here
            Ok(ApiResponse::Located(Err(why))) => return Ok(reply(StatusCode::UNPROCESSABLE_ENTITY, &why)),
            Ok(_) => return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer to a node look-up")),
            Err(stopping) => return Ok(stopping),
        }
    }
    let request = match parse(&method, &path, &body) {
        Ok(r) => r,
        Err((code, msg)) => return Ok(reply(code, &msg)),
    };
    Ok(answer(&calls, request).await)
}

/// Relays a request to `node`'s agent over the signed peer API; its answer is passed on as it is.
async fn forward(
    addr: std::net::SocketAddr,
    node: &str,
    keys: &ClusterKeys,
    method: &Method,
    path: &str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    match super::peer::forward(addr, keys, method.as_str(), path, body.to_vec()).await {
        Ok((code, answer)) => {
            let mut resp = Response::new(Full::new(answer));
            *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            resp.headers_mut()
                .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => reply(StatusCode::BAD_GATEWAY, &format!("{node} ({addr}): {e}")),
    }
}

/// Hands a request to the state-owning task; `Err` is the answer when the agent is stopping.
async fn ask(calls: &mpsc::Sender<Call>, request: ApiRequest) -> Result<ApiResponse, Response<Full<Bytes>>> {
    let stopping = || reply(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping");
    let (tx, rx) = oneshot::channel();
    if calls.send(Call { request, reply: tx }).await.is_err() {
        return Err(stopping());
    }
    rx.await.map_err(|_| stopping())
}

/// Answers a parsed request from the state-owning task (shared by the local and the peer API).
pub async fn answer(calls: &mpsc::Sender<Call>, request: ApiRequest) -> Response<Full<Bytes>> {
    match ask(calls, request).await {
        Ok(ApiResponse::Status(s)) => json(StatusCode::OK, &*s),
        Ok(ApiResponse::Manifests(m)) => json(StatusCode::OK, &m),
        Ok(ApiResponse::Plan(p)) => json(StatusCode::OK, &p),
        Ok(ApiResponse::Reply(r)) => json(if r.ok { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY }, &r),
        Ok(ApiResponse::Located(_)) => reply(StatusCode::INTERNAL_SERVER_ERROR, "unexpected node look-up answer"),
        Err(stopping) => stopping,
    }
}

/// Maps a method, path and body to a request, or to the error answer.
pub fn parse(method: &Method, path: &str, body: &[u8]) -> Result<ApiRequest, (StatusCode, String)> {
    fn de<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (StatusCode, String)> {
        serde_json::from_slice(body).map_err(|e| (StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
    }
    match (method, path) {
        (&Method::GET, "/v1/status") => Ok(ApiRequest::Status),
        (&Method::POST, "/v1/move") => Ok(ApiRequest::Move(de(body)?)),
        (&Method::POST, "/v1/clear") => Ok(ApiRequest::Clear(de(body)?)),
        (&Method::POST, "/v1/standby") => Ok(ApiRequest::Standby(de(body)?)),
        (&Method::POST, "/v1/online") => Ok(ApiRequest::Online(de(body)?)),
        (&Method::POST, "/v1/cleanup") => Ok(ApiRequest::Cleanup(de(body)?)),
        (&Method::GET, "/v1/manifests") => Ok(ApiRequest::Manifests),
        (&Method::POST, "/v1/plan") => Ok(ApiRequest::Plan(de(body)?)),
        _ => Err((StatusCode::NOT_FOUND, format!("no such endpoint: {method} {path}"))),
    }
}

fn reply(code: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(code, &Reply { ok: false, message: message.to_string() })
}

/// A JSON response.
pub fn json<T: serde::Serialize>(code: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn the_node_parameter_is_found_among_others_and_empty_means_none() {
        assert_eq!(target(Some("node=ha2")), Some("ha2"));
        assert_eq!(target(Some("x=1&node=ha1")), Some("ha1"));
        assert_eq!(target(Some("node=")), None);
        assert_eq!(target(Some("nodes=ha1")), None);
        assert_eq!(target(None), None);
    }
}
