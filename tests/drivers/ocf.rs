//! `ocf` against Debian's real `ocf:heartbeat:Dummy`, and against an agent the test writes under its own
//! OCF_ROOT to check the environment Pacemaker gives agents, exit reasons and time limits.

use std::path::Path;
use std::time::Duration;

use hactl::sys::service::{Action, DriverContext, DriverError, Outcome, run};

use super::support::{ocf, script, service};

const OCF_ROOT: &str = "/usr/lib/ocf";

/// Fails the test with the install hint when Debian's resource-agents package is missing.
fn require_resource_agents() {
    let dummy = Path::new(OCF_ROOT).join("resource.d/heartbeat/Dummy");
    assert!(
        dummy.exists(),
        "{} is missing: install Debian's resource-agents package (apt-get install -y resource-agents)",
        dummy.display()
    );
}

#[tokio::test]
async fn real_heartbeat_dummy_agent() {
    require_resource_agents();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dummy.state");
    let svc = service("dummy1", ocf("heartbeat", "Dummy", &[("state", &state.display().to_string())]));
    let ctx = DriverContext::default();

    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    assert!(state.exists(), "Dummy's start did not create its state file");
    assert_eq!(run(Action::Monitor, &svc, &ctx).await, Outcome::Running);
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
    assert!(!state.exists());
    assert_eq!(run(Action::Monitor, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped, "stopping a stopped agent succeeds");
}

#[tokio::test]
async fn a_missing_agent_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = DriverContext { ocf_root: dir.path().to_path_buf(), ..DriverContext::default() };
    let svc = service("none", ocf("heartbeat", "NoSuchAgent", &[]));
    let outcome = run(Action::Start, &svc, &ctx).await;
    assert!(matches!(outcome, Outcome::Failed(DriverError::Spawn { .. })), "{outcome:?}");
}

#[tokio::test]
async fn agents_get_pacemakers_environment_and_report_exit_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env");
    // Start records the environment; monitor fails with an exit reason; stop sleeps past its limit.
    let agent = format!(
        r#"#!/bin/sh
case "$1" in
  start) env | grep '^OCF_' | sort > {env}; exit 0 ;;
  monitor) echo "ocf-exit-reason:config file /etc/x.conf is missing" >&2; exit 6 ;;
  stop) sleep 30 ;;
esac
"#,
        env = env_file.display()
    );
    script(&dir.path().join("resource.d/acme/probe"), &agent);
    let ctx = DriverContext { ocf_root: dir.path().to_path_buf(), ..DriverContext::default() };
    let mut svc = service("probe1", ocf("acme", "probe", &[("config", "/etc/x.conf"), ("port_no", "8080")]));
    svc.timeouts.start = Duration::from_millis(1500);
    svc.timeouts.stop = Duration::from_millis(300);

    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    let env = std::fs::read_to_string(&env_file).unwrap();
    for line in [
        format!("OCF_ROOT={}", dir.path().display()),
        "OCF_RESOURCE_INSTANCE=probe1".into(),
        "OCF_RESOURCE_TYPE=probe".into(),
        "OCF_RESOURCE_PROVIDER=acme".into(),
        "OCF_RESKEY_config=/etc/x.conf".into(),
        "OCF_RESKEY_port_no=8080".into(),
        "OCF_RESKEY_CRM_meta_timeout=1500".into(),
        "OCF_RA_VERSION_MAJOR=1".into(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from the agent's environment:\n{env}");
    }
    match run(Action::Monitor, &svc, &ctx).await {
        Outcome::Failed(DriverError::Exit { code: 6, meaning, output, .. }) => {
            assert_eq!(meaning, "OCF_ERR_CONFIGURED");
            assert_eq!(output, "config file /etc/x.conf is missing");
        }
        other => panic!("expected OCF_ERR_CONFIGURED, got {other:?}"),
    }
    let stop = run(Action::Stop, &svc, &ctx).await;
    assert_eq!(stop, Outcome::TimedOut { limit: Duration::from_millis(300) });
    assert!(!stop.is_stopped());
}

#[tokio::test]
async fn parameter_names_that_are_no_variable_names_are_refused() {
    let svc = service("odd", ocf("heartbeat", "Dummy", &[("bad-name", "x")]));
    let outcome = run(Action::Start, &svc, &DriverContext::default()).await;
    assert!(matches!(outcome, Outcome::Failed(DriverError::Config(_))), "{outcome:?}");
}
