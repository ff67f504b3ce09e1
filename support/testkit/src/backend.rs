//! The backend harness: a real backend on a loopback ephemeral port with a real SQLite file
//! (sandbox mode, the test operators of [`test_operators`], no background reconciliation), an HTTP client, and a
//! protocol-level wallet and validator that make genuine taps, logs and signed batches.
//!
//! Bodies the tests read are `mancard_api` types; [`Harness::get`] and [`Harness::post`] stay
//! raw (`serde_json::Value`) for the tests that send malformed input or read a problem.
#![allow(clippy::indexing_slicing)]

use crate::issuer::Issuer;
use crate::protocol::TestKey;
use mancard_api::endpoints::{
    ACCOUNT, ADMIN_AUDIT, ADMIN_DENY_VALIDATOR, ADMIN_FRAUD_CASES, ADMIN_VALIDATORS,
    CREATE_SESSION, CREATE_TOPUP, CREDENTIAL_NONCE, PROVISION, REPLENISH, REQUEST_OTP, SANDBOX_OTP,
    TOPUP_STATUS, VALIDATOR_BATCHES, VALIDATOR_CONFIG, WALLET_SYNC,
};
use mancard_api::{
    AccountResponse, AuditReport, BatchResponse, CredentialRequest, CredentialResponse,
    DenyValidatorRequest, DenyValidatorResponse, FraudCase, NonceResponse, OtpRequest, OtpResponse,
    RegisterValidatorRequest, RegisterValidatorResponse, SandboxOtp, SessionRequest,
    SessionResponse, SyncRequest, SyncResponse, TopupIntentResponse, TopupRequest,
};
use mancard_backend::gateway_sandbox::{
    start as start_gateway, SandboxGateway, SandboxGatewayConfig, SandboxGatewayHandle,
};
use mancard_backend::providers::GatewayConfig;
use mancard_backend::{Backend, BackendConfig, BackendHandle};
use mancard_protocol::provision::{sign_provision, ProvisionPurpose};
use mancard_protocol::{
    chain_start, sha256, BatchBody, ChallengeBody, CredentialCertificate, FareKind, PassBody,
    SigningKey, TapAuthorization, TapProof, TapRecord, Tariff, TornRecord, ValidatorCertificate,
    ValidatorConfig, WalletLogEntry,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// The token of operator [`ADMIN_NAME`], who has every scope (the tests' operator).
pub const ADMIN: &str = "mco_test-admin-0123456789abcdef0123456789abcdef";
pub const ADMIN_NAME: &str = "test-admin";
/// Operator `ops-reader`: scope `read` only.
pub const READER: &str = "mco_ops-reader-0123456789abcdef0123456789abcdef";
/// Operator `ops-adjuster`: scope `adjust` only.
pub const ADJUSTER: &str = "mco_ops-adjuster-0123456789abcdef0123456789abcd";
/// Operator `ops-approver`: scopes `read` and `adjust` (a second operator for approvals).
pub const APPROVER: &str = "mco_ops-approver-0123456789abcdef0123456789abcd";
/// Operator `ops-fraud`: scope `fraud` only.
pub const FRAUD_OPS: &str = "mco_ops-fraud-0123456789abcdef0123456789abcdef0";
/// Operator `ops-keys`: scope `keys` only.
pub const KEYS_OPS: &str = "mco_ops-keys-0123456789abcdef0123456789abcdef01";

/// The operators every harness configures (names, tokens, scopes), with the default
/// two-person limits.
pub fn test_operators() -> mancard_backend::operators::Operators {
    use mancard_api::Scope::{Adjust, Fraud, Keys, Read};
    use mancard_backend::operators::{Operator, Operators};
    let all: [(&str, &str, &[mancard_api::Scope]); 6] = [
        (ADMIN_NAME, ADMIN, &[Read, Adjust, Fraud, Keys]),
        ("ops-reader", READER, &[Read]),
        ("ops-adjuster", ADJUSTER, &[Adjust]),
        ("ops-approver", APPROVER, &[Read, Adjust]),
        ("ops-fraud", FRAUD_OPS, &[Fraud]),
        ("ops-keys", KEYS_OPS, &[Keys]),
    ];
    let ops = all
        .iter()
        .map(|(name, token, scopes)| Operator::with_token(name, scopes, token).unwrap())
        .collect();
    Operators::new(ops).unwrap()
}

pub struct Harness {
    pub handle: Option<BackendHandle>,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The sandbox payment gateway the backend talks to over HTTP (kept across restarts).
    pub gateway: std::sync::Arc<SandboxGatewayHandle>,
}

pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("backend.sqlite")
}

