//! `hactl standby NODE`: the node gives its groups away and takes none until `hactl online`.

use std::process::ExitCode;

use super::conn::{Target, block_on};

/// Arguments of `hactl standby`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  hactl standby ha1    # maintenance on ha1\n  hactl online ha1")]
pub struct Args {
    /// The node.
    pub node: String,
    #[command(flatten)]
    conn: Target,
}

/// Puts the node in standby.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::ops::finish("standby", block_on(args.conn.client().standby(&args.node))?)
}
