//! Service drivers (DESIGN.md §1): start, stop and check a service through systemd, an LSB script, an OCF
//! agent, shell commands, or a process supervised here — every action bounded by its timeout, every result a
//! value ([`Outcome`]) that goes back to the core as an input.
//!
//! The agent's state-owning task does not await these itself: it spawns a task per action
//! (`tokio::spawn(async move { (token, run(action, &service, &ctx).await) })`) and receives the outcome on its
//! input channel. Dropping the future of an action kills the process group of the command it ran;
//! `exec: {run}` processes live on in the [`Supervisor`] until stopped.

mod command;
mod error;
pub mod failures;
pub mod probe;
mod records;
mod scripts;
pub mod supervise;

use std::path::PathBuf;
use std::time::Duration;

pub use error::DriverError;
pub use failures::FailCounts;
pub use supervise::{ProcessExit, Supervisor};
use tokio::sync::mpsc;

use crate::manifest::model::{Driver, Service};

/// What the core asks of a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Start the service (idempotent: starting a running service succeeds). Limit: `timeouts.start`.
    Start,
    /// Stop the service (idempotent). Limit: `timeouts.stop`. Only [`Outcome::is_stopped`] means it is down.
    Stop,
    /// The driver's own status alone, without probes: cheap and side-effect free, for start-up hygiene (which
    /// members of groups this node does not hold still run?). Limit: `timeouts.monitor`.
    Status,
    /// The periodic health check: driver status, then the http/tcp probes; passes only if all pass.
    /// Limit: `monitor.timeout` for the whole check.
    Monitor,
}

impl Action {
    /// The time limit of this action for `service`.
    pub fn limit(self, service: &Service) -> Duration {
        match self {
            Action::Start => service.timeouts.start,
            Action::Stop => service.timeouts.stop,
            Action::Status => service.timeouts.monitor,
            Action::Monitor => service.monitor.timeout,
        }
    }
}

/// The result of one action: what the core learns about the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service runs (and, for a monitor, its probes pass).
    Running,
    /// The service does not run.
    Stopped,
    /// A stop ran out of time and the driver killed the service's process group with SIGKILL; nothing of it
    /// runs now, but it did not stop cleanly (only the supervised `exec: {run}` driver can do this).
    Killed {
        /// The stop timeout that ran out.
        limit: Duration,
    },
    /// The action failed. After a stop this means the service may still run: keep the claim fenced.
    Failed(DriverError),
    /// The action did not finish within its limit; the command was killed. After a stop the service may
    /// still run: keep the claim fenced.
    TimedOut {
        /// The limit that ran out.
        limit: Duration,
    },
}

impl Outcome {
    /// The service is known to run (and be healthy, for a monitor).
    pub fn is_running(&self) -> bool {
        matches!(self, Outcome::Running)
    }

    /// The service is known not to run: the only outcomes after which a stop may count as done.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Outcome::Stopped | Outcome::Killed { .. })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Running => f.write_str("running"),
            Outcome::Stopped => f.write_str("stopped"),
            Outcome::Killed { limit } => write!(f, "killed with SIGKILL after the stop timeout of {limit:?}"),
            Outcome::Failed(e) => write!(f, "failed: {e}"),
            Outcome::TimedOut { limit } => write!(f, "timed out after {limit:?}"),
        }
    }
}

/// What the drivers need from the agent: where OCF agents and systemctl are, and the supervised processes.
/// Cheap to clone (the supervisor is shared), so each spawned action can own one.
#[derive(Debug, Clone)]
pub struct DriverContext {
    /// `OCF_ROOT` (`/usr/lib/ocf`): agents are `$OCF_ROOT/resource.d/PROVIDER/TYPE`.
    pub ocf_root: PathBuf,
    /// The `systemctl` program (tests supply a stand-in, since no systemd runs in CI: DESIGN.md §5).
    pub systemctl: PathBuf,
    /// The `exec: {run}` processes of this agent.
    pub supervisor: Supervisor,
}

impl DriverContext {
    /// The standard paths; unexpected exits of supervised processes are reported on `exits` if given.
    pub fn new(exits: Option<mpsc::UnboundedSender<ProcessExit>>) -> DriverContext {
        DriverContext {
            ocf_root: PathBuf::from("/usr/lib/ocf"),
            systemctl: PathBuf::from("systemctl"),
            supervisor: Supervisor::new(exits),
        }
    }
}

impl Default for DriverContext {
    fn default() -> DriverContext {
        DriverContext::new(None)
    }
}

/// The three things a driver can do; `Status` carries the monitor interval OCF agents are told (0 = a probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Start,
    Stop,
    Status { interval: Duration },
}

/// Runs `action` on `service` within the action's limit and says what came of it. Never panics; every
/// failure is in the outcome.
pub async fn run(action: Action, service: &Service, ctx: &DriverContext) -> Outcome {
    let limit = action.limit(service);
    match action {
        Action::Start => driver(Verb::Start, service, ctx, limit).await,
        Action::Stop => driver(Verb::Stop, service, ctx, limit).await,
        Action::Status => driver(Verb::Status { interval: Duration::ZERO }, service, ctx, limit).await,
        Action::Monitor => monitor(service, ctx, limit).await,
    }
}

async fn driver(verb: Verb, service: &Service, ctx: &DriverContext, limit: Duration) -> Outcome {
    let Driver::Run { command } = &service.driver else {
        return scripts::run(verb, service, ctx, limit).await;
    };
    let supervisor = &ctx.supervisor;
    match verb {
        Verb::Start => supervisor.start(&service.name, command, limit).await,
        Verb::Stop => supervisor.stop(&service.name, limit).await,
        Verb::Status { .. } => supervisor.status(&service.name),
    }
}

/// Driver status, then the probes, all within `limit` (one deadline for the whole check).
async fn monitor(service: &Service, ctx: &DriverContext, limit: Duration) -> Outcome {
    // The one clock read of the drivers: the deadline shared by the status command and the probes.
    let deadline = tokio::time::Instant::now() + limit;
    let status = driver(Verb::Status { interval: service.monitor.interval }, service, ctx, limit).await;
    if !status.is_running() {
        return status;
    }
    let probes = async {
        if let Some(check) = &service.monitor.http {
            probe::http(check).await?;
        }
        if let Some(address) = service.monitor.tcp {
            probe::tcp(address).await?;
        }
        Ok::<(), DriverError>(())
    };
    match tokio::time::timeout_at(deadline, probes).await {
        Ok(Ok(())) => Outcome::Running,
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_) => Outcome::TimedOut { limit },
    }
}
