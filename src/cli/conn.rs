//! What every client command shares: where the agent's socket is, and a small runtime to call it.

use std::path::PathBuf;

use anyhow::Context;

use crate::api::client::{Client, DEFAULT_SOCKET};

/// The `--api-socket` option of every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// The agent's local API socket.
    #[arg(long, env = "HACTL_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    pub api_socket: PathBuf,
}

impl Conn {
    /// The client of the agent on this node.
    pub fn client(&self) -> Client {
        Client::new(&self.api_socket)
    }
}

/// `--api-socket` and `--via NODE` of the commands that may ask another node's agent.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    #[command(flatten)]
    conn: Conn,
    /// Ask NODE's agent instead of this node's: the local agent relays the request over the signed peer API
    /// (it holds the cluster key); to see NODE's own view, or to issue an operation on a connected node.
    #[arg(long, value_name = "NODE")]
    pub via: Option<String>,
}

impl Target {
    /// The client of the agent asked: this node's, or the one `--via` names (through this node's).
    pub fn client(&self) -> Client {
        self.conn.client().via(self.via.as_deref())
    }
}

/// Runs `f` on a one-thread runtime (client commands make a few requests at most).
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    Ok(rt.block_on(f))
}

/// Parses a duration like `90s`, `5m`, `1h`, `500ms` (the manifests' units).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{text}`: expected a number with a unit (500ms, 30s, 5m, 1h)"))?;
    let ms = match unit {
        "ms" => n,
        "s" | "" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Ok(std::time::Duration::from_millis(ms))
}
