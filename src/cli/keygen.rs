//! `hactl keygen PATH`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::sys::keyfile;

use super::EXIT_OK;

/// Arguments of `hactl keygen`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  hactl keygen /etc/hactl/authkey && scp -p /etc/hactl/authkey ha2:/etc/hactl/")]
pub struct Args {
    /// Where to write the key (mode 0600; an existing file is never overwritten).
    pub path: PathBuf,
}

/// Writes a new random cluster key and prints its fingerprint.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = keyfile::generate(&args.path)?;
    println!("wrote {} (fingerprint {}); copy it to every node with mode 0600", args.path.display(), key.fingerprint());
    Ok(ExitCode::from(EXIT_OK))
}
