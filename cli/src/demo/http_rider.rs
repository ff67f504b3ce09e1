//! `--client http`: the backend's HTTP API called directly (docs/api.md) with the contract's
//! own types (`mancard-api`), driving the wallet's public API the way the online layer does:
//! binding-key proof, certificate install, tap-log upload, confirmed balance.

use super::client::{Issued, Synced};
use super::world::Verdict;
use super::{Res, HTTP_TIMEOUT};
use mancard::{FileKeystore, Wallet};
use mancard_api::endpoints::{
    self, Endpoint, CREATE_SESSION, CREATE_TOPUP, CREDENTIAL_NONCE, PROVISION, REPLENISH,
    REQUEST_OTP, TOPUP_STATUS, WALLET_SYNC,
};
use mancard_api::{
    CredentialRequest, CredentialResponse, NonceResponse, OtpRequest, OtpResponse, Problem,
    SessionRequest, SessionResponse, SyncRequest, SyncResponse, TapVerdict, TopupIntentResponse,
    TopupRequest, TopupStatus,
};
use mancard_protocol::{PublicKey, WalletLogEntry};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// The rider's HTTP client and what it remembers between calls.
pub(super) struct HttpRider {
    http: reqwest::Client,
    base: String,
    wallet: Arc<Wallet>,
    keystore: Arc<FileKeystore>,
    token: Option<String>,
    /// The `request_id` of the last code request (a login must name it).
    code_request: Option<String>,
    pseudonym: Option<String>,
    cursor: i64,
    uploaded_through: u64,
}

/// No request body.
const NO_BODY: Option<&()> = None;

