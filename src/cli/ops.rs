//! The shared tail of `clear`, `standby`, `online` and `cleanup`: print the agent's answer, map it to an exit
//! code.

use std::process::ExitCode;

use crate::api::client::ClientError;
use crate::api::types::Reply;

use super::{EXIT_FAILED, EXIT_OK};

/// Prints the outcome of an operation; a refusal is exit 1, an unreachable agent an error (exit 2).
pub fn finish(what: &str, result: Result<Reply, ClientError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(reply) => {
            println!("{}", reply.message);
            Ok(ExitCode::from(EXIT_OK))
        }
        Err(ClientError::Refused(why)) => {
            eprintln!("hactl: {what} refused: {why}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
        Err(e) => Err(e.into()),
    }
}
