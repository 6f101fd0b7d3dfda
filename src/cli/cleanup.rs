//! `hactl cleanup GROUP [NODE]`: forgets a group's failures (on one node or all), so it may run there again.

use std::process::ExitCode;

use super::conn::{Target, block_on};

/// Arguments of `hactl cleanup`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  hactl cleanup WebServices\n  hactl cleanup WebServices ha1")]
pub struct Args {
    /// The group.
    pub group: String,
    /// Only on this node (default: every node).
    pub node: Option<String>,
    #[command(flatten)]
    conn: Target,
}

/// Cleans the failures up.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::ops::finish("cleanup", block_on(args.conn.client().cleanup(&args.group, args.node.as_deref()))?)
}
