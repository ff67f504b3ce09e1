//! The online flows (accounts, credential, top-up, sync) on top of [`super::http::Http`] and
//! the wallet-core storage of `crate::sync_store`.

use super::http::{CallError, Http};
use super::*;
use crate::store::TopUpRow;
use crate::sync_store::{PageOutcome, ServerLedgerRow, Settlement, SyncPage};
use crate::types::{CredentialState, IssuerKeyInfo};
use crate::util::now_utc;
use mancard_protocol::provision::{provision_transcript, ProvisionPurpose, NONCE_LEN};
use mancard_protocol::PublicKey;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

/// Tap-log entries per sync request (the backend takes at most 1000).
const SYNC_BATCH: u32 = 1000;
/// Upper bound of sync round trips in one `sync` call (a runaway guard).
const MAX_SYNC_ROUNDS: u32 = 10_000;
const SCOPE_CREDENTIAL: &str = "credential";

// ----- wire types (the backend's JSON; unknown fields are ignored) ---------------------------

#[derive(Deserialize)]
struct OtpResponse {
    phone: String,
    expires_at: i64,
}

#[derive(Deserialize)]
struct SessionResponse {
    token: String,
    account_id: i64,
    expires_at: i64,
}

#[derive(Deserialize)]
struct AccountResponse {
    account_id: i64,
    phone: String,
    fare_class: String,
    balance: i64,
    server_time: i64,
}

#[derive(Deserialize)]
struct NonceResponse {
    nonce: String,
    expires_at: i64,
}

#[derive(Deserialize)]
struct IssuerKeyView {
    key_id: u32,
    public_key: String,
    valid_from: i64,
    valid_until: i64,
}

#[derive(Deserialize)]
struct CredentialResponse {
    certificate: String,
    certificate_hash: String,
    pseudonym: String,
    valid_from: i64,
    valid_until: i64,
    counter_first: u32,
    counter_last: u32,
    max_amount: i64,
    fare_class: String,
    balance: i64,
    #[serde(default)]
    revoked_pseudonyms: Vec<String>,
    issuer_keys: Vec<IssuerKeyView>,
    #[serde(default)]
    tariff: String,
}

#[derive(Deserialize)]
struct TopupIntentResponse {
    intent_id: String,
    amount: i64,
    status: String,
    payment_url: String,
    expires_at: i64,
    ledger_entry_id: Option<i64>,
    gateway_ref: Option<String>,
}

#[derive(Deserialize)]
struct LedgerEntry {
    id: i64,
    kind: String,
    amount: i64,
    idempotency_key: String,
    #[serde(default)]
    pseudonym: Option<String>,
    counter: Option<u32>,
    intent_id: Option<String>,
    note: Option<String>,
    created_at: i64,
}

#[derive(Deserialize)]
struct CredentialStatus {
    status: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct TapResult {
    seq: u64,
    status: String,
    fare: Option<i64>,
    reason: Option<String>,
    detail: Option<String>,
}

#[derive(Deserialize)]
struct ChainState {
    next_seq: u64,
}

#[derive(Deserialize)]
struct SyncResponse {
    server_time: i64,
    balance: i64,
    cursor: i64,
    #[serde(default)]
    ledger: Vec<LedgerEntry>,
    more: bool,
    credential: CredentialStatus,
    #[serde(default)]
    taps: Vec<TapResult>,
    chain: ChainState,
    #[serde(default)]
    tariff: String,
}

#[derive(Deserialize)]
struct LogItem {
    seq: u64,
    entry: String,
}

#[derive(Deserialize)]
struct LogResponse {
    entries: Vec<LogItem>,
}

fn server_err(message: impl Into<String>) -> OnlineError {
    OnlineError::Server {
        message: message.into(),
    }
}

fn unhex(s: &str, what: &str) -> Result<Vec<u8>, OnlineError> {
    hex::decode(s.trim())
        .map_err(|_| server_err(format!("the backend sent a {what} that is not hex")))
}

/// The stored provisioning attempt: purpose ‖ tap key (65) ‖ nonce (32) ‖ signature (64) ‖
/// nonce expiry (8, big endian). The nonce makes the request idempotent: resent as is after a
/// lost answer.
struct CredentialAttempt {
    purpose: u8,
    tap_key: Vec<u8>,
    nonce: Vec<u8>,
    signature: Vec<u8>,
    expires_at: i64,
}

impl CredentialAttempt {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 65 + 32 + 64 + 8);
        v.push(self.purpose);
        v.extend_from_slice(&self.tap_key);
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.signature);
        v.extend_from_slice(&self.expires_at.to_be_bytes());
        v
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let (purpose, rest) = b.split_first()?;
        let (tap_key, rest) = rest.split_at_checked(65)?;
        let (nonce, rest) = rest.split_at_checked(NONCE_LEN)?;
        let (signature, rest) = rest.split_at_checked(64)?;
        let exp: [u8; 8] = rest.try_into().ok()?;
        Some(Self {
            purpose: *purpose,
            tap_key: tap_key.to_vec(),
            nonce: nonce.to_vec(),
            signature: signature.to_vec(),
            expires_at: i64::from_be_bytes(exp),
        })
    }
}

