//! `hactl status`: the cluster as this node's agent sees it, like crm_mon.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::api::types::{GroupStatus, Status};

use super::EXIT_OK;
use super::conn::{Conn, block_on};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For scripts (the README's contract, as YAML).
    Yaml,
    /// For scripts (the README's contract).
    Json,
}

/// Arguments of `hactl status`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hactl status\n  hactl status -o json | jq '.groups[].holder'\n  hactl status --watch"
)]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Format,
    /// Refresh every second in place until interrupted.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    conn: Conn,
}

/// Prints the status once, or until interrupted with `--watch`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.conn.client();
    loop {
        let status = block_on(client.status())??;
        let text = render(&status, args.output)?;
        let mut out = std::io::stdout().lock();
        if args.watch && out.is_terminal() {
            // Home and clear: refresh in place like crm_mon.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        write!(out, "{text}")?;
        out.flush()?;
        if !args.watch {
            return Ok(ExitCode::from(EXIT_OK));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Renders a status in the chosen format.
pub fn render(status: &Status, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(status)? + "\n",
        Format::Yaml => serde_norway::to_string(status)?,
        Format::Text => text(status),
    })
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn text(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Cluster {} (seen from {}), config {}", s.cluster, s.node, s.digest);
    let _ = writeln!(o, "Quorum policy: {}", s.policy);
    if let Some(w) = &s.warning {
        let _ = writeln!(o, "WARNING: {w}");
    }
    let _ = writeln!(o, "\nNodes:");
    for n in &s.nodes {
        let mut flags = Vec::new();
        if n.standby {
            flags.push("standby".to_string());
        }
        if n.drift {
            flags.push("CONFIG DRIFT".to_string());
        }
        let digest = n.digest.as_deref().unwrap_or("-");
        let me = if n.local { " (this node)" } else { "" };
        let flags = if flags.is_empty() { String::new() } else { format!(" [{}]", flags.join(", ")) };
        let _ = writeln!(o, "  {:<12} {:<8} config {digest}{flags}{me}", n.name, n.state);
    }
    let _ = writeln!(o, "\nGroups:");
    for g in &s.groups {
        group(&mut o, g);
    }
    if !s.errors.is_empty() {
        let _ = writeln!(o, "\nErrors:");
        for e in &s.errors {
            let _ = writeln!(o, "  {e}");
        }
    }
    o
}

fn group(o: &mut String, g: &GroupStatus) {
    let holder = g.holder.as_deref().unwrap_or("(stopped)");
    let round = g.round.map(|r| format!(" round {r}")).unwrap_or_default();
    let lease = g.lease_remaining_ms.map(|l| format!(", lease {} left", secs(l))).unwrap_or_default();
    let _ = writeln!(o, "  {}: on {holder}{round}{lease}", g.name);
    if let Some(m) = &g.moved {
        let until = m.expires_in_ms.map_or("until cleared".to_string(), |e| format!("expires in {}", secs(e)));
        let _ = writeln!(o, "    moved to {} ({until})", m.node);
    }
    if !g.failcounts.is_empty() {
        let counts: Vec<String> = g.failcounts.iter().map(|(n, c)| format!("{n} {c}")).collect();
        let _ = writeln!(o, "    failures (replicated): {}", counts.join(", "));
    }
    for m in &g.members {
        let fails = if m.failcount > 0 { format!(" failcount {}", m.failcount) } else { String::new() };
        let _ = writeln!(o, "    {:<10} {:<14} {}{fails}", m.kind, m.name, m.state);
    }
}