/// True when the tests run against PostgreSQL: `MANCARD_TEST_DB=postgres` and
/// `MANCARD_TEST_PG_URL` (a server's maintenance database, e.g. from `scripts/postgres.sh`).
pub fn on_postgres() -> bool {
    std::env::var("MANCARD_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// Prints why a test is skipped on PostgreSQL and says whether it is.
pub fn skip_on_postgres(why: &str) -> bool {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: {why}");
    }
    on_postgres()
}

/// [`BackendConfig::sandbox`] on the database of `dir`: its SQLite file, or with
/// `MANCARD_TEST_DB=postgres` its PostgreSQL database (created on first use; callable from
/// sync and async code alike).
pub fn backend_config(dir: &tempfile::TempDir) -> BackendConfig {
    let mut cfg = BackendConfig::sandbox(db_path(dir));
    if on_postgres() {
        let path = dir.path();
        let url = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(pg_database(path))
            })
            .join()
            .unwrap()
        });
        cfg.database_url = Some(mancard_backend::DatabaseUrl(url));
    }
    cfg
}

/// The PostgreSQL database of the harness in `dir` (one per directory, so a restart finds
/// it): created on first use, with C collation (SQLite's text order).
pub async fn pg_database(dir: &std::path::Path) -> String {
    let file = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = std::env::var("MANCARD_TEST_PG_URL")
        .expect("MANCARD_TEST_DB=postgres needs MANCARD_TEST_PG_URL");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "t_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
             LC_COLLATE 'C' LC_CTYPE 'C'"
        ))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    let (head, _) = base.rsplit_once('/').unwrap();
    let url = format!("{head}/{name}");
    std::fs::write(&file, &url).unwrap();
    url
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Harness {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        let gw = start_gateway(SandboxGatewayConfig::loopback())
            .await
            .unwrap();
        Self::start_with_gateway(dir, std::sync::Arc::new(gw)).await
    }

    /// A backend talking to this sandbox gateway.
    pub async fn start_with_gateway(
        dir: tempfile::TempDir,
        gateway: std::sync::Arc<SandboxGatewayHandle>,
    ) -> Self {
        Self::start_configured(dir, gateway, |_| {}).await
    }

    /// A backend on a fresh directory and sandbox gateway, with the harness's configuration
    /// changed by `configure` before it starts (tighter edge limits, say).
    pub async fn start_with_config(configure: impl FnOnce(&mut BackendConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let gw = start_gateway(SandboxGatewayConfig::loopback())
            .await
            .unwrap();
        Self::start_configured(dir, std::sync::Arc::new(gw), configure).await
    }

    async fn start_configured(
        dir: tempfile::TempDir,
        gateway: std::sync::Arc<SandboxGatewayHandle>,
        configure: impl FnOnce(&mut BackendConfig),
    ) -> Self {
        init_logs();
        let mut cfg = BackendConfig::sandbox(db_path(&dir));
        if on_postgres() {
            cfg.database_url = Some(mancard_backend::DatabaseUrl(pg_database(dir.path()).await));
            cfg.db_pool_max = 8;
        }
        cfg.operators = test_operators();
        cfg.providers.gateway = GatewayConfig::SandboxAt(gateway.url().to_string());
        cfg.providers.call_timeout = std::time::Duration::from_secs(3);
        cfg.policy.reconcile_every_secs = 0; // tests call Engine::reconcile_topups themselves
        configure(&mut cfg);
        let handle = Backend::start(cfg).await.unwrap();
        assert!(handle.addr().ip().is_loopback());
        let url = handle.url();
        Self {
            handle: Some(handle),
            url,
            http: client(),
            dir,
            gateway,
        }
    }

    /// A backend whose issuer key is `key` (key id 1, created at `created_at`), and the same
    /// key as a test [`Issuer`]: validators and bundles built by the test then trust the
    /// certificates the backend issues.
    pub async fn start_with_issuer(key: &TestKey, created_at: i64) -> (Self, Issuer) {
        let dir = tempfile::tempdir().unwrap();
        let path = mancard_backend::keys::key_file_path(&db_path(&dir));
        let file = serde_json::json!({ "keys": [{
            "key_id": 1,
            "pkcs8_hex": hex::encode(key.pkcs8()),
            "created_at": created_at,
            "retired_at": null,
        }]});
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let issuer = Issuer {
            key: key.ring(),
            key_id: 1,
            valid_from: created_at - 3600,
            valid_until: created_at + 10 * 365 * 86_400,
        };
        (Self::start_in(dir).await, issuer)
    }

    /// Another backend instance on the same PostgreSQL database, issuer key file and sandbox
    /// gateway as this one (several instances behind a load balancer). PostgreSQL only.
    pub async fn start_sibling(&self) -> Self {
        assert!(on_postgres(), "instances share a PostgreSQL database only");
        let url = pg_database(self.dir.path()).await;
        let keys = mancard_backend::keys::key_file_path(&db_path(&self.dir));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postgres-url"), url).unwrap();
        Self::start_configured(dir, std::sync::Arc::clone(&self.gateway), |cfg| {
            cfg.keys_path = Some(keys);
        })
        .await
    }

    /// Stops gracefully and starts again on the same database.
    pub async fn restart(mut self) -> Self {
        self.handle.take().unwrap().shutdown().await.unwrap();
        Self::start_with_gateway(self.dir, self.gateway).await
    }

    /// The sandbox gateway's state (switches, records, clock).
    pub fn sandbox_gateway(&self) -> &SandboxGateway {
        self.gateway.gateway()
    }

    /// Runs reconciliation (the server's periodic task, which tests switch off).
    pub async fn reconcile(&self) -> usize {
        let e = std::sync::Arc::clone(self.handle().engine());
        tokio::task::spawn_blocking(move || e.reconcile_topups())
            .await
            .unwrap()
            .unwrap()
    }

    pub fn handle(&self) -> &BackendHandle {
        self.handle.as_ref().unwrap()
    }

    pub fn u(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut r = self.http.get(self.u(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        decode(resp).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
    ) -> (StatusCode, Value) {
        let mut r = self.http.post(self.u(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        decode(resp).await
    }

    /// POST without a body (the endpoints that take none, like the nonce), which must answer
    /// 200 with a `T`.
    pub async fn post_empty_ok<T: DeserializeOwned>(&self, path: &str, token: Option<&str>) -> T {
        let mut r = self.http.post(self.u(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let (s, v) = decode(r.send().await.unwrap()).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        serde_json::from_value(v).unwrap()
    }

    pub async fn admin_post(&self, path: &str, body: &impl Serialize) -> (StatusCode, Value) {
        self.post(path, Some(ADMIN), body).await
    }

    /// GET that must answer 200 with a `T`.
    pub async fn get_ok<T: DeserializeOwned>(&self, path: &str, token: Option<&str>) -> T {
        let (s, v) = self.get(path, token).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        serde_json::from_value(v).unwrap()
    }

    /// POST that must answer `status` with a `T`.
    pub async fn post_as<T: DeserializeOwned>(
        &self,
        status: StatusCode,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
    ) -> T {
        let (s, v) = self.post(path, token, body).await;
        assert_eq!(s, status, "{path}: {v}");
        serde_json::from_value(v).unwrap()
    }

    /// POST that must answer 200 with a `T`.
    pub async fn post_ok<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
    ) -> T {
        self.post_as(StatusCode::OK, path, token, body).await
    }

    pub async fn login(&self, phone: &str) -> String {
        let (s, v) = self
            .post(
                REQUEST_OTP.path,
                None,
                &OtpRequest {
                    phone: phone.into(),
                },
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let sent: OtpResponse = serde_json::from_value(v).unwrap();
        let otp: SandboxOtp = self
            .get_ok(
                &format!(
                    "{}?phone={}&request_id={}",
                    SANDBOX_OTP.path,
                    urlenc(phone),
                    sent.request_id
                ),
                None,
            )
            .await;
        let sess: SessionResponse = self
            .post_ok(
                CREATE_SESSION.path,
                None,
                &SessionRequest {
                    phone: phone.into(),
                    code: otp.code,
                    request_id: sent.request_id,
                },
            )
            .await;
        sess.token
    }

    /// Creates a top-up intent and pays it on the sandbox gateway (following the redirect).
    pub async fn topup(&self, token: &str, amount: i64, key: &str) -> TopupIntentResponse {
        let intent: TopupIntentResponse = self
            .post_ok(
                CREATE_TOPUP.path,
                Some(token),
                &TopupRequest {
                    amount,
                    idempotency_key: key.into(),
                },
            )
            .await;
        let resp = self.http.post(&intent.payment_url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let html = resp.text().await.unwrap();
        assert!(html.contains("credited"), "{html}");
        self.get_ok(&TOPUP_STATUS.path_with(&intent.intent_id), Some(token))
            .await
    }

    pub async fn balance(&self, token: &str) -> i64 {
        let a: AccountResponse = self.get_ok(ACCOUNT.path, Some(token)).await;
        a.balance
    }

    /// The ledger invariant checks, which must hold.
    pub async fn audit(&self) -> AuditReport {
        let a: AuditReport = self.get_ok(ADMIN_AUDIT.path, Some(ADMIN)).await;
        assert!(a.ok, "ledger invariants broken: {a:?}");
        a
    }

    pub async fn fraud_cases(&self) -> Vec<FraudCase> {
        self.get_ok(ADMIN_FRAUD_CASES.path, Some(ADMIN)).await
    }

    /// Moves the sandbox backend's clock forward (never back) so that `time` is in its past:
    /// reports are uploaded after the rides they report (the backend refuses taps dated
    /// later than its clock allows).
    pub fn clock_past(&self, time: i64) {
        if let Some(h) = &self.handle {
            h.engine().advance_clock_to(time.saturating_add(1)).unwrap();
        }
    }

    /// Uploads a batch after its rides: the backend's clock is first moved past the latest
    /// tap it reports (see [`Self::upload_now`] for a batch sent at the current clock).
    pub async fn upload(&self, batch: &[u8]) -> (StatusCode, Value) {
        if let Ok(b) = mancard_protocol::TapBatch::decode(batch) {
            if let Some(t) = b.body.records.iter().map(record_time).max() {
                self.clock_past(t);
            }
        }
        self.upload_now(batch).await
    }

    /// Uploads a batch without touching the backend's clock.
    pub async fn upload_now(&self, batch: &[u8]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.u(VALIDATOR_BATCHES.path))
            .header("content-type", "application/octet-stream")
            .body(batch.to_vec())
            .send()
            .await
            .unwrap();
        decode(resp).await
    }

    /// Uploads a batch that must be answered 200.
    pub async fn upload_ok(&self, batch: &[u8]) -> BatchResponse {
        let (s, v) = self.upload(batch).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        serde_json::from_value(v).unwrap()
    }

    pub async fn config(&self) -> ValidatorConfig {
        let resp = self
            .http
            .get(self.u(VALIDATOR_CONFIG.path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        ValidatorConfig::decode(&resp.bytes().await.unwrap()).unwrap()
    }

    /// Puts a validator on the validator deny list (admin API).
    pub async fn deny_validator(&self, validator_id: u32) -> DenyValidatorResponse {
        self.post_ok(
            ADMIN_DENY_VALIDATOR.path,
            Some(ADMIN),
            &DenyValidatorRequest { validator_id },
        )
        .await
    }
}

/// The latest time a record claims: its own and its proof's signed time.
fn record_time(r: &TapRecord) -> i64 {
    r.time.max(proof_time(&r.proof))
}

/// The signed time of a proof (NFC: the challenge's; QR: the pass's issue time).
pub fn proof_time(p: &TapProof) -> i64 {
    match p {
        TapProof::Nfc { challenge, .. } => challenge.body.validator_time,
        TapProof::Qr { pass } => pass.body.issued_at,
    }
}

pub fn urlenc(s: &str) -> String {
    s.replace('+', "%2B")
}

pub async fn decode(resp: reqwest::Response) -> (StatusCode, Value) {
    let s = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap();
    if s.is_client_error() || s.is_server_error() {
        assert_eq!(
            ct, "application/problem+json",
            "error without problem type: {s} {text}"
        );
    }
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (s, v)
}

/// A UTC time at 10:00 local on the fare day after today's: inside a fresh certificate's
/// validity, and far from a fare-day boundary.
pub fn ride_base(server_time: i64) -> i64 {
    let t = Tariff::urmia_default();
    let day = t.fare_day(server_time) + 1;
    day * 86_400 - i64::from(t.utc_offset_secs) + i64::from(t.day_start_secs) + 6 * 3600
}

/// A protocol-level wallet over HTTP: its keys, its current certificate and its signed tap
/// chain (`prev`: the link the next proof under the current certificate signs).
pub struct Wallet {
    pub token: String,
    pub binding: SigningKey,
    pub tap: SigningKey,
    pub cert: CredentialCertificate,
    /// The current certificate's id.
    pub cert_hash: [u8; 32],
    /// The current certificate's pseudonym, hex (what sync names the device by).
    pub pseudonym: String,
    pub next_counter: u32,
    pub seq: u64,
    pub prev: [u8; 32],
    pub cursor: i64,
    pub server_time: i64,
}

pub fn cert_from(resp: &CredentialResponse) -> CredentialCertificate {
    CredentialCertificate::decode(&hex::decode(&resp.certificate).unwrap()).unwrap()
}

/// The config bundle a credential or sync response carries.
pub fn bundle_from(hex_bundle: &str) -> ValidatorConfig {
    ValidatorConfig::decode(&hex::decode(hex_bundle).unwrap()).unwrap()
}

impl Wallet {
    pub async fn credential_request(
        h: &Harness,
        token: &str,
        binding: &SigningKey,
        tap: &SigningKey,
        purpose: ProvisionPurpose,
    ) -> CredentialRequest {
        let n: NonceResponse = h.post_empty_ok(CREDENTIAL_NONCE.path, Some(token)).await;
        let nonce: [u8; 32] = hex::decode(&n.nonce).unwrap().try_into().unwrap();
        let sig = sign_provision(binding, purpose, &nonce, &tap.public_key()).unwrap();
        CredentialRequest {
            nonce: hex::encode(nonce),
            binding_public_key: hex::encode(binding.public_key().as_bytes()),
            tap_public_key: hex::encode(tap.public_key().as_bytes()),
            signature: hex::encode(sig.as_bytes()),
            next_counter: None,
        }
    }

    /// A signed-in rider with `balance` rials topped up and a wallet provisioned: its session
    /// token and the wallet.
    pub async fn funded(h: &Harness, phone: &str, balance: i64) -> (String, Self) {
        let token = h.login(phone).await;
        h.topup(&token, balance, "t").await;
        let (w, _) = Self::provision(h, &token).await;
        (token, w)
    }

    pub async fn provision(h: &Harness, token: &str) -> (Self, CredentialResponse) {
        let (binding, _) = SigningKey::generate().unwrap();
        let (tap, _) = SigningKey::generate().unwrap();
        let req =
            Self::credential_request(h, token, &binding, &tap, ProvisionPurpose::Provision).await;
        let c: CredentialResponse = h.post_ok(PROVISION.path, Some(token), &req).await;
        let cert = cert_from(&c);
        let w = Self {
            token: token.to_string(),
            binding,
            tap,
            cert_hash: cert.id(),
            next_counter: cert.body.allowance.counter_first,
            prev: chain_start(&cert.id()),
            cert,
            pseudonym: c.pseudonym.clone(),
            seq: 0,
            cursor: 0,
            server_time: c.server_time,
        };
        (w, c)
    }

    pub async fn replenish(&mut self, h: &Harness) -> CredentialResponse {
        let (tap, _) = SigningKey::generate().unwrap();
        let req = Self::credential_request(
            h,
            &self.token,
            &self.binding,
            &tap,
            ProvisionPurpose::Replenish,
        )
        .await;
        let c: CredentialResponse = h.post_ok(REPLENISH.path, Some(&self.token), &req).await;
        self.tap = tap;
        self.cert = cert_from(&c);
        self.cert_hash = self.cert.id();
        self.next_counter = self.cert.body.allowance.counter_first;
        self.prev = chain_start(&self.cert_hash);
        self.pseudonym = c.pseudonym.clone();
        c
    }

    /// Appends a signed proof to the wallet's log (the next proof signs its id as `prev`).
    pub fn log(&mut self, time: i64, amount: i64, proof: TapProof) -> WalletLogEntry {
        let e = WalletLogEntry {
            seq: self.seq,
            time,
            amount,
            proof,
        };
        self.seq += 1;
        self.prev = e.hash();
        e
    }

    /// An NFC tap at a validator: the validator's record and the wallet's log entry.
    pub fn nfc_tap(
        &mut self,
        v: &Validator,
        line: u32,
        fare: i64,
        time: i64,
    ) -> (TapRecord, WalletLogEntry) {
        let counter = self.next_counter;
        self.next_counter += 1;
        self.nfc_tap_with_counter(v, line, fare, time, counter)
    }

    pub fn nfc_tap_with_counter(
        &mut self,
        v: &Validator,
        line: u32,
        fare: i64,
        time: i64,
        counter: u32,
    ) -> (TapRecord, WalletLogEntry) {
        self.nfc_tap_signed_by(&v.key, v.id, line, fare, time, counter)
    }

    /// An NFC tap whose challenge names `validator_id` and is signed by `signer` (the
    /// validator's registered key, or not: a made-up challenge), with the next link of the
    /// wallet's chain.
    pub fn nfc_tap_signed_by(
        &mut self,
        signer: &SigningKey,
        validator_id: u32,
        line: u32,
        fare: i64,
        time: i64,
        counter: u32,
    ) -> (TapRecord, WalletLogEntry) {
        let rec = NfcTap {
            tap: &self.tap,
            cert: &self.cert,
            counter,
            prev: self.prev,
        }
        .at(signer, validator_id, line, fare, time);
        let entry = self.log(time, fare, rec.proof.clone());
        (rec, entry)
    }

    /// A QR boarding pass with the next counter and link of the chain (not logged).
    pub fn pass(&mut self, time: i64, lifetime_secs: u16, max: i64) -> TapProof {
        let counter = self.next_counter;
        self.next_counter += 1;
        let pass = PassBody {
            certificate: self.cert.clone(),
            counter,
            issued_at: time,
            lifetime_secs,
            fare_class: self.cert.body.fare_class,
            max_amount: max,
            prev: self.prev,
        }
        .sign(&self.tap)
        .unwrap();
        TapProof::Qr { pass }
    }

    /// A QR boarding pass shown to a reader.
    pub fn qr_tap(
        &mut self,
        validator_id: u32,
        line: u32,
        fare: i64,
        time: i64,
        max: i64,
    ) -> (TapRecord, WalletLogEntry) {
        let proof = self.pass(time, 60, max);
        let counter = proof.counter();
        let rec = TapRecord {
            validator_id,
            line_id: line,
            time: time + 5,
            pseudonym: self.cert.body.pseudonym,
            counter,
            fare,
            fare_kind: FareKind::Full,
            proof: proof.clone(),
        };
        let entry = self.log(time, max, proof);
        (rec, entry)
    }

    /// Uploads log entries after their rides (the backend's clock is moved past the latest,
    /// see [`Harness::clock_past`]); the raw answer (an error is a problem document).
    pub async fn sync(&mut self, h: &Harness, entries: &[WalletLogEntry]) -> (StatusCode, Value) {
        if let Some(t) = entries.iter().map(|e| proof_time(&e.proof)).max() {
            h.clock_past(t);
        }
        self.sync_now(h, entries).await
    }

    /// Uploads log entries at the backend's current clock.
    pub async fn sync_now(
        &mut self,
        h: &Harness,
        entries: &[WalletLogEntry],
    ) -> (StatusCode, Value) {
        let body = SyncRequest {
            pseudonym: self.pseudonym.clone(),
            cursor: self.cursor,
            entries: entries.iter().map(|e| hex::encode(e.encode())).collect(),
            verdict_cursor: 0,
        };
        let (s, v) = h.post(WALLET_SYNC.path, Some(&self.token), &body).await;
        if s == StatusCode::OK {
            let answer: SyncResponse = serde_json::from_value(v.clone()).unwrap();
            self.cursor = answer.cursor;
        }
        (s, v)
    }

    /// Uploads log entries; the sync must succeed.
    pub async fn sync_ok(&mut self, h: &Harness, entries: &[WalletLogEntry]) -> SyncResponse {
        let (s, v) = self.sync(h, entries).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        serde_json::from_value(v).unwrap()
    }
}

/// A validator known to the backend: its id, its key (which signs its challenges and
/// batches) and the certificate the backend issued for it.
pub struct Validator {
    pub id: u32,
    pub key: SigningKey,
    pub certificate: Option<ValidatorCertificate>,
}

impl Validator {
    /// A fresh key for `id`, not registered anywhere.
    pub fn unregistered(id: u32) -> Self {
        let (key, _) = SigningKey::generate().unwrap();
        Self {
            id,
            key,
            certificate: None,
        }
    }

    /// Registers a fresh key as validator `id` through the admin API; keeps the certificate.
    pub async fn register(h: &Harness, id: u32) -> Self {
        let mut v = Self::unregistered(id);
        let r: RegisterValidatorResponse = h
            .post_ok(
                ADMIN_VALIDATORS.path,
                Some(ADMIN),
                &RegisterValidatorRequest::new(id, hex::encode(v.key.public_key().as_bytes())),
            )
            .await;
        v.certificate = Some(certificate_from(&r));
        v
    }

    /// Registers a fresh key as validator `id` on the engine directly; keeps the certificate.
    pub fn register_on(e: &mancard_backend::Engine, id: u32) -> Self {
        let mut v = Self::unregistered(id);
        let r = e
            .register_validator(&RegisterValidatorRequest::new(
                id,
                hex::encode(v.key.public_key().as_bytes()),
            ))
            .unwrap();
        v.certificate = Some(certificate_from(&r));
        v
    }

    pub fn batch(&self, records: Vec<TapRecord>) -> Vec<u8> {
        self.batch_with_id(random_batch_id(), records)
    }

    pub fn batch_with_id(&self, batch_id: [u8; 16], records: Vec<TapRecord>) -> Vec<u8> {
        signed_batch(&self.key, self.id, batch_id, 0, records)
    }

    /// A batch of this validator with no records that reports the challenges of the NFC taps
    /// `taps` torn (the gate stayed closed), each `after` seconds after its tap.
    pub fn torn_batch(&self, taps: &[&TapRecord], after: i64) -> Vec<u8> {
        let torn = taps
            .iter()
            .map(|r| {
                let TapProof::Nfc { challenge, .. } = &r.proof else {
                    panic!("a torn record names an NFC challenge");
                };
                TornRecord {
                    time: r.time + after,
                    challenge: challenge.clone(),
                }
            })
            .collect();
        BatchBody {
            validator_id: self.id,
            batch_id: random_batch_id(),
            created_at: 0,
            records: Vec::new(),
            torn,
        }
        .sign(&self.key)
        .unwrap()
        .encode()
    }
}

/// A fresh batch id (16 random bytes, from a fresh key's).
fn random_batch_id() -> [u8; 16] {
    let (k, _) = SigningKey::generate().unwrap();
    let mut batch_id = [0u8; 16];
    batch_id.copy_from_slice(&k.public_key().as_bytes()[1..17]);
    batch_id
}

/// The validator certificate a registration answered.
pub fn certificate_from(r: &RegisterValidatorResponse) -> ValidatorCertificate {
    ValidatorCertificate::decode(&hex::decode(&r.certificate).unwrap()).unwrap()
}

/// A rider set up in process through the [`Engine`](mancard_backend::Engine), no HTTP: a
/// sandbox code and session, a top-up paid on the sandbox gateway, and a device provisioned
/// with a software binding key. For benches and tools that drive the engine directly.
pub struct EngineRider {
    pub account_id: i64,
    pub phone: String,
    pub tap: SigningKey,
    pub cert: CredentialCertificate,
    pub cert_hash: [u8; 32],
    /// The next unused counter of the certificate.
    pub next_counter: u32,
    /// The link the next tap signs.
    pub prev: [u8; 32],
}

impl EngineRider {
    /// Logs `phone` in, tops up `topup` rials (none if 0) and provisions a device.
    pub fn setup(e: &mancard_backend::Engine, phone: &str, topup: i64) -> Self {
        let sent = e
            .request_otp(
                &OtpRequest {
                    phone: phone.into(),
                },
                "engine",
            )
            .unwrap();
        let code = e.sandbox_otp(phone, Some(&sent.request_id)).unwrap().code;
        let s = e
            .create_session(&SessionRequest {
                phone: phone.into(),
                code,
                request_id: sent.request_id,
            })
            .unwrap();
        if topup > 0 {
            let intent = e
                .create_topup(
                    s.account_id,
                    &TopupRequest {
                        amount: topup,
                        idempotency_key: format!("engine-rider-{phone}"),
                    },
                )
                .unwrap();
            let token = intent.payment_url.rsplit('/').next().unwrap().to_string();
            let gateway = e.providers().in_process_gateway.as_ref().unwrap();
            gateway.submit(&token, true, "6037991234561234").unwrap();
            let done = e.topup_status(s.account_id, &intent.intent_id).unwrap();
            assert_eq!(done.status, mancard_api::TopupStatus::Credited);
        }
        let (binding, _) = SigningKey::generate().unwrap();
        let (tap, _) = SigningKey::generate().unwrap();
        let n = e.new_nonce(s.account_id).unwrap();
        let nonce: [u8; 32] = hex::decode(&n.nonce).unwrap().try_into().unwrap();
        let purpose = ProvisionPurpose::Provision;
        let sig = sign_provision(&binding, purpose, &nonce, &tap.public_key()).unwrap();
        let c = e
            .issue(
                s.account_id,
                &CredentialRequest {
                    nonce: n.nonce,
                    binding_public_key: hex::encode(binding.public_key().as_bytes()),
                    tap_public_key: hex::encode(tap.public_key().as_bytes()),
                    signature: hex::encode(sig.as_bytes()),
                    next_counter: None,
                },
                purpose,
            )
            .unwrap();
        let cert = cert_from(&c);
        Self {
            account_id: s.account_id,
            phone: phone.into(),
            tap,
            cert_hash: cert.id(),
            next_counter: cert.body.allowance.counter_first,
            prev: chain_start(&cert.id()),
            cert,
        }
    }

    /// A validator's record of an NFC tap with this rider's next counter and chain link.
    pub fn nfc_record(&mut self, v: &Validator, line: u32, fare: i64, time: i64) -> TapRecord {
        let counter = self.next_counter;
        self.next_counter += 1;
        let rec = NfcTap {
            tap: &self.tap,
            cert: &self.cert,
            counter,
            prev: self.prev,
        }
        .at(&v.key, v.id, line, fare, time);
        self.prev = rec.proof.id();
        rec
    }
}

/// The credential, counter and chain link an NFC tap is signed with (see [`NfcTap::at`]).
struct NfcTap<'a> {
    tap: &'a SigningKey,
    cert: &'a CredentialCertificate,
    counter: u32,
    prev: [u8; 32],
}

impl NfcTap<'_> {
    /// A validator's record of the tap at `validator_id` on `line`, charging `fare` at `time`:
    /// the challenge (its nonce and session made of counter, time and line) signed by
    /// `signer`, quoted for the certificate's fare class, and the signed authorization.
    fn at(
        &self,
        signer: &SigningKey,
        validator_id: u32,
        line: u32,
        fare: i64,
        time: i64,
    ) -> TapRecord {
        let seed = sha256(&[
            &self.counter.to_be_bytes(),
            &time.to_be_bytes(),
            &line.to_be_bytes(),
            &self.cert.id(),
        ]);
        let challenge = ChallengeBody {
            validator_id,
            nonce: seed[..16].try_into().unwrap(),
            session: seed[16..].try_into().unwrap(),
            validator_time: time,
            line_id: line,
            fare,
            fare_class: self.cert.body.fare_class,
        }
        .sign(signer)
        .unwrap();
        let authorization = TapAuthorization::sign(
            self.tap,
            &challenge.body,
            &self.cert.id(),
            self.counter,
            fare,
            &self.prev,
        )
        .unwrap();
        TapRecord {
            validator_id,
            line_id: line,
            time,
            pseudonym: self.cert.body.pseudonym,
            counter: self.counter,
            fare,
            fare_kind: FareKind::Full,
            proof: TapProof::Nfc {
                challenge,
                authorization,
            },
        }
    }
}

/// `v`'s signed batch `[batch_id; 16]` in which each of `riders` rides twice: line 1 at `base`
/// and line 2 three hours later, 20,000 rials each (the second ride re-rates the day).
pub fn two_rides_each(
    v: &Validator,
    riders: &mut [EngineRider],
    batch_id: u8,
    base: i64,
) -> Vec<u8> {
    let records: Vec<_> = riders
        .iter_mut()
        .flat_map(|r| {
            [
                r.nfc_record(v, 1, 20_000, base),
                r.nfc_record(v, 2, 20_000, base + 3 * 3600),
            ]
        })
        .collect();
    signed_batch(&v.key, v.id, [batch_id; 16], base, records)
}

/// A validator's signed batch (the `TapBatch` encoding).
pub fn signed_batch(
    key: &SigningKey,
    validator_id: u32,
    batch_id: [u8; 16],
    created_at: i64,
    records: Vec<TapRecord>,
) -> Vec<u8> {
    BatchBody {
        validator_id,
        batch_id,
        created_at,
        records,
        torn: Vec::new(),
    }
    .sign(key)
    .unwrap()
    .encode()
}
