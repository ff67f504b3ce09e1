//! The issuer's logic: accounts, issuance, top-up, wallet sync, validator batches, settlement.
//!
//! Every method is synchronous and may block on the database: the HTTP layer calls them on
//! blocking threads (`spawn_blocking`), benchmarks and tools call them directly.

use crate::config::BackendConfig;
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{KeyInfo, Keyring};
use crate::model::*;
use crate::repo::{AuditReport, FraudCase, Intent, NewEntry, NewTap, Repo, Tx};
use crate::settle::{
    check_entry, check_record, over_allowance_total, rate, CertInfo, Check, CheckedTap,
};
use mancard_protocol::provision::{verify_provision, ProvisionPurpose, NONCE_LEN};
use mancard_protocol::{
    sha256, verify_chain, CertificateBody, ChainError, CredentialCertificate, FareClass,
    OfflineAllowance, Pseudonym, PublicKey, RideState, Signature, TapBatch, WalletLogEntry,
    GENESIS_HASH,
};
use rayon::prelude::*;
use ring::rand::SecureRandom;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// Ledger entries returned by one sync at most.
const SYNC_LEDGER_PAGE: i64 = 500;

/// The backend's state and logic.
pub struct Engine {
    repo: Repo,
    keys: RwLock<Keyring>,
    certs: RwLock<HashMap<[u8; 32], Arc<CertInfo>>>,
    config: BackendConfig,
    base_url: String,
    clock_offset: AtomicI64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("db", &self.config.db_path)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> ApiResult<[u8; N]> {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| ApiError::internal(&"system random number generator failed"))?;
    Ok(b)
}

fn hex_array<const N: usize>(s: &str, field: &'static str) -> ApiResult<[u8; N]> {
    let v = hex::decode(s.trim())
        .map_err(|_| ApiError::bad_request("invalid_hex", format!("{field} is not hex")))?;
    v.try_into()
        .map_err(|_| ApiError::bad_request("invalid_length", format!("{field} must be {N} bytes")))
}

fn public_key(s: &str, field: &'static str) -> ApiResult<PublicKey> {
    let v = hex::decode(s.trim())
        .map_err(|_| ApiError::bad_request("invalid_hex", format!("{field} is not hex")))?;
    PublicKey::from_bytes(&v, field)
        .map_err(|e| ApiError::bad_request("invalid_key", e.to_string()))
}

/// Normalizes a phone number to `+<digits>`.
pub fn normalize_phone(raw: &str) -> ApiResult<String> {
    let s: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let (plus, digits) = match s.strip_prefix('+') {
        Some(d) => (true, d.to_string()),
        None => (false, s.clone()),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "invalid_phone",
            "a phone number is digits, optionally after a leading +",
        ));
    }
    let digits = if !plus && digits.len() == 11 && digits.starts_with("09") {
        format!("98{}", digits.get(1..).unwrap_or_default())
    } else {
        digits
    };
    if !(8..=15).contains(&digits.len()) {
        return Err(ApiError::bad_request(
            "invalid_phone",
            "a phone number has 8 to 15 digits",
        ));
    }
    Ok(format!("+{digits}"))
}

fn otp_hash(phone: &str, code: &str) -> [u8; 32] {
    sha256(&[
        b"MANCARD-OTP-v1\0",
        phone.as_bytes(),
        b"\0",
        code.as_bytes(),
    ])
}

fn token_hash(token: &str) -> [u8; 32] {
    sha256(&[b"MANCARD-SESSION-v1\0", token.as_bytes()])
}

fn class_of(v: u8) -> Result<FareClass, StoreError> {
    FareClass::from_u8(v).map_err(|_| StoreError::Corrupt("fare class"))
}

fn tap_result(seq: u64, status: &str) -> TapResult {
    TapResult {
        seq,
        pseudonym: None,
        counter: None,
        status: status.to_string(),
        fare: None,
        reason: None,
        detail: None,
    }
}

impl Engine {
    /// Opens the database and key file. `base_url` prefixes payment and callback links.
    pub fn open(config: BackendConfig, base_url: String) -> Result<Self, StoreError> {
        let repo = Repo::open(&config.db_path)?;
        let now = chrono::Utc::now().timestamp();
        let keys = Keyring::load_or_create(&crate::keys::key_file_path(&config.db_path), now)?;
        Ok(Self {
            repo,
            keys: RwLock::new(keys),
            certs: RwLock::new(HashMap::new()),
            config,
            base_url,
            clock_offset: AtomicI64::new(0),
        })
    }

