//! Online fixtures: the real backend in-process on a loopback port (its own tokio runtime),
//! wallets in directories, sign-in, top-up and convergence helpers, and validator-like taps
//! (a validator registered at the backend, with the certificate it issued, runs the v2 reader
//! flow: SELECT, a signed challenge quoted for the session, AUTHORIZE with its certificate
//! inline, a re-quote for another fare class).
//! The fault-injecting and TLS proxies in front of the backend are in [`crate::proxy`].
#![allow(clippy::indexing_slicing)] // fixtures: a slice out of range is a broken test

use crate::scenarios::Res;
pub use crate::wallet::keystore;
use mancard::{OnlineOptions, OnlineWallet, TopUpIntent, TopUpStatus, Wallet};
use mancard_api::RegisterValidatorRequest;
use mancard_backend::{Backend, BackendConfig, BackendHandle, Policy};
use mancard_protocol::{
    sha256, AuthorizeResponse, BatchBody, ChallengeBody, CommandApdu, CredentialCertificate,
    FareClass, FareKind, ResponseApdu, RideState, SelectResponse, SigningKey, StatusWord,
    TapAuthorization, TapChallenge, TapProof, TapRecord, Tariff, ValidatorCertificate,
};
pub use mancard_validator::{Decision, Refusal, TapOutcome};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const PHONE: &str = "+989121234567";

/// The backend under test, with the runtime it runs on.
pub struct Env {
    pub rt: tokio::runtime::Runtime,
    pub backend: Option<BackendHandle>,
    pub url: String,
    /// The backend's directory (its database).
    dir: PathBuf,
    /// The temporary directory `dir` is, removed after the backend stops (none when the
    /// caller gave the directory).
    _tmp: Option<tempfile::TempDir>,
}

