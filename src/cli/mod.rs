//! The command line: one module per subcommand, each parsing its arguments and calling the library.

mod agent;
mod apply;
mod cleanup;
mod clear;
mod completions;
mod conn;
mod diff;
mod keygen;
mod lab;
mod man;
mod move_group;
mod online;
mod ops;
mod schema;
mod standby;
mod status;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for success / valid / no change.
pub const EXIT_OK: u8 = 0;
/// Exit code for invalid manifests (or, for `diff`, changes found).
pub const EXIT_INVALID: u8 = 1;
/// Exit code for `diff` when applying would change something.
pub const EXIT_CHANGES: u8 = 1;
/// Exit code for an operation refused or not done in time (`move`, `clear`, `standby`, `online`, `cleanup`).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for usage and I/O errors: nothing was checked or changed.
pub const EXIT_USAGE: u8 = 2;

/// The version and the git commit of the build (`build.rs`), so a report names the exact source.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("HACTL_COMMIT"), ")");

/// hactl keeps a service online on a floating IP across Linux nodes, from YAML manifests kept in git.
#[derive(Debug, Parser)]
#[command(name = "hactl", version = VERSION, about, propagate_version = true)]
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
    /// Show the cluster as this node's agent sees it, like crm_mon (-o text|yaml|json, --watch).
    Status(status::Args),
    /// Move a group to a node (replicated) and wait until it runs there.
    Move(move_group::Args),
    /// End the move of a group.
    Clear(clear::Args),
    /// Put a node in standby: it gives its groups away and takes none.
    Standby(standby::Args),
    /// End a node's standby.
    Online(online::Args),
    /// Forget a group's failures on one node or all.
    Cleanup(cleanup::Args),
    /// Show what applying a manifest directory would change: unified diff per manifest and this node's plan.
    Diff(diff::Args),
    /// Deliver a manifest directory to every node (signed), optionally waiting until all run it.
    Apply(apply::Args),
    /// Write shell completions.
    Completions(completions::Args),
    /// Write the man page.
    Man(man::Args),
}

/// Runs a parsed command line; `Err` is an I/O or usage problem (exit 2).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Status(args) => status::run(args),
        Command::Move(args) => move_group::run(args),
        Command::Clear(args) => clear::run(args),
        Command::Standby(args) => standby::run(args),
        Command::Online(args) => online::run(args),
        Command::Cleanup(args) => cleanup::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}
