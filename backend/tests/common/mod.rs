//! Test harness: a real backend on a loopback ephemeral port with a real SQLite file, and a
//! wallet and a validator built from the protocol crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use mancard_backend::{Backend, BackendConfig, BackendHandle};
use mancard_protocol::provision::{sign_provision, ProvisionPurpose};
use mancard_protocol::{
    BatchBody, BoardingPass, CredentialCertificate, FareKind, PassBody, SigningKey,
    TapAuthorization, TapBatch, TapChallenge, TapProof, TapRecord, Tariff, WalletLogEntry,
    GENESIS_HASH,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;

pub const ADMIN: &str = "test-admin-token-0123456789";

pub struct Harness {
    pub handle: Option<BackendHandle>,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("backend.sqlite")
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
        init_logs();
        let mut cfg = BackendConfig::sandbox(db_path(&dir));
        cfg.admin_token = Some(ADMIN.into());
        cfg.policy.reconcile_every_secs = 0; // tests call Engine::reconcile_topups themselves
        let handle = Backend::start(cfg).await.unwrap();
        assert!(handle.addr().ip().is_loopback());
        let url = handle.url();
        Self {
            handle: Some(handle),
            url,
            http: client(),
            dir,
        }
    }

    /// Stops gracefully and starts again on the same database.
    pub async fn restart(mut self) -> Self {
        self.handle.take().unwrap().shutdown().await.unwrap();
        Self::start_in(self.dir).await
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

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut r = self.http.post(self.u(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        decode(resp).await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post(path, Some(ADMIN), body).await
    }

    pub async fn login(&self, phone: &str) -> String {
        let (s, _) = self
            .post("/v1/auth/otp", None, &json!({ "phone": phone }))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let (s, otp) = self
            .get(&format!("/sandbox/otp?phone={}", urlenc(phone)), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{otp}");
        let (s, sess) = self
            .post(
                "/v1/auth/session",
                None,
                &json!({ "phone": phone, "code": otp["code"] }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{sess}");
        sess["token"].as_str().unwrap().to_string()
    }

    /// Creates a top-up intent and pays it on the sandbox gateway (following the redirect).
    pub async fn topup(&self, token: &str, amount: i64, key: &str) -> Value {
        let (s, intent) = self
            .post(
                "/v1/topups",
                Some(token),
                &json!({ "amount": amount, "idempotency_key": key }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{intent}");
        let url = intent["payment_url"].as_str().unwrap().to_string();
        let resp = self.http.post(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let html = resp.text().await.unwrap();
        assert!(html.contains("credited"), "{html}");
        let (s, st) = self
            .get(
                &format!("/v1/topups/{}", intent["intent_id"].as_str().unwrap()),
                Some(token),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        st
    }

    pub async fn balance(&self, token: &str) -> i64 {
        let (s, a) = self.get("/v1/account", Some(token)).await;
        assert_eq!(s, StatusCode::OK, "{a}");
        a["balance"].as_i64().unwrap()
    }

    pub async fn audit(&self) -> Value {
        let (s, a) = self.get("/v1/admin/audit", Some(ADMIN)).await;
        assert_eq!(s, StatusCode::OK, "{a}");
        assert_eq!(a["ok"], true, "ledger invariants broken: {a}");
        a
    }

    pub async fn fraud_cases(&self) -> Vec<Value> {
        let (s, a) = self.get("/v1/admin/fraud-cases", Some(ADMIN)).await;
        assert_eq!(s, StatusCode::OK);
        a.as_array().unwrap().clone()
    }

    pub async fn upload(&self, batch: &[u8]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.u("/v1/validator/batches"))
            .header("content-type", "application/octet-stream")
            .body(batch.to_vec())
            .send()
            .await
            .unwrap();
        decode(resp).await
    }

    pub async fn config(&self) -> mancard_protocol::ValidatorConfig {
        let resp = self
            .http
            .get(self.u("/v1/validator/config"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        mancard_protocol::ValidatorConfig::decode(&resp.bytes().await.unwrap()).unwrap()
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

pub struct Wallet {
    pub token: String,
    pub binding: SigningKey,
    pub tap: SigningKey,
    pub cert: CredentialCertificate,
    pub cert_hash: [u8; 32],
    pub pseudonym: String,
    pub next_counter: u32,
    pub seq: u64,
    pub prev: [u8; 32],
    pub cursor: i64,
    pub server_time: i64,
}

pub fn cert_from(resp: &Value) -> CredentialCertificate {
    CredentialCertificate::decode(&hex::decode(resp["certificate"].as_str().unwrap()).unwrap())
        .unwrap()
}

impl Wallet {
    pub async fn credential_request(
        h: &Harness,
        token: &str,
        binding: &SigningKey,
        tap: &SigningKey,
        purpose: ProvisionPurpose,
    ) -> Value {
        let (s, n) = h
            .post("/v1/credential/nonce", Some(token), &json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        let nonce: [u8; 32] = hex::decode(n["nonce"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let sig = sign_provision(binding, purpose, &nonce, &tap.public_key()).unwrap();
        json!({
            "nonce": hex::encode(nonce),
            "binding_public_key": hex::encode(binding.public_key().as_bytes()),
            "tap_public_key": hex::encode(tap.public_key().as_bytes()),
            "signature": hex::encode(sig.as_bytes()),
        })
    }

    pub async fn provision(h: &Harness, token: &str) -> (Self, Value) {
        let (binding, _) = SigningKey::generate().unwrap();
        let (tap, _) = SigningKey::generate().unwrap();
        let req =
            Self::credential_request(h, token, &binding, &tap, ProvisionPurpose::Provision).await;
        let (s, c) = h.post("/v1/credential/provision", Some(token), &req).await;
        assert_eq!(s, StatusCode::OK, "{c}");
        let cert = cert_from(&c);
        let w = Self {
            token: token.to_string(),
            binding,
            tap,
            cert_hash: cert.hash(),
            next_counter: cert.body.allowance.counter_first,
            cert,
            pseudonym: c["pseudonym"].as_str().unwrap().to_string(),
            seq: 0,
            prev: GENESIS_HASH,
            cursor: 0,
            server_time: c["server_time"].as_i64().unwrap(),
        };
        (w, c)
    }

    pub async fn replenish(&mut self, h: &Harness) -> Value {
        let (tap, _) = SigningKey::generate().unwrap();
        let req = Self::credential_request(
            h,
            &self.token,
            &self.binding,
            &tap,
            ProvisionPurpose::Replenish,
        )
        .await;
        let (s, c) = h
            .post("/v1/credential/replenish", Some(&self.token), &req)
            .await;
        assert_eq!(s, StatusCode::OK, "{c}");
        self.tap = tap;
        self.cert = cert_from(&c);
        self.cert_hash = self.cert.hash();
        self.next_counter = self.cert.body.allowance.counter_first;
        c
    }

    fn log(&mut self, time: i64, amount: i64, proof: TapProof) -> WalletLogEntry {
        let e = WalletLogEntry {
            seq: self.seq,
            prev_hash: self.prev,
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
        validator_id: u32,
        line: u32,
        fare: i64,
        time: i64,
    ) -> (TapRecord, WalletLogEntry) {
        let counter = self.next_counter;
        self.next_counter += 1;
        self.nfc_tap_with_counter(validator_id, line, fare, time, counter)
    }

    pub fn nfc_tap_with_counter(
        &mut self,
        validator_id: u32,
        line: u32,
        fare: i64,
        time: i64,
        counter: u32,
    ) -> (TapRecord, WalletLogEntry) {
        let mut nonce = [0u8; 16];
        nonce[..4].copy_from_slice(&counter.to_be_bytes());
        nonce[4..12].copy_from_slice(&time.to_be_bytes());
        nonce[12..].copy_from_slice(&line.to_be_bytes());
        let challenge = TapChallenge {
            validator_id,
            nonce,
            validator_time: time,
            line_id: line,
            fare,
        };
        let authorization =
            TapAuthorization::sign(&self.tap, &challenge, &self.cert_hash, counter, fare).unwrap();
        let proof = TapProof::Nfc {
            challenge,
            authorization,
            cert_hash: self.cert_hash,
        };
        let rec = TapRecord {
            validator_id,
            line_id: line,
            time,
            pseudonym: self.cert.body.pseudonym,
            counter,
            fare,
            fare_kind: FareKind::Full,
            proof: proof.clone(),
        };
        let entry = self.log(time, fare, proof);
        (rec, entry)
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
        let counter = self.next_counter;
        self.next_counter += 1;
        let pass = PassBody {
            certificate: self.cert.clone(),
            counter,
            issued_at: time,
            lifetime_secs: 60,
            max_amount: max,
        }
        .sign(&self.tap)
        .unwrap();
        let proof = TapProof::Qr { pass };
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

    pub async fn sync(&mut self, h: &Harness, entries: &[WalletLogEntry]) -> (StatusCode, Value) {
        let body = json!({
            "pseudonym": self.pseudonym,
            "cursor": self.cursor,
            "entries": entries.iter().map(|e| hex::encode(e.encode())).collect::<Vec<_>>(),
        });
        let (s, v) = h.post("/v1/wallet/sync", Some(&self.token), &body).await;
        if s == StatusCode::OK {
            self.cursor = v["cursor"].as_i64().unwrap();
        }
        (s, v)
    }
}

pub struct Validator {
    pub id: u32,
    pub key: SigningKey,
}

impl Validator {
    pub async fn register(h: &Harness, id: u32) -> Self {
        let (key, _) = SigningKey::generate().unwrap();
        let (s, v) = h
            .admin_post(
                "/v1/admin/validators",
                &json!({ "validator_id": id, "public_key": hex::encode(key.public_key().as_bytes()) }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        Self { id, key }
    }

    pub fn batch(&self, records: Vec<TapRecord>) -> Vec<u8> {
        let (k, _) = SigningKey::generate().unwrap();
        let mut batch_id = [0u8; 16];
        batch_id.copy_from_slice(&k.public_key().as_bytes()[1..17]);
        self.batch_with_id(batch_id, records)
    }

    pub fn batch_with_id(&self, batch_id: [u8; 16], records: Vec<TapRecord>) -> Vec<u8> {
        let b: TapBatch = BatchBody {
            validator_id: self.id,
            batch_id,
            created_at: 0,
            records,
        }
        .sign(&self.key)
        .unwrap();
        b.encode()
    }
}

pub fn _unused(_: BoardingPass) {}