impl Env {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut Policy)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut env = Self::start_in(tmp.path(), tweak).unwrap();
        env._tmp = Some(tmp);
        env
    }

    /// A sandbox backend with its database in `dir` (which it leaves in place), on a
    /// two-thread runtime of its own; `tweak` adjusts the policy first.
    pub fn start_in(dir: &Path, tweak: impl FnOnce(&mut Policy)) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut cfg = BackendConfig::sandbox(dir.join("backend.sqlite"));
        tweak(&mut cfg.policy);
        let backend = rt.block_on(Backend::start(cfg))?;
        let url = backend.url();
        Ok(Self {
            rt,
            backend: Some(backend),
            url,
            dir: dir.to_path_buf(),
            _tmp: None,
        })
    }

    /// Stops the backend (WAL checkpointed); an error if it did not stop cleanly.
    pub fn shutdown(mut self) -> Res<()> {
        if let Some(b) = self.backend.take() {
            self.rt.block_on(b.shutdown())?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn engine(&self) -> &Arc<mancard_backend::Engine> {
        self.backend.as_ref().unwrap().engine()
    }

    pub fn addr(&self) -> SocketAddr {
        self.backend.as_ref().unwrap().addr()
    }

    pub fn otp(&self, phone: &str) -> String {
        self.engine().sandbox_otp(phone, None).unwrap().code
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
        self.try_pay(payment_url).unwrap();
    }

    /// [`Env::pay`], an error if the page does not take the payment.
    pub fn try_pay(&self, payment_url: &str) -> Res<()> {
        let url = payment_url.to_string();
        self.rt.block_on(async move {
            let c = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let r = c.post(&url).send().await?;
            if r.status().is_redirection() || r.status().is_success() {
                Ok(())
            } else {
                Err(format!("the gateway page answered {}", r.status()).into())
            }
        })
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(b) = self.backend.take() {
            let _ = self.rt.block_on(b.shutdown());
        }
    }
}

pub fn open_wallet(dir: &Path) -> Arc<Wallet> {
    crate::scenarios::open_wallet(dir).unwrap()
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
    try_login(env, o, phone).unwrap()
}

/// [`login`], an error where a step fails; the account id.
pub fn try_login(env: &Env, o: &OnlineWallet, phone: &str) -> Res<i64> {
    let sent = o.block_on(o.register(phone.to_string()))??;
    if sent.phone != phone {
        return Err(format!("registered {} for {phone}", sent.phone).into());
    }
    let code = env
        .engine()
        .sandbox_otp(phone, None)
        .map_err(|e| format!("sandbox otp: {e}"))?
        .code;
    let s = o.block_on(o.verify(phone.to_string(), code))??;
    Ok(s.account_id)
}

/// start → pay → complete; returns the credited intent.
pub fn top_up(env: &Env, o: &OnlineWallet, amount: i64) -> TopUpIntent {
    try_top_up(env, o, amount).unwrap()
}

/// [`top_up`], an error where a step fails or the intent ends other than credited.
pub fn try_top_up(env: &Env, o: &OnlineWallet, amount: i64) -> Res<TopUpIntent> {
    let i = o.block_on(o.start_top_up(amount))??;
    if i.status != TopUpStatus::Pending {
        return Err(format!("a new top-up is {:?}", i.status).into());
    }
    env.try_pay(&i.payment_url)?;
    let done = o.block_on(o.complete_top_up(i.intent_id.clone()))??;
    if done.status != TopUpStatus::Credited {
        return Err(format!("the top-up ended {:?}", done.status).into());
    }
    Ok(done)
}

/// A validator registered at the backend (its key derived from its id, so registering the
/// same id twice keeps the same key), with a fare state machine: it charges what the shared
/// tariff says for this rider, as a real validator would from its own point of view (it only
/// sees its own taps, so the backend may correct the fare).
pub struct Validator {
    pub id: u32,
    pub key: SigningKey,
    pub certificate: ValidatorCertificate,
    pub tariff: Tariff,
    pub state: RideState,
    pub n: u64,
    /// The challenge of the last tap that went through (its signed fare, time and line).
    pub last: Option<TapChallenge>,
    /// The validator's records of the taps that went through (what its batch uploads).
    pub records: Vec<TapRecord>,
    /// The phone certificates it has seen, by id.
    pub cache: HashMap<[u8; 32], CredentialCertificate>,
    /// The backend it is registered at: time passes for it as the validator taps (a tap at
    /// `t` moves the sandbox backend's clock forward to `t`, never back), so reports of the
    /// tap are never dated after the backend's clock.
    engine: Arc<mancard_backend::Engine>,
}

/// The key of validator `id` in these fixtures.
fn validator_key(id: u32) -> SigningKey {
    let name: &'static str = Box::leak(format!("online-validator-{id}").into_boxed_str());
    crate::protocol::TestKey::new(name).ring()
}

impl Validator {
    /// Registers validator `id` at `env`'s backend; keeps the certificate it issues.
    pub fn new(env: &Env, id: u32) -> Self {
        Self::try_new(env, id).unwrap()
    }

    /// [`Validator::new`], an error if the backend refuses the registration.
    pub fn try_new(env: &Env, id: u32) -> Res<Self> {
        let key = validator_key(id);
        let r = env
            .engine()
            .register_validator(&RegisterValidatorRequest::new(
                id,
                hex::encode(key.public_key().as_bytes()),
            ))
            .map_err(|e| format!("register validator {id}: {e}"))?;
        let certificate = ValidatorCertificate::decode(&hex::decode(&r.certificate)?)?;
        Ok(Self {
            id,
            key,
            certificate,
            tariff: Tariff::urmia_default(),
            state: RideState::default(),
            n: 0,
            last: None,
            records: Vec::new(),
            cache: HashMap::new(),
            engine: Arc::clone(env.engine()),
        })
    }

    /// A challenge for `session` quoted for `class` at `line` and `time` (the rider-aware fare
    /// from this validator's point of view), signed with the validator's key; with the state
    /// after it.
    pub fn try_challenge(
        &mut self,
        session: [u8; 16],
        class: FareClass,
        line: u32,
        time: i64,
    ) -> Res<(TapChallenge, RideState)> {
        let q = self
            .tariff
            .fare(class, line, time, &self.state)
            .map_err(|e| format!("tariff: {e}"))?;
        self.engine
            .advance_clock_to(time)
            .map_err(|e| format!("backend clock: {e}"))?;
        self.n += 1;
        let seed = sha256(&[
            &self.id.to_be_bytes(),
            &self.n.to_be_bytes(),
            &time.to_be_bytes(),
        ]);
        let challenge = ChallengeBody {
            validator_id: self.id,
            nonce: seed[..16].try_into()?,
            session,
            validator_time: time,
            line_id: line,
            fare: q.amount,
            fare_class: class,
        }
        .sign(&self.key)?;
        Ok((challenge, q.next))
    }

    /// The validator's signed batch of the records of its taps so far (and forgets them).
    pub fn batch(&mut self, batch_id: [u8; 16]) -> Vec<u8> {
        BatchBody {
            validator_id: self.id,
            batch_id,
            created_at: 0,
            records: std::mem::take(&mut self.records),
            torn: Vec::new(),
        }
        .sign(&self.key)
        .unwrap()
        .encode()
    }

    /// Journals a tap that went through under the certificate `cert`.
    fn record(
        &mut self,
        challenge: TapChallenge,
        authorization: TapAuthorization,
        cert: &CredentialCertificate,
    ) {
        let c = &challenge.body;
        self.records.push(TapRecord {
            validator_id: self.id,
            line_id: c.line_id,
            time: c.validator_time,
            pseudonym: cert.body.pseudonym,
            counter: authorization.counter,
            fare: c.fare,
            fare_kind: FareKind::Full,
            proof: TapProof::Nfc {
                challenge: challenge.clone(),
                authorization,
            },
        });
        self.last = Some(challenge);
    }
}

fn send(w: &Wallet, cmd: &CommandApdu) -> Res<ResponseApdu> {
    Ok(ResponseApdu::parse(&w.process_apdu(cmd.encode()?))?)
}

/// One NFC tap at `v` on `line` at `time`, as a reader runs it: SELECT, a challenge quoted for
/// an adult (or the class learnt from the phone's certificate), AUTHORIZE TAP with the
/// validator certificate inline, a re-quote if the phone answers with its certificate, field
/// off. The status word that ended it.
pub fn tap(w: &Wallet, v: &mut Validator, line: u32, time: i64) -> StatusWord {
    try_tap(w, v, line, time).unwrap()
}

/// [`tap`], an error if an APDU cannot be encoded or an answer parsed.
pub fn try_tap(w: &Wallet, v: &mut Validator, line: u32, time: i64) -> Res<StatusWord> {
    let sw = exchange(w, v, line, time);
    w.deactivated();
    sw
}

fn exchange(w: &Wallet, v: &mut Validator, line: u32, time: i64) -> Res<StatusWord> {
    let sel = send(w, &CommandApdu::select_mancard())?;
    if sel.sw != StatusWord::Ok {
        return Ok(sel.sw);
    }
    let session = SelectResponse::decode(&sel.data)?.session;
    let mut class = FareClass::Adult;
    for _ in 0..2 {
        let (challenge, next) = v.try_challenge(session, class, line, time)?;
        let cmd = CommandApdu::authorize_tap(&challenge, Some(&v.certificate));
        let a = send(w, &cmd)?;
        if a.sw != StatusWord::Ok {
            return Ok(a.sw);
        }
        match AuthorizeResponse::decode(&a.data)? {
            AuthorizeResponse::Authorized(auth) => {
                let cert = match v.cache.get(&auth.cert_id) {
                    Some(c) => c.clone(),
                    None => {
                        let rc = send(w, &CommandApdu::read_certificate())?;
                        if rc.sw != StatusWord::Ok {
                            return Ok(rc.sw);
                        }
                        CredentialCertificate::decode(&rc.data)?
                    }
                };
                if cert.id() != auth.cert_id {
                    return Err("the phone read out another certificate than it signed for".into());
                }
                auth.verify(&cert.body.tap_public_key, &challenge.body)
                    .map_err(|e| format!("the phone's authorization does not verify: {e}"))?;
                v.cache.insert(cert.id(), cert.clone());
                v.state = next;
                v.record(challenge, auth, &cert);
                return Ok(StatusWord::Ok);
            }
            AuthorizeResponse::Requote(cert) => {
                class = cert.body.fare_class;
                v.cache.insert(cert.id(), cert);
            }
        }
    }
    Err("the phone asked for a re-quote twice".into())
}

/// `n` taps spread over lines 1/2/10, `spacing` seconds apart from `start`, the phone's clock
/// set to each tap's time for it (the phone refuses a reader clock outside the bundle's tap
/// window) and put back after; all must succeed.
pub fn taps(w: &Wallet, v: &mut Validator, n: usize, start: i64, spacing: i64) {
    try_taps(w, v, n, start, spacing).unwrap();
}

/// [`taps`], an error naming the first tap refused.
pub fn try_taps(w: &Wallet, v: &mut Validator, n: usize, start: i64, spacing: i64) -> Res<()> {
    let offset = w.server_time_offset();
    let result = clocked(w, v, n, start, spacing);
    w.set_server_time_offset(offset)?;
    result
}

fn clocked(w: &Wallet, v: &mut Validator, n: usize, start: i64, spacing: i64) -> Res<()> {
    for i in 0..n {
        let line = [1, 2, 10][i % 3];
        let t = start + i64::try_from(i)? * spacing;
        w.set_server_time_offset(t.saturating_sub(mancard::now_utc()))?;
        let sw = try_tap(w, v, line, t)?;
        if sw != StatusWord::Ok {
            return Err(format!("tap {i} refused: {sw:?}").into());
        }
    }
    Ok(())
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

/// A real validator (`mancard-validator`: its own key, its journal on disk) set up as an
/// operator does against `env`'s backend: it trusts the backend's current issuer key, registers
/// its key (keeping the certificate the backend issues), and fetches the signed config bundle
/// over HTTP, only when told to (a bus that is offline keeps the bundle it has). Its clock is
/// the test's: [`Gate::tap`] sets it.
pub struct Gate {
    pub validator: mancard_validator::Validator,
    url: String,
    clock: Arc<std::sync::atomic::AtomicI64>,
    engine: Arc<mancard_backend::Engine>,
}

/// The phone in the reader's field: its APDUs go to the wallet's `process_apdu`.
struct Phone<'a>(&'a Wallet);

impl mancard_validator::CardChannel for Phone<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, mancard_validator::ChannelError> {
        Ok(self.0.process_apdu(apdu.to_vec()))
    }
}

