//! A fake backend on loopback: serves a config bundle and accepts batches, recording every
//! batch id it sees, deduplicating by batch id like the real backend must.
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
use std::net::{TcpListener, TcpStream};
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
    stop: Arc<AtomicBool>,
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

impl Acceptor {
    pub fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let a = Self {
            url,
            state: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Ack)),
            config: Arc::default(),
            validator_key: Arc::default(),
            stop: Arc::default(),
        };
        let (state, mode, config, key, stop) = (
            a.state.clone(),
            a.mode.clone(),
            a.config.clone(),
            a.validator_key.clone(),
            a.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(s) = conn else { continue };
                let (state, mode, config, key) =
                    (state.clone(), mode.clone(), config.clone(), key.clone());
                std::thread::spawn(move || handle(s, &state, &mode, &config, &key));
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

fn read_request(s: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
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

fn respond(s: &mut TcpStream, status: &str, body: &[u8]) {
    let _ = s.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = s.write_all(body);
}

fn handle(
    mut s: TcpStream,
    state: &Mutex<State>,
    mode: &Mutex<Mode>,
    config: &Mutex<Vec<u8>>,
    key: &Mutex<Option<PublicKey>>,
) {
    let Some((method, path, body)) = read_request(&mut s) else {
        return;
    };
    match (method.as_str(), path.split('?').next().unwrap_or("")) {
        ("GET", "/v1/validator/config") => {
            state.lock().unwrap().config_gets += 1;
            let c = config.lock().unwrap().clone();
            if c.is_empty() {
                respond(&mut s, "404 Not Found", b"no config");
            } else {
                respond(&mut s, "200 OK", &c);
            }
        }
        ("POST", "/v1/validator/batches") => {
            let m = *mode.lock().unwrap();
            if m == Mode::Unavailable {
                respond(&mut s, "503 Service Unavailable", b"try later");
                return;
            }
            let Ok(batch) = TapBatch::decode(&body) else {
                respond(&mut s, "400 Bad Request", b"bad batch");
                return;
            };
            {
                let mut st = state.lock().unwrap();
                if let Some(k) = *key.lock().unwrap() {
                    if !batch.verify_signature(&k) {
                        st.bad_signatures += 1;
                        drop(st);
                        respond(&mut s, "401 Unauthorized", b"bad signature");
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
                Mode::Ack => respond(&mut s, "200 OK", b"{\"status\":\"accepted\"}"),
                Mode::DropResponse => {}
                Mode::Hang => std::thread::sleep(Duration::from_secs(30)),
                Mode::Unavailable => {}
            }
        }
        _ => respond(&mut s, "404 Not Found", b"not found"),
    }
}
