//! The `hactl` binary: parses the command line and hands over to the library. Exit codes are a contract
//! (README, "Exit codes").

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = hactl::cli::Cli::parse();
    match hactl::cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hactl: error: {err:#}");
            ExitCode::from(hactl::cli::EXIT_USAGE)
        }
    }
}
