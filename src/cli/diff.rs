//! `hactl diff [DIR]`: what applying DIR would change: a unified diff per manifest against the files of the
//! config the local agent runs, and the plan of EVERY node of the running config, each computed by that
//! node's own planner on what it observes (relayed by the local agent over the signed peer API).
//! Exit 0 no change, 1 changes, 2 error — including a node whose plan could not be had: it is named, the rest
//! is still printed, and the exit is 2 because the review is incomplete (not "no change", not "changes").

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::agent::deliver::{self, ManifestSet};
use crate::api::client::{Client, ClientError};
use crate::api::types::Plan;

use super::apply::load_valid;
use super::conn::{Conn, block_on};
use super::{EXIT_CHANGES, EXIT_OK, EXIT_USAGE};

/// Arguments of `hactl diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  hactl diff manifests/\n  hactl diff manifests/ | less -R\n\n\
Exit codes: 0 no change; 1 changes (config or some node's plan); 2 invalid DIR (with the validator's\n\
diagnostics), a node whose plan could not be had (named), or another error.")]
pub struct Args {
    /// The manifest directory to compare.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    conn: Conn,
}

/// Prints the config diff and every node's plan.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(candidate) = load_valid(&args.dir)? else { return Ok(ExitCode::from(EXIT_USAGE)) };
    let set = deliver::read_set(&args.dir)?;
    let client = args.conn.client();
    let (running, plans) = block_on(async {
        let running = client.manifests().await?;
        let plans = every_plan(&client, &set).await?;
        Ok::<_, anyhow::Error>((running, plans))
    })??;
    let text = config_diff(&running, &set, &args.dir.display().to_string());
    let mut out = std::io::stdout().lock();
    let colour = out.is_terminal();
    writeln!(out, "Config diff:")?;
    if text.is_empty() {
        writeln!(out, "  (no change)")?;
    }
    for line in text.lines() {
        writeln!(out, "{}", paint(line, colour))?;
    }
    let mut changed = !text.is_empty();
    let mut unanswered = Vec::new();
    for (node, plan) in &plans {
        writeln!(out, "\nPlan on {node} (its own planner, as things are observed there now):")?;
        match plan {
            Ok(plan) if plan.steps.is_empty() => writeln!(out, "  (nothing to do)")?,
            Ok(plan) => {
                changed = true;
                for step in &plan.steps {
                    writeln!(out, "  {}: {}", step.group, step.action)?;
                }
            }
            Err(why) => {
                writeln!(out, "  NOT KNOWN: {why}")?;
                unanswered.push(node.as_str());
            }
        }
    }
    for node in candidate.nodes.keys().filter(|n| !plans.iter().any(|(p, _)| *p == n.0)) {
        writeln!(out, "\nPlan on {node}: a new node, not in the running config (its agent starts with this one)")?;
    }
    if !unanswered.is_empty() {
        eprintln!(
            "hactl: no plan from: {} (exit 2: the change could not be reviewed everywhere)",
            unanswered.join(", ")
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    Ok(ExitCode::from(if changed { EXIT_CHANGES } else { EXIT_OK }))
}

/// Every node of the running config with its own planner's answer for `set` (or why there is none), asked
/// through the local agent, which relays to the others over the signed peer API.
pub async fn every_plan(
    client: &Client,
    set: &ManifestSet,
) -> Result<Vec<(String, Result<Plan, String>)>, ClientError> {
    let status = client.status().await?;
    let asks = status.nodes.iter().map(|n| async {
        let asked = if n.local { client.plan(set).await } else { client.via(Some(&n.name)).plan(set).await };
        (n.name.clone(), asked.map_err(|e| e.to_string()))
    });
    Ok(futures::future::join_all(asks).await)
}

/// The unified diff, per manifest file, from the running set to `set` (empty: no change).
pub fn config_diff(running: &ManifestSet, set: &ManifestSet, label: &str) -> String {
    let old: BTreeMap<&str, &str> = running.files.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    let new: BTreeMap<&str, &str> = set.files.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    let mut names: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    let mut text = String::new();
    for name in names {
        let (a, b) = (old.get(name).copied().unwrap_or(""), new.get(name).copied().unwrap_or(""));
        if a != b {
            let diff = similar::TextDiff::from_lines(a, b);
            text += &diff.unified_diff().header(&format!("running/{name}"), &format!("{label}/{name}")).to_string();
        }
    }
    text
}

fn paint(line: &str, colour: bool) -> String {
    let code = match line.as_bytes().first() {
        _ if !colour => return line.to_string(),
        _ if line.starts_with("+++") || line.starts_with("---") => "1",
        Some(b'+') => "32",
        Some(b'-') => "31",
        Some(b'@') => "36",
        _ => return line.to_string(),
    };
    format!("\x1b[{code}m{line}\x1b[0m")
}
