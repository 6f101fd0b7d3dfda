//! `ocf:heartbeat:nginx` from Debian's resource-agents running Debian's nginx: the guide's web server under
//! the agent Pacemaker would use, with hactl's http probe on top.

use std::path::Path;
use std::time::Duration;

use hactl::manifest::model::HttpCheck;
use hactl::sys::service::{Action, DriverContext, Outcome, run};

use super::support::{Reaper, alive, ocf, read_pid, service};

/// A config that keeps everything inside `dir` and serves 200 on 127.0.0.1:`port`.
fn nginx_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon on;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "hactl\n"; }}
  }}
}}
"#
    )
}

fn require(path: &str, package: &str) {
    assert!(Path::new(path).exists(), "{path} is missing: install Debian's {package} (apt-get install -y {package})");
}

#[tokio::test]
async fn real_heartbeat_nginx_agent_serves_and_stops() {
    require("/usr/lib/ocf/resource.d/heartbeat/nginx", "resource-agents");
    require("/usr/sbin/nginx", "nginx");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("nginx.conf");
    std::fs::write(&config, nginx_config(dir.path(), port)).unwrap();
    let pid_file = dir.path().join("nginx.pid");
    let mut reaper = Reaper::default();
    reaper.pid_file(&pid_file);

    let params = [("configfile", config.to_str().unwrap()), ("httpd", "/usr/sbin/nginx")];
    let mut svc = service("nginx1", ocf("heartbeat", "nginx", &params));
    svc.timeouts.start = Duration::from_secs(20);
    svc.timeouts.stop = Duration::from_secs(20);
    svc.monitor.http = Some(HttpCheck { url: format!("http://127.0.0.1:{port}/"), expect_status: 200 });
    let ctx = DriverContext::default();

    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    let started = run(Action::Start, &svc, &ctx).await;
    // nginx leads its own process group after daemonizing: kill it whole if anything below fails.
    let master = read_pid(&pid_file);
    reaper.group(master);
    assert_eq!(started, Outcome::Running, "error log: {}", error_log(dir.path()));
    assert_eq!(run(Action::Monitor, &svc, &ctx).await, Outcome::Running);

    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
    let master = master.unwrap();
    assert!(!alive(master), "nginx master {master} still runs after a successful stop");
    assert_eq!(run(Action::Monitor, &svc, &ctx).await, Outcome::Stopped);
}

fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}