impl Gate {
    /// Validator `id` on `line`, its files in `dir`, its clock at `now`, the backend's current
    /// bundle installed.
    pub fn new(env: &Env, dir: &Path, (id, line): (u32, u32), now: i64) -> Res<Self> {
        use std::sync::atomic::{AtomicI64, Ordering};
        let keys = env.engine().key_info();
        let current = keys
            .iter()
            .find(|k| k.current)
            .ok_or("the backend has no current issuer key")?;
        let anchor = mancard_validator::TrustAnchor {
            key_id: Some(current.key_id),
            public_key: mancard_protocol::PublicKey::from_bytes(
                &hex::decode(&current.public_key)?,
                "issuer key",
            )?,
        };
        let mut validator = mancard_validator::Validator::init(dir, &anchor, id, line)?;
        let registered = env
            .engine()
            .register_validator(&RegisterValidatorRequest::new(
                id,
                hex::encode(validator.public_key().as_bytes()),
            ))
            .map_err(|e| format!("register validator {id}: {e}"))?;
        validator.install_certificate(&hex::decode(&registered.certificate)?)?;
        let clock = Arc::new(AtomicI64::new(now));
        let c = Arc::clone(&clock);
        validator.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        let mut gate = Self {
            validator,
            url: env.url.clone(),
            clock,
            engine: Arc::clone(env.engine()),
        };
        gate.fetch_bundle()?;
        Ok(gate)
    }

