//! The wallet online: provisioning, replenishment, top-up and sync with the backend.
//!
//! [`OnlineWallet`] wraps an `Arc<Wallet>` with an HTTP client (reqwest, rustls, webpki roots
//! plus an optional extra root CA) and a tokio runtime it owns. Every method is `async`; the
//! work runs on the owned runtime (so the caller may be any executor: uniffi's, the app's, a
//! test's), and [`OnlineWallet::block_on`] runs one from plain synchronous code (CLI).
//!
//! - Accounts: [`OnlineWallet::register`] (SMS code), [`OnlineWallet::verify`] (session token,
//!   stored only sealed by the [`crate::PlatformKeystore`], never logged or returned),
//!   [`OnlineWallet::logout`], [`OnlineWallet::sessions`] and [`OnlineWallet::end_session`].
//!   Once provisioned, the session is bound to this phone's binding key, and the calls that
//!   move money or end sessions carry its proof, signed automatically (`sessions.rs`).
//! - Credential: [`OnlineWallet::provision`] (new device; revokes the account's other devices),
//!   [`OnlineWallet::replenish`], [`OnlineWallet::replenish_if_due`].
//! - Money: [`OnlineWallet::start_top_up`] → payment URL; [`OnlineWallet::complete_top_up`]
//!   after the gateway's redirect, or to poll.
//! - [`OnlineWallet::sync`]: uploads the tap log, settles pending taps with the backend's
//!   fares, recovers taps the wallet lost, learns revocation, the server clock and the tariff,
//!   and replenishes the certificate when due.
//!
//! Offline first: no tap ever waits for any of this. Every state-changing request carries an
//! idempotency key stored in the wallet database before it is sent and reused on every retry
//! (see `docs/adr/0005-wallet-online.md`). Retries: capped exponential backoff with jitter on
//! timeouts, connection errors and 5xx; none on 4xx.

mod credential;
mod flows;
mod http;
mod sessions;
mod sync;
mod topup;

use crate::error::WalletError;
use crate::wallet::Wallet;
use std::future::Future;
use std::sync::Arc;
use thiserror::Error;

/// Why an online operation failed, as the app should act on it.
#[derive(Debug, Error)]
pub enum OnlineError {
    /// The backend could not be reached (no network, timeout, TLS failure) even after the
    /// retries: try again later. Nothing was lost; a retry reuses the same idempotency keys.
    #[error("the ManCard service cannot be reached: {message}")]
    Offline {
        message: String,
        /// The HTTP client's error, when there was one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// No session, or the session expired or was refused: log in again (register + verify).
    #[error("you are not logged in or your session expired; verify your phone number again")]
    SessionExpired,
    /// The credential on this phone was revoked: `reason` says why in the rider's words (the
    /// wallet's status problem, e.g. "this card was moved to another phone", or the backend's
    /// detail).
    #[error("the ticket on this phone was revoked: {reason}")]
    CredentialRevoked { reason: String },
    /// The account or this device is blocked (binding key of another account, fraud case).
    #[error("this account or phone is blocked: {message}")]
    AccountBlocked { message: String },
    /// Too many attempts (one-time codes): wait before trying again.
    #[error("too many attempts: {message}")]
    RateLimited { message: String },
    /// The request was refused as invalid: `message` is for the rider (wrong code, amount
    /// out of range...). `code` is the backend's stable problem code.
    #[error("{message}")]
    Validation { code: String, message: String },
    /// The backend failed or answered something unreadable, even after the retries: try
    /// again later.
    #[error("the ManCard service failed: {message}")]
    Server { message: String },
    /// The local wallet (database, keystore, certificate check) failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
}

impl OnlineError {
    /// True when the same call may simply be retried later (offline, server trouble, rate
    /// limit).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Offline { .. } | Self::Server { .. } | Self::RateLimited { .. }
        )
    }
}

/// How the client talks to the backend. `Default` gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineOptions {
    /// Connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Whole-request timeout (send + wait + read), milliseconds.
    pub request_timeout_ms: u64,
    /// Attempts per request (1 = no retry). Retries only on timeouts, connection errors,
    /// unreadable answers and 5xx; never on 4xx.
    pub max_attempts: u32,
    /// First backoff, milliseconds; doubles per attempt, capped by `max_backoff_ms`; full
    /// jitter (a random delay between half and all of it).
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// An extra root CA to trust (PEM), in addition to the webpki roots.
    pub extra_root_ca_pem: Option<String>,
    /// A server clock offset larger than this (seconds, either way) is not applied (see the
    /// ADR: a phone a day off is corrected; a wilder answer is treated as a server fault).
    pub max_clock_offset_secs: i64,
    /// `sync` replenishes the certificate when it is due (default true).
    pub replenish_on_sync: bool,
    /// Worker threads of the owned tokio runtime.
    pub worker_threads: u32,
}

