//! The drivers that run a command per action and read its exit code: `exec` commands, LSB init scripts, OCF
//! resource agents and systemctl (DESIGN.md §1). Each one is a table from (action, exit code) to an outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use super::command::{self, Ended, Invocation, Ran};
use super::error::DriverError;
use super::{DriverContext, Outcome, Verb};
use crate::manifest::model::{Driver, Service};

/// The prefix Pacemaker gives OCF agents for the one-line reason of a failure (`ocf_exit_reason`).
const OCF_EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// A driver's reading of an exit code: the outcome, or what the code means when it is a failure.
type ExitTable = fn(Verb, i32) -> Result<Outcome, String>;

/// Runs `verb` of a command-based driver (the `run` driver is supervised instead: see `supervise`).
pub(crate) async fn run(verb: Verb, service: &Service, ctx: &DriverContext, limit: Duration) -> Outcome {
    let (inv, table): (Invocation, ExitTable) = match &service.driver {
        Driver::Exec { start, stop, status } => {
            let line = match verb {
                Verb::Start => start,
                Verb::Stop => stop,
                Verb::Status { .. } => status,
            };
            (Invocation::shell(line, limit), exec_code)
        }
        Driver::Lsb { script } => {
            let arg = match verb {
                Verb::Start => "start",
                Verb::Stop => "stop",
                Verb::Status { .. } => "status",
            };
            (Invocation { program: script.clone(), args: vec![arg.into()], env: Vec::new(), limit }, lsb_code)
        }
        Driver::Ocf { provider, kind, params } => {
            match ocf_invocation(service, provider, kind, params, verb, ctx, limit) {
                Ok(inv) => (inv, ocf_code),
                Err(e) => return Outcome::Failed(e),
            }
        }
        Driver::Systemd { unit } => {
            let arg = match verb {
                Verb::Start => "start",
                Verb::Stop => "stop",
                Verb::Status { .. } => "is-active",
            };
            let args = vec![arg.into(), unit.into()];
            (Invocation { program: ctx.systemctl.clone(), args, env: Vec::new(), limit }, systemctl_code)
        }
        Driver::Run { .. } => {
            return Outcome::Failed(DriverError::Config("the run driver is supervised, not run per action".into()));
        }
    };
    match command::run(&inv).await {
        Ok(ran) => interpret(&inv, &ran, verb, table),
        Err(e) => Outcome::Failed(e),
    }
}

fn interpret(inv: &Invocation, ran: &Ran, verb: Verb, table: ExitTable) -> Outcome {
    match ran.ended {
        Ended::TimedOut => Outcome::TimedOut { limit: inv.limit },
        Ended::Signal(signal) => {
            Outcome::Failed(DriverError::Signaled { command: inv.display(), signal, output: ran.output() })
        }
        Ended::Code(code) => table(verb, code).unwrap_or_else(|meaning| {
            Outcome::Failed(DriverError::Exit { command: inv.display(), code, meaning, output: reason(ran) })
        }),
    }
}

/// The failure text: an OCF agent's `ocf-exit-reason` line when it gave one, else the end of its output.
fn reason(ran: &Ran) -> String {
    let ocf = ran.stderr.lines().rev().find_map(|line| line.strip_prefix(OCF_EXIT_REASON_PREFIX));
    match ocf {
        Some(reason) => reason.trim().to_string(),
        None => ran.output(),
    }
}

/// `exec`: start and stop succeed with 0; status 0 = running, anything else = not running (DESIGN.md §1).
fn exec_code(verb: Verb, code: i32) -> Result<Outcome, String> {
    match (verb, code) {
        (Verb::Start, 0) => Ok(Outcome::Running),
        (Verb::Stop, 0) => Ok(Outcome::Stopped),
        (Verb::Status { .. }, 0) => Ok(Outcome::Running),
        (Verb::Status { .. }, _) => Ok(Outcome::Stopped),
        _ => Err("failure".into()),
    }
}

/// LSB init scripts (LSB 3.0 §20.2): start/stop 0 = success; status 0 = running, 3 = not running, and 1, 2, 4
/// are errors (1 and 2: dead but a pid or lock file is left — a crash the operator should see).
fn lsb_code(verb: Verb, code: i32) -> Result<Outcome, String> {
    match (verb, code) {
        (Verb::Start, 0) => Ok(Outcome::Running),
        (Verb::Stop, 0) => Ok(Outcome::Stopped),
        (Verb::Status { .. }, 0) => Ok(Outcome::Running),
        (Verb::Status { .. }, 3) => Ok(Outcome::Stopped),
        (Verb::Status { .. }, 1) => Err("LSB: program is dead and its pid file exists".into()),
        (Verb::Status { .. }, 2) => Err("LSB: program is dead and its lock file exists".into()),
        (Verb::Status { .. }, 4) => Err("LSB: status unknown".into()),
        (_, 1) => Err("LSB: generic or unspecified error".into()),
        (_, 2) => Err("LSB: invalid or excess arguments".into()),
        (_, 3) => Err("LSB: unimplemented feature".into()),
        (_, 4) => Err("LSB: user had insufficient privilege".into()),
        (_, 5) => Err("LSB: program is not installed".into()),
        (_, 6) => Err("LSB: program is not configured".into()),
        (_, 7) => Err("LSB: program is not running".into()),
        _ => Err("LSB: failure".into()),
    }
}

