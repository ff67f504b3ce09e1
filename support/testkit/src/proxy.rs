//! Proxies in front of the in-process backend: a plain-HTTP one that injects faults (drops,
//! delays, 5xx, truncated or malformed answers, a 400 problem) per method and path, and a
//! TLS-terminating one whose certificate comes from a CA made by the test.
#![allow(clippy::indexing_slicing)] // fixtures: a slice out of range is a broken test

use crate::online::Env;
use crate::tls::TestCa;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request (the backend applies it), then close without answering.
    DropAfterForward,
    /// Forward, then hold the answer longer than the client waits.
    DelayAfterForward(Duration),
    /// Answer 500 without forwarding.
    Reject500,
    /// Forward (applied), then answer 503 instead of the real answer.
    ForwardThen503,
    /// Forward, then send only the first half of the real answer.
    Truncate,
    /// Forward, then answer 200 with a body that is not JSON.
    Malformed,
    /// Answer a 400 problem without forwarding.
    Problem400,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    pub path_prefix: &'static str,
    pub fault: Fault,
    pub times: usize,
}

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub fault: Option<Fault>,
}

#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    pub fn start(env: &Env) -> Self {
        let backend = env.addr();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let listener = env.rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (r, s) = (Arc::clone(&rules), Arc::clone(&seen));
        env.rt.spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (r, s) = (Arc::clone(&r), Arc::clone(&s));
                tokio::spawn(async move {
                    let _ = serve(conn, backend, r, s).await;
                });
            }
        });
        Self { url, rules, seen }
    }

    pub fn add(&self, method: &'static str, path_prefix: &'static str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            method,
            path_prefix,
            fault,
            times,
        });
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
        self.seen.lock().unwrap().clear();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Rules not used up.
    pub fn pending_rules(&self) -> usize {
        self.rules
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.times > 0)
            .count()
    }
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    // one request per connection: the backend closes after answering
    let mut out = String::new();
    for l in head.split("\r\n").filter(|l| !l.is_empty()) {
        if l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut req = out.into_bytes();
    req.extend_from_slice(&body);
    Ok(Some((req, body)))
}

async fn forward(backend: SocketAddr, req: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut b = TcpStream::connect(backend).await?;
    b.write_all(req).await?;
    let mut resp = Vec::new();
    b.read_to_end(&mut resp).await?;
    Ok(resp)
}

fn canned(status: &str, body: &str, ctype: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(
    mut conn: TcpStream,
    backend: SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let Some((req, body)) = read_request(&mut conn).await? else {
        return Ok(());
    };
    let line = String::from_utf8_lossy(&req)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let fault = {
        let mut rs = rules.lock().unwrap();
        rs.iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.starts_with(r.path_prefix))
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            })
    };
    seen.lock().unwrap().push(Seen {
        method,
        path,
        body,
        fault: fault.clone(),
    });
    answer(&mut conn, backend, &req, fault).await?;
    conn.shutdown().await
}

/// Answers one request as `fault` says (forwarding it to `backend` unless the fault answers
/// by itself).
async fn answer(
    conn: &mut TcpStream,
    backend: SocketAddr,
    req: &[u8],
    fault: Option<Fault>,
) -> std::io::Result<()> {
    let problem = |code: &str| {
        format!(
            r#"{{"type":"about:blank","title":"injected","status":0,"detail":"injected {code}","code":"{code}"}}"#
        )
    };
    match fault {
        None => {
            let resp = forward(backend, req).await?;
            conn.write_all(&resp).await?;
        }
        Some(Fault::DropAfterForward) => {
            let _ = forward(backend, req).await?;
        }
        Some(Fault::DelayAfterForward(d)) => {
            let resp = forward(backend, req).await?;
            tokio::time::sleep(d).await;
            let _ = conn.write_all(&resp).await;
        }
        Some(Fault::Reject500) => {
            conn.write_all(&canned(
                "500 Internal Server Error",
                &problem("internal"),
                "application/problem+json",
            ))
            .await?;
        }
        Some(Fault::ForwardThen503) => {
            let _ = forward(backend, req).await?;
            conn.write_all(&canned(
                "503 Service Unavailable",
                &problem("busy"),
                "application/problem+json",
            ))
            .await?;
        }
        Some(Fault::Truncate) => {
            let resp = forward(backend, req).await?;
            // keep the headers (with the full content-length), cut the body in half
            let head_end = resp
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(resp.len(), |p| p + 4);
            let body_len = resp.len() - head_end;
            conn.write_all(&resp[..head_end + body_len / 2]).await?;
        }
        Some(Fault::Malformed) => {
            let _ = forward(backend, req).await?;
            conn.write_all(&canned("200 OK", "{\"balance\": tru", "application/json"))
                .await?;
        }
        Some(Fault::Problem400) => {
            conn.write_all(&canned(
                "400 Bad Request",
                &problem("injected_bad_request"),
                "application/problem+json",
            ))
            .await?;
        }
    }
    Ok(())
}

/// Starts a TLS proxy in front of the backend; returns (https URL, CA PEM).
pub fn tls_proxy(env: &Env) -> (String, String) {
    let ca = TestCa::new("ManCard test CA");
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config(&["127.0.0.1", "localhost"]));
    let backend = env.addr();
    let listener = env
        .rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    env.rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}"), ca.pem)
}