    pub fn config(&self) -> &BackendConfig {
        &self.config
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Server time, UTC seconds.
    pub fn now(&self) -> i64 {
        chrono::Utc::now()
            .timestamp()
            .saturating_add(self.clock_offset.load(Ordering::Relaxed))
    }

    /// Sandbox only: moves the server clock forward (expiry in tests and demos).
    pub fn advance_clock(&self, secs: i64) -> ApiResult<()> {
        if !self.config.sandbox {
            return Err(ApiError::forbidden("sandbox_only", "only in sandbox mode"));
        }
        self.clock_offset.fetch_add(secs, Ordering::Relaxed);
        Ok(())
    }

    /// Checkpoints the database (at shutdown).
    pub fn close(&self) -> Result<(), StoreError> {
        self.repo.checkpoint()
    }

    /// Direct access to the repository (tools and tests).
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    // ---- accounts -----------------------------------------------------------------------

    /// Sends (sandbox: logs) a one-time code to a phone number.
    pub fn request_otp(&self, req: &OtpRequest) -> ApiResult<OtpResponse> {
        let phone = normalize_phone(&req.phone)?;
        if !self.config.sandbox {
            return Err(ApiError::unavailable(
                "sms_unavailable",
                "no SMS provider is configured; run with --sandbox",
            ));
        }
        let p = &self.config.policy;
        let now = self.now();
        let n: [u8; 4] = random()?;
        let code = format!("{:06}", u32::from_be_bytes(n) % 1_000_000);
        let expires_at = now.saturating_add(p.otp_ttl_secs);
        self.repo.write(|tx| {
            if tx.otp_count_since(&phone, now - 3600)? >= p.otp_max_per_hour {
                return Err(ApiError::too_many(
                    "too many codes requested for this number; try again later",
                ));
            }
            tx.insert_otp(
                &phone,
                &otp_hash(&phone, &code),
                Some(&code),
                now,
                expires_at,
            )?;
            Ok(())
        })?;
        tracing::info!(%phone, %code, "sandbox one-time code");
        Ok(OtpResponse { phone, expires_at })
    }

    /// Sandbox only: the live code of a phone number.
    pub fn sandbox_otp(&self, phone: &str) -> ApiResult<SandboxOtp> {
        if !self.config.sandbox {
            return Err(ApiError::not_found("not_found", "no such endpoint"));
        }
        let phone = normalize_phone(phone)?;
        let now = self.now();
        let (code, expires_at) = self
            .repo
            .read(|tx| tx.sandbox_otp(&phone, now))?
            .ok_or_else(|| ApiError::not_found("no_code", "no live code for this number"))?;
        Ok(SandboxOtp {
            phone,
            code,
            expires_at,
        })
    }

    /// Exchanges a one-time code for a session (creating the account on first login).
    pub fn create_session(&self, req: &SessionRequest) -> ApiResult<SessionResponse> {
        let phone = normalize_phone(&req.phone)?;
        let code = req.code.trim();
        if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
            return Err(ApiError::bad_request(
                "invalid_code",
                "the code is 6 digits",
            ));
        }
        let p = &self.config.policy;
        let now = self.now();
        let token = hex::encode(random::<32>()?);
        let th = token_hash(&token);
        let expires_at = now.saturating_add(p.session_ttl_secs);
        // Wrong-code attempts are committed even though the request fails.
        let outcome = self.repo.write(|tx| -> ApiResult<ApiResult<i64>> {
            let Some(otp) = tx.live_otp(&phone, now)? else {
                return Ok(Err(ApiError::unauthorized(
                    "no live code for this number (expired, used or never sent)",
                )));
            };
            if otp.attempts >= p.otp_max_attempts {
                return Ok(Err(ApiError::too_many(
                    "too many wrong codes; request a new code",
                )));
            }
            if otp.code_hash != otp_hash(&phone, code) {
                tx.otp_failed_attempt(otp.id)?;
                return Ok(Err(ApiError::unauthorized("wrong code")));
            }
            let _ = otp.expires_at;
            tx.otp_mark_used(otp.id, now)?;
            let account_id = match tx.account_by_phone(&phone)? {
                Some(a) => a.id,
                None => tx.create_account(&phone, now)?,
            };
            tx.insert_session(&th, account_id, now, expires_at)?;
            Ok(Ok(account_id))
        })?;
        let account_id = outcome?;
        Ok(SessionResponse {
            token,
            account_id,
            expires_at,
        })
    }

