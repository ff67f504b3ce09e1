//! Shared fixtures for the online tests: the real backend in-process on a loopback port (its
//! own tokio runtime), wallets in temp dirs, sign-in and top-up helpers, validator-like taps,
//! and a fault-injecting HTTP proxy.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mancard::{
    OnlineOptions, OnlineWallet, SoftwareKeystore, TopUpIntent, TopUpStatus, Wallet, WalletConfig,
};
use mancard_backend::{Backend, BackendConfig, BackendHandle, Policy};
use mancard_protocol::{
    CommandApdu, FareClass, ResponseApdu, RideState, StatusWord, TapChallenge, Tariff,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const PHONE: &str = "+989121234567";

/// The backend under test, with the runtime it runs on.
pub struct Env {
    pub rt: tokio::runtime::Runtime,
    pub backend: Option<BackendHandle>,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut Policy)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = BackendConfig::sandbox(dir.path().join("backend.sqlite"));
        tweak(&mut cfg.policy);
        let backend = rt.block_on(Backend::start(cfg)).unwrap();
        let url = backend.url();
        Self {
            rt,
            backend: Some(backend),
            url,
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn engine(&self) -> &Arc<mancard_backend::Engine> {
        self.backend.as_ref().unwrap().engine()
    }

    pub fn addr(&self) -> SocketAddr {
        self.backend.as_ref().unwrap().addr()
    }

    pub fn otp(&self, phone: &str) -> String {
        self.engine().sandbox_otp(phone).unwrap().code
    }

    /// Account balances by account id (authoritative).
    pub fn balance_of(&self, account_id: i64) -> i64 {
        *self.engine().balances().unwrap().get(&account_id).unwrap()
    }

    /// The backend's ledger invariants: balances = sums, every tap charged once, no top-up
    /// credited twice.
    pub fn assert_audit_ok(&self) {
        let a = self.engine().audit().unwrap();
        assert!(a.ok, "backend audit failed: {a:?}");
        assert_eq!(a.taps_without_charge, 0);
        assert_eq!(a.intents_credited_twice, 0);
        assert_eq!(a.orphan_fare_entries, 0);
    }

    /// Pays on the sandbox gateway page (what the rider's browser does).
    pub fn pay(&self, payment_url: &str) {
        let url = payment_url.to_string();
        self.rt.block_on(async move {
            let c = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let r = c.post(&url).send().await.unwrap();
            assert!(
                r.status().is_redirection() || r.status().is_success(),
                "{}",
                r.status()
            );
        });
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(b) = self.backend.take() {
            let _ = self.rt.block_on(b.shutdown());
        }
    }
}

pub fn keystore(dir: &Path) -> Arc<SoftwareKeystore> {
    Arc::new(SoftwareKeystore::open_or_create(dir.join("keystore")).unwrap())
}

pub fn open_wallet(dir: &Path) -> Arc<Wallet> {
    Arc::new(Wallet::open(dir.join("wallet"), keystore(dir), WalletConfig::default()).unwrap())
}

/// Fast retries for tests (the proxy makes every retry fail or succeed deterministically).
pub fn fast_options() -> OnlineOptions {
    OnlineOptions {
        connect_timeout_ms: 2_000,
        request_timeout_ms: 3_000,
        max_attempts: 4,
        initial_backoff_ms: 5,
        max_backoff_ms: 40,
        ..OnlineOptions::default()
    }
}

pub fn online(w: &Arc<Wallet>, url: &str) -> OnlineWallet {
    OnlineWallet::new(Arc::clone(w), url.to_string(), fast_options()).unwrap()
}

/// register + verify with the sandbox code.
pub fn login(env: &Env, o: &OnlineWallet, phone: &str) -> i64 {
    let sent = o.block_on(o.register(phone.to_string())).unwrap().unwrap();
    assert_eq!(sent.phone, phone);
    let code = env.otp(phone);
    let s = o
        .block_on(o.verify(phone.to_string(), code))
        .unwrap()
        .unwrap();
    s.account_id
}

/// start → pay → complete; returns the credited intent.
pub fn top_up(env: &Env, o: &OnlineWallet, amount: i64) -> TopUpIntent {
    let i = o.block_on(o.start_top_up(amount)).unwrap().unwrap();
    assert_eq!(i.status, TopUpStatus::Pending);
    env.pay(&i.payment_url);
    let done = o
        .block_on(o.complete_top_up(i.intent_id.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(done.status, TopUpStatus::Credited);
    done
}

/// A validator-side fare state machine: charges what the shared tariff says for this rider,
/// as a real validator would from its own point of view (it only sees its own taps, so the
/// backend may correct the fare).
pub struct Validator {
    pub id: u32,
    pub tariff: Tariff,
    pub state: RideState,
    pub n: u64,
}

impl Validator {
    pub fn new(id: u32) -> Self {
        Self {
            id,
            tariff: Tariff::urmia_default(),
            state: RideState::default(),
            n: 0,
        }
    }

    pub fn challenge(&mut self, line: u32, time: i64) -> TapChallenge {
        let q = self
            .tariff
            .fare(FareClass::Adult, line, time, &self.state)
            .unwrap();
        self.state = q.next;
        self.n += 1;
        let mut nonce = [0u8; 16];
        nonce[..4].copy_from_slice(&self.id.to_be_bytes());
        nonce[4..12].copy_from_slice(&self.n.to_be_bytes());
        nonce[12..].copy_from_slice(&(time as u32).to_be_bytes());
        TapChallenge {
            validator_id: self.id,
            nonce,
            validator_time: time,
            line_id: line,
            fare: q.amount,
        }
    }
}

/// One NFC exchange (SELECT, AUTHORIZE TAP; the certificate is "cached").
pub fn tap(w: &Wallet, ch: &TapChallenge) -> StatusWord {
    let sel = ResponseApdu::parse(&w.process_apdu(CommandApdu::select_mancard().encode().unwrap()))
        .unwrap();
    if sel.sw != StatusWord::Ok {
        return sel.sw;
    }
    let r = ResponseApdu::parse(&w.process_apdu(CommandApdu::authorize_tap(ch).encode().unwrap()))
        .unwrap();
    w.deactivated();
    r.sw
}

/// `n` taps spread over lines 1/2/10, `spacing` seconds apart from `start`; all must succeed.
pub fn taps(w: &Wallet, v: &mut Validator, n: usize, start: i64, spacing: i64) {
    for i in 0..n {
        let line = [1, 2, 10][i % 3];
        let ch = v.challenge(line, start + i as i64 * spacing);
        assert_eq!(tap(w, &ch), StatusWord::Ok, "tap {i}");
    }
}

/// Wallet and backend agree: confirmed = backend balance, nothing pending, every log entry
/// settled exactly once.
pub fn assert_converged(env: &Env, w: &Wallet, account_id: i64) {
    let l = w.ledger().unwrap();
    let backend = env.balance_of(account_id);
    assert_eq!(l.confirmed_balance, backend, "confirmed balance vs backend");
    assert_eq!(l.pending_taps, 0, "pending taps after sync");
    assert_eq!(l.available_balance, backend);
    let log = w.verify_tap_log().unwrap();
    let s = w.tap_settlements().unwrap();
    assert_eq!(s.len() as u64, log, "every tap has exactly one verdict");
    for (i, t) in s.iter().enumerate() {
        assert_eq!(t.log_seq, i as u64);
        assert!(
            t.status == "settled" || t.status == "duplicate",
            "tap {}: {}",
            t.log_seq,
            t.status
        );
        assert!(t.fare.is_some_and(|f| f >= 0));
    }
    env.assert_audit_ok();
}

pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ----- the fault-injecting proxy ----------------------------------------------------------

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
    let problem = |code: &str| {
        format!(
            r#"{{"type":"about:blank","title":"injected","status":0,"detail":"injected {code}","code":"{code}"}}"#
        )
    };
    match fault {
        None => {
            let resp = forward(backend, &req).await?;
            conn.write_all(&resp).await?;
        }
        Some(Fault::DropAfterForward) => {
            let _ = forward(backend, &req).await?;
        }
        Some(Fault::DelayAfterForward(d)) => {
            let resp = forward(backend, &req).await?;
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
            let _ = forward(backend, &req).await?;
            conn.write_all(&canned(
                "503 Service Unavailable",
                &problem("busy"),
                "application/problem+json",
            ))
            .await?;
        }
        Some(Fault::Truncate) => {
            let resp = forward(backend, &req).await?;
            // keep the headers (with the full content-length), cut the body in half
            let head_end = resp
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(resp.len(), |p| p + 4);
            let body_len = resp.len() - head_end;
            conn.write_all(&resp[..head_end + body_len / 2]).await?;
        }
        Some(Fault::Malformed) => {
            let _ = forward(backend, &req).await?;
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
    conn.shutdown().await
}