impl Default for OnlineOptions {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_attempts: 4,
            initial_backoff_ms: 250,
            max_backoff_ms: 8_000,
            extra_root_ca_pem: None,
            max_clock_offset_secs: 2 * 86_400,
            replenish_on_sync: true,
            worker_threads: 2,
        }
    }
}

/// The answer to [`OnlineWallet::register`]: a code was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSent {
    /// The phone number as the backend normalised it (`+98…`).
    pub phone: String,
    /// When the code expires, UTC seconds.
    pub expires_at: i64,
}

/// The logged-in session (the token itself is never exposed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub account_id: i64,
    pub phone: String,
    /// UTC seconds.
    pub expires_at: i64,
}

/// One live session of the account (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// What [`OnlineWallet::end_session`] takes.
    pub id: String,
    /// UTC seconds.
    pub created_at: i64,
    pub last_used_at: i64,
    /// The latest it ends.
    pub expires_at: i64,
    /// When it ends if left unused.
    pub idle_expires_at: i64,
    /// Bound to a phone that provisioned with it.
    pub bound: bool,
    /// The session of this phone.
    pub current: bool,
}

/// The rider's account as the backend knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub account_id: i64,
    pub phone: String,
    pub fare_class: String,
    /// Rials (authoritative).
    pub balance: i64,
    pub server_time: i64,
}

/// The certificate a provisioning or replenishment installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionReport {
    /// Hex of the card pseudonym.
    pub pseudonym: String,
    /// Hex of the certificate hash.
    pub certificate_hash: String,
    pub valid_from: i64,
    pub valid_until: i64,
    pub counter_first: u32,
    pub counter_last: u32,
    /// Offline allowance, rials.
    pub max_amount: i64,
    pub fare_class: String,
    /// Account balance, rials.
    pub balance: i64,
    /// Other devices of the account this provisioning revoked (hex pseudonyms).
    pub revoked_pseudonyms: Vec<String>,
}

/// Where a top-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopUpStatus {
    /// Waiting for the rider to pay on the gateway page.
    Pending,
    /// Paid, verified and credited to the account (exactly once).
    Credited,
    Cancelled,
    Expired,
}

impl TopUpStatus {
    /// Every status, in the contract's order.
    const ALL: [Self; 4] = [
        Self::Pending,
        Self::Credited,
        Self::Cancelled,
        Self::Expired,
    ];

    /// The status's wire text (`mancard_api::TopupStatus::as_str`).
    pub fn name(self) -> &'static str {
        mancard_api::TopupStatus::from(self).as_str()
    }
    /// The status whose wire text is `s` (as stored by the wallet).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }
    /// No further change will happen.
    pub fn is_final(self) -> bool {
        mancard_api::TopupStatus::from(self).is_final()
    }
}

impl From<mancard_api::TopupStatus> for TopUpStatus {
    fn from(s: mancard_api::TopupStatus) -> Self {
        match s {
            mancard_api::TopupStatus::Pending => Self::Pending,
            mancard_api::TopupStatus::Credited => Self::Credited,
            mancard_api::TopupStatus::Cancelled => Self::Cancelled,
            mancard_api::TopupStatus::Expired => Self::Expired,
        }
    }
}

impl From<TopUpStatus> for mancard_api::TopupStatus {
    fn from(s: TopUpStatus) -> Self {
        match s {
            TopUpStatus::Pending => Self::Pending,
            TopUpStatus::Credited => Self::Credited,
            TopUpStatus::Cancelled => Self::Cancelled,
            TopUpStatus::Expired => Self::Expired,
        }
    }
}

/// A top-up (payment intent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUpIntent {
    pub intent_id: String,
    /// Rials.
    pub amount: i64,
    pub status: TopUpStatus,
    /// Open this in a browser (the bank gateway's page).
    pub payment_url: String,
    /// UTC seconds.
    pub expires_at: i64,
    /// The backend ledger entry that credited it.
    pub ledger_entry_id: Option<i64>,
    /// The gateway's reference (show it on the receipt).
    pub gateway_ref: Option<String>,
    /// The idempotency key the wallet chose for it (stored before the request was sent).
    pub idempotency_key: String,
}

