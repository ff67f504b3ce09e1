//! The validator's fixtures: a protocol-level test card (honest or misbehaving), an issuer
//! whose key never expires (several validator tests tap at the wall clock), a validator with
//! an in-memory journal, a validator certificate and a stopped clock, the cross-process vpcd
//! lock, and a fake backend on loopback ([`acceptor::Acceptor`]).

use crate::issuer::{CertSpec, Issuer};
use crate::time::DAY;
use mancard_protocol::{
    authorized_amount, chain_start, verify_challenge, verify_validator_certificate,
    AuthorizeCommand, AuthorizeResponse, BoardingPass, CommandApdu, CredentialCertificate,
    FareClass, IssuerKey, PassBody, Pseudonym, ResponseApdu, SelectResponse, Signature, SigningKey,
    StatusWord, TapAuthorization, TapChallenge, TapProof, Tariff, ValidatorCertificate,
    MANCARD_AID,
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
    /// Answer with the high-S twin of the signature (it verifies, but is not canonical).
    pub high_s: bool,
    /// Answer the READ CERTIFICATE with this certificate instead of its own.
    pub swap_certificate: Option<Vec<u8>>,
    /// Answer AUTHORIZE TAP with this status word (a phone refusing the reader).
    pub refuse_with: Option<StatusWord>,
    /// Answer every AUTHORIZE TAP with the certificate (asks for a quote again and again).
    pub always_requote: bool,
    /// Sign even outside the certificate's validity.
    pub ignore_validity: bool,
    /// Sign even above what is left of the offline allowance.
    pub ignore_allowance: bool,
}

/// A phone as the protocol sees it: checks the reader's certificate and signed challenge,
/// answers the ManCard APDUs by signing with its tap key, chains its taps.
pub struct TestCard {
    pub tap_key: SigningKey,
    pub cert: Option<CredentialCertificate>,
    /// Issuer keys the card checks validator certificates with (empty: any issuer, the
    /// challenge's signature under the presented certificate is still checked).
    pub trust: Vec<IssuerKey>,
    pub next_counter: u32,
    pub spent: i64,
    pub bad: Misbehaviour,
    pub last_answer: Option<Vec<u8>>,
    /// The previous link of the card's tap chain (its last proof id, or the chain start).
    pub prev: [u8; 32],
    /// The session value of the current SELECT (None: not selected).
    pub session: Option<[u8; 16]>,
    /// True once a challenge of this session verified (READ CERTIFICATE is answered then).
    pub reader_verified: bool,
    /// Validator certificates seen, by validator id (for AUTHORIZE TAP with P1 = 00).
    pub readers: Vec<ValidatorCertificate>,
    pub reads: u32,
    pub taps: u32,
    pub requotes: u32,
}

impl TestCard {
    pub fn new(tap_key: SigningKey, cert: CredentialCertificate) -> Self {
        let next_counter = cert.body.allowance.counter_first;
        let prev = chain_start(&cert.id());
        Self {
            cert: Some(cert),
            next_counter,
            prev,
            ..Self::with_key(tap_key)
        }
    }

    pub fn empty() -> Self {
        Self::with_key(SigningKey::generate().unwrap().0)
    }

    fn with_key(tap_key: SigningKey) -> Self {
        Self {
            tap_key,
            cert: None,
            trust: Vec::new(),
            next_counter: 0,
            spent: 0,
            bad: Misbehaviour::default(),
            last_answer: None,
            prev: [0; 32],
            session: None,
            reader_verified: false,
            readers: Vec::new(),
            reads: 0,
            taps: 0,
            requotes: 0,
        }
    }

    pub fn pseudonym(&self) -> Pseudonym {
        self.cert.as_ref().unwrap().body.pseudonym
    }

