//! The validator's fixtures: a protocol-level test card (honest or misbehaving), an issuer
//! whose key never expires (several validator tests tap at the wall clock), a validator with
//! an in-memory journal and a stopped clock, the cross-process vpcd lock, and a fake backend
//! on loopback ([`acceptor::Acceptor`]).

use crate::issuer::{CertSpec, Issuer};
use crate::time::DAY;
use mancard_protocol::{
    BoardingPass, CommandApdu, CredentialCertificate, FareClass, PassBody, Pseudonym, ResponseApdu,
    SelectResponse, SigningKey, StatusWord, TapAuthorization, TapChallenge, MANCARD_AID,
};
use mancard_validator::{CardChannel, ChannelError, Clock, Journal, Validator};
use std::sync::Arc;

/// The issuer key id the validator tests sign with.
pub const ISSUER_KEY_ID: u32 = 7;
/// The line the test validator serves.
pub const LINE: u32 = 1;
/// The test validator's id.
pub const VALIDATOR_ID: u32 = 4242;

/// An issuer whose key is valid from the epoch for ever: the validator tests that tap at
/// the wall clock must not start failing a year after [`crate::T0`].
pub fn timeless_issuer(key_id: u32) -> Issuer {
    Issuer {
        valid_from: 0,
        valid_until: i64::MAX / 2,
        ..Issuer::new(key_id)
    }
}

/// How a test card misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Misbehaviour {
    /// Sign this amount instead of the challenge's fare.
    pub sign_amount: Option<i64>,
    /// Use this counter (and do not advance).
    pub counter: Option<u32>,
    /// Answer AUTHORIZE with these bytes (e.g. a recorded earlier answer).
    pub replay_answer: Option<Vec<u8>>,
    /// Flip a byte of the signature.
    pub corrupt_signature: bool,
    /// Answer the READ CERTIFICATE with this certificate instead of the announced one.
    pub swap_certificate: Option<Vec<u8>>,
}

/// A phone as the protocol sees it: answers the ManCard APDUs by signing with its tap key.
pub struct TestCard {
    pub tap_key: SigningKey,
    pub cert: Option<CredentialCertificate>,
    pub next_counter: u32,
    pub spent: i64,
    pub selected: bool,
    pub bad: Misbehaviour,
    pub last_answer: Option<Vec<u8>>,
    pub reads: u32,
    pub taps: u32,
}

impl TestCard {
    pub fn new(tap_key: SigningKey, cert: CredentialCertificate) -> Self {
        let next_counter = cert.body.allowance.counter_first;
        Self {
            tap_key,
            cert: Some(cert),
            next_counter,
            spent: 0,
            selected: false,
            bad: Misbehaviour::default(),
            last_answer: None,
            reads: 0,
            taps: 0,
        }
    }

    pub fn empty() -> Self {
        Self {
            tap_key: SigningKey::generate().unwrap().0,
            cert: None,
            next_counter: 0,
            spent: 0,
            selected: false,
            bad: Misbehaviour::default(),
            last_answer: None,
            reads: 0,
            taps: 0,
        }
    }

    pub fn pseudonym(&self) -> Pseudonym {
        self.cert.as_ref().unwrap().body.pseudonym
    }

    fn sw(sw: StatusWord) -> Vec<u8> {
        ResponseApdu::status(sw).encode()
    }

    pub fn process_apdu(&mut self, apdu: &[u8]) -> Vec<u8> {
        let cmd = match CommandApdu::parse(apdu) {
            Ok(c) => c,
            Err(e) => return Self::sw(e.status()),
        };
        match (cmd.cla, cmd.ins) {
            (0x00, 0xA4) => {
                if cmd.data != MANCARD_AID {
                    self.selected = false;
                    return Self::sw(StatusWord::AppNotFound);
                }
                self.selected = true;
                let r = SelectResponse {
                    cert_hash: self.cert.as_ref().map(|c| c.hash()),
                };
                ResponseApdu::ok(r.encode()).encode()
            }
            _ if !self.selected => Self::sw(StatusWord::ConditionsNotSatisfied),
            (0x80, 0x10) => {
                self.reads += 1;
                if let Some(b) = &self.bad.swap_certificate {
                    return ResponseApdu::ok(b.clone()).encode();
                }
                match &self.cert {
                    Some(c) => ResponseApdu::ok(c.encode()).encode(),
                    None => Self::sw(StatusWord::NoCredential),
                }
            }
            (0x80, 0x20) => {
                if let Some(b) = &self.bad.replay_answer {
                    return b.clone();
                }
                let Some(cert) = self.cert.clone() else {
                    return Self::sw(StatusWord::NoCredential);
                };
                let Ok(ch) = TapChallenge::decode(&cmd.data) else {
                    return Self::sw(StatusWord::IncorrectData);
                };
                let b = &cert.body;
                if ch.validator_time < b.valid_from || ch.validator_time > b.valid_until {
                    return Self::sw(StatusWord::CredentialNotValid);
                }
                let counter = self.bad.counter.unwrap_or(self.next_counter);
                if self.bad.counter.is_none() && counter > b.allowance.counter_last {
                    return Self::sw(StatusWord::CountersExhausted);
                }
                if self.spent + ch.fare > b.allowance.max_amount {
                    return Self::sw(StatusWord::AllowanceExhausted);
                }
                let amount = self.bad.sign_amount.unwrap_or(ch.fare);
                let mut auth =
                    TapAuthorization::sign(&self.tap_key, &ch, &cert.hash(), counter, amount)
                        .unwrap();
                if self.bad.corrupt_signature {
                    if let Some(b) = auth.signature.0.get_mut(10) {
                        *b ^= 0x55;
                    }
                }
                if self.bad.counter.is_none() {
                    self.next_counter += 1;
                }
                self.spent += ch.fare;
                self.taps += 1;
                let out = ResponseApdu::ok(auth.encode()).encode();
                self.last_answer = Some(out.clone());
                out
            }
            _ => Self::sw(StatusWord::InsNotSupported),
        }
    }