/// What a [`OnlineWallet::sync`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Backend time at the last answer, UTC seconds.
    pub server_time: i64,
    /// Authoritative balance, rials (also stored as the wallet's confirmed balance).
    pub balance: i64,
    /// Tap-log entries sent (including re-sends after a lost answer).
    pub uploaded: u64,
    /// Taps whose settlement the wallet learned in this sync.
    pub settled: u64,
    /// Of those, taps whose actual fare differs from the amount the wallet authorized.
    pub fare_corrections: u64,
    /// Taps the backend refused (shown in the history with the reason).
    pub rejected: u64,
    /// Tap-log entries the wallet had lost and got back from the backend.
    pub recovered: u64,
    /// New backend ledger entries learned (top-ups, fares, adjustments).
    pub ledger_entries: u64,
    /// Taps settled earlier whose fare the backend re-rated since (`fare_adjustment` entries
    /// applied to their stored fare; the history shows "…, re-rated").
    pub fare_adjustments: u64,
    /// Tap-log entries still pending (recorded during the sync; the next sync settles them).
    pub pending_taps: u64,
    /// Backend view of the credential: "active", "replenish_due", "revoked", or "none".
    pub credential_status: String,
    pub credential_reason: Option<String>,
    /// The credential was found revoked and marked so in this sync.
    pub revoked: bool,
    /// A new certificate was installed by this sync.
    pub replenished: bool,
    /// Why a due replenishment failed (the sync itself succeeded).
    pub replenish_error: Option<String>,
    /// Server − device clock, seconds (as stored; see `clock_offset_applied`).
    pub clock_offset_secs: i64,
    /// False when the measured offset was out of bounds and was not stored.
    pub clock_offset_applied: bool,
}

/// The client's local state: session, sync cursors, open top-ups (no network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineState {
    pub logged_in: bool,
    pub account_id: Option<i64>,
    pub phone: Option<String>,
    pub session_expires_at: Option<i64>,
    /// Next tap-log entry to upload.
    pub upload_from_seq: u64,
    /// Backend ledger cursor.
    pub ledger_cursor: i64,
    /// Top-ups started and not final.
    pub open_top_ups: u64,
}

/// The wallet's online client. `Send + Sync`; cheap to share behind an `Arc`.
pub struct OnlineWallet {
    inner: Arc<flows::Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for OnlineWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineWallet")
            .field("backend_url", &self.inner.base_url())
            .finish_non_exhaustive()
    }
}

