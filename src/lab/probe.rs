//! The client probe: from the client namespace, an HTTP GET of the floating address every 10 ms with a short
//! timeout, recording which node answered (the guide's test page names it) or why it failed. The probe is a
//! thread that entered the client's network namespace, so its sockets are the client's; no process per request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::LabError;

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 200 with the test page of this node.
    Node(String),
    /// No usable answer: connect or read timed out, refused, another status, a page naming no node.
    Failed(String),
}

/// One request of the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    /// When the request started, from the run's origin.
    pub at: Duration,
    /// What it got.
    pub answer: Answer,
}

impl ProbeRecord {
    /// The node that answered, if any.
    pub fn node(&self) -> Option<&str> {
        match &self.answer {
            Answer::Node(n) => Some(n),
            Answer::Failed(_) => None,
        }
    }
}

/// The node named by a test page ("Test page served from ha1"), if the body is one.
pub fn parse_page(body: &str) -> Option<String> {
    const MARK: &str = "Test page served from ";
    let rest = &body[body.find(MARK)? + MARK.len()..];
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    (!name.is_empty()).then_some(name)
}

/// One GET of `target` within `timeout` in total, from the calling thread's namespace.
pub fn get_once(target: SocketAddr, timeout: Duration) -> Answer {
    let deadline = Instant::now() + timeout;
    let mut stream = match TcpStream::connect_timeout(&target, timeout) {
        Ok(s) => s,
        Err(e) => return Answer::Failed(format!("connect: {}", e.kind())),
    };
    let request = format!("GET / HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", target.ip());
    let mut response = Vec::new();
    let mut buf = [0u8; 2048];
    // At most 64 reads: a test page is a few hundred bytes.
    let result = (|| -> std::io::Result<()> {
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(request.as_bytes())?;
        for _ in 0..64 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            stream.set_read_timeout(Some(left))?;
            match stream.read(&mut buf)? {
                0 => return Ok(()),
                n => response.extend_from_slice(&buf[..n]),
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        return Answer::Failed(format!("read: {}", e.kind()));
    }
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
        return Answer::Failed(format!("status: {}", text.lines().next().unwrap_or("")));
    }
    parse_page(&text).map_or_else(|| Answer::Failed("page names no node".into()), Answer::Node)
}

/// Runs `f` on a new thread that entered network namespace `ns` first (setns affects only that thread).
pub(crate) fn spawn_in<T: Send + 'static>(
    ns: &str,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<Result<T, LabError>>, LabError> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).map_err(LabError::io(&path))?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|errno| LabError::Sys { what: format!("setns {path}"), errno })?;
            Ok(f())
        })
        .map_err(LabError::io("thread"))
}

/// A running probe; [`Prober::finish`] stops it and returns its records.
///
/// A request that hangs (its SYN went to a node that is gone) would hold a single prober for the whole timeout
/// and blur the outage's end by that much; so `timeout / period` workers take turns, and a request starts
/// every `period` whatever the earlier ones are doing: the outage is measured to within one period.
#[derive(Debug)]
pub struct Prober {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Result<Vec<ProbeRecord>, LabError>>>,
}

impl Prober {
    /// Starts probing `target` from namespace `client_ns` every `period` with `timeout`, for at most `limit`;
    /// record times are measured from `origin` (share it with the sampler to compare the two).
    pub fn start(
        client_ns: &str,
        target: SocketAddr,
        period: Duration,
        timeout: Duration,
        limit: Duration,
        origin: Instant,
    ) -> Result<Prober, LabError> {
        let period = period.max(Duration::from_millis(1));
        let count = u32::try_from(timeout.as_nanos().div_ceil(period.as_nanos())).unwrap_or(1).clamp(1, 50);
        let stop = Arc::new(AtomicBool::new(false));
        let first = Instant::now() + period;
        let mut prober = Prober { stop: Arc::clone(&stop), workers: Vec::new() };
        for k in 0..count {
            let flag = Arc::clone(&stop);
            let (start, step) = (first + period * k, period * count);
            let worker = spawn_in(client_ns, "lab-probe", move || {
                let mut records = Vec::new();
                let ticks = limit.as_nanos() / step.as_nanos() + 1;
                for i in 0..ticks {
                    // u32 is plenty: a probe runs for minutes at most.
                    let due = start + step * u32::try_from(i).unwrap_or(u32::MAX);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    if flag.load(Ordering::Relaxed) || due.duration_since(first) >= limit {
                        break;
                    }
                    let at = Instant::now();
                    records.push(ProbeRecord { at: at.duration_since(origin), answer: get_once(target, timeout) });
                }
                records
            });
            match worker {
                Ok(w) => prober.workers.push(w),
                Err(e) => {
                    // Stop the workers already running before reporting.
                    let _ = prober.finish();
                    return Err(e);
                }
            }
        }
        Ok(prober)
    }

    /// Stops the probe and returns what it recorded, in order of time.
    pub fn finish(self) -> Result<Vec<ProbeRecord>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut records = Vec::new();
        for worker in self.workers {
            records.extend(worker.join().unwrap_or(Err(LabError::Panicked("probe")))?);
        }
        records.sort_by_key(|r| r.at);
        Ok(records)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_their_node() {
        assert_eq!(parse_page(&crate::lab::web::page("ha2")).as_deref(), Some("ha2"));
        assert_eq!(parse_page("<h1>Welcome to nginx!</h1>"), None);
        assert_eq!(parse_page("Test page served from "), None);
    }

    #[test]
    fn refused_connection_is_a_failure() {
        // A port on loopback that nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let answer = get_once(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(100));
        assert!(matches!(answer, Answer::Failed(ref why) if why.starts_with("connect")), "{answer:?}");
    }
}
