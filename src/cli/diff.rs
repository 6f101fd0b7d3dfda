//! `hactl diff [DIR]`: what applying DIR would change: a unified diff per manifest against the files of the
//! config the agent runs, and the plan of this node's own planner. Exit 0 no change, 1 changes, 2 error.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::agent::deliver;

use super::apply::load_valid;
use super::conn::{Conn, block_on};
use super::{EXIT_CHANGES, EXIT_OK, EXIT_USAGE};

/// Arguments of `hactl diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  hactl diff manifests/\n  hactl diff manifests/ | less -R\n\n\
Exit codes: 0 no change; 1 changes (config or plan); 2 invalid DIR (with the validator's diagnostics) or error.")]
pub struct Args {
    /// The manifest directory to compare.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    conn: Conn,
}

/// Prints the config diff and the plan.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(_) = load_valid(&args.dir)? else { return Ok(ExitCode::from(EXIT_USAGE)) };
    let set = deliver::read_set(&args.dir)?;
    let client = args.conn.client();
    let (running, plan) =
        block_on(async { Ok::<_, anyhow::Error>((client.manifests().await?, client.plan(&set).await?)) })??;
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
            text += &diff
                .unified_diff()
                .header(&format!("running/{name}"), &format!("{}/{name}", args.dir.display()))
                .to_string();
        }
    }
    let changed = !text.is_empty() || !plan.steps.is_empty();
    let mut out = std::io::stdout().lock();
    let colour = out.is_terminal();
    writeln!(out, "Config diff:")?;
    if text.is_empty() {
        writeln!(out, "  (no change)")?;
    }
    for line in text.lines() {
        writeln!(out, "{}", paint(line, colour))?;
    }
    writeln!(out, "\nPlan on {} (its own planner, as things are observed there now):", plan.node)?;
    if plan.steps.is_empty() {
        writeln!(out, "  (nothing to do)")?;
    }
    for step in &plan.steps {
        writeln!(out, "  {}: {}", step.group, step.action)?;
    }
    Ok(ExitCode::from(if changed { EXIT_CHANGES } else { EXIT_OK }))
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
