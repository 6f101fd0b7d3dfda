//! `hactl apply [DIR] [--wait] [--timeout D]`: validate, deliver the manifest set to every node's agent over
//! the signed peer API, and optionally (`--wait`) wait until every node runs the new digest AND its own planner
//! has nothing left to do, then print what changed (files, and each node's plan as it was before delivery).
//! `--timeout` names every node that did not converge with why: no answer, still the old digest (with the
//! rejection if its agent rejected the set), a member still busy (an action in flight), or the steps still to
//! do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::agent::deliver::{self, ManifestSet};
use crate::api::client::{Client, ClientError};
use crate::api::peer;
use crate::api::types::Plan;
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
    /// Wait until every node runs the new config digest and has nothing left to do.
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
    let client = args.conn.client();
    // What will change, asked before delivery so it can be printed once everything has converged.
    let before = if args.wait { Some(block_on(before(&client, &set))??) } else { None };
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
    let Some((changes, plans)) = before else { return Ok(ExitCode::from(EXIT_OK)) };
    let digest = state.digest()[..16].to_string();
    let nodes: Vec<String> = targets.into_iter().map(|(n, _)| n).collect();
    let lagging = block_on(converge(&client, &nodes, &set, &digest, args.timeout))??;
    if !lagging.is_empty() {
        eprintln!("hactl: not converged on config {digest} after {:?}:", args.timeout);
        for (node, why) in &lagging {
            eprintln!("  {node}: {why}");
        }
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    println!("every node runs config {digest} and has nothing left to do");
    println!("What changed:");
    print!("{changes}");
    for (node, plan) in plans {
        match plan {
            Ok(p) if p.steps.is_empty() => println!("  {node}: no action"),
            Ok(p) => p.steps.iter().for_each(|s| println!("  {node}: {}: {}", s.group, s.action)),
            Err(why) => println!("  {node}: (its plan was not known before: {why})"),
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

type Plans = Vec<(String, Result<Plan, String>)>;

/// The changed manifest files (one line each) and every node's plan, before delivery.
async fn before(client: &Client, set: &ManifestSet) -> Result<(String, Plans), ClientError> {
    let running = client.manifests().await?;
    let old: std::collections::BTreeMap<&String, &String> = running.files.iter().map(|(n, c)| (n, c)).collect();
    let new: std::collections::BTreeMap<&String, &String> = set.files.iter().map(|(n, c)| (n, c)).collect();
    let mut files = String::new();
    for (name, content) in &new {
        match old.get(name) {
            None => files += &format!("  {name}: added\n"),
            Some(old) if old != content => files += &format!("  {name}: modified\n"),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        files += &format!("  {name}: removed\n");
    }
    if files.is_empty() {
        files = "  manifests: no file changed\n".into();
    }
    Ok((files, super::diff::every_plan(client, set).await?))
}

/// Polls every node's own agent (relayed by the local one) until each runs `digest` and its planner has
/// nothing left to do for `set`; returns the nodes that do not, with why (empty: converged).
async fn converge(
    client: &Client,
    nodes: &[String],
    set: &ManifestSet,
    digest: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, String)>> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let asks = nodes.iter().map(|n| async move { (n.clone(), lag(&client.via(Some(n)), set, digest).await) });
        let lagging: Vec<(String, String)> =
            futures::future::join_all(asks).await.into_iter().filter_map(|(n, why)| why.map(|w| (n, w))).collect();
        if lagging.is_empty() || tokio::time::Instant::now() >= until {
            return Ok(lagging);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why one node has not converged yet, or `None` when it has.
async fn lag(node: &Client, set: &ManifestSet, digest: &str) -> Option<String> {
    let status = match node.status().await {
        Ok(s) => s,
        Err(e) => return Some(format!("no answer: {e}")),
    };
    if status.digest != digest {
        let rejected = status.errors.iter().find(|e| e.contains("rejected"));
        let why = rejected.map(|e| format!("; {e}")).unwrap_or_default();
        return Some(format!("still runs config {}{why}", status.digest));
    }
    // An action in flight (a start, a probe) is not in the plan any more but not done either.
    let busy: Vec<&str> =
        status.groups.iter().flat_map(|g| &g.members).filter(|m| m.state == "busy").map(|m| m.name.as_str()).collect();
    if !busy.is_empty() {
        return Some(format!("still busy: {} (an action is in flight)", busy.join(", ")));
    }
    match node.plan(set).await {
        Ok(plan) if plan.steps.is_empty() => None,
        Ok(plan) => {
            let steps: Vec<String> = plan.steps.iter().map(|s| format!("{}: {}", s.group, s.action)).collect();
            Some(format!("still to do: {}", steps.join("; ")))
        }
        Err(e) => Some(format!("no plan: {e}")),
    }
}
