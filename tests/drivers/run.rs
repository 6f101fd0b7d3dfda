//! `exec: {run}`: a foreground process supervised in its own process group.

use std::time::{Duration, Instant};

use hactl::manifest::model::Driver;
use hactl::sys::service::supervise::group_alive;
use hactl::sys::service::{Action, DriverContext, DriverError, Outcome, ProcessExit, Supervisor, run};
use tokio::sync::mpsc;

use super::support::{Reaper, alive, eventually, read_pid, service};

fn supervised(name: &str, command: &str) -> hactl::manifest::model::Service {
    service(name, Driver::Run { command: command.into() })
}

#[tokio::test]
async fn start_status_stop_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let child_pid = dir.path().join("child.pid");
    let svc = supervised("worker", &format!("sleep 301 & echo $! > {}; sleep 302", child_pid.display()));
    let ctx = DriverContext::default();
    let mut reaper = Reaper::default();

    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    let pgid = ctx.supervisor.pgid(&svc.name).unwrap();
    reaper.group(Some(pgid));
    assert!(eventually(Duration::from_secs(2), || read_pid(&child_pid).is_some()).await);
    let child = read_pid(&child_pid).unwrap();
    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Running);
    assert_eq!(run(Action::Monitor, &svc, &ctx).await, Outcome::Running);
    // Idempotent: a second start does not start a second process.
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    assert_eq!(ctx.supervisor.pgid(&svc.name), Some(pgid));

    let began = Instant::now();
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
    assert!(began.elapsed() < Duration::from_secs(1), "stop took {:?}", began.elapsed());
    assert!(!group_alive(pgid), "process group {pgid} still has live members after stop");
    assert!(!alive(child), "the background child {child} survived the stop");
    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped, "stop is idempotent");
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let child_pid = dir.path().join("child.pid");
    // Ignored signals stay ignored across fork and exec, so the background sleep ignores SIGTERM too.
    let command = format!("trap '' TERM; sleep 303 & echo $! > {}; wait", child_pid.display());
    let mut svc = supervised("stubborn", &command);
    svc.timeouts.stop = Duration::from_millis(500);
    let ctx = DriverContext::default();
    let mut reaper = Reaper::default();

    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    let pgid = ctx.supervisor.pgid(&svc.name).unwrap();
    reaper.group(Some(pgid));
    assert!(eventually(Duration::from_secs(2), || read_pid(&child_pid).is_some()).await);
    let child = read_pid(&child_pid).unwrap();

    let began = Instant::now();
    let outcome = run(Action::Stop, &svc, &ctx).await;
    let took = began.elapsed();
    assert_eq!(outcome, Outcome::Killed { limit: Duration::from_millis(500) });
    assert!(outcome.is_stopped());
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(3), "stop took {took:?}");
    assert!(!group_alive(pgid) && !alive(child), "SIGKILL left processes of group {pgid} alive");
}

#[tokio::test]
async fn an_exit_is_reported_at_once_and_the_service_can_start_again() {
    let (tx, mut exits) = mpsc::unbounded_channel();
    let ctx = DriverContext::new(Some(tx));
    let svc = supervised("crashy", "sleep 0.2; exit 4");
    let mut reaper = Reaper::default();

    let began = Instant::now();
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    reaper.group(ctx.supervisor.pgid(&svc.name));
    let exit = tokio::time::timeout(Duration::from_secs(5), exits.recv()).await.unwrap().unwrap();
    // The exit comes from waiting on the child, not from a poll: well under a second after 0.2 s.
    assert!(began.elapsed() < Duration::from_secs(1), "exit noticed after {:?}", began.elapsed());
    assert_eq!(exit.service, svc.name);
    assert!(exit.status.contains('4'), "{}", exit.status);
    match run(Action::Monitor, &svc, &ctx).await {
        Outcome::Failed(DriverError::Exited { pid, .. }) => assert_eq!(pid, exit.pid),
        other => panic!("expected the monitor to report the exit, got {other:?}"),
    }

    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    reaper.group(ctx.supervisor.pgid(&svc.name));
    assert_ne!(ctx.supervisor.pgid(&svc.name), Some(i32::try_from(exit.pid).unwrap()));
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
    // A stop is not an unexpected exit: nothing more is reported.
    assert!(exits.try_recv().is_err());
}

