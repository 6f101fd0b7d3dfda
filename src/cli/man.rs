//! `hactl man`: the man page (roff) generated from the CLI definition.

use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, EXIT_OK};

/// Arguments of `hactl man`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  hactl man > /usr/share/man/man1/hactl.1 && man hactl")]
pub struct Args {}

/// Writes the man page to stdout.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(ExitCode::from(EXIT_OK))
}
