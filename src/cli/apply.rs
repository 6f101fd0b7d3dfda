//! `hactl apply [DIR] [--wait] [--timeout D]`: validate, deliver the manifest set to every node's agent over
//! the signed peer API, and optionally wait until every node runs the new digest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::agent::deliver;
use crate::api::client::Client;
use crate::api::peer;
use crate::manifest::{self, DesiredState};
use crate::sys::keyfile;

use super::conn::{Conn, block_on, parse_duration};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// Arguments of `hactl apply`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  hactl apply manifests/\n  hactl apply manifests/ --wait --timeout 2m\n\n\
Exit codes: 0 delivered (and converged with --wait); 1 a node unreachable, refused, or not converged in time;\n\
2 invalid manifests (the validator's diagnostics) or usage/I-O error.")]
pub struct Args {
    /// The manifest directory to deliver.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Wait until every node runs the new config digest.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
    #[command(flatten)]
    conn: Conn,
}

/// Loads and validates DIR; prints the diagnostics and returns `None` when it is invalid.
pub fn load_valid(dir: &Path) -> anyhow::Result<Option<DesiredState>> {
    let loaded = manifest::load_paths(&[dir.to_path_buf()]).with_context(|| format!("reading {}", dir.display()))?;
    match loaded.state {
        Some(state) => Ok(Some(state)),
        None => {
            eprint!("{}", manifest::diag::render(&loaded.diagnostics, manifest::Format::Text, false));
            Ok(None)
        }
    }
}

/// Delivers DIR to every node.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(state) = load_valid(&args.dir)? else { return Ok(ExitCode::from(EXIT_USAGE)) };
    let set = deliver::read_set(&args.dir)?;
    let keys = keyfile::load(&state.cluster.auth_key_file)?;
    let targets: Vec<(String, SocketAddr)> =
        state.nodes.values().map(|n| (n.name.0.clone(), SocketAddr::new(n.address, state.cluster.port))).collect();
    let results =
        block_on(futures::future::join_all(targets.iter().map(|(_, addr)| peer::deliver(*addr, &keys, &set))))?;
    let mut failed = Vec::new();
    for ((name, addr), result) in targets.iter().zip(results) {
        match result {
            Ok(()) => println!("{name} ({addr}): delivered"),
            Err(e) => {
                eprintln!("hactl: {name} ({addr}): {e}");
                failed.push(name.clone());
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("hactl: not applied on: {}", failed.join(", "));
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    if !args.wait {
        return Ok(ExitCode::from(EXIT_OK));
    }
    let digest = state.digest()[..16].to_string();
    let lagging = block_on(converge(&args.conn.client(), &digest, args.timeout))??;
    if lagging.is_empty() {
        println!("every node runs config {digest}");
        Ok(ExitCode::from(EXIT_OK))
    } else {
        eprintln!("hactl: not running config {digest} after {:?}: {}", args.timeout, lagging.join(", "));
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// Polls the local agent until every node reports `digest`; returns the nodes that do not (empty: converged).
async fn converge(client: &Client, digest: &str, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let status = client.status().await?;
        let lagging: Vec<String> = status
            .nodes
            .iter()
            .filter(|n| n.digest.as_deref() != Some(digest))
            .map(|n| format!("{} ({})", n.name, n.digest.as_deref().unwrap_or("not heard")))
            .collect();
        if lagging.is_empty() || tokio::time::Instant::now() >= until {
            return Ok(lagging);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
