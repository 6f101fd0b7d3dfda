//! `hactl move GROUP NODE [--for D] [--timeout D]`: a replicated move (DESIGN.md §4.9) that waits until the
//! group runs on NODE, or says why not.

use std::process::ExitCode;
use std::time::Duration;

use crate::api::client::{Client, ClientError};
use crate::api::types::Status;

use super::conn::{Target, block_on, parse_duration};
use super::{EXIT_FAILED, EXIT_OK};

/// Arguments of `hactl move`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hactl move WebServices ha2             # until `hactl clear WebServices`\n  hactl move WebServices ha2 --for 1h    # expires by itself\n  hactl move WebServices ha2 --via ha2   # issued by ha2's agent (relayed by this node's)"
)]
pub struct Args {
    /// The group to move.
    pub group: String,
    /// Where to.
    pub node: String,
    /// Let the move expire after this long (500ms, 30s, 5m, 1h); default: until `hactl clear`.
    #[arg(long = "for", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Give up waiting after this long (the move stays in force).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
    #[command(flatten)]
    conn: Target,
}

/// Issues the move and waits for it.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.conn.client();
    let for_ms = args.duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    match block_on(client.move_group(&args.group, &args.node, for_ms))? {
        Ok(reply) => println!("{}", reply.message),
        Err(ClientError::Refused(why)) => {
            eprintln!("hactl: move refused: {why}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        Err(e) => return Err(e.into()),
    }
    match block_on(wait(&client, &args.group, &args.node, args.timeout))?? {
        None => {
            println!("{} runs on {}", args.group, args.node);
            Ok(ExitCode::from(EXIT_OK))
        }
        Some(reason) => {
            eprintln!("hactl: {} is not on {} after {:?}: {reason}", args.group, args.node, args.timeout);
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// Polls the status until `group` runs on `node`; `Some(reason)` on time-out.
pub async fn wait(client: &Client, group: &str, node: &str, timeout: Duration) -> Result<Option<String>, ClientError> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let status = client.status().await?;
        let reason = match why_not(&status, group, node) {
            None => return Ok(None),
            Some(reason) => reason,
        };
        if tokio::time::Instant::now() >= until {
            return Ok(Some(reason));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why `group` does not run on `node` yet, from the status; `None` when it does.
pub fn why_not(status: &Status, group: &str, node: &str) -> Option<String> {
    let Some(g) = status.groups.iter().find(|g| g.name == group) else { return Some(format!("no group {group}")) };
    let target = status.nodes.iter().find(|n| n.name == node);
    let running_here = status.node != node || g.members.iter().all(|m| m.state == "up");
    if g.holder.as_deref() == Some(node) && running_here {
        return None;
    }
    if let Some(t) = target {
        if t.state != "online" {
            return Some(format!("{node} is {} (not eligible)", t.state));
        }
        if t.standby {
            return Some(format!("{node} is in standby (not eligible)"));
        }
    }
    if let Some(m) = g.members.iter().find(|m| m.state == "failed" || m.failcount > 0) {
        return Some(format!("{} failed ({} failures; `hactl cleanup {group}`)", m.name, m.failcount));
    }
    Some(match &g.holder {
        Some(h) if h == node => "members still starting".to_string(),
        Some(h) => format!("still held by {h}"),
        None => "no node holds it".to_string(),
    })
}
