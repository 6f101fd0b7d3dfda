//! `hactl completions SHELL`: shell completions generated from the CLI definition.

use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, EXIT_OK};

/// Arguments of `hactl completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  hactl completions bash > /etc/bash_completion.d/hactl")]
pub struct Args {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Writes the completion script to stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    clap_complete::generate(args.shell, &mut Cli::command(), "hactl", &mut std::io::stdout());
    Ok(ExitCode::from(EXIT_OK))
}
