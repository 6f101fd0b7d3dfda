//! `hactl clear GROUP`: ends the move of a group (replicated); placement goes back to preferences.

use std::process::ExitCode;

use super::conn::{Target, block_on};

/// Arguments of `hactl clear`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  hactl clear WebServices")]
pub struct Args {
    /// The group whose move ends.
    pub group: String,
    #[command(flatten)]
    conn: Target,
}

/// Clears the move.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::ops::finish("clear", block_on(args.conn.client().clear(&args.group))?)
}