/// Server − device clock, from the server time of an answer and the device clock before and
/// after the request (the midpoint). `None` when out of bounds (|offset| > `max`) or when the
/// round trip took over 30 s (too imprecise).
pub(crate) fn clock_offset(
    server_time: i64,
    sent_at: i64,
    received_at: i64,
    max: i64,
) -> Option<i64> {
    let rtt = received_at.saturating_sub(sent_at);
    if !(0..=30).contains(&rtt) {
        return None;
    }
    let offset = server_time.saturating_sub(sent_at.saturating_add(rtt / 2));
    (offset.abs() <= max.max(0)).then_some(offset)
}

type PendingApply = tokio::task::JoinHandle<Result<PageOutcome, WalletError>>;

/// Where a running sync stands.
struct SyncLoop {
    recover_tried_at: Option<u64>,
    /// Next entry to upload.
    from: u64,
    /// Backend ledger cursor.
    cursor: i64,
    /// The application of the last answer, running.
    pending: Option<PendingApply>,
}

pub(crate) struct Inner {
    wallet: Arc<Wallet>,
    http: Http,
    opts: OnlineOptions,
    /// One sync at a time per client (a second one waits, then finds little to do).
    sync_lock: tokio::sync::Mutex<()>,
    /// One credential request at a time.
    credential_lock: tokio::sync::Mutex<()>,
}