    pub fn fare_class(&self) -> FareClass {
        self.cert.as_ref().unwrap().body.fare_class
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
                self.reader_verified = false;
                if cmd.data != MANCARD_AID {
                    self.session = None;
                    return Self::sw(StatusWord::AppNotFound);
                }
                let session: [u8; 16] = Pseudonym::random().unwrap().0;
                self.session = Some(session);
                ResponseApdu::ok(SelectResponse { session }.encode()).encode()
            }
            _ if self.session.is_none() => Self::sw(StatusWord::ConditionsNotSatisfied),
            (0x80, 0x10) => {
                self.reads += 1;
                if !self.reader_verified {
                    return Self::sw(StatusWord::ConditionsNotSatisfied);
                }
                if let Some(b) = &self.bad.swap_certificate {
                    return ResponseApdu::ok(b.clone()).encode();
                }
                match &self.cert {
                    Some(c) => ResponseApdu::ok(c.encode()).encode(),
                    None => Self::sw(StatusWord::NoCredential),
                }
            }
            (0x80, 0x20) => self.authorize(cmd.p1, &cmd.data),
            _ => Self::sw(StatusWord::InsNotSupported),
        }
    }

    /// The reader's side of AUTHORIZE TAP: its certificate and challenge, as a phone checks
    /// them. `Err` is the status word to answer.
    fn check_reader(&mut self, p1: u8, data: &[u8]) -> Result<TapChallenge, StatusWord> {
        let cmd = AuthorizeCommand::parse(p1, data).map_err(|_| StatusWord::IncorrectData)?;
        let ch = cmd.challenge;
        let vcert = match cmd.validator_cert {
            Some(c) => c,
            None => self
                .readers
                .iter()
                .find(|c| c.body.validator_id == ch.body.validator_id)
                .cloned()
                .ok_or(StatusWord::ReaderCertificateRequired)?,
        };
        if !self.trust.is_empty() {
            verify_validator_certificate(&vcert, &self.trust, |_| false, ch.body.validator_time)
                .map_err(|_| StatusWord::ReaderUnknown)?;
        }
        verify_challenge(&ch, &vcert).map_err(|_| StatusWord::BadChallengeSignature)?;
        if Some(ch.body.session) != self.session {
            return Err(StatusWord::StaleChallenge);
        }
        if !self.readers.contains(&vcert) {
            self.readers.push(vcert);
        }
        self.reader_verified = true;
        Ok(ch)
    }

    fn authorize(&mut self, p1: u8, data: &[u8]) -> Vec<u8> {
        if let Some(b) = &self.bad.replay_answer {
            return b.clone();
        }
        if let Some(sw) = self.bad.refuse_with {
            return Self::sw(sw);
        }
        let ch = match self.check_reader(p1, data) {
            Ok(ch) => ch,
            Err(sw) => return Self::sw(sw),
        };
        let Some(cert) = self.cert.clone() else {
            return Self::sw(StatusWord::NoCredential);
        };
        let c = &ch.body;
        let b = &cert.body;
        if !self.bad.ignore_validity
            && (c.validator_time < b.valid_from || c.validator_time > b.valid_until)
        {
            return Self::sw(StatusWord::CredentialNotValid);
        }
        // As a real phone: quoted for its class, the fare asked; for another class, its own
        // class's fare of the line when not above the fare asked, else a re-quote.
        let own = authorized_amount(c, b.fare_class, &Tariff::urmia_default());
        let Some(fare) = own.filter(|_| !self.bad.always_requote) else {
            self.requotes += 1;
            return ResponseApdu::ok(AuthorizeResponse::Requote(cert).encode()).encode();
        };
        let counter = self.bad.counter.unwrap_or(self.next_counter);
        if self.bad.counter.is_none() && counter > b.allowance.counter_last {
            return Self::sw(StatusWord::CountersExhausted);
        }
        if !self.bad.ignore_allowance && self.spent + fare > b.allowance.max_amount {
            return Self::sw(StatusWord::AllowanceExhausted);
        }
        let amount = self.bad.sign_amount.unwrap_or(fare);
        let mut auth =
            TapAuthorization::sign(&self.tap_key, c, &cert.id(), counter, amount, &self.prev)
                .unwrap();
        self.prev = TapProof::Nfc {
            challenge: ch.clone(),
            authorization: auth.clone(),
        }
        .id();
        if self.bad.corrupt_signature {
            if let Some(b) = auth.signature.0.get_mut(10) {
                *b ^= 0x55;
            }
        }
        if self.bad.high_s {
            auth.signature = Signature(auth.signature.malleated());
        }
        if self.bad.counter.is_none() {
            self.next_counter += 1;
        }
        self.spent += fare;
        self.taps += 1;
        let out = ResponseApdu::ok(AuthorizeResponse::Authorized(auth).encode()).encode();
        self.last_answer = Some(out.clone());
        out
    }

    /// A 60-second QR pass for `counter` issued at `issued_at`.
    pub fn pass(&self, counter: u32, issued_at: i64, max_amount: i64) -> BoardingPass {
        self.pass_for(counter, issued_at, 60, max_amount)
    }

    /// A QR pass with the lifetime chosen by the test (the signer picks it; verifiers cap it).
    pub fn pass_for(
        &self,
        counter: u32,
        issued_at: i64,
        lifetime_secs: u16,
        max_amount: i64,
    ) -> BoardingPass {
        let certificate = self.cert.clone().unwrap();
        PassBody {
            fare_class: certificate.body.fare_class,
            prev: self.prev,
            certificate,
            counter,
            issued_at,
            lifetime_secs,
            max_amount,
        }
        .sign(&self.tap_key)
        .unwrap()
    }
}

/// A card of `class` with a fresh tap key and a certificate valid around `now` (counters
/// 100..=199, an allowance of 10,000,000 rials: it signs the full fare of every tap, whatever
/// the validator then charges), trusting `issuer` for validator certificates.
pub fn card_of(issuer: &Issuer, now: i64, class: FareClass) -> TestCard {
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: now - DAY,
            valid_until: now + 7 * DAY,
            class,
            first: 100,
            last: 199,
            max_amount: 10_000_000,
        },
    );
    let mut c = TestCard::new(tap, cert);
    c.trust = vec![issuer.issuer_key()];
    c
}

/// An adult card (see [`card_of`]).
pub fn card(issuer: &Issuer, now: i64) -> TestCard {
    card_of(issuer, now, FareClass::Adult)
}

/// A certificate for validator `v` from `issuer`, any line, valid a year either side of `now`
/// (clipped to the issuer key's window and to what a u32 holds).
pub fn validator_cert_for(issuer: &Issuer, v: &Validator, now: i64) -> ValidatorCertificate {
    let from = (now - 365 * DAY).max(issuer.valid_from).max(0);
    let until = (now + 365 * DAY).min(i64::from(u32::MAX));
    issuer.validator_cert_with(v.validator_id(), &v.public_key(), Vec::new(), from, until)
}

/// Installs [`validator_cert_for`] on `v`.
pub fn certify(issuer: &Issuer, v: &mut Validator, now: i64) {
    let cert = validator_cert_for(issuer, v, now);
    v.install_certificate(&cert.encode()).unwrap();
}

/// A validator with an in-memory journal, a fixed clock at `now`, bundle v1 installed and a
/// validator certificate from `issuer`.
pub fn validator_in_memory(issuer: &Issuer, now: i64) -> Validator {
    let mut v = uncertified_validator(issuer, now);
    certify(issuer, &mut v, now);
    v
}

/// [`validator_in_memory`] without a validator certificate.
pub fn uncertified_validator(issuer: &Issuer, now: i64) -> Validator {
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
