//! `hactl status`: the cluster as this node's agent sees it, like crm_mon; `--via NODE` as NODE's agent sees
//! it; `--all` every node's own view in turn (relayed by the local agent over the signed peer API).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::api::client::{Client, ClientError};
use crate::api::types::{GroupStatus, NodeView, Status};

use super::conn::{Target, block_on};
use super::{EXIT_FAILED, EXIT_OK};

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
    after_help = "Examples:\n  hactl status\n  hactl status -o json | jq '.groups[].holder'\n  hactl status --watch\n  hactl status --all             # every node's own view\n  hactl status --via ha2         # ha2's view, relayed by this node's agent"
)]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Format,
    /// Refresh every second in place until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Ask every configured node's agent for its own view (relayed over the signed peer API); exit 1 when one
    /// does not answer. JSON/YAML: a list of {node, status, error}.
    #[arg(long, conflicts_with = "via")]
    pub all: bool,
    #[command(flatten)]
    conn: Target,
}

/// Prints the status once, or until interrupted with `--watch`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.conn.client();
    loop {
        let (text, complete) = if args.all {
            let views = block_on(every_node(&client))??;
            (render_all(&views, args.output)?, views.iter().all(|v| v.error.is_none()))
        } else {
            (render(&block_on(client.status())??, args.output)?, true)
        };
        let mut out = std::io::stdout().lock();
        if args.watch && out.is_terminal() {
            // Home and clear: refresh in place like crm_mon.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        write!(out, "{text}")?;
        out.flush()?;
        if !args.watch {
            return Ok(ExitCode::from(if complete { EXIT_OK } else { EXIT_FAILED }));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Every configured node's own status, asked through the local agent (which names the nodes).
pub async fn every_node(client: &Client) -> Result<Vec<NodeView>, ClientError> {
    let local = client.status().await?;
    let asks = local.nodes.iter().map(|n| async {
        if n.local {
            return NodeView { node: n.name.clone(), status: Some(local.clone()), error: None };
        }
        match client.via(Some(&n.name)).status().await {
            Ok(s) => NodeView { node: n.name.clone(), status: Some(s), error: None },
            Err(e) => NodeView { node: n.name.clone(), status: None, error: Some(e.to_string()) },
        }
    });
    Ok(futures::future::join_all(asks).await)
}

/// Renders every node's view in the chosen format.
pub fn render_all(views: &[NodeView], format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(views)? + "\n",
        Format::Yaml => serde_norway::to_string(views)?,
        Format::Text => {
            let mut o = String::new();
            for v in views {
                let _ = writeln!(o, "===== {} =====", v.node);
                match (&v.status, &v.error) {
                    (Some(s), _) => o += &text(s),
                    (None, e) => {
                        let _ = writeln!(o, "NO ANSWER: {}", e.as_deref().unwrap_or("unknown"));
                    }
                }
                o.push('\n');
            }
            o
        }
    })
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
        if n.auth_failing {
            flags.push("MISCONFIGURED: its datagrams fail authentication (cluster keys differ)".to_string());
        }
        if let Some(with) = &n.uuid_clash {
            flags.push(format!("UUID CLASH with {with}: ignored (cloned state dir? see the agent's log)"));
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
