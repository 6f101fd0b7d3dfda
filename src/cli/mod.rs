//! The command line: one module per subcommand, each parsing its arguments and calling the library.

mod agent;
mod keygen;
mod lab;
mod schema;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for success / valid / no change.
pub const EXIT_OK: u8 = 0;
/// Exit code for invalid manifests (or, for `diff`, changes found).
pub const EXIT_INVALID: u8 = 1;
/// Exit code for usage and I/O errors: nothing was checked or changed.
pub const EXIT_USAGE: u8 = 2;

/// hactl keeps a service online on a floating IP across Linux nodes, from YAML manifests kept in git.
#[derive(Debug, Parser)]
#[command(name = "hactl", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests: every error at its file:line:column (exit 0 valid, 1 invalid, 2 usage or I/O error).
    Validate(validate::Args),
    /// Write the JSON Schema of the manifests (for editors and outside validators).
    Schema(schema::Args),
    /// Write a new random cluster key (mode 0600) for the Cluster's authKeyFile.
    Keygen(keygen::Args),
    /// Run the node agent: reconcile the manifests into addresses and services, with the peers.
    Agent(agent::Args),
    /// The one-machine lab: namespaces for ha1, ha2 and a client, nginx and a node daemon (root only).
    Lab(lab::Args),
}

/// Runs a parsed command line; `Err` is an I/O or usage problem (exit 2).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Lab(args) => lab::run(args),
    }
}