    /// The account of a bearer token.
    pub fn authenticate(&self, token: &str) -> ApiResult<i64> {
        if token.len() != 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::unauthorized("malformed bearer token"));
        }
        let now = self.now();
        self.repo
            .read(|tx| tx.session_account(&token_hash(token), now))?
            .ok_or_else(|| ApiError::unauthorized("unknown or expired session"))
    }

    pub fn account(&self, account_id: i64) -> ApiResult<AccountResponse> {
        let now = self.now();
        self.repo.read(|tx| {
            let a = tx
                .account(account_id)?
                .ok_or_else(|| ApiError::not_found("unknown_account", "no such account"))?;
            Ok(AccountResponse {
                account_id,
                phone: a.phone,
                fare_class: class_of(a.fare_class)?.name().to_string(),
                balance: tx.balance(account_id)?,
                server_time: now,
            })
        })
    }

    // ---- issuance -----------------------------------------------------------------------

    pub fn new_nonce(&self, account_id: i64) -> ApiResult<NonceResponse> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let expires_at = self.now().saturating_add(self.config.policy.nonce_ttl_secs);
        self.repo
            .write(|tx| tx.insert_nonce(&nonce, account_id, expires_at))?;
        Ok(NonceResponse {
            nonce: hex::encode(nonce),
            expires_at,
        })
    }

    /// Provisions a device or replenishes its certificate.
    pub fn issue(
        &self,
        account_id: i64,
        req: &CredentialRequest,
        purpose: ProvisionPurpose,
    ) -> ApiResult<CredentialResponse> {
        let nonce: [u8; NONCE_LEN] = hex_array(&req.nonce, "nonce")?;
        let binding = public_key(&req.binding_public_key, "binding_public_key")?;
        let tap = public_key(&req.tap_public_key, "tap_public_key")?;
        let sig = Signature(hex_array(&req.signature, "signature")?);
        if verify_provision(purpose, &nonce, &binding, &tap, &sig).is_err() {
            return Err(ApiError::bad_request(
                "bad_proof",
                "the binding-key signature over the provisioning transcript does not verify",
            ));
        }
        let now = self.now();
        let policy = &self.config.policy;
        let new_pseudonym = Pseudonym(random()?);
        let (resp, info) = self.repo.write(|tx| {
            if !tx.take_nonce(&nonce, account_id, now)? {
                return Err(ApiError::bad_request(
                    "invalid_nonce",
                    "unknown, used or expired nonce; get a new one",
                ));
            }
            let account = tx
                .account(account_id)?
                .ok_or_else(|| ApiError::not_found("unknown_account", "no such account"))?;
            let existing = tx.device_by_binding_key(binding.as_bytes())?;
            let mut revoked = Vec::new();
            let device = match (purpose, existing) {
                (_, Some(d)) if d.account_id != account_id => {
                    return Err(ApiError::conflict(
                        "binding_key_in_use",
                        "this binding key belongs to another account",
                    ))
                }
                (_, Some(d)) => {
                    if let Some(reason) = tx.revocation(&d.pseudonym)? {
                        return Err(ApiError::conflict(
                            "credential_revoked",
                            format!("this device's credential is revoked ({reason}); provision with a new binding key"),
                        ));
                    }
                    d
                }
                (ProvisionPurpose::Replenish, None) => {
                    return Err(ApiError::not_found(
                        "unknown_device",
                        "no device with this binding key; provision first",
                    ))
                }
                (ProvisionPurpose::Provision, None) => {
                    for old in tx.active_devices(account_id)? {
                        tx.revoke(&old.pseudonym, old.id, "replaced_by_new_device", now)?;
                        revoked.push(hex::encode(old.pseudonym));
                    }
                    let id = tx.insert_device(account_id, binding.as_bytes(), &new_pseudonym.0, now)?;
                    if !revoked.is_empty() {
                        tracing::info!(account_id, device_id = id, revoked = revoked.len(), "new device replaces the old one");
                    }
                    crate::repo::Device {
                        id,
                        account_id,
                        binding_key: binding.as_bytes().to_vec(),
                        pseudonym: new_pseudonym.0,
                        created_at: now,
                    }
                }
            };
            let counter_first = match tx.latest_certificate(device.id)? {
                Some(c) => c.counter_last.checked_add(1).ok_or_else(|| {
                    ApiError::conflict("counters_exhausted", "this device has used every counter; provision a new device")
                })?,
                None => 0,
            }
            .max(req.next_counter.unwrap_or(0));
            let counter_last = counter_first
                .saturating_add(policy.counters_per_cert.max(1).saturating_sub(1));
            let balance = tx.balance(account_id)?;
            let max_amount = balance.clamp(0, policy.max_offline_amount.max(0));
            let fare_class = class_of(account.fare_class)?;
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            let signer = keys.current()?;
            let issuer_keys = keys
                .listed(now, policy.cert_lifetime_secs)
                .into_iter()
                .map(|k| IssuerKeyView {
                    key_id: k.key_id,
                    public_key: hex::encode(k.public_key.as_bytes()),
                    valid_from: k.valid_from,
                    valid_until: k.valid_until,
                })
                .collect();
            let body = CertificateBody {
                issuer_key_id: signer.key_id,
                pseudonym: Pseudonym(device.pseudonym),
                tap_public_key: tap,
                valid_from: now.saturating_sub(policy.cert_backdate_secs),
                valid_until: now.saturating_add(policy.cert_lifetime_secs.max(1)),
                fare_class,
                allowance: OfflineAllowance {
                    counter_first,
                    counter_last,
                    max_amount,
                },
            };
            let cert = body
                .sign(&signer.key)
                .map_err(|e| ApiError::internal(&e))?;
            drop(keys);
            let encoded = cert.encode();
            let hash = CredentialCertificate::hash_bytes(&encoded);
            tx.insert_certificate(
                &hash,
                device.id,
                &encoded,
                counter_first,
                counter_last,
                cert.body.valid_until,
                now,
            )?;
            let info = CertInfo {
                cert: cert.clone(),
                hash,
                device_id: device.id,
                account_id,
            };
            let resp = CredentialResponse {
                certificate: hex::encode(&encoded),
                certificate_hash: hex::encode(hash),
                pseudonym: hex::encode(device.pseudonym),
                issuer_key_id: cert.body.issuer_key_id,
                valid_from: cert.body.valid_from,
                valid_until: cert.body.valid_until,
                counter_first,
                counter_last,
                max_amount,
                fare_class: fare_class.name().to_string(),
                balance,
                server_time: now,
                revoked_pseudonyms: revoked,
                issuer_keys,
                tariff: hex::encode(self.config.tariff.encode()),
            };
            Ok((resp, info))
        })?;
        tracing::info!(
            account_id,
            purpose = purpose.name(),
            counter_first = resp.counter_first,
            max_amount = resp.max_amount,
            "certificate issued"
        );
        self.certs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.hash, Arc::new(info));
        Ok(resp)
    }

    /// Issued certificates by hash (cache, then database).
    fn cert_infos(
        &self,
        hashes: &BTreeSet<[u8; 32]>,
    ) -> ApiResult<HashMap<[u8; 32], Arc<CertInfo>>> {
        let mut out = HashMap::with_capacity(hashes.len());
        let mut missing = Vec::new();
        {
            let cache = self.certs.read().unwrap_or_else(|p| p.into_inner());
            for h in hashes {
                match cache.get(h) {
                    Some(c) => {
                        out.insert(*h, Arc::clone(c));
                    }
                    None => missing.push(*h),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let found = self.repo.read(|tx| -> ApiResult<Vec<CertInfo>> {
            let mut v = Vec::new();
            for h in &missing {
                if let Some(row) = tx.certificate(h)? {
                    let cert = CredentialCertificate::decode(&row.encoded)
                        .map_err(|_| StoreError::Corrupt("stored certificate"))?;
                    v.push(CertInfo {
                        cert,
                        hash: row.hash,
                        device_id: row.device_id,
                        account_id: row.account_id,
                    });
                }
            }
            Ok(v)
        })?;
        let mut cache = self.certs.write().unwrap_or_else(|p| p.into_inner());
        for ci in found {
            let a = Arc::new(ci);
            cache.insert(a.hash, Arc::clone(&a));
            out.insert(a.hash, a);
        }
        Ok(out)
    }

    // ---- top-up -------------------------------------------------------------------------

    fn payment_url(&self, token: &str) -> String {
        format!("{}/sandbox/pay/{token}", self.base_url)
    }

    /// Creates (or, for a repeated idempotency key, returns) a top-up intent.
    pub fn create_topup(
        &self,
        account_id: i64,
        req: &TopupRequest,
    ) -> ApiResult<TopupIntentResponse> {
        if !self.config.sandbox {
            return Err(ApiError::unavailable(
                "gateway_unavailable",
                "no payment gateway is configured; run with --sandbox",
            ));
        }
        let p = &self.config.policy;
        if !(p.topup_min..=p.topup_max).contains(&req.amount) {
            return Err(ApiError::bad_request(
                "invalid_amount",
                format!("a top-up is {} to {} rials", p.topup_min, p.topup_max),
            ));
        }
        let key = req.idempotency_key.as_str();
        if key.is_empty() || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "the idempotency key is 1 to 128 printable ASCII characters",
            ));
        }
        let now = self.now();
        let id = hex::encode(random::<16>()?);
        let token = hex::encode(random::<16>()?);
        self.repo.write(|tx| {
            if let Some(existing) = tx.intent_by_key(account_id, key)? {
                if existing.amount != req.amount {
                    return Err(ApiError::conflict(
                        "idempotency_conflict",
                        "this idempotency key was used for another amount",
                    ));
                }
                return self.intent_status(tx, &existing, now);
            }
            let expires_at = now.saturating_add(p.topup_ttl_secs);
            tx.insert_gateway_payment(&token, req.amount, now, expires_at)?;
            let intent = Intent {
                id: id.clone(),
                account_id,
                amount: req.amount,
                idempotency_key: key.to_string(),
                gateway_token: token.clone(),
                created_at: now,
                expires_at,
            };
            tx.insert_intent(&intent)?;
            tracing::info!(account_id, intent = %id, amount = req.amount, "top-up intent created");
            self.intent_status(tx, &intent, now)
        })
    }

    /// The status of an intent; verifies the payment with the gateway if it says paid, and
    /// credits the ledger exactly once.
    fn intent_status(
        &self,
        tx: &Tx<'_>,
        intent: &Intent,
        now: i64,
    ) -> ApiResult<TopupIntentResponse> {
        let key = format!("topup:{}", intent.id);
        let gp = tx
            .gateway_payment(&intent.gateway_token)?
            .ok_or(StoreError::Corrupt("intent without gateway payment"))?;
        let mut entry = tx.ledger_by_key(&key)?;
        if entry.is_none() && gp.status == "paid" {
            // Server-to-server verification against the gateway's own record.
            if gp.amount != intent.amount || gp.ref_id.is_none() {
                return Err(ApiError::conflict(
                    "verification_failed",
                    "the gateway's record does not match the intent",
                ));
            }
            tx.gateway_mark_verified(&gp.token, now)?;
            tx.insert_ledger(&NewEntry {
                account_id: intent.account_id,
                kind: "topup",
                amount: intent.amount,
                idempotency_key: &key,
                tap: None,
                intent_id: Some(&intent.id),
                note: gp.ref_id.as_deref(),
                created_at: now,
            })?;
            tracing::info!(account_id = intent.account_id, intent = %intent.id, amount = intent.amount, "top-up credited");
            entry = tx.ledger_by_key(&key)?;
        }
        let status = match (&entry, gp.status.as_str()) {
            (Some(_), _) => "credited",
            (None, "cancelled") => "cancelled",
            (None, _) if now > intent.expires_at => "expired",
            _ => "pending",
        };
        let _ = gp.verified_at;
        Ok(TopupIntentResponse {
            intent_id: intent.id.clone(),
            amount: intent.amount,
            status: status.to_string(),
            payment_url: self.payment_url(&intent.gateway_token),
            expires_at: intent.expires_at,
            ledger_entry_id: entry.map(|e| e.id),
            gateway_ref: gp.ref_id,
        })
    }

    pub fn topup_status(&self, account_id: i64, intent_id: &str) -> ApiResult<TopupIntentResponse> {
        let now = self.now();
        self.repo.write(|tx| {
            let intent = tx
                .intent(intent_id)?
                .filter(|i| i.account_id == account_id)
                .ok_or_else(|| ApiError::not_found("unknown_intent", "no such top-up intent"))?;
            self.intent_status(tx, &intent, now)
        })
    }

    /// The gateway's redirect back to the merchant. The status parameter is not trusted: the
    /// payment is verified against the gateway's record.
    pub fn topup_callback(&self, token: &str) -> ApiResult<TopupIntentResponse> {
        let now = self.now();
        self.repo.write(|tx| {
            let intent = tx
                .intent_by_token(token)?
                .ok_or_else(|| ApiError::not_found("unknown_payment", "no such payment"))?;
            self.intent_status(tx, &intent, now)
        })
    }

    /// Reconciliation: verifies and credits every payment the gateway reports paid whose
    /// redirect never came back and whose wallet never polled. Returns how many were credited.
    /// The server runs it every minute.
    pub fn reconcile_topups(&self) -> ApiResult<usize> {
        let now = self.now();
        self.repo.write(|tx| {
            let mut credited = 0;
            for token in tx.paid_unverified()? {
                if let Some(intent) = tx.intent_by_token(&token)? {
                    if self.intent_status(tx, &intent, now)?.status == "credited" {
                        credited += 1;
                    }
                }
            }
            if credited > 0 {
                tracing::info!(credited, "reconciliation credited paid top-ups");
            }
            Ok(credited)
        })
    }

    /// Sandbox gateway: the payment a page shows (amount, status, expiry).
    pub fn gateway_payment(&self, token: &str) -> ApiResult<(i64, String, i64)> {
        if !self.config.sandbox {
            return Err(ApiError::not_found("not_found", "no such endpoint"));
        }
        let gp = self
            .repo
            .read(|tx| tx.gateway_payment(token))?
            .ok_or_else(|| ApiError::not_found("unknown_payment", "no such payment"))?;
        Ok((gp.amount, gp.status, gp.expires_at))
    }

    /// Sandbox gateway: the rider pays (or cancels). Returns the callback URL to redirect to.
    /// Submitting twice is harmless: the payment keeps its first outcome.
    pub fn gateway_pay(&self, token: &str, pay: bool) -> ApiResult<String> {
        if !self.config.sandbox {
            return Err(ApiError::not_found("not_found", "no such endpoint"));
        }
        let now = self.now();
        let ref_id = hex::encode(random::<8>()?);
        let status = self.repo.write(|tx| {
            let gp = tx
                .gateway_payment(token)?
                .ok_or_else(|| ApiError::not_found("unknown_payment", "no such payment"))?;
            if gp.status == "pending" {
                if now > gp.expires_at {
                    return Err(ApiError::conflict(
                        "payment_expired",
                        "this payment page has expired",
                    ));
                }
                let to = if pay { "paid" } else { "cancelled" };
                tx.gateway_settle(token, to, pay.then_some(ref_id.as_str()), now)?;
                return Ok(to.to_string());
            }
            Ok(gp.status)
        })?;
        let ok = if status == "paid" { "OK" } else { "NOK" };
        Ok(format!(
            "{}/v1/topups/callback?token={token}&status={ok}",
            self.base_url
        ))
    }

    /// Admin: a manual ledger adjustment.
    pub fn adjust(&self, req: &AdjustmentRequest) -> ApiResult<AdjustmentResponse> {
        if req.idempotency_key.is_empty() || req.idempotency_key.len() > 128 {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "the idempotency key is 1 to 128 characters",
            ));
        }
        if req.amount == 0 || req.amount.unsigned_abs() > 1_000_000_000_000 || req.note.len() > 500
        {
            return Err(ApiError::bad_request(
                "invalid_adjustment",
                "an adjustment is non-zero, at most 10^12 rials, with a note of at most 500 bytes",
            ));
        }
        let now = self.now();
        let key = format!("adj:{}", req.idempotency_key);
        self.repo.write(|tx| {
            tx.account(req.account_id)?
                .ok_or_else(|| ApiError::not_found("unknown_account", "no such account"))?;
            let created = tx
                .insert_ledger(&NewEntry {
                    account_id: req.account_id,
                    kind: "adjustment",
                    amount: req.amount,
                    idempotency_key: &key,
                    tap: None,
                    intent_id: None,
                    note: Some(&req.note),
                    created_at: now,
                })?
                .is_some();
            let e = tx
                .ledger_by_key(&key)?
                .ok_or(StoreError::Corrupt("adjustment vanished"))?;
            Ok(AdjustmentResponse {
                ledger_entry_id: e.id,
                created,
                balance: tx.balance(req.account_id)?,
            })
        })
    }

    // ---- settlement ---------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn open_fraud(
        &self,
        tx: &Tx<'_>,
        device_id: i64,
        p: &[u8; 16],
        kind: &str,
        counter: Option<u32>,
        detail: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let id = tx.insert_fraud_case(device_id, p, kind, counter, detail, now)?;
        tx.revoke(p, device_id, kind, now)?;
        tracing::warn!(case = id, device_id, pseudonym = %hex::encode(p), kind, "fraud case opened; credential revoked");
        Ok(())
    }

    /// Recomputes the fares of an account's fare day in time order and appends the ledger
    /// entries that bring each ride's charge to its fare. Rides before `from_time` (the earliest
    /// ride that changed) only advance the rider's state: their fares cannot change. Returns
    /// the fares of the rides from `from_time` on.
    fn rerate(
        &self,
        tx: &Tx<'_>,
        account_id: i64,
        fare_day: i64,
        from_time: i64,
        now: i64,
    ) -> Result<HashMap<([u8; 16], u32), i64>, StoreError> {
        let tariff = &self.config.tariff;
        let rides = tx.day_rides(account_id, fare_day, from_time)?;
        let mut state = RideState {
            fare_day,
            spent_today: 0,
            last_ride: tx.last_ride_before_day(account_id, fare_day)?,
        };
        let mut fares = HashMap::with_capacity(rides.len());
        for r in rides {
            let class = class_of(r.fare_class)?;
            let (amount, next) = rate(tariff, class, r.line_id, r.time, r.authorized, &state);
            state = next;
            if r.time < from_time {
                continue;
            }
            fares.insert((r.pseudonym, r.counter), amount);
            if amount == r.charged && r.entries > 0 {
                continue;
            }
            let p = hex::encode(r.pseudonym);
            let (kind, key) = if r.entries == 0 {
                ("fare", format!("fare:{p}:{}", r.counter))
            } else {
                (
                    "fare_adjustment",
                    format!("fare-adj:{p}:{}:{}", r.counter, r.entries),
                )
            };
            let inserted = tx.insert_ledger(&NewEntry {
                account_id,
                kind,
                amount: r.charged.saturating_sub(amount),
                idempotency_key: &key,
                tap: Some((&r.pseudonym, r.counter)),
                intent_id: None,
                note: None,
                created_at: now,
            })?;
            if inserted.is_none() {
                return Err(StoreError::Corrupt("fare entry key reused"));
            }
        }
        Ok(fares)
    }

    /// Applies verified reports in one transaction: each (pseudonym, counter) is charged once;
    /// conflicting evidence opens a fraud case. `seqs` name the results.
    fn apply_checks(
        &self,
        tx: &Tx<'_>,
        checks: Vec<(u64, Check)>,
        source: &'static str,
        now: i64,
    ) -> Result<Vec<TapResult>, StoreError> {
        let tariff = &self.config.tariff;
        let mut results = Vec::with_capacity(checks.len());
        // (account, fare day) → earliest changed ride time
        let mut groups: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        // results whose fare is filled after rating: index → (pseudonym, counter, account, day)
        let mut pending: Vec<(usize, [u8; 16], u32)> = Vec::new();
        for (seq, check) in checks {
            let mut t: Box<CheckedTap> = match check {
                Check::Rejected { reason, detail } => {
                    let mut r = tap_result(seq, "rejected");
                    r.reason = Some(reason.to_string());
                    r.detail = Some(detail);
                    results.push(r);
                    continue;
                }
                Check::Ok(t) => t,
            };
            let mut r = tap_result(seq, "settled");
            r.pseudonym = Some(hex::encode(t.pseudonym));
            r.counter = Some(t.counter);
            if let Some(existing) = tx.tap(&t.pseudonym, t.counter)? {
                if existing.proof == t.proof {
                    r.status = "duplicate".into();
                    if let (None, Some(line)) = (existing.line_id, t.line_id) {
                        tx.set_tap_line(&t.pseudonym, t.counter, line)?;
                        let e = groups
                            .entry((existing.account_id, existing.fare_day))
                            .or_insert(existing.time);
                        *e = (*e).min(existing.time);
                    }
                    pending.push((results.len(), t.pseudonym, t.counter));
                } else {
                    let detail = format!(
                        "two different taps signed with counter {} (reported by {source})",
                        t.counter
                    );
                    self.open_fraud(
                        tx,
                        existing.device_id,
                        &t.pseudonym,
                        "duplicate_counter",
                        Some(t.counter),
                        &detail,
                        now,
                    )?;
                    r.status = "fraud".into();
                    r.reason = Some("duplicate_counter".into());
                    r.detail = Some(detail);
                }
                results.push(r);
                continue;
            }
            let fare_day = tariff.fare_day(t.time);
            tx.insert_tap(&NewTap {
                pseudonym: &t.pseudonym,
                counter: t.counter,
                account_id: t.account_id,
                device_id: t.device_id,
                cert_hash: &t.cert_hash,
                fare_class: t.fare_class as u8,
                time: t.time,
                fare_day,
                line_id: t.line_id,
                authorized: t.authorized,
                proof: &t.proof,
                source,
                reported_at: now,
            })?;
            // The certificate's running total, bumped in this transaction with the insert: a
            // replayed report never gets here (it is a duplicate above), and concurrent
            // uploads are serialized by the write transaction.
            let total = tx.add_cert_usage(&t.cert_hash, t.authorized)?;
            let fraud = t
                .fraud
                .take()
                .or_else(|| over_allowance_total(total, t.allowance));
            if let Some((kind, detail)) = &fraud {
                self.open_fraud(
                    tx,
                    t.device_id,
                    &t.pseudonym,
                    kind,
                    Some(t.counter),
                    detail,
                    now,
                )?;
                r.status = "fraud".into();
                r.reason = Some((*kind).to_string());
                r.detail = Some(detail.clone());
            }
            let e = groups.entry((t.account_id, fare_day)).or_insert(t.time);
            *e = (*e).min(t.time);
            pending.push((results.len(), t.pseudonym, t.counter));
            results.push(r);
        }
        let mut fares: HashMap<([u8; 16], u32), i64> = HashMap::new();
        for ((account, day), from_time) in groups {
            fares.extend(self.rerate(tx, account, day, from_time, now)?);
        }
        for (i, p, c) in pending {
            let fare = match fares.get(&(p, c)) {
                Some(f) => *f,
                None => tx.tap_charge(&p, c)?,
            };
            if let Some(r) = results.get_mut(i) {
                r.fare = Some(fare);
            }
        }
        Ok(results)
    }

    /// Ingests a validator's signed batch (the `TapBatch` encoding).
    pub fn ingest_batch(&self, bytes: &[u8]) -> ApiResult<BatchResponse> {
        let batch = TapBatch::decode(bytes)
            .map_err(|e| ApiError::bad_request("invalid_batch", e.to_string()))?;
        let vid = batch.body.validator_id;
        let batch_id = batch.body.batch_id;
        let body_hash = sha256(&[bytes]);
        let (key, prior) = self
            .repo
            .read(|tx| -> ApiResult<_> { Ok((tx.validator_key(vid)?, tx.batch(&batch_id)?)) })?;
        let key = key
            .and_then(|k| PublicKey::from_bytes(&k, "validator key").ok())
            .ok_or_else(|| {
                ApiError::forbidden(
                    "unknown_validator",
                    format!("validator {vid} is not registered"),
                )
            })?;
        if !batch.verify_signature(&key) {
            return Err(ApiError::forbidden(
                "bad_batch_signature",
                "the batch signature does not verify under the validator's registered key",
            ));
        }
        if let Some(stored) = prior {
            return Self::stored_batch(stored, vid, &body_hash);
        }
        let hashes: BTreeSet<[u8; 32]> = batch
            .body
            .records
            .iter()
            .map(|r| r.proof.cert_hash())
            .collect();
        let certs = self.cert_infos(&hashes)?;
        let checks: Vec<(u64, Check)> = batch
            .body
            .records
            .par_iter()
            .enumerate()
            .map(|(i, rec)| {
                let ci = certs.get(&rec.proof.cert_hash()).map(|a| &**a);
                (i as u64, check_record(rec, vid, ci))
            })
            .collect();
        let now = self.now();
        let resp = self.repo.write(|tx| -> ApiResult<BatchResponse> {
            if let Some(stored) = tx.batch(&batch_id)? {
                return Self::stored_batch(stored, vid, &body_hash);
            }
            let records = self.apply_checks(tx, checks, "validator", now)?;
            let count = |s: &str| records.iter().filter(|r| r.status == s).count();
            let resp = BatchResponse {
                batch_id: hex::encode(batch_id),
                validator_id: vid,
                duplicate_batch: false,
                settled: count("settled"),
                duplicates: count("duplicate"),
                fraud: count("fraud"),
                rejected: count("rejected"),
                records,
            };
            let json = serde_json::to_string(&resp).map_err(|e| ApiError::internal(&e))?;
            tx.insert_batch(&batch_id, vid, &body_hash, &json, now)?;
            Ok(resp)
        })?;
        tracing::info!(validator = vid, batch = %resp.batch_id, settled = resp.settled, duplicates = resp.duplicates, fraud = resp.fraud, rejected = resp.rejected, "batch ingested");
        Ok(resp)
    }

    fn stored_batch(
        stored: (u32, Vec<u8>, String),
        vid: u32,
        body_hash: &[u8; 32],
    ) -> ApiResult<BatchResponse> {
        let (v, h, json) = stored;
        if v != vid || h.as_slice() != body_hash.as_slice() {
            return Err(ApiError::conflict(
                "batch_id_conflict",
                "this batch id was used for a different batch",
            ));
        }
        let mut r: BatchResponse =
            serde_json::from_str(&json).map_err(|e| ApiError::internal(&e))?;
        r.duplicate_batch = true;
        Ok(r)
    }

    // ---- wallet sync --------------------------------------------------------------------

    fn device_of_account(
        &self,
        account_id: i64,
        pseudonym: &str,
    ) -> ApiResult<crate::repo::Device> {
        let p: [u8; 16] = hex_array(pseudonym, "pseudonym")?;
        self.repo
            .read(|tx| tx.device_by_pseudonym(&p))?
            .filter(|d| d.account_id == account_id)
            .ok_or_else(|| ApiError::not_found("unknown_device", "no such device on this account"))
    }

    /// Uploads tap-log entries, settles them, and answers with balance, ledger and status.
    pub fn sync(&self, account_id: i64, req: &SyncRequest) -> ApiResult<SyncResponse> {
        if req.entries.len() > self.config.policy.max_sync_entries {
            return Err(ApiError::bad_request(
                "too_many_entries",
                format!(
                    "at most {} entries per sync",
                    self.config.policy.max_sync_entries
                ),
            ));
        }
        if req.cursor < 0 {
            return Err(ApiError::bad_request("invalid_cursor", "the cursor is ≥ 0"));
        }
        let mut entries = Vec::with_capacity(req.entries.len());
        for (i, h) in req.entries.iter().enumerate() {
            let bytes = hex::decode(h.trim()).map_err(|_| {
                ApiError::bad_request("invalid_entry", format!("entry {i} is not hex"))
            })?;
            let e = WalletLogEntry::decode(&bytes)
                .map_err(|e| ApiError::bad_request("invalid_entry", format!("entry {i}: {e}")))?;
            entries.push((e, bytes));
        }
        let device = self.device_of_account(account_id, &req.pseudonym)?;
        let hashes: BTreeSet<[u8; 32]> = entries.iter().map(|(e, _)| e.proof.cert_hash()).collect();
        let certs = self.cert_infos(&hashes)?;
        let checks: Vec<(u64, Check)> = entries
            .par_iter()
            .map(|(e, _)| {
                let ci = certs.get(&e.proof.cert_hash()).map(|a| &**a);
                (e.seq, check_entry(e, device.id, ci))
            })
            .collect();
        let now = self.now();
        let policy = &self.config.policy;
        self.repo.write(|tx| {
            let (mut next_seq, mut prev, last_counter) = match tx.chain_head(device.id)? {
                Some((s, h, c)) => (s.saturating_add(1), h, Some(c)),
                None => (0, GENESIS_HASH, None),
            };
            let mut broken: Option<String> = None;
            let split = entries
                .iter()
                .position(|(e, _)| e.seq >= next_seq)
                .unwrap_or(entries.len());
            let (known, fresh) = entries.split_at(split);
            for (e, _) in known {
                if tx.log_hash_at(device.id, e.seq)? != Some(e.hash()) {
                    broken = Some(format!(
                        "entry {} differs from the entry uploaded before with that number",
                        e.seq
                    ));
                    break;
                }
            }
            if broken.is_none() && !fresh.is_empty() {
                let list: Vec<WalletLogEntry> = fresh.iter().map(|(e, _)| e.clone()).collect();
                match verify_chain(&list, prev, next_seq, last_counter) {
                    Ok(head) => {
                        for (e, bytes) in fresh {
                            tx.insert_log(device.id, e.seq, &e.hash(), e.counter(), bytes)?;
                        }
                        next_seq = next_seq.saturating_add(fresh.len() as u64);
                        prev = head;
                    }
                    Err(ChainError::SequenceGap { seq, expected }) if seq > expected => {
                        return Err(ApiError::conflict(
                            "chain_gap",
                            format!("entry {seq} does not follow the stored chain; upload from entry {expected}"),
                        ));
                    }
                    Err(e) => broken = Some(e.to_string()),
                }
            }
            if let Some(detail) = &broken {
                self.open_fraud(tx, device.id, &device.pseudonym, "broken_chain", None, detail, now)?;
            }
            let taps = self.apply_checks(tx, checks, "wallet", now)?;
            let balance = tx.balance(account_id)?;
            let mut ledger = tx.ledger_since(account_id, req.cursor, SYNC_LEDGER_PAGE + 1)?;
            let more = ledger.len() > SYNC_LEDGER_PAGE as usize;
            ledger.truncate(SYNC_LEDGER_PAGE as usize);
            let cursor = ledger.last().map(|e| e.id).unwrap_or(req.cursor);
            let credential = self.credential_status(tx, &device, balance, now)?;
            let _ = policy;
            Ok(SyncResponse {
                server_time: now,
                balance,
                cursor,
                ledger,
                more,
                credential,
                taps,
                chain: ChainState {
                    next_seq,
                    head_hash: hex::encode(prev),
                },
                tariff: hex::encode(self.config.tariff.encode()),
            })
        })
    }

    fn credential_status(
        &self,
        tx: &Tx<'_>,
        device: &crate::repo::Device,
        balance: i64,
        now: i64,
    ) -> ApiResult<CredentialStatus> {
        let policy = &self.config.policy;
        let cert = tx.latest_certificate(device.id)?;
        let decoded = cert
            .as_ref()
            .and_then(|c| CredentialCertificate::decode(&c.encoded).ok());
        let (status, reason) = if let Some(r) = tx.revocation(&device.pseudonym)? {
            ("revoked", Some(r))
        } else if let Some(c) = &decoded {
            let a = c.body.allowance;
            let used = tx
                .max_counter(&device.pseudonym)?
                .filter(|m| a.contains(*m))
                .map(|m| u64::from(m - a.counter_first) + 1)
                .unwrap_or(0);
            let grantable = balance.clamp(0, policy.max_offline_amount.max(0));
            if c.body.valid_until.saturating_sub(now) < policy.replenish_before_expiry_secs {
                ("replenish_due", Some("expiry_near".to_string()))
            } else if used.saturating_mul(4) >= a.counters().saturating_mul(3) {
                ("replenish_due", Some("counters_low".to_string()))
            } else if grantable > a.max_amount {
                ("replenish_due", Some("allowance_can_grow".to_string()))
            } else {
                ("active", None)
            }
        } else {
            ("replenish_due", Some("no_certificate".to_string()))
        };
        Ok(CredentialStatus {
            status: status.to_string(),
            reason,
            pseudonym: hex::encode(device.pseudonym),
            certificate: cert.as_ref().map(|c| hex::encode(&c.encoded)),
            valid_until: decoded.as_ref().map(|c| c.body.valid_until),
            counter_first: decoded.as_ref().map(|c| c.body.allowance.counter_first),
            counter_last: decoded.as_ref().map(|c| c.body.allowance.counter_last),
            max_amount: decoded.as_ref().map(|c| c.body.allowance.max_amount),
        })
    }

    /// Stored log entries of a device from `from_seq` (a wallet that lost its last records
    /// after a power loss learns them back here).
    pub fn wallet_log(
        &self,
        account_id: i64,
        pseudonym: &str,
        from_seq: u64,
    ) -> ApiResult<LogResponse> {
        let device = self.device_of_account(account_id, pseudonym)?;
        let rows = self
            .repo
            .read(|tx| tx.log_from(device.id, from_seq, 1_000))?;
        Ok(LogResponse {
            entries: rows
                .into_iter()
                .map(|(seq, e)| LogItem {
                    seq,
                    entry: hex::encode(e),
                })
                .collect(),
        })
    }

    // ---- validators and the config bundle -----------------------------------------------

    pub fn register_validator(
        &self,
        req: &RegisterValidatorRequest,
    ) -> ApiResult<RegisterValidatorResponse> {
        let key = public_key(&req.public_key, "public_key")?;
        let now = self.now();
        self.repo
            .write(|tx| tx.upsert_validator(req.validator_id, key.as_bytes(), now))?;
        tracing::info!(validator = req.validator_id, "validator registered");
        Ok(RegisterValidatorResponse {
            validator_id: req.validator_id,
            registered_at: now,
        })
    }

    /// The current signed config bundle: (version, encoding). A new version is signed whenever
    /// the issuer keys, deny list or tariff change.
    pub fn config_bundle(&self) -> ApiResult<(u64, Vec<u8>)> {
        let now = self.now();
        let lifetime = self.config.policy.cert_lifetime_secs;
        self.repo.write(|tx| {
            let deny = tx.deny_list(now)?;
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            let signer = keys.current()?;
            let listed = keys.listed(now, lifetime);
            let tariff = self.config.tariff.encode();
            let mut content =
                Vec::with_capacity(64 + listed.len() * 90 + deny.len() * 16 + tariff.len());
            content.extend_from_slice(&signer.key_id.to_be_bytes());
            for k in &listed {
                content.extend_from_slice(&k.key_id.to_be_bytes());
                content.extend_from_slice(k.public_key.as_bytes());
                content.extend_from_slice(&k.valid_from.to_be_bytes());
                content.extend_from_slice(&k.valid_until.to_be_bytes());
            }
            content.extend_from_slice(&(deny.len() as u64).to_be_bytes());
            for p in &deny {
                content.extend_from_slice(p);
            }
            content.extend_from_slice(&tariff);
            let content_hash = sha256(&[b"MANCARD-BUNDLE-CONTENT\0", &content]);
            let latest = tx.latest_bundle()?;
            if let Some(b) = &latest {
                if b.content_hash.as_slice() == content_hash.as_slice() {
                    return Ok((b.version, b.encoded.clone()));
                }
            }
            let version = latest.map(|b| b.version.saturating_add(1)).unwrap_or(1);
            let body = mancard_protocol::ConfigBody {
                bundle_version: version,
                issued_at: now,
                signer_key_id: signer.key_id,
                issuer_keys: listed,
                deny_list: deny.into_iter().map(Pseudonym).collect(),
                tariff: self.config.tariff.clone(),
            };
            let signed = body.sign(&signer.key).map_err(|e| ApiError::internal(&e))?;
            let encoded = signed.encode();
            tx.insert_bundle(version, &content_hash, &encoded, now)?;
            tracing::info!(
                version,
                deny = signed.body.deny_list.len(),
                "config bundle signed"
            );
            Ok((version, encoded))
        })
    }

    // ---- admin --------------------------------------------------------------------------

    pub fn keys(&self) -> ApiResult<KeysResponse> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        Ok(KeysResponse {
            current_key_id: keys.current()?.key_id,
            keys: keys.info(),
        })
    }

    /// Adds a new issuer key; the old one stops signing new certificates.
    pub fn rotate_key(&self) -> ApiResult<KeysResponse> {
        let now = self.now();
        {
            let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
            keys.rotate(now)?;
        }
        self.keys()
    }

    pub fn key_info(&self) -> Vec<KeyInfo> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).info()
    }

    pub fn fraud_cases(&self) -> ApiResult<Vec<FraudCase>> {
        Ok(self.repo.read(|tx| tx.fraud_cases())?)
    }

    pub fn audit(&self) -> ApiResult<AuditReport> {
        Ok(self.repo.read(|tx| tx.audit())?)
    }

    /// Per-account balances (admin and tests).
    pub fn balances(&self) -> ApiResult<BTreeMap<i64, i64>> {
        self.repo.read(|tx| -> ApiResult<_> {
            let audit = tx.audit()?;
            let mut out = BTreeMap::new();
            for id in 1..=audit.accounts {
                if tx.account(id)?.is_some() {
                    out.insert(id, tx.balance(id)?);
                }
            }
            Ok(out)
        })
    }
}
