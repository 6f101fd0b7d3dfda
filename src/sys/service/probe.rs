//! The monitor's optional probes: an HTTP GET whose status must match, and a TCP connect. Each is bounded by
//! the caller (the whole monitor runs within `monitor.timeout`).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::DriverError;
use crate::manifest::model::HttpCheck;

/// The longest status line read; a server that sends more before `\r\n` does not speak HTTP.
const STATUS_LINE_MAX: usize = 8192;

/// Connects to `address`; the connection is closed at once.
pub async fn tcp(address: SocketAddr) -> Result<(), DriverError> {
    match TcpStream::connect(address).await {
        Ok(_) => Ok(()),
        Err(e) => Err(DriverError::Tcp { address: address.to_string(), problem: e.to_string() }),
    }
}

/// Sends `GET` over plain HTTP/1.1 and compares the status code with `expect_status`.
pub async fn http(check: &HttpCheck) -> Result<(), DriverError> {
    let fail = |problem: String| DriverError::Http { url: check.url.clone(), problem };
    let target = Target::parse(&check.url).map_err(fail)?;
    let mut stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| fail(format!("cannot connect to {}:{}: {e}", target.host, target.port)))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hactl-monitor\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| fail(format!("cannot send the request: {e}")))?;
    let line = read_status_line(&mut stream).await.map_err(fail)?;
    let status = parse_status(&line).ok_or_else(|| fail(format!("not an HTTP status line: {line:?}")))?;
    if status == check.expect_status {
        Ok(())
    } else {
        Err(fail(format!("status {status}, expected {}", check.expect_status)))
    }
}

async fn read_status_line(stream: &mut TcpStream) -> Result<String, String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") {
            return Ok(String::from_utf8_lossy(&buffer[..end]).into_owned());
        }
        if buffer.len() > STATUS_LINE_MAX {
            return Err(format!("no status line in the first {STATUS_LINE_MAX} bytes"));
        }
        match stream.read(&mut chunk).await {
            Ok(0) => return Err(format!("connection closed before a status line ({} bytes)", buffer.len())),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("cannot read the response: {e}")),
        }
    }
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3).then(|| code.parse().ok()).flatten()
}

/// Where an `http://` URL points.
#[derive(Debug, PartialEq)]
struct Target {
    /// Host name or address, IPv6 without brackets (for connecting).
    host: String,
    /// Port, 80 by default.
    port: u16,
    /// `host[:port]` as written (the Host header).
    authority: String,
    /// Path and query, `/` at least.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url.strip_prefix("http://").ok_or("only http:// URLs can be probed")?;
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("no usable host in {url:?}"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed '[' in the host")?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| format!("invalid port {p:?}"))?,
        };
        Ok(Target { host: host.to_string(), port, authority: authority.to_string(), path })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let t = Target::parse("http://192.0.2.10:8080/health?x=1#frag").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("192.0.2.10", 8080, "/health?x=1"));
        let t = Target::parse("http://[2001:db8::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str()), ("2001:db8::1", 80, "[2001:db8::1]"));
        let t = Target::parse("http://example.test?q").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/?q"));
        assert!(Target::parse("https://example.test/").is_err());
        assert!(Target::parse("http://host:99999/").is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("HTTP/1.1 204 No Content"), Some(204));
        assert_eq!(parse_status("HTTP/1.0 500"), Some(500));
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
    }
}
