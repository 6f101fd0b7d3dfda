//! The typed client of the local API, used by the CLI: one HTTP/1.1 request per call over the Unix socket.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::net::UnixStream;

use super::types::{CleanupRequest, GroupRequest, MoveRequest, NodeRequest, Plan, Reply, Status};
use crate::agent::deliver::ManifestSet;

/// The default socket path (`hactl agent --api-socket`, `HACTL_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/hactl/hactl.sock";

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The agent's socket cannot be reached (no agent, or not root).
    #[error("cannot reach the agent at {path} (is `hactl agent` running? are you root?)")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("local API: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("local API request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The answer is not the expected JSON.
    #[error("local API answer: {0}")]
    Json(#[from] serde_json::Error),
    /// The agent refused the request.
    #[error("{0}")]
    Refused(String),
    /// The local agent could not relay the request to the node asked for (unreachable, no answer in time).
    #[error("{0}")]
    Relay(String),
}

/// A client of one agent's local API.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    via: Option<String>,
}

impl Client {
    /// A client of the agent listening on `socket`.
    pub fn new(socket: &Path) -> Client {
        Client { socket: socket.to_path_buf(), via: None }
    }

    /// The same local agent, asked to relay every request to `node`'s agent over the signed peer API (the
    /// local agent holds the key); `None` asks the local agent itself.
    pub fn via(&self, node: Option<&str>) -> Client {
        Client { socket: self.socket.clone(), via: node.map(str::to_string) }
    }

    /// The node relayed to, if any.
    pub fn target(&self) -> Option<&str> {
        self.via.as_deref()
    }

    /// The cluster as the agent sees it.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let (code, body) = self.call(Method::GET, "/v1/status", Bytes::new()).await?;
        if code != 200 {
            return Err(failure(code, &body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Moves `group` to `node`, for `for_ms` or until cleared.
    pub async fn move_group(&self, group: &str, node: &str, for_ms: Option<u64>) -> Result<Reply, ClientError> {
        self.post("/v1/move", &MoveRequest { group: group.into(), node: node.into(), for_ms }).await
    }

    /// Clears the move of `group`.
    pub async fn clear(&self, group: &str) -> Result<Reply, ClientError> {
        self.post("/v1/clear", &GroupRequest { group: group.into() }).await
    }

    /// Puts `node` in standby.
    pub async fn standby(&self, node: &str) -> Result<Reply, ClientError> {
        self.post("/v1/standby", &NodeRequest { node: node.into() }).await
    }

    /// Takes `node` out of standby.
    pub async fn online(&self, node: &str) -> Result<Reply, ClientError> {
        self.post("/v1/online", &NodeRequest { node: node.into() }).await
    }

    /// Forgets the failures of `group` on `node` (or everywhere).
    pub async fn cleanup(&self, group: &str, node: Option<&str>) -> Result<Reply, ClientError> {
        self.post("/v1/cleanup", &CleanupRequest { group: group.into(), node: node.map(Into::into) }).await
    }

    /// The manifest files of the config the agent runs.
    pub async fn manifests(&self) -> Result<ManifestSet, ClientError> {
        let (code, body) = self.call(Method::GET, "/v1/manifests", Bytes::new()).await?;
        if code != 200 {
            return Err(failure(code, &body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// What the agent's own planner would do on its node if `set` were applied now.
    pub async fn plan(&self, set: &ManifestSet) -> Result<Plan, ClientError> {
        let (code, body) = self.call(Method::POST, "/v1/plan", Bytes::from(serde_json::to_vec(set)?)).await?;
        if code != 200 {
            return Err(failure(code, &body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    async fn post<T: Serialize>(&self, path: &str, body: &T) -> Result<Reply, ClientError> {
        let (code, answer) = self.call(Method::POST, path, Bytes::from(serde_json::to_vec(body)?)).await?;
        if code == 502 {
            return Err(failure(code, &answer));
        }
        let reply: Reply = decode(&answer)?;
        if code != 200 || !reply.ok {
            return Err(ClientError::Refused(reply.message));
        }
        Ok(reply)
    }

    async fn call(&self, method: Method, path: &str, body: Bytes) -> Result<(u16, Bytes), ClientError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect { path: self.socket.clone(), source })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let uri = match &self.via {
            Some(node) if !node.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) => {
                return Err(ClientError::Refused(format!("`{node}` is not a node name")));
            }
            Some(node) => format!("{path}?node={node}"),
            None => path.to_string(),
        };
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let resp = sender.send_request(req).await?;
        let code = resp.status().as_u16();
        Ok((code, resp.into_body().collect().await?.to_bytes()))
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    Ok(serde_json::from_slice(body)?)
}

/// A non-200 answer: a relay failure (502) or the agent's refusal.
fn failure(code: u16, body: &[u8]) -> ClientError {
    if code == 502 { ClientError::Relay(refusal(body)) } else { ClientError::Refused(refusal(body)) }
}

fn refusal(body: &[u8]) -> String {
    decode::<Reply>(body).map(|r| r.message).unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}