impl Drop for OnlineWallet {
    fn drop(&mut self) {
        // Dropping a Runtime inside an async context panics; shutting down in the background
        // never blocks and never panics.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl OnlineWallet {
    /// A client for `wallet` talking to `backend_url` (`https://…`, or `http://` for loopback
    /// and tests). Creates its tokio runtime and HTTP client; no network traffic yet.
    pub fn new(
        wallet: Arc<Wallet>,
        backend_url: String,
        options: OnlineOptions,
    ) -> Result<Self, OnlineError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::try_from(options.worker_threads.clamp(1, 16)).unwrap_or(2))
            .thread_name("mancard-online")
            .enable_all()
            .build()
            .map_err(|e| WalletError::internal(format!("tokio runtime: {e}")))?;
        let inner = flows::Inner::new(wallet, &backend_url, options)?;
        Ok(Self {
            inner: Arc::new(inner),
            runtime: Some(runtime),
        })
    }

    /// The wallet this client serves.
    pub fn wallet(&self) -> Arc<Wallet> {
        self.inner.wallet()
    }

    /// The backend base URL (without a trailing slash).
    pub fn backend_url(&self) -> String {
        self.inner.base_url().to_string()
    }

    async fn run<T, F, Fut>(&self, f: F) -> Result<T, OnlineError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<flows::Inner>) -> Fut,
        Fut: Future<Output = Result<T, OnlineError>> + Send + 'static,
    {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| WalletError::internal("the online runtime is shut down"))?;
        let fut = f(Arc::clone(&self.inner));
        rt.spawn(fut).await.map_err(|e| {
            OnlineError::Wallet(WalletError::internal(format!("online task failed: {e}")))
        })?
    }

    /// Runs a future of this client to completion from synchronous code (CLI, tests). Must
    /// not be called from inside an async context.
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output, OnlineError> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| WalletError::internal("the online runtime is shut down"))?;
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(WalletError::internal(
                "block_on called inside an async context; await the method instead",
            )
            .into());
        }
        Ok(rt.block_on(future))
    }

    /// Asks the backend to send a one-time code by SMS to `phone` (`+98…` or `09…`).
    pub async fn register(&self, phone: String) -> Result<CodeSent, OnlineError> {
        self.run(move |i| async move { i.register(phone).await })
            .await
    }

    /// Logs in with the one-time code; the session token is sealed by the platform keystore
    /// and stored in the wallet database (replacing any older session).
    pub async fn verify(&self, phone: String, code: String) -> Result<SessionInfo, OnlineError> {
        self.run(move |i| async move { i.verify(phone, code).await })
            .await
    }

    /// Ends this session at the backend and forgets it here (forgotten here even when the
    /// backend cannot be reached: the error then says so, and the session ends by itself after
    /// its idle time).
    pub async fn logout(&self) -> Result<(), OnlineError> {
        self.run(|i| async move { i.logout().await }).await
    }

    /// The account's live sessions (ids and times, never tokens; this one is `current`).
    pub async fn sessions(&self) -> Result<Vec<SessionEntry>, OnlineError> {
        self.run(|i| async move { i.sessions().await }).await
    }

    /// Ends one session of the account by its id (e.g. a lost phone's), proven by this phone's
    /// binding key.
    pub async fn end_session(&self, id: String) -> Result<(), OnlineError> {
        self.run(move |i| async move { i.end_session(id).await })
            .await
    }

    /// Local view: logged in, sync cursors, open top-ups. No network.
    pub fn state(&self) -> Result<OnlineState, OnlineError> {
        self.inner.state()
    }

    /// The account (authoritative balance) from the backend.
    pub async fn account(&self) -> Result<AccountInfo, OnlineError> {
        self.run(|i| async move { i.account().await }).await
    }

    /// Provisions this phone: a new tap key, a binding-key proof over a fresh server nonce,
    /// the certificate installed after checking it against the issuer keys of the answer.
    /// On a new phone this revokes the account's previous device (lost phone); on a phone the
    /// account already has it acts as a replenishment.
    pub async fn provision(&self) -> Result<ProvisionReport, OnlineError> {
        self.run(|i| async move { i.provision(false).await }).await
    }

    /// Fetches a new certificate for this device (same pseudonym, next counter range, an
    /// allowance from the current balance).
    pub async fn replenish(&self) -> Result<ProvisionReport, OnlineError> {
        self.run(|i| async move { i.provision(true).await }).await
    }

    /// Replenishes only when the wallet's status says it is due (expiry near, allowance or
    /// rides low); `None` when not due.
    pub async fn replenish_if_due(&self) -> Result<Option<ProvisionReport>, OnlineError> {
        self.run(|i| async move { i.replenish_if_due().await })
            .await
    }

    /// Starts a top-up of `amount` rials: returns the intent with its payment URL. A retry
    /// after a failure (same amount, intent never confirmed) reuses the stored idempotency key
    /// and so gets the same intent back.
    pub async fn start_top_up(&self, amount: i64) -> Result<TopUpIntent, OnlineError> {
        self.run(move |i| async move { i.start_top_up(amount).await })
            .await
    }

    /// Asks the backend where a top-up stands (this *verifies* the payment server-side); once
    /// credited, the wallet's history and confirmed balance are updated (exactly once). Call
    /// after the gateway redirects back, or periodically to poll.
    pub async fn complete_top_up(&self, intent_id: String) -> Result<TopUpIntent, OnlineError> {
        self.run(move |i| async move { i.complete_top_up(intent_id).await })
            .await
    }

    /// Top-ups started on this phone that are not final yet (to resume after a restart).
    pub fn open_top_ups(&self) -> Result<Vec<TopUpIntent>, OnlineError> {
        self.inner.open_top_ups()
    }

    /// Synchronises with the backend (see the module documentation). Safe to run while taps
    /// happen; a sync cut at any point leaves a consistent wallet and the next one completes.
    pub async fn sync(&self) -> Result<SyncReport, OnlineError> {
        self.run(|i| async move { i.sync().await }).await
    }
}

/// Compile-time check for the FFI: the client and its records cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<OnlineWallet>();
    assert_send_sync::<OnlineError>();
    assert_send_sync::<SyncReport>();
    assert_send_sync::<TopUpIntent>();
};