impl HttpRider {
    pub(super) fn new(base: String, wallet: Arc<Wallet>, keystore: Arc<FileKeystore>) -> Res<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .build()
                .map_err(|e| format!("HTTP client: {e}"))?,
            base,
            wallet,
            keystore,
            token: None,
            code_request: None,
            pseudonym: None,
            cursor: 0,
            uploaded_through: 0,
        })
    }

    /// One call of `endpoint` at `path` (its path, parameters filled in): the JSON answer,
    /// or the problem's status, code and detail as the error.
    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: Option<&B>,
    ) -> Res<R> {
        let method = match endpoint.method {
            endpoints::Method::Get => reqwest::Method::GET,
            endpoints::Method::Post => reqwest::Method::POST,
        };
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("{path}: unreadable answer ({status}): {e}"))?;
        if !status.is_success() {
            let (code, detail) = match serde_json::from_slice::<Problem>(&bytes) {
                Ok(p) => (p.code.as_str().to_string(), p.detail),
                Err(_) => ("?".to_string(), String::new()),
            };
            return Err(format!("{path}: {status} {code} ({detail})").into());
        }
        Ok(serde_json::from_slice(&bytes)
            .map_err(|e| format!("{path}: unreadable answer ({status}): {e}"))?)
    }

    pub(super) async fn register(&mut self, phone: &str) -> Res<String> {
        let body = OtpRequest {
            phone: phone.to_string(),
        };
        let v: OtpResponse = self
            .call(REQUEST_OTP, REQUEST_OTP.path, Some(&body))
            .await?;
        self.code_request = Some(v.request_id);
        Ok(v.phone)
    }

    pub(super) async fn verify(&mut self, phone: &str, code: &str) -> Res<i64> {
        let body = SessionRequest {
            phone: phone.to_string(),
            code: code.to_string(),
            request_id: self.code_request.clone().ok_or("no code was requested")?,
        };
        let v: SessionResponse = self
            .call(CREATE_SESSION, CREATE_SESSION.path, Some(&body))
            .await?;
        self.token = Some(v.token);
        Ok(v.account_id)
    }

    pub(super) async fn provision(&mut self, replenish: bool) -> Res<Issued> {
        use mancard::PlatformKeystore as _;
        use mancard_protocol::provision::{provision_transcript, ProvisionPurpose};
        let req = self.wallet.prepare_credential_request()?;
        let n: NonceResponse = self
            .call(CREDENTIAL_NONCE, CREDENTIAL_NONCE.path, NO_BODY)
            .await?;
        let nonce: [u8; 32] = hex::decode(&n.nonce)?
            .try_into()
            .map_err(|_| "nonce is not 32 bytes")?;
        let (purpose, endpoint) = if replenish {
            (ProvisionPurpose::Replenish, REPLENISH)
        } else {
            (ProvisionPurpose::Provision, PROVISION)
        };
        let transcript = provision_transcript(
            purpose,
            &nonce,
            &PublicKey::from_bytes(&req.binding_public_key, "binding key")?,
            &PublicKey::from_bytes(&req.tap_public_key, "tap key")?,
        );
        let sig = self
            .keystore
            .sign_with_binding_key(transcript)
            .map_err(|e| format!("binding key: {e}"))?;
        let body = CredentialRequest {
            nonce: hex::encode(nonce),
            binding_public_key: hex::encode(&req.binding_public_key),
            tap_public_key: hex::encode(&req.tap_public_key),
            signature: hex::encode(sig),
            next_counter: Some(req.next_counter),
        };
        let c: CredentialResponse = self.call(endpoint, endpoint.path, Some(&body)).await?;
        install(&self.wallet, &c)?;
        self.pseudonym = Some(c.pseudonym.clone());
        Ok(Issued {
            pseudonym: c.pseudonym,
            valid_until: c.valid_until,
            counter_first: c.counter_first,
            counter_last: c.counter_last,
            max_amount: c.max_amount,
            balance: c.balance,
        })
    }

    pub(super) async fn start_top_up(&self, amount: i64) -> Res<(String, String)> {
        let body = serde_json::to_vec(&TopupRequest {
            amount,
            idempotency_key: "demo-topup-1".into(),
        })?;
        // A provisioned phone's session is bound to its binding key: the top-up carries the
        // key's signature over a fresh nonce and this very request (`ManCard-Proof`).
        let proof = self.request_proof(CREATE_TOPUP.path, &body).await?;
        let mut rb = self
            .http
            .post(format!("{}{}", self.base, CREATE_TOPUP.path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(endpoints::PROOF_HEADER, proof)
            .body(body);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().await.map_err(|e| format!("top-up: {e}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| format!("top-up: {e}"))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<Problem>(&bytes)
                .map(|p| format!("{} ({})", p.code, p.detail))
                .unwrap_or_default();
            return Err(format!("{}: {status} {detail}", CREATE_TOPUP.path).into());
        }
        let v: TopupIntentResponse = serde_json::from_slice(&bytes)?;
        Ok((v.intent_id, v.payment_url))
    }

    /// A `ManCard-Proof` header value for `POST path` with `body`, signed by the keystore's
    /// binding key over a fresh server nonce.
    async fn request_proof(&self, path: &str, body: &[u8]) -> Res<String> {
        use mancard::PlatformKeystore as _;
        use mancard_protocol::provision::{proof_header, request_transcript};
        let n: NonceResponse = self
            .call(CREDENTIAL_NONCE, CREDENTIAL_NONCE.path, NO_BODY)
            .await?;
        let nonce: [u8; 32] = hex::decode(&n.nonce)?
            .try_into()
            .map_err(|_| "nonce is not 32 bytes")?;
        let sig = self
            .keystore
            .sign_with_binding_key(request_transcript(&nonce, "POST", path, body))
            .map_err(|e| format!("binding key: {e}"))?;
        let raw: [u8; 64] = sig
            .as_slice()
            .try_into()
            .map_err(|_| "the keystore's signature is not 64 bytes")?;
        let sig = mancard_protocol::Signature(raw).to_low_s();
        Ok(proof_header(&nonce, &sig))
    }

    pub(super) async fn complete_top_up(&self, id: &str) -> Res<(String, String)> {
        let v: TopupIntentResponse = self
            .call(TOPUP_STATUS, &TOPUP_STATUS.path_with(id), NO_BODY)
            .await?;
        let gateway_ref = v.gateway_ref.unwrap_or_default();
        if v.status == TopupStatus::Credited {
            self.wallet.record_top_up(
                v.amount,
                chrono::Utc::now().timestamp(),
                gateway_ref.clone(),
            )?;
        }
        Ok((v.status.as_str().to_string(), gateway_ref))
    }

    pub(super) async fn sync(&mut self) -> Res<Synced> {
        let pseudonym = self.pseudonym.clone().ok_or("sync before provisioning")?;
        let entries = self.wallet.tap_log(self.uploaded_through, 1000)?;
        let n = u64::try_from(entries.len())?;
        let body = SyncRequest {
            pseudonym,
            cursor: self.cursor,
            entries: entries.iter().map(hex::encode).collect(),
            verdict_cursor: 0,
        };
        let v: SyncResponse = self
            .call(WALLET_SYNC, WALLET_SYNC.path, Some(&body))
            .await?;
        install_bundle(&self.wallet, &v.config_bundle)?;
        let mut corrections = 0u64;
        for (t, raw) in v.taps.iter().zip(entries.iter()) {
            let signed = WalletLogEntry::decode(raw).map(|e| e.amount).unwrap_or(0);
            if t.fare != Some(signed) {
                corrections += 1;
            }
        }
        let last = self.uploaded_through + n;
        self.wallet.set_confirmed_balance(
            v.balance,
            if last == 0 { None } else { Some(last - 1) },
            v.server_time,
        )?;
        self.uploaded_through = last;
        self.cursor = v.cursor;
        Ok(Synced {
            uploaded: n,
            balance: v.balance,
            fare_corrections: corrections,
            ledger_entries: u64::try_from(v.ledger.len())?,
            credential_status: v.credential.status.as_str().to_string(),
            verdicts: v.taps.iter().map(|t| (t.seq, t.status)).collect(),
            charged: newest_verdicts(&v.verdicts),
        })
    }
}

/// The newest verdict per tap of a sync answer's feed (oldest first), by counter.
pub(super) fn newest_verdicts(feed: &[TapVerdict]) -> Vec<Verdict> {
    let mut newest: std::collections::BTreeMap<(String, u32), &TapVerdict> =
        std::collections::BTreeMap::new();
    for v in feed {
        newest.insert((v.pseudonym.clone(), v.counter), v);
    }
    newest
        .into_values()
        .map(|v| Verdict {
            counter: v.counter,
            status: v.status.as_str().to_string(),
            charged: v.charged,
            reason: v.reason.clone(),
        })
        .collect()
}

/// What the app does with an issued credential: clock offset, tariff, certificate, and the
/// signed config bundle (issuer keys of validator certificates, validator deny list, time
/// rules): without it the phone answers no reader.
pub(crate) fn install(wallet: &Wallet, c: &CredentialResponse) -> Res<()> {
    let keys = c
        .issuer_keys
        .iter()
        .map(|k| {
            Ok(mancard::IssuerKeyInfo {
                key_id: k.key_id,
                public_key: hex::decode(&k.public_key)?,
                valid_from: k.valid_from,
                valid_until: k.valid_until,
            })
        })
        .collect::<Res<Vec<_>>>()?;
    wallet.set_server_time_offset(c.server_time - chrono::Utc::now().timestamp())?;
    wallet.set_tariff(hex::decode(&c.tariff)?)?;
    wallet.install_certificate(
        hex::decode(&c.certificate)?,
        keys,
        chrono::Utc::now().timestamp(),
    )?;
    install_bundle(wallet, &c.config_bundle)
}

/// Installs the backend's config bundle when it is newer than the phone's.
fn install_bundle(wallet: &Wallet, bundle_hex: &str) -> Res<()> {
    let bundle = hex::decode(bundle_hex)?;
    let offered = mancard_protocol::ValidatorConfig::decode(&bundle)?
        .body
        .bundle_version;
    if wallet.config_version().is_some_and(|v| v >= offered) {
        return Ok(());
    }
    wallet.install_config(bundle)?;
    Ok(())
}
