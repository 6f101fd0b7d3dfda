//! `hactl online NODE`: ends a standby; the node may hold groups again.

use std::process::ExitCode;

use super::conn::{Target, block_on};

/// Arguments of `hactl online`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  hactl online ha1")]
pub struct Args {
    /// The node.
    pub node: String,
    #[command(flatten)]
    conn: Target,
}

/// Takes the node out of standby.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::ops::finish("online", block_on(args.conn.client().online(&args.node))?)
}