impl Inner {
    pub(crate) fn new(
        wallet: Arc<Wallet>,
        backend_url: &str,
        opts: OnlineOptions,
    ) -> Result<Self, OnlineError> {
        Ok(Self {
            wallet,
            http: Http::new(backend_url, opts.clone())?,
            opts,
            sync_lock: tokio::sync::Mutex::new(()),
            credential_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn wallet(&self) -> Arc<Wallet> {
        Arc::clone(&self.wallet)
    }

    pub(crate) fn base_url(&self) -> &str {
        self.http.base()
    }

    // ----- session ---------------------------------------------------------------------------

    /// The unsealed session token (zeroized on drop). Never logged.
    fn token(&self) -> Result<Zeroizing<String>, OnlineError> {
        let s = self
            .wallet
            .stored_session()?
            .ok_or(OnlineError::SessionExpired)?;
        if s.expires_at.is_some_and(|e| e <= now_utc()) {
            return Err(OnlineError::SessionExpired);
        }
        let plain = Zeroizing::new(self.wallet.keystore().unseal(s.sealed).map_err(|e| {
            tracing::warn!("the stored session cannot be unsealed: {e}");
            OnlineError::SessionExpired
        })?);
        let t = String::from_utf8(plain.to_vec()).map_err(|_| OnlineError::SessionExpired)?;
        Ok(Zeroizing::new(t))
    }

    async fn authed<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, CallError> {
        let token = self.token().map_err(|e| CallError::Local(Box::new(e)))?;
        self.http
            .call(method, path, Some(token.as_str()), body)
            .await
    }

    pub(crate) async fn register(&self, phone: String) -> Result<CodeSent, OnlineError> {
        let r: OtpResponse = self
            .http
            .call(
                Method::POST,
                "/v1/auth/otp",
                None,
                Some(&json!({ "phone": phone })),
            )
            .await?;
        Ok(CodeSent {
            phone: r.phone,
            expires_at: r.expires_at,
        })
    }

    pub(crate) async fn verify(
        &self,
        phone: String,
        code: String,
    ) -> Result<SessionInfo, OnlineError> {
        let r: SessionResponse = self
            .http
            .call(
                Method::POST,
                "/v1/auth/session",
                None,
                Some(&json!({ "phone": phone, "code": code })),
            )
            .await
            .map_err(|e| match e {
                // On this endpoint a 401 means a wrong, expired or used code.
                CallError::Problem {
                    status: 401,
                    problem,
                } => OnlineError::Validation {
                    code: problem.code,
                    message: "the code is wrong, expired or already used; ask for a new one".into(),
                },
                e => e.into(),
            })?;
        let token = Zeroizing::new(r.token);
        let sealed = self
            .wallet
            .keystore()
            .seal(token.as_bytes().to_vec())
            .map_err(WalletError::from)?;
        drop(token);
        // The backend normalises the number; ask it back for the account record.
        self.wallet
            .store_session(sealed, r.account_id, &phone, r.expires_at)?;
        let phone = match self.account().await {
            Ok(a) => {
                self.wallet
                    .store_session_phone(&a.phone)
                    .map_err(OnlineError::from)?;
                a.phone
            }
            Err(_) => phone,
        };
        Ok(SessionInfo {
            account_id: r.account_id,
            phone,
            expires_at: r.expires_at,
        })
    }

    pub(crate) fn logout(&self) -> Result<(), OnlineError> {
        Ok(self.wallet.clear_session()?)
    }

    pub(crate) fn state(&self) -> Result<OnlineState, OnlineError> {
        let s = self.wallet.stored_session()?;
        let (up, cursor) = self.wallet.sync_cursors()?;
        let open = self.wallet.topups_open()?.len();
        Ok(OnlineState {
            logged_in: s
                .as_ref()
                .is_some_and(|s| s.expires_at.is_none_or(|e| e > now_utc())),
            account_id: s.as_ref().and_then(|s| s.account_id),
            phone: s.as_ref().and_then(|s| s.phone.clone()),
            session_expires_at: s.as_ref().and_then(|s| s.expires_at),
            upload_from_seq: up,
            ledger_cursor: cursor,
            open_top_ups: u64::try_from(open).unwrap_or(0),
        })
    }

    pub(crate) async fn account(&self) -> Result<AccountInfo, OnlineError> {
        let a: AccountResponse = self.authed(Method::GET, "/v1/account", None).await?;
        Ok(AccountInfo {
            account_id: a.account_id,
            phone: a.phone,
            fare_class: a.fare_class,
            balance: a.balance,
            server_time: a.server_time,
        })
    }

    // ----- credential ------------------------------------------------------------------------

    pub(crate) async fn provision(&self, replenish: bool) -> Result<ProvisionReport, OnlineError> {
        let _g = self.credential_lock.lock().await;
        let purpose = if replenish {
            ProvisionPurpose::Replenish
        } else {
            ProvisionPurpose::Provision
        };
        if replenish {
            match self.wallet.current_pseudonym() {
                None => {
                    return Err(OnlineError::Validation {
                        code: "no_credential".into(),
                        message: "this phone has no ticket yet; provision it first".into(),
                    })
                }
                Some((_, true)) => {
                    return Err(OnlineError::CredentialRevoked {
                        reason: "the ticket on this phone was revoked".into(),
                    })
                }
                Some(_) => {}
            }
        }
        let req = self.wallet.prepare_credential_request()?;
        let path = format!("/v1/credential/{}", purpose.name());
        // A stored attempt for the same key and purpose is resent first (its answer may have
        // been lost after the backend applied it).
        let stored = self
            .wallet
            .idempotency_get(SCOPE_CREDENTIAL)?
            .and_then(|(_, b)| CredentialAttempt::decode(&b))
            .filter(|a| {
                a.purpose == purpose as u8
                    && a.tap_key == req.tap_public_key
                    && a.expires_at > self.wallet.corrected(now_utc())
            });
        // A nonce is single-use: `invalid_nonce` means it was consumed (by a request of ours
        // whose answer was lost, possibly inside the retries of this very call) or expired.
        // One fresh proof is then tried; the backend treats the same binding key as the same
        // device, so this never creates a second device.
        let mut fresh_left = 1u32;
        let mut attempt = match stored {
            Some(a) => a,
            None => self.new_attempt(purpose, &req).await?,
        };
        let resp: CredentialResponse = loop {
            let body = json!({
                "nonce": hex::encode(&attempt.nonce),
                "binding_public_key": hex::encode(&req.binding_public_key),
                "tap_public_key": hex::encode(&attempt.tap_key),
                "signature": hex::encode(&attempt.signature),
                "next_counter": req.next_counter,
            });
            match self.authed(Method::POST, &path, Some(&body)).await {
                Ok(r) => break r,
                Err(e) if fresh_left > 0 && e.code() == Some("invalid_nonce") => {
                    fresh_left -= 1;
                    attempt = self.new_attempt(purpose, &req).await?;
                }
                Err(e) => {
                    if matches!(e, CallError::Problem { .. }) {
                        self.wallet.idempotency_clear(SCOPE_CREDENTIAL)?;
                    }
                    return Err(e.into());
                }
            }
        };
        let certificate = unhex(&resp.certificate, "certificate")?;
        let keys = resp
            .issuer_keys
            .iter()
            .map(|k| {
                Ok(IssuerKeyInfo {
                    key_id: k.key_id,
                    public_key: unhex(&k.public_key, "issuer key")?,
                    valid_from: k.valid_from,
                    valid_until: k.valid_until,
                })
            })
            .collect::<Result<Vec<_>, OnlineError>>()?;
        // Installed only after the signature, the key and the range are checked.
        self.wallet
            .install_certificate(certificate, keys, now_utc())?;
        self.wallet.idempotency_clear(SCOPE_CREDENTIAL)?;
        if !resp.tariff.is_empty() {
            if let Err(e) = self.wallet.set_tariff(unhex(&resp.tariff, "tariff")?) {
                tracing::warn!("the backend's tariff was not installed: {e}");
            }
        }
        Ok(ProvisionReport {
            pseudonym: resp.pseudonym,
            certificate_hash: resp.certificate_hash,
            valid_from: resp.valid_from,
            valid_until: resp.valid_until,
            counter_first: resp.counter_first,
            counter_last: resp.counter_last,
            max_amount: resp.max_amount,
            fare_class: resp.fare_class,
            balance: resp.balance,
            revoked_pseudonyms: resp.revoked_pseudonyms,
        })
    }

    /// A fresh nonce, signed by the binding key; stored before the request is sent.
    async fn new_attempt(
        &self,
        purpose: ProvisionPurpose,
        req: &crate::types::CredentialRequest,
    ) -> Result<CredentialAttempt, OnlineError> {
        let n: NonceResponse = self
            .authed(Method::POST, "/v1/credential/nonce", None)
            .await?;
        let nonce_bytes = unhex(&n.nonce, "nonce")?;
        let nonce: [u8; NONCE_LEN] = nonce_bytes
            .as_slice()
            .try_into()
            .map_err(|_| server_err("the backend's nonce is not 32 bytes"))?;
        let bk = PublicKey::from_bytes(&req.binding_public_key, "binding public key")
            .map_err(|e| WalletError::internal(e.to_string()))?;
        let tk = PublicKey::from_bytes(&req.tap_public_key, "tap public key")
            .map_err(|e| WalletError::internal(e.to_string()))?;
        let transcript = provision_transcript(purpose, &nonce, &bk, &tk);
        let signature = self
            .wallet
            .keystore()
            .sign_with_binding_key(transcript)
            .map_err(WalletError::from)?;
        if signature.len() != 64 {
            return Err(WalletError::internal(format!(
                "the keystore returned a {}-byte signature, not the fixed 64-byte form",
                signature.len()
            ))
            .into());
        }
        let a = CredentialAttempt {
            purpose: purpose as u8,
            tap_key: req.tap_public_key.clone(),
            nonce: nonce.to_vec(),
            signature,
            expires_at: n.expires_at,
        };
        self.wallet.idempotency_put(
            SCOPE_CREDENTIAL,
            &hex::encode(&a.nonce),
            &a.encode(),
            now_utc(),
        )?;
        Ok(a)
    }

    /// Whether a new certificate would help: expired, key unusable, expiry near, counters low,
    /// or rides low *and* the balance allows more allowance than is left (a certificate cannot
    /// grant more than the balance, so replenishing a poor wallet at every sync is pointless).
    fn replenish_wanted(&self) -> Result<bool, OnlineError> {
        let now = now_utc();
        let st = self.wallet.status(now)?;
        let cfg = self.wallet.config();
        Ok(match st.state {
            CredentialState::NoCredential | CredentialState::Revoked => false,
            CredentialState::Expired | CredentialState::KeyUnavailable => true,
            CredentialState::Active
            | CredentialState::ReplenishDue
            | CredentialState::NotYetValid
            | CredentialState::Exhausted => {
                let expiry_near = st.valid_until.is_some_and(|u| {
                    u.saturating_sub(self.wallet.corrected(now)) <= cfg.replenish_before_expiry_secs
                });
                let counters_low = st.counters_left <= cfg.replenish_below_rides;
                let l = self.wallet.ledger()?;
                let can_grow =
                    st.replenish_due && l.available_balance > l.offline_allowance_remaining.max(0);
                expiry_near || counters_low || can_grow
            }
        })
    }

    pub(crate) async fn replenish_if_due(&self) -> Result<Option<ProvisionReport>, OnlineError> {
        if !self.replenish_wanted()? {
            return Ok(None);
        }
        self.provision(true).await.map(Some)
    }

    // ----- top-up ----------------------------------------------------------------------------

    fn intent_of(r: TopupIntentResponse, key: String) -> Result<TopUpIntent, OnlineError> {
        let status = TopUpStatus::parse(&r.status)
            .ok_or_else(|| server_err(format!("unknown top-up status {:?}", r.status)))?;
        Ok(TopUpIntent {
            intent_id: r.intent_id,
            amount: r.amount,
            status,
            payment_url: r.payment_url,
            expires_at: r.expires_at,
            ledger_entry_id: r.ledger_entry_id,
            gateway_ref: r.gateway_ref,
            idempotency_key: key,
        })
    }

    fn row_of(i: &TopUpIntent) -> TopUpRow {
        TopUpRow {
            key: i.idempotency_key.clone(),
            amount: i.amount,
            intent_id: Some(i.intent_id.clone()),
            status: i.status.name().to_string(),
            payment_url: Some(i.payment_url.clone()),
            expires_at: Some(i.expires_at),
            ledger_entry_id: i.ledger_entry_id,
            gateway_ref: i.gateway_ref.clone(),
        }
    }

    pub(crate) async fn start_top_up(&self, amount: i64) -> Result<TopUpIntent, OnlineError> {
        if amount <= 0 {
            return Err(OnlineError::Validation {
                code: "invalid_amount".into(),
                message: "a top-up amount must be positive".into(),
            });
        }
        // Stored before sending; reused by every retry of this call and of later calls.
        let key = self.wallet.topup_key_for(amount, now_utc())?;
        let body = json!({ "amount": amount, "idempotency_key": key });
        let r: TopupIntentResponse =
            match self.authed(Method::POST, "/v1/topups", Some(&body)).await {
                Ok(r) => r,
                Err(e) => {
                    if let CallError::Problem { .. } = e {
                        // Refused (not applied): this key is done with.
                        self.wallet.topup_update(
                            &TopUpRow {
                                key: key.clone(),
                                amount,
                                intent_id: None,
                                status: "abandoned".into(),
                                payment_url: None,
                                expires_at: None,
                                ledger_entry_id: None,
                                gateway_ref: None,
                            },
                            now_utc(),
                        )?;
                    }
                    return Err(e.into());
                }
            };
        let intent = Self::intent_of(r, key)?;
        self.wallet
            .topup_update(&Self::row_of(&intent), now_utc())?;
        self.after_top_up(&intent).await?;
        Ok(intent)
    }

    pub(crate) async fn complete_top_up(
        &self,
        intent_id: String,
    ) -> Result<TopUpIntent, OnlineError> {
        let id = intent_id.trim();
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(OnlineError::Validation {
                code: "invalid_intent".into(),
                message: format!("{intent_id:?} is not a top-up id"),
            });
        }
        let r: TopupIntentResponse = self
            .authed(Method::GET, &format!("/v1/topups/{id}"), None)
            .await?;
        let key = self
            .wallet
            .topup_by_intent(id)?
            .map(|row| row.key)
            .unwrap_or_default();
        let intent = Self::intent_of(r, key)?;
        if !intent.idempotency_key.is_empty() {
            self.wallet
                .topup_update(&Self::row_of(&intent), now_utc())?;
        }
        self.after_top_up(&intent).await?;
        Ok(intent)
    }

    /// A credited top-up goes to the history once, then the balance is refreshed.
    async fn after_top_up(&self, intent: &TopUpIntent) -> Result<(), OnlineError> {
        if intent.status != TopUpStatus::Credited {
            return Ok(());
        }
        if let Some(le) = intent.ledger_entry_id {
            self.wallet
                .topup_credited(le, intent.amount, &intent.intent_id, now_utc())?;
        }
        if let Err(e) = self.refresh_balance().await {
            tracing::info!("balance not refreshed after the top-up: {e}");
        }
        Ok(())
    }

    async fn refresh_balance(&self) -> Result<(), OnlineError> {
        match self.wallet.current_pseudonym() {
            Some(_) => self.sync().await.map(|_| ()),
            None => {
                let a = self.account().await?;
                self.wallet.set_balance_only(a.balance, a.server_time)?;
                Ok(())
            }
        }
    }

    pub(crate) fn open_top_ups(&self) -> Result<Vec<TopUpIntent>, OnlineError> {
        Ok(self
            .wallet
            .topups_open()?
            .into_iter()
            .filter_map(|r| {
                Some(TopUpIntent {
                    intent_id: r.intent_id?,
                    amount: r.amount,
                    status: TopUpStatus::parse(&r.status)?,
                    payment_url: r.payment_url.unwrap_or_default(),
                    expires_at: r.expires_at.unwrap_or(0),
                    ledger_entry_id: r.ledger_entry_id,
                    gateway_ref: r.gateway_ref,
                    idempotency_key: r.key,
                })
            })
            .collect())
    }

    // ----- sync ------------------------------------------------------------------------------

    /// Stores the server clock offset if it is within bounds; returns (offset, applied).
    fn learn_clock(&self, server_time: i64, sent_at: i64, received_at: i64) -> (i64, bool) {
        let Some(offset) = clock_offset(
            server_time,
            sent_at,
            received_at,
            self.opts.max_clock_offset_secs,
        ) else {
            tracing::warn!(
                "server clock {server_time} vs device {sent_at}..{received_at}: offset not applied"
            );
            return (self.wallet.server_time_offset(), false);
        };
        match self.wallet.set_server_time_offset(offset) {
            Ok(()) => (offset, true),
            Err(e) => {
                tracing::warn!("could not store the clock offset: {e}");
                (self.wallet.server_time_offset(), false)
            }
        }
    }

    pub(crate) async fn sync(&self) -> Result<SyncReport, OnlineError> {
        let _g = self.sync_lock.lock().await;
        let mut report = SyncReport {
            server_time: 0,
            balance: 0,
            uploaded: 0,
            settled: 0,
            fare_corrections: 0,
            rejected: 0,
            recovered: 0,
            ledger_entries: 0,
            fare_adjustments: 0,
            pending_taps: 0,
            credential_status: "none".into(),
            credential_reason: None,
            revoked: false,
            replenished: false,
            replenish_error: None,
            clock_offset_secs: self.wallet.server_time_offset(),
            clock_offset_applied: false,
        };
        let Some((pseudonym, locally_revoked)) = self.wallet.current_pseudonym() else {
            let sent = now_utc();
            let a = self.account().await?;
            let (off, applied) = self.learn_clock(a.server_time, sent, now_utc());
            self.wallet.set_balance_only(a.balance, a.server_time)?;
            report.server_time = a.server_time;
            report.balance = a.balance;
            report.clock_offset_secs = off;
            report.clock_offset_applied = applied;
            return Ok(report);
        };
        let mut st = SyncLoop {
            recover_tried_at: None,
            from: 0,
            cursor: 0,
            pending: None,
        };
        (st.from, st.cursor) = self.wallet.sync_cursors()?;
        let mut rounds = 0u32;
        let result = async {
            loop {
                rounds += 1;
                if rounds > MAX_SYNC_ROUNDS {
                    return Err(server_err("sync did not converge"));
                }
                let from = st.from;
                let (body, n) = self.sync_body(&pseudonym, from, st.cursor)?;
                let sent = now_utc();
                let t_req = std::time::Instant::now();
                let first = self
                    .authed::<SyncResponse>(Method::POST, "/v1/wallet/sync", Some(&body))
                    .await;
                drop(body);
                let resp = match first {
                    Ok(r) => r,
                    Err(e) if e.code() == Some("chain_gap") => {
                        // The backend has fewer entries than we thought: upload from its head.
                        let expected = match &e {
                            CallError::Problem { problem, .. } => problem
                                .detail
                                .rsplit("upload from entry ")
                                .next()
                                .and_then(|s| s.trim().trim_end_matches('.').parse::<u64>().ok()),
                            _ => None,
                        };
                        match expected {
                            Some(x) if x < from => {
                                Self::settle(&mut st.pending, &mut report).await?;
                                self.wallet.set_upload_from(x)?;
                                st.from = x;
                                continue;
                            }
                            _ => return Err(e.into()),
                        }
                    }
                    Err(e) => return Err(e.into()),
                };
                let received = now_utc();
                tracing::debug!(
                    "sync page from entry {from}: {n} entries, answered in {:?}",
                    t_req.elapsed()
                );
                let (more, last) = self
                    .take_page(&mut st, &mut report, &pseudonym, resp, n)
                    .await?;
                if !more {
                    break Ok((last, sent, received));
                }
            }
        }
        .await;
        // Whatever happened, the answers received are applied before returning.
        let settled = Self::settle(&mut st.pending, &mut report).await;
        let (resp, sent, received) = result?;
        settled?;
        report.server_time = resp.server_time;
        report.balance = resp.balance;
        report.credential_status = resp.credential.status.clone();
        report.credential_reason = resp.credential.reason.clone();
        let (off, applied) = self.learn_clock(resp.server_time, sent, received);
        report.clock_offset_secs = off;
        report.clock_offset_applied = applied;
        if !resp.tariff.is_empty() {
            match unhex(&resp.tariff, "tariff").map(|t| self.wallet.set_tariff(t)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("the backend's tariff was not installed: {e}"),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        if resp.credential.status == "revoked" {
            if !locally_revoked {
                let reason = resp
                    .credential
                    .reason
                    .clone()
                    .unwrap_or_else(|| "revoked by the issuer".into());
                match self.wallet.mark_revoked(reason, now_utc()) {
                    Ok(()) | Err(WalletError::NoCredential) => {}
                    Err(e) => return Err(e.into()),
                }
                report.revoked = true;
            }
        } else if self.opts.replenish_on_sync
            && (resp.credential.status == "replenish_due" || self.replenish_wanted()?)
        {
            match self.provision(true).await {
                Ok(_) => report.replenished = true,
                Err(e) => report.replenish_error = Some(e.to_string()),
            }
        }
        report.pending_taps = self.wallet.ledger()?.pending_taps;
        drop(resp);
        Ok(report)
    }

    /// The JSON body of one sync request: up to `SYNC_BATCH` log entries from `from`.
    fn sync_body(
        &self,
        pseudonym: &str,
        from: u64,
        cursor: i64,
    ) -> Result<(serde_json::Value, u64), OnlineError> {
        let entries = self.wallet.tap_log(from, SYNC_BATCH)?;
        let n = entries.len() as u64;
        let hexed: Vec<String> = entries.iter().map(hex::encode).collect();
        Ok((
            json!({ "pseudonym": pseudonym, "cursor": cursor, "entries": hexed }),
            n,
        ))
    }

    /// Takes one sync answer for the `n` entries from `st.from`: queues its application (after
    /// the previous one's), advances the cursors, recovers lost entries if the backend has
    /// more than the wallet. Returns whether another round is needed, and the answer.
    async fn take_page(
        &self,
        st: &mut SyncLoop,
        report: &mut SyncReport,
        pseudonym: &str,
        resp: SyncResponse,
        n: u64,
    ) -> Result<(bool, SyncResponse), OnlineError> {
        report.uploaded = report.uploaded.saturating_add(n);
        let settlements: Vec<Settlement> = resp
            .taps
            .iter()
            .map(|t| Settlement {
                seq: t.seq,
                status: t.status.clone(),
                fare: t.fare,
                reason: t.reason.clone(),
                detail: t.detail.clone(),
            })
            .collect();
        let ledger: Vec<ServerLedgerRow> = resp
            .ledger
            .iter()
            .map(|l| ServerLedgerRow {
                id: l.id,
                kind: l.kind.clone(),
                amount: l.amount,
                idempotency_key: l.idempotency_key.clone(),
                pseudonym: l.pseudonym.clone(),
                counter: l.counter,
                intent_id: l.intent_id.clone(),
                note: l.note.clone(),
                created_at: l.created_at,
            })
            .collect();
        let next_from = st.from.saturating_add(n);
        let through = next_from.checked_sub(1);
        // The answer of page k is applied on a blocking thread while page k + 1 is in flight
        // (the backend is the bottleneck). Applications stay in order and each one is
        // idempotent, so a crash between them only means a re-upload.
        Self::settle(&mut st.pending, report).await?;
        let wallet = Arc::clone(&self.wallet);
        let new_cursor = resp.cursor.max(st.cursor);
        let page = SyncPage {
            settlements,
            ledger,
            upload_from: next_from,
            ledger_cursor: new_cursor,
            balance: resp.balance,
            confirmed_through: through,
            server_time: resp.server_time,
        };
        st.pending = Some(tokio::task::spawn_blocking(move || {
            wallet.apply_sync_page(&page, now_utc())
        }));
        st.from = next_from;
        st.cursor = new_cursor;

        // Entries the backend has and this wallet lost (power loss): learn them back, then
        // upload them again (byte-identical, so idempotent) to get their verdicts.
        let log_len = self.wallet.log_len();
        let mut recovered_now = 0;
        if resp.chain.next_seq > log_len && st.recover_tried_at != Some(log_len) {
            st.recover_tried_at = Some(log_len);
            Self::settle(&mut st.pending, report).await?;
            recovered_now = self.recover(pseudonym, log_len).await?;
            report.recovered = report.recovered.saturating_add(recovered_now);
        }
        let more = resp.more || n == u64::from(SYNC_BATCH) || recovered_now > 0;
        Ok((more, resp))
    }

    /// Waits for the application of the previous page and adds it to the report.
    async fn settle(
        pending: &mut Option<PendingApply>,
        report: &mut SyncReport,
    ) -> Result<(), OnlineError> {
        let Some(h) = pending.take() else {
            return Ok(());
        };
        let out = h
            .await
            .map_err(|e| WalletError::internal(format!("applying a sync answer: {e}")))??;
        report.settled = report.settled.saturating_add(out.settled);
        report.fare_corrections = report.fare_corrections.saturating_add(out.corrections);
        report.rejected = report.rejected.saturating_add(out.rejected);
        report.ledger_entries = report.ledger_entries.saturating_add(out.new_ledger);
        report.fare_adjustments = report.fare_adjustments.saturating_add(out.rerated);
        Ok(())
    }

    /// Fetches the entries from `from_seq` the backend stored and appends those that continue
    /// this wallet's chain.
    async fn recover(&self, pseudonym: &str, from_seq: u64) -> Result<u64, OnlineError> {
        let path = format!("/v1/wallet/log?pseudonym={pseudonym}&from_seq={from_seq}");
        let r: LogResponse = self.authed(Method::GET, &path, None).await?;
        let mut entries = Vec::with_capacity(r.entries.len());
        for item in r.entries {
            entries.push((item.seq, unhex(&item.entry, "log entry")?));
        }
        Ok(self.wallet.append_recovered(&entries, now_utc())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::online::http::Problem;

    #[test]
    fn clock_offset_is_bounded() {
        let day = 86_400;
        assert_eq!(clock_offset(1_000, 1_000, 1_000, 2 * day), Some(0));
        assert_eq!(
            clock_offset(1_000 + day, 1_000, 1_002, 2 * day),
            Some(day - 1)
        );
        assert_eq!(clock_offset(1_000 - day, 1_000, 1_000, 2 * day), Some(-day));
        assert_eq!(clock_offset(1_000 + 3 * day, 1_000, 1_000, 2 * day), None);
        assert_eq!(clock_offset(1_000, 1_000, 1_100, 2 * day), None); // slow round trip
        assert_eq!(clock_offset(1_000, 1_000, 900, 2 * day), None); // clock went back
        assert_eq!(clock_offset(i64::MAX, i64::MIN, i64::MIN, 2 * day), None);
    }

    fn problem(status: u16, code: &str) -> OnlineError {
        CallError::Problem {
            status,
            problem: Problem {
                code: code.into(),
                detail: format!("detail of {code}"),
                title: String::new(),
            },
        }
        .into()
    }

    #[test]
    fn problem_codes_map_to_what_the_app_can_do() {
        assert!(matches!(
            problem(401, "unauthorized"),
            OnlineError::SessionExpired
        ));
        assert!(matches!(
            problem(409, "credential_revoked"),
            OnlineError::CredentialRevoked { .. }
        ));
        assert!(matches!(
            problem(409, "binding_key_in_use"),
            OnlineError::AccountBlocked { .. }
        ));
        assert!(matches!(
            problem(403, "forbidden"),
            OnlineError::AccountBlocked { .. }
        ));
        assert!(matches!(
            problem(429, "rate_limited"),
            OnlineError::RateLimited { .. }
        ));
        assert!(matches!(
            problem(400, "invalid_amount"),
            OnlineError::Validation { code, message }
                if code == "invalid_amount" && message == "detail of invalid_amount"
        ));
        let offline: OnlineError = CallError::Transport {
            message: "x".into(),
            source: None,
        }
        .into();
        assert!(offline.is_retryable());
        let server: OnlineError = CallError::Server("x".into()).into();
        assert!(server.is_retryable());
        assert!(!OnlineError::SessionExpired.is_retryable());
    }

    #[test]
    fn credential_attempt_roundtrip_and_garbage() {
        let a = CredentialAttempt {
            purpose: 2,
            tap_key: vec![4; 65],
            nonce: vec![7; 32],
            signature: vec![9; 64],
            expires_at: 1_795_840_200,
        };
        let b = CredentialAttempt::decode(&a.encode()).unwrap();
        assert_eq!(
            (b.purpose, b.tap_key, b.nonce, b.signature, b.expires_at),
            (
                a.purpose,
                a.tap_key.clone(),
                a.nonce.clone(),
                a.signature.clone(),
                a.expires_at
            )
        );
        assert!(CredentialAttempt::decode(&[]).is_none());
        assert!(CredentialAttempt::decode(&a.encode()[..100]).is_none());
        let mut long = a.encode();
        long.push(0);
        assert!(CredentialAttempt::decode(&long).is_none());
    }
}
