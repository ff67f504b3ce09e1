//! A fake backend on loopback: serves a config bundle and accepts batches, recording every
//! batch id it sees, deduplicating by batch id like the real backend must. Plain HTTP
//! ([`Acceptor::start`]) or HTTPS with a given rustls server config ([`Acceptor::start_tls`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use mancard_protocol::{Pseudonym, PublicKey, TapBatch};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Record and answer 200.
    Ack,
    /// Record, then close without answering (the response is lost).
    DropResponse,
    /// Record, then never answer (until the client dies).
    Hang,
    /// Answer 503 without recording.
    Unavailable,
}

#[derive(Debug, Default)]
pub struct State {
    /// Every batch id POSTed, in order (including resends).
    pub posts: Vec<[u8; 16]>,
    /// Batch ids accepted (deduplicated).
    pub batches: HashSet<[u8; 16]>,
    /// (pseudonym, counter) settled.
    pub taps: HashSet<(Pseudonym, u32)>,
    /// Records that arrived in a batch id already accepted (must be ignored, not double-charged).
    pub duplicate_records: usize,
    pub bad_signatures: usize,
    pub config_gets: usize,
}

pub struct Acceptor {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    pub mode: Arc<Mutex<Mode>>,
    pub config: Arc<Mutex<Vec<u8>>>,
    pub validator_key: Arc<Mutex<Option<PublicKey>>>,
    /// TLS only: end each connection with close_notify (true) or just close the socket.
    pub close_notify: Arc<AtomicBool>,
    /// TLS only: connections whose handshake failed (e.g. the client refused our certificate).
    pub failed_handshakes: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

impl Acceptor {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// HTTPS: every connection is a rustls server connection with `config`.
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(Some(config))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let a = Self {
            url: format!("{scheme}://{addr}"),
            state: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Ack)),
            config: Arc::default(),
            validator_key: Arc::default(),
            close_notify: Arc::new(AtomicBool::new(true)),
            failed_handshakes: Arc::default(),
            addr,
            stop: Arc::default(),
        };
        let (state, mode, config, key, close_notify, failed, stop) = (
            a.state.clone(),
            a.mode.clone(),
            a.config.clone(),
            a.validator_key.clone(),
            a.close_notify.clone(),
            a.failed_handshakes.clone(),
            a.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(s) = conn else { continue };
                let (state, mode, config, key, close_notify, failed, tls) = (
                    state.clone(),
                    mode.clone(),
                    config.clone(),
                    key.clone(),
                    close_notify.clone(),
                    failed.clone(),
                    tls.clone(),
                );
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let Some(tls) = tls else {
                        let mut s = s;
                        handle(&mut s, &state, &mode, &config, &key);
                        return;
                    };
                    let mut s =
                        rustls::StreamOwned::new(rustls::ServerConnection::new(tls).unwrap(), s);
                    // Complete the handshake first, to record why it failed.
                    while s.conn.is_handshaking() {
                        if let Err(e) = s.conn.complete_io(&mut s.sock) {
                            failed.lock().unwrap().push(e.to_string());
                            return;
                        }
                    }
                    handle(&mut s, &state, &mode, &config, &key);
                    let _ = s.flush();
                    if close_notify.load(Ordering::Relaxed) {
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                });
            }
        });
        a
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn posts(&self) -> usize {
        self.state.lock().unwrap().posts.len()
    }
}

fn read_request<S: Read>(s: &mut S) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let first = lines.next()?.to_string();
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some((method, path, body))
}

fn respond<S: Write>(s: &mut S, status: &str, body: &[u8]) {
    let _ = s.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = s.write_all(body);
}

fn handle<S: Read + Write>(
    s: &mut S,
    state: &Mutex<State>,
    mode: &Mutex<Mode>,
    config: &Mutex<Vec<u8>>,
    key: &Mutex<Option<PublicKey>>,
) {
    let Some((method, path, body)) = read_request(s) else {
        return;
    };
    match (method.as_str(), path.split('?').next().unwrap_or("")) {
        ("GET", "/v1/validator/config") => {
            state.lock().unwrap().config_gets += 1;
            let c = config.lock().unwrap().clone();
            if c.is_empty() {
                respond(s, "404 Not Found", b"no config");
            } else {
                respond(s, "200 OK", &c);
            }
        }
        ("POST", "/v1/validator/batches") => {
            let m = *mode.lock().unwrap();
            if m == Mode::Unavailable {
                respond(s, "503 Service Unavailable", b"try later");
                return;
            }
            let Ok(batch) = TapBatch::decode(&body) else {
                respond(s, "400 Bad Request", b"bad batch");
                return;
            };
            {
                let mut st = state.lock().unwrap();
                if let Some(k) = *key.lock().unwrap() {
                    if !batch.verify_signature(&k) {
                        st.bad_signatures += 1;
                        drop(st);
                        respond(s, "401 Unauthorized", b"bad signature");
                        return;
                    }
                }
                let id = batch.body.batch_id;
                st.posts.push(id);
                if st.batches.insert(id) {
                    for r in &batch.body.records {
                        if !st.taps.insert((r.pseudonym, r.counter)) {
                            st.duplicate_records += 1;
                        }
                    }
                }
            }
            match m {
                Mode::Ack => respond(s, "200 OK", b"{\"status\":\"accepted\"}"),
                Mode::DropResponse => {}
                Mode::Hang => std::thread::sleep(Duration::from_secs(30)),
                Mode::Unavailable => {}
            }
        }
        _ => respond(s, "404 Not Found", b"not found"),
    }
}
