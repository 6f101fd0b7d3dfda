//! The monitor's http and tcp probes against tiny listeners on 127.0.0.1; a monitor passes only when the
//! driver's status and every probe pass.

use std::time::Duration;

use hactl::manifest::model::HttpCheck;
use hactl::sys::service::{Action, DriverContext, DriverError, Outcome, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::support::{exec, service};

/// Serves every connection with `status_line` after reading the request head; returns the port.
async fn http_server(status_line: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 512];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                assert!(request.starts_with(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:"));
                let reply = format!("{status_line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

fn monitored(http: Option<HttpCheck>, tcp: Option<u16>, status: &str) -> hactl::manifest::model::Service {
    let mut svc = service("web", exec("true", "true", status));
    svc.monitor.http = http;
    svc.monitor.tcp = tcp.map(|port| ([127, 0, 0, 1], port).into());
    svc.monitor.timeout = Duration::from_secs(2);
    svc
}

fn check(port: u16, expect_status: u16) -> Option<HttpCheck> {
    Some(HttpCheck { url: format!("http://127.0.0.1:{port}/health"), expect_status })
}

#[tokio::test]
async fn http_probe_compares_the_status() {
    let ctx = DriverContext::default();
    let ok = http_server("HTTP/1.1 200 OK").await;
    assert_eq!(run(Action::Monitor, &monitored(check(ok, 200), None, "true"), &ctx).await, Outcome::Running);
    let broken = http_server("HTTP/1.1 503 Service Unavailable").await;
    match run(Action::Monitor, &monitored(check(broken, 200), None, "true"), &ctx).await {
        Outcome::Failed(DriverError::Http { problem, .. }) => assert_eq!(problem, "status 503, expected 200"),
        other => panic!("expected the http probe to fail, got {other:?}"),
    }
    // The probe is part of Monitor only: Status stays cheap and answers from the driver alone.
    assert_eq!(run(Action::Status, &monitored(check(broken, 200), None, "true"), &ctx).await, Outcome::Running);
}

#[tokio::test]
async fn probes_run_only_when_the_driver_says_running() {
    let ok = http_server("HTTP/1.1 200 OK").await;
    let outcome = run(Action::Monitor, &monitored(check(ok, 200), None, "exit 3"), &DriverContext::default()).await;
    assert_eq!(outcome, Outcome::Stopped);
}

#[tokio::test]
async fn tcp_probe_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().port();
    let ctx = DriverContext::default();
    assert_eq!(run(Action::Monitor, &monitored(None, Some(open), "true"), &ctx).await, Outcome::Running);
    drop(listener);
    // The port was just released by this test: nothing listens there now.
    let outcome = run(Action::Monitor, &monitored(None, Some(open), "true"), &ctx).await;
    assert!(matches!(outcome, Outcome::Failed(DriverError::Tcp { .. })), "{outcome:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_the_monitor_out() {
    // Accepts (the kernel completes the handshake from the backlog) but never replies.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut svc = monitored(check(port, 200), None, "true");
    svc.monitor.timeout = Duration::from_millis(300);
    let outcome = run(Action::Monitor, &svc, &DriverContext::default()).await;
    assert_eq!(outcome, Outcome::TimedOut { limit: Duration::from_millis(300) });
    drop(listener);
}
