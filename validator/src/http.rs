//! A minimal blocking HTTP/1.1 client (std only) for the validator's two calls: GET the config
//! bundle and POST a batch. `http://` only (a deployment puts TLS in front, e.g. a local
//! stunnel/WireGuard; the payloads are signed end to end either way). One request per
//! connection (`Connection: close`), Content-Length or chunked responses, bounded size.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use thiserror::Error;

/// Largest response body accepted (a config bundle with a big deny list fits).
pub const MAX_BODY: usize = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("unsupported URL {0:?} (only http://host[:port]/path)")]
    Url(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed HTTP response: {0}")]
    Protocol(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body if the status is 2xx, an error with the body's text otherwise.
    pub fn ok(self) -> Result<Vec<u8>, HttpError> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(HttpError::Status {
                status: self.status,
                body: String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(500)
                    .collect(),
            })
        }
    }
}

struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, HttpError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::Url(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.to_string(),
            p.parse::<u16>().map_err(|_| HttpError::Url(url.into()))?,
        ),
        _ => (authority.to_string(), 80),
    };
    if host.is_empty() {
        return Err(HttpError::Url(url.into()));
    }
    Ok(Url {
        host,
        port,
        path: path.to_string(),
    })
}

/// Joins a base URL and a path (`http://h:1/` + `/v1/x`).
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Sends one request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let u = parse_url(url)?;
    let host = u.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (host, u.port).to_socket_addrs()?.collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut s = match stream {
        Some(s) => s,
        None => {
            return Err(HttpError::Io(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
            })))
        }
    };
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nUser-Agent: mancard-validator\r\nAccept: */*\r\n",
        u.path, u.host, u.port
    );
    for (k, v) in headers {
        if k.contains(['\r', '\n']) || v.contains(['\r', '\n']) {
            return Err(HttpError::Protocol("header with a line break".into()));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some((ctype, b)) => {
            head.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                b.len()
            ));
            s.write_all(head.as_bytes())?;
            s.write_all(b)?;
        }
        None => {
            head.push_str("\r\n");
            s.write_all(head.as_bytes())?;
        }
    }
    s.flush()?;
    let mut raw = Vec::new();
    s.take(MAX_BODY as u64 + 65_536).read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn get(url: &str, timeout: Duration) -> Result<Response, HttpError> {
    request("GET", url, &[], None, timeout)
}

pub fn post(
    url: &str,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, HttpError> {
    request("POST", url, &[], Some((content_type, body)), timeout)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a complete HTTP/1.1 response (the connection was closed by the server).
pub fn parse_response(raw: &[u8]) -> Result<Response, HttpError> {
    let end =
        find(raw, b"\r\n\r\n").ok_or_else(|| HttpError::Protocol("no end of headers".into()))?;
    let (head, rest) = raw.split_at(end);
    let body = rest.get(4..).unwrap_or(&[]);
    let head =
        std::str::from_utf8(head).map_err(|_| HttpError::Protocol("headers not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Protocol(format!("bad status line {status_line:?}")))?;
    let mut content_length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            if k == "content-length" {
                content_length = Some(
                    v.parse::<usize>()
                        .map_err(|_| HttpError::Protocol("bad Content-Length".into()))?,
                );
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = content_length {
        body.get(..n)
            .ok_or_else(|| HttpError::Protocol("body shorter than Content-Length".into()))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let eol = find(b, b"\r\n").ok_or_else(|| HttpError::Protocol("bad chunk".into()))?;
        let (size_line, rest) = b.split_at(eol);
        let size_txt = std::str::from_utf8(size_line)
            .map_err(|_| HttpError::Protocol("bad chunk size".into()))?;
        let size_txt = size_txt.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_txt, 16)
            .map_err(|_| HttpError::Protocol("bad chunk size".into()))?;
        let rest = rest.get(2..).unwrap_or(&[]);
        if size == 0 {
            return Ok(out);
        }
        if out.len().saturating_add(size) > MAX_BODY {
            return Err(HttpError::Protocol("body too large".into()));
        }
        let chunk = rest
            .get(..size)
            .ok_or_else(|| HttpError::Protocol("truncated chunk".into()))?;
        out.extend_from_slice(chunk);
        b = rest.get(size + 2..).unwrap_or(&[]);
    }
}

/// Path of the signed config bundle on the backend (raw `ValidatorConfig` bytes; the ETag is
/// the bundle version, `If-None-Match` gives 304).
pub const CONFIG_PATH: &str = "/v1/validator/config";
/// Path where batches are POSTed (raw `TapBatch` bytes, `application/octet-stream`);
/// idempotent by batch id (a resend gets the stored answer, 200).
pub const BATCHES_PATH: &str = "/v1/validator/batches";

/// GETs the signed config bundle from `backend` (base URL). With `installed_version`, asks
/// `If-None-Match: "<version>"`; None when the backend answers 304 Not Modified.
pub fn fetch_config(
    backend: &str,
    installed_version: Option<u64>,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, HttpError> {
    let url = join(backend, CONFIG_PATH);
    let etag = installed_version.map(|v| format!("\"{v}\""));
    let headers: Vec<(&str, &str)> = etag
        .as_deref()
        .map(|e| vec![("If-None-Match", e)])
        .unwrap_or_default();
    let r = request("GET", &url, &headers, None, timeout)?;
    if r.status == 304 {
        return Ok(None);
    }
    r.ok().map(Some)
}

/// POSTs one sealed batch; Ok only when the backend acknowledged it (2xx).
pub fn send_batch(
    backend: &str,
    batch: &crate::journal::SealedBatch,
    timeout: Duration,
) -> Result<(), String> {
    post(
        &join(backend, BATCHES_PATH),
        "application/octet-stream",
        &batch.bytes,
        timeout,
    )
    .and_then(Response::ok)
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_length_and_chunked() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.body), (200, b"abc".to_vec()));
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body), (201, b"abcde".to_vec()));
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(join("http://a:1/", "/v1/x"), "http://a:1/v1/x");
        assert!(parse_url("https://x/").is_err());
        let u = parse_url("http://127.0.0.1:8080/v1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/v1")
        );
    }
}