/// OCF resource agents (OCF RA API 1.0): 0 = success/running, 7 = not running (a success for monitor, a failure
/// for start), everything else a failure named by its OCF constant.
fn ocf_code(verb: Verb, code: i32) -> Result<Outcome, String> {
    match (verb, code) {
        (Verb::Start, 0) => Ok(Outcome::Running),
        (Verb::Stop, 0) => Ok(Outcome::Stopped),
        (Verb::Status { .. }, 0) => Ok(Outcome::Running),
        (Verb::Status { .. }, 7) => Ok(Outcome::Stopped),
        (_, 1) => Err("OCF_ERR_GENERIC".into()),
        (_, 2) => Err("OCF_ERR_ARGS".into()),
        (_, 3) => Err("OCF_ERR_UNIMPLEMENTED".into()),
        (_, 4) => Err("OCF_ERR_PERM".into()),
        (_, 5) => Err("OCF_ERR_INSTALLED".into()),
        (_, 6) => Err("OCF_ERR_CONFIGURED".into()),
        (_, 7) => Err("OCF_NOT_RUNNING".into()),
        (_, 8) => Err("OCF_RUNNING_PROMOTED: promotable agents are not supported".into()),
        (_, 9) => Err("OCF_FAILED_PROMOTED: promotable agents are not supported".into()),
        _ => Err("OCF: unknown exit code".into()),
    }
}

/// `systemctl`: start/stop 0 = success; `is-active` 0 = active, 3 = inactive or failed (not running), other
/// codes (4: no such unit) are errors.
fn systemctl_code(verb: Verb, code: i32) -> Result<Outcome, String> {
    match (verb, code) {
        (Verb::Start, 0) => Ok(Outcome::Running),
        (Verb::Stop, 0) => Ok(Outcome::Stopped),
        (Verb::Status { .. }, 0) => Ok(Outcome::Running),
        (Verb::Status { .. }, 3) => Ok(Outcome::Stopped),
        (_, 4) => Err("systemctl: no such unit".into()),
        (_, 5) => Err("systemctl: unit not loaded".into()),
        _ => Err("systemctl: failure".into()),
    }
}

/// `$OCF_ROOT/resource.d/PROVIDER/TYPE ACTION` with the environment Pacemaker gives an agent.
fn ocf_invocation(
    service: &Service,
    provider: &str,
    kind: &str,
    params: &BTreeMap<String, String>,
    verb: Verb,
    ctx: &DriverContext,
    limit: Duration,
) -> Result<Invocation, DriverError> {
    let is_word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !is_word(provider) || !is_word(kind) {
        return Err(DriverError::Config(format!("OCF agent \"{provider}:{kind}\" is not a provider:type pair")));
    }
    let (action, interval) = match verb {
        Verb::Start => ("start", Duration::ZERO),
        Verb::Stop => ("stop", Duration::ZERO),
        // A one-off status is Pacemaker's probe: monitor with interval 0 (agents check `ocf_is_probe`).
        Verb::Status { interval } => ("monitor", interval),
    };
    let mut env = vec![
        ("OCF_ROOT".to_string(), ctx.ocf_root.display().to_string()),
        ("OCF_RA_VERSION_MAJOR".to_string(), "1".to_string()),
        ("OCF_RA_VERSION_MINOR".to_string(), "0".to_string()),
        ("OCF_RESOURCE_INSTANCE".to_string(), service.name.to_string()),
        ("OCF_RESOURCE_TYPE".to_string(), kind.to_string()),
        ("OCF_RESOURCE_PROVIDER".to_string(), provider.to_string()),
        ("OCF_EXIT_REASON_PREFIX".to_string(), OCF_EXIT_REASON_PREFIX.to_string()),
        ("OCF_RESKEY_CRM_meta_timeout".to_string(), limit.as_millis().to_string()),
        ("OCF_RESKEY_CRM_meta_interval".to_string(), interval.as_millis().to_string()),
    ];
    for (name, value) in params {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(DriverError::Config(format!(
                "OCF parameter \"{name}\" cannot be passed as OCF_RESKEY_{name}: use letters, digits and '_'"
            )));
        }
        env.push((format!("OCF_RESKEY_{name}"), value.clone()));
    }
    let program = ctx.ocf_root.join("resource.d").join(provider).join(kind);
    Ok(Invocation { program, args: vec![action.into()], env, limit })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lsb_status_three_is_stopped_and_one_is_an_error() {
        assert_eq!(lsb_code(Verb::Status { interval: Duration::ZERO }, 3), Ok(Outcome::Stopped));
        assert!(lsb_code(Verb::Status { interval: Duration::ZERO }, 1).is_err());
        assert!(lsb_code(Verb::Start, 3).is_err());
    }

    #[test]
    fn ocf_seven_is_stopped_for_monitor_but_a_failure_for_start() {
        assert_eq!(ocf_code(Verb::Status { interval: Duration::ZERO }, 7), Ok(Outcome::Stopped));
        assert_eq!(ocf_code(Verb::Start, 7), Err("OCF_NOT_RUNNING".to_string()));
        assert_eq!(ocf_code(Verb::Stop, 0), Ok(Outcome::Stopped));
    }

    #[test]
    fn exec_status_any_nonzero_is_stopped() {
        assert_eq!(exec_code(Verb::Status { interval: Duration::ZERO }, 1), Ok(Outcome::Stopped));
        assert!(exec_code(Verb::Stop, 1).is_err());
    }
}