    /// A QR pass for `counter` issued at `issued_at`.
    pub fn pass(&self, counter: u32, issued_at: i64, max_amount: i64) -> BoardingPass {
        PassBody {
            certificate: self.cert.clone().unwrap(),
            counter,
            issued_at,
            lifetime_secs: 60,
            max_amount,
        }
        .sign(&self.tap_key)
        .unwrap()
    }
}

/// A card with a fresh tap key and a certificate valid around `now`.
pub fn card(issuer: &Issuer, now: i64) -> TestCard {
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: now - DAY,
            valid_until: now + 7 * DAY,
            class: FareClass::Adult,
            first: 100,
            last: 199,
            max_amount: 500_000,
        },
    );
    TestCard::new(tap, cert)
}

/// A validator with an in-memory journal, a fixed clock at `now`, and bundle v1 installed.
pub fn validator_in_memory(issuer: &Issuer, now: i64) -> Validator {
    let mut j = Journal::in_memory().unwrap();
    Validator::provision_journal(&mut j, &issuer.anchor(), VALIDATOR_ID, LINE).unwrap();
    let key = SigningKey::generate().unwrap().0;
    let mut v = Validator::from_parts(j, key, Arc::new(move || now)).unwrap();
    v.install_config(&issuer.bundle(1, now - 3600, vec![]).encode())
        .unwrap();
    v
}

/// A clock stopped at `now`.
pub fn fixed(now: i64) -> Clock {
    Arc::new(move || now)
}

impl CardChannel for TestCard {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChannelError> {
        Ok(self.process_apdu(apdu))
    }
}

/// A cross-process lock for vpcd reader 0 (tests in different binaries, or run by nextest in
/// parallel processes, must not present two cards at once): holding a bound loopback port.
pub fn vpcd_lock() -> std::net::TcpListener {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match std::net::TcpListener::bind("127.0.0.1:35969") {
            Ok(l) => return l,
            Err(e) if std::time::Instant::now() >= deadline => panic!("vpcd test lock: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// A fake backend on loopback: serves a config bundle and accepts batches, recording every
/// batch id it sees, deduplicating by batch id like the real backend must. Plain HTTP
/// ([`Acceptor::start`]) or HTTPS with a given rustls server config ([`Acceptor::start_tls`]).
pub mod acceptor {
    use mancard_api::endpoints::{Endpoint, VALIDATOR_BATCHES, VALIDATOR_CONFIG};
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
        pub fn start_tls(config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
            Self::start_with(Some(config))
        }

        fn start_with(tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>) -> Self {
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
                        let mut s = tokio_rustls::rustls::StreamOwned::new(
                            tokio_rustls::rustls::ServerConnection::new(tls).unwrap(),
                            s,
                        );
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
            buf.extend_from_slice(tmp.get(..n)?);
        };
        let head = String::from_utf8_lossy(buf.get(..head_end)?).to_string();
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
        let mut body = buf.get(head_end + 4..)?.to_vec();
        while body.len() < len {
            let n = s.read(&mut tmp).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(tmp.get(..n)?);
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
        let route = path.split('?').next().unwrap_or("");
        let is = |e: &Endpoint| method == e.method.as_str() && route == e.path;
        if is(&VALIDATOR_CONFIG) {
            serve_config(s, state, config);
        } else if is(&VALIDATOR_BATCHES) {
            accept_batch(s, state, mode, key, &body);
        } else {
            respond(s, "404 Not Found", b"not found");
        }
    }

    fn serve_config<S: Write>(s: &mut S, state: &Mutex<State>, config: &Mutex<Vec<u8>>) {
        state.lock().unwrap().config_gets += 1;
        let c = config.lock().unwrap().clone();
        if c.is_empty() {
            respond(s, "404 Not Found", b"no config");
        } else {
            respond(s, "200 OK", &c);
        }
    }

    fn accept_batch<S: Write>(
        s: &mut S,
        state: &Mutex<State>,
        mode: &Mutex<Mode>,
        key: &Mutex<Option<PublicKey>>,
        body: &[u8],
    ) {
        let m = *mode.lock().unwrap();
        if m == Mode::Unavailable {
            respond(s, "503 Service Unavailable", b"try later");
            return;
        }
        let Ok(batch) = TapBatch::decode(body) else {
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
}