    /// Fetches the backend's current signed bundle over HTTP (`GET /v1/validator/config`) and
    /// installs it; the installed bundle's version.
    pub fn fetch_bundle(&mut self) -> Res<u64> {
        let timeout = std::time::Duration::from_secs(5);
        let bytes = mancard_validator::http::fetch_config(&self.url, None, timeout)
            .map_err(|e| format!("fetch config: {e}"))?
            .ok_or("the backend answered 304 to a request without a bundle version")?;
        Ok(match self.validator.install_config(&bytes)? {
            mancard_validator::ConfigInstall::Installed { version }
            | mancard_validator::ConfigInstall::Unchanged { version } => version,
        })
    }

    /// Whether the installed bundle's deny list names `pseudonym` (hex).
    pub fn denies(&self, pseudonym: &str) -> Res<bool> {
        let p: [u8; 16] = hex::decode(pseudonym)?
            .try_into()
            .map_err(|_| "a pseudonym is 16 bytes")?;
        let cfg = self.validator.config().ok_or("no bundle installed")?;
        Ok(cfg.is_denied(&mancard_protocol::Pseudonym(p)))
    }

    /// Moves the validator's clock (and the sandbox backend's, never back) to `t`.
    pub fn set_time(&self, t: i64) -> Res<()> {
        self.clock.store(t, std::sync::atomic::Ordering::SeqCst);
        self.engine
            .advance_clock_to(t)
            .map_err(|e| format!("backend clock: {e}"))?;
        Ok(())
    }

    /// One NFC tap of `w` at `t` (the validator's clock, the backend's moved on to it, and the
    /// phone's for the tap, put back after); the field goes off after it.
    pub fn tap(&mut self, w: &Wallet, t: i64) -> Res<mancard_validator::TapOutcome> {
        self.set_time(t)?;
        let offset = w.server_time_offset();
        w.set_server_time_offset(t.saturating_sub(mancard::now_utc()))?;
        let outcome = self.validator.tap_nfc(&mut Phone(w));
        w.deactivated();
        w.set_server_time_offset(offset)?;
        Ok(outcome)
    }

    /// Uploads the journal (accepted taps, and torn ones past the torn window) to the
    /// backend over HTTP.
    pub fn upload(&mut self) -> Res<mancard_validator::UploadReport> {
        let url = self.url.clone();
        let timeout = std::time::Duration::from_secs(5);
        Ok(self
            .validator
            .upload(|b| mancard_validator::http::send_batch(&url, b, timeout))?)
    }
}