fn recording(dir: &std::path::Path, exits: Option<mpsc::UnboundedSender<ProcessExit>>) -> DriverContext {
    DriverContext { supervisor: Supervisor::new(exits).with_records(dir.to_path_buf()), ..DriverContext::default() }
}

#[tokio::test]
async fn a_restarted_agent_adopts_its_running_processes() {
    let dir = tempfile::tempdir().unwrap();
    let svc = supervised("adoptee", "sleep 304");
    let mut reaper = Reaper::default();
    let before = recording(dir.path(), None);
    assert_eq!(run(Action::Start, &svc, &before).await, Outcome::Running);
    let pgid = before.supervisor.pgid(&svc.name).unwrap();
    reaper.group(Some(pgid));

    // A new supervisor over the same records: what the agent has after a restart or a re-exec.
    let after = recording(dir.path(), None);
    assert_eq!(after.supervisor.recorded(), vec![svc.name.clone()]);
    assert_eq!(run(Action::Status, &svc, &after).await, Outcome::Running);
    assert_eq!(run(Action::Start, &svc, &after).await, Outcome::Running);
    assert_eq!(after.supervisor.pgid(&svc.name), Some(pgid), "a second copy was started");
    assert_eq!(run(Action::Stop, &svc, &after).await, Outcome::Stopped);
    assert!(!group_alive(pgid));
    assert!(after.supervisor.recorded().is_empty(), "the record outlived the stop");
}

#[tokio::test]
async fn an_adopted_process_that_exits_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let svc = supervised("shortlived", "sleep 0.3");
    let mut reaper = Reaper::default();
    let before = recording(dir.path(), None);
    assert_eq!(run(Action::Start, &svc, &before).await, Outcome::Running);
    reaper.group(before.supervisor.pgid(&svc.name));
    let (tx, mut exits) = mpsc::unbounded_channel();
    let after = recording(dir.path(), Some(tx));
    assert_eq!(run(Action::Status, &svc, &after).await, Outcome::Running);
    let exit = tokio::time::timeout(Duration::from_secs(3), exits.recv()).await.unwrap().unwrap();
    assert_eq!(exit.service, svc.name);
    assert!(matches!(run(Action::Status, &svc, &after).await, Outcome::Failed(DriverError::Exited { .. })));
    assert_eq!(run(Action::Stop, &svc, &after).await, Outcome::Stopped);
}

#[tokio::test]
async fn a_record_whose_pid_was_reused_is_never_signalled() {
    let dir = tempfile::tempdir().unwrap();
    // This test's own pid with a start time that is not its own: the pid "was reused" by this process.
    std::fs::write(dir.path().join("ghost.pid"), format!("{} 1\n", std::process::id())).unwrap();
    let ctx = recording(dir.path(), None);
    let svc = supervised("ghost", "sleep 305");
    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
    assert!(ctx.supervisor.recorded().is_empty(), "a stale record is forgotten");
}

#[tokio::test]
async fn an_unreadable_record_stops_everything_until_it_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("mangled.pid");
    std::fs::write(&record, "not a pid record\n").unwrap();
    let ctx = recording(dir.path(), None);
    let svc = supervised("mangled", "sleep 306");
    let mut reaper = Reaper::default();

    // Whether a copy runs is unknown: neither stopped nor started, and the record stays for the operator.
    let unknown = |outcome: Outcome| matches!(outcome, Outcome::Failed(DriverError::RecordUnreadable { .. }));
    assert!(unknown(run(Action::Status, &svc, &ctx).await), "status of an unreadable record");
    assert!(unknown(run(Action::Start, &svc, &ctx).await), "start with an unreadable record");
    assert_eq!(ctx.supervisor.pgid(&svc.name), None, "a process was started over an unreadable record");
    assert!(unknown(run(Action::Stop, &svc, &ctx).await), "stop with an unreadable record");
    assert!(record.exists(), "the unreadable record was removed");

    // Once the operator has removed it, the service starts as usual.
    std::fs::remove_file(&record).unwrap();
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    reaper.group(ctx.supervisor.pgid(&svc.name));
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
}
