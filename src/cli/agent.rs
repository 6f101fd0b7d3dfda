//! `hactl agent`: the node daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::agent::runtime::{self, Options};

use super::EXIT_OK;

/// Arguments of `hactl agent`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  hactl agent --manifests /etc/hactl/manifests --node ha1")]
pub struct Args {
    /// The manifest directory to watch (a git checkout, or where `hactl apply` delivers).
    #[arg(long)]
    pub manifests: PathBuf,
    /// This node's name in the manifests. Default: the hostname.
    #[arg(long)]
    pub node: Option<String>,
    /// Where the node's UUID, incarnation and lease records are kept (fsynced).
    #[arg(long, default_value = "/var/lib/hactl")]
    pub state_dir: PathBuf,
    /// The local API's Unix socket (mode 0600; its directory is created 0700).
    #[arg(long, env = "HACTL_SOCKET", default_value = crate::api::client::DEFAULT_SOCKET)]
    pub api_socket: PathBuf,
}

/// Runs the agent until SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HACTL_LOG").unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let node = match args.node {
        Some(node) => node,
        None => nix::unistd::gethostname()
            .context("reading the hostname (give --node)")?
            .to_string_lossy()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let opts = Options { manifests: args.manifests, node, state_dir: args.state_dir, api_socket: args.api_socket };
    // One thread: the agent is one loop that owns the protocol core, and every child process, socket and timer is
    // asynchronous, so worker threads would add only cross-thread wake-ups (futexes) to each datagram and timer.
    // Blocking file work (a manifest delivery) runs on tokio's blocking pool, as before.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(runtime::run(opts))?;
    Ok(ExitCode::from(EXIT_OK))
}
