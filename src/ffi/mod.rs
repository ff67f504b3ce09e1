//! The uniffi surface (Kotlin, Swift, Python): the only place FFI concerns live.
//!
//! A thin wrapper (bdk-ffi's rule): every exported item converts arguments, calls the core (or
//! `crate::online`) and converts the answer; it adds no behaviour of its own.
//!
//! - [`Wallet`]: the wallet object (thread-safe; share one instance between the NFC service, the
//!   UI and sync). `process_apdu` and `deactivated` never throw.
//! - [`ManCardError`]: the one error type, a variant per action the app can take, whose
//!   message is the core's human sentence (a flat error: see `error.rs` for why).
//! - [`PlatformKeystore`] and [`Logger`]: foreign traits the app implements.
//!
//! Panics: uniffi catches a panic in any exported call and raises `InternalException` (Kotlin)
//! / an internal error (Swift, Python) instead of unwinding into the app; the release profile
//! keeps `panic = "unwind"` for that. The core's locks recover from poisoning.
//! `debug_panic_for_tests` exists only to show this in the binding tests.
//!
//! Async: `crate::online::OnlineWallet` owns its tokio runtime and spawns its work there, so
//! the online methods are plain uniffi futures (no `async_runtime = "tokio"`, which would
//! start a second runtime): any foreign executor can poll them.

mod error;
mod keystore;
mod logger;
mod online;
mod types;

use self::online::{
    AccountInfo, CodeSent, OnlineState, ProvisionReport, SessionEntry, SessionInfo, SyncReport,
    TopUpIntent,
};
use crate::online::{OnlineOptions, OnlineWallet};
use error::ManCardError;
use keystore::{KeystoreAdapter, PlatformKeystore};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use types::{BoardingPass, HistoryPage, LedgerView, WalletStatus};

/// Status word answered if the tap path itself panicked (`6F00`, "no precise diagnosis").
const SW_INTERNAL: [u8; 2] = [0x6F, 0x00];

/// Converts an error crossing the boundary and logs it (see [`error::to_app`]).
fn fail(op: &str, e: impl Into<ManCardError>) -> ManCardError {
    error::to_app(op, e)
}

/// The rider's wallet: one per data directory. Thread-safe.
#[derive(uniffi::Object)]
pub struct Wallet {
    core: Arc<crate::Wallet>,
    online: OnlineWallet,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("core", &self.core)
            .field("online", &self.online)
            .finish()
    }
}

#[uniffi::export]
impl Wallet {
    /// Opens (creating if needed) the wallet stored in `data_dir` (the app's private files
    /// directory), talking to the backend at `backend_url` (e.g. "https://api.example"), with
    /// the app's `keystore`. Unseals the tap key once; a damaged or too-new database is a
    /// `Storage` error and is left untouched; a missing or empty database next to the wallet's
    /// other files is `DataMissing` (nothing is created: restore, or start again and sync).
    #[uniffi::constructor]
    pub fn new(
        data_dir: String,
        backend_url: String,
        keystore: Arc<dyn PlatformKeystore>,
    ) -> Result<Arc<Self>, ManCardError> {
        let adapter: Arc<dyn crate::PlatformKeystore> = Arc::new(KeystoreAdapter(keystore));
        let core = crate::Wallet::open(&data_dir, adapter, crate::WalletConfig::default())
            .map_err(|e| fail("open", e))?;
        let core = Arc::new(core);
        let online = OnlineWallet::new(Arc::clone(&core), backend_url, OnlineOptions::default())
            .map_err(|e| fail("open", e))?;
        tracing::info!(target: "mancard::ffi", "wallet opened in {data_dir}");
        Ok(Arc::new(Self { core, online }))
    }

    /// Speaks the language of `locale` (a BCP 47 tag: "fa", "fa-IR", "azb", "az-Arab", "en",
    /// "en-US"; `_` works as `-`) in the status line and the history from now on, and returns
    /// the language chosen: "fa", "azb" or "en". A tag of any other language gives Persian,
    /// the default. Never throws.
    pub fn set_locale(&self, locale: String) -> String {
        let lang = mancard_l10n::Lang::negotiate(&locale);
        self.core.set_language(lang);
        lang.code().to_string()
    }

    /// The language of the status line and the history: "fa", "azb" or "en".
    pub fn locale(&self) -> String {
        self.core.language().code().to_string()
    }

    /// NFC host card emulation: one command APDU in, the response APDU out. Never throws: a
    /// malformed command gets an error status word; an internal failure answers `6F00`.
    /// Call it from `HostApduService.processCommandApdu`.
    pub fn process_apdu(&self, command: Vec<u8>) -> Vec<u8> {
        catch_unwind(AssertUnwindSafe(|| self.core.process_apdu(command)))
            .unwrap_or_else(|_| SW_INTERNAL.to_vec())
    }

    /// The NFC field dropped or another application was selected
    /// (`HostApduService.onDeactivated`). Never throws.
    pub fn deactivated(&self) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.core.deactivated()));
    }

    /// Records the next tap counter durably now, so that the process being killed afterwards
    /// skips no counter (the wallet also does it by itself a second after the field drops or
    /// a pass is shown, and when the object is destroyed). Call it from `onTrimMemory`/`onStop`
    /// or the HCE service's `onDestroy`; the next tap re-reserves when a reader selects
    /// ManCard.
    pub fn park_counter(&self) -> Result<(), ManCardError> {
        self.core
            .park_counter()
            .map(|_| ())
            .map_err(|e| fail("park counter", e))
    }

    /// The credential's state and the "N rides / X available offline until T" line, now.
    pub fn status(&self) -> Result<WalletStatus, ManCardError> {
        self.core
            .status(crate::now_utc())
            .map(Into::into)
            .map_err(|e| fail("status", e))
    }

    /// Confirmed, pending and available balances (rials).
    pub fn ledger(&self) -> Result<LedgerView, ManCardError> {
        self.core
            .ledger()
            .map(Into::into)
            .map_err(|e| fail("ledger", e))
    }

    /// History, newest first: taps, passes, refusals, top-ups. `cursor`: null for the newest
    /// page, else the previous page's `nextCursor`. `limit` is clamped to 1–500.
    pub fn history(&self, cursor: Option<String>, limit: u32) -> Result<HistoryPage, ManCardError> {
        self.core
            .history(cursor, limit)
            .map(Into::into)
            .map_err(|e| fail("history", e))
    }

    /// A boarding pass to show as a QR code now; the same pass until its `refreshAt`.
    /// Throws `NoCredential`, `Locked`, `CredentialUnusable`, `CredentialRevoked`...
    pub fn boarding_pass(&self) -> Result<BoardingPass, ManCardError> {
        let pass = self
            .core
            .boarding_pass(crate::now_utc())
            .map_err(|e| fail("boarding pass", e))?;
        BoardingPass::try_from(pass).map_err(|e| fail("boarding pass", e))
    }

    /// Locks or unlocks the wallet: a locked wallet refuses taps (status word 6982) and passes.
    pub fn set_locked(&self, locked: bool) -> Result<(), ManCardError> {
        self.core
            .set_locked(locked)
            .map_err(|e| fail("set locked", e))
    }

    pub fn is_locked(&self) -> bool {
        self.core.is_locked()
    }

    /// The binding key's public half (65 bytes, from the platform keystore).
    pub fn binding_public_key(&self) -> Result<Vec<u8>, ManCardError> {
        self.core
            .binding_public_key()
            .map_err(|e| fail("binding public key", e))
    }

    /// Installs a config bundle (an encoded, issuer-signed `ValidatorConfig`: the issuer keys
    /// and validator deny list that decide which readers the phone answers, the time rules, the
    /// tariff). Provisioning and sync install the backend's bundle themselves. Throws
    /// `Validation` (nothing changed) when it is unreadable, signed by a key this wallet does
    /// not trust, or not newer than the installed one.
    pub fn install_config(&self, bundle: Vec<u8>) -> Result<(), ManCardError> {
        self.core
            .install_config(bundle)
            .map_err(|e| fail("install config", e))
    }

    /// The installed config bundle's version, or null before the first one.
    pub fn config_version(&self) -> Option<u64> {
        self.core.config_version()
    }

    /// Checks the tap log's signed chain and counters; returns the number of entries.
    pub fn verify_tap_log(&self) -> Result<u64, ManCardError> {
        self.core
            .verify_tap_log()
            .map_err(|e| fail("verify tap log", e))
    }

    /// The backend base URL this wallet talks to.
    pub fn backend_url(&self) -> String {
        self.online.backend_url()
    }

    // ----- online (suspend functions in Kotlin, async in Swift) ------------------------------

    /// Asks the backend to send a one-time code by SMS to `phone` (`+98…` or `09…`).
    pub async fn register(&self, phone: String) -> Result<CodeSent, ManCardError> {
        self.online
            .register(phone)
            .await
            .map(Into::into)
            .map_err(|e| fail("register", e))
    }

    /// Logs in with the one-time code. The session token stays inside the core, sealed by the
    /// platform keystore.
    pub async fn verify(&self, phone: String, code: String) -> Result<SessionInfo, ManCardError> {
        self.online
            .verify(phone, code)
            .await
            .map(Into::into)
            .map_err(|e| fail("verify", e))
    }

    /// Ends this session at the backend and forgets it on this phone (forgotten here even
    /// when the backend cannot be reached; the error then says so).
    pub async fn logout(&self) -> Result<(), ManCardError> {
        self.online.logout().await.map_err(|e| fail("logout", e))
    }

    /// The account's live sessions (ids and times, never tokens; this phone's is `current`).
    pub async fn sessions(&self) -> Result<Vec<SessionEntry>, ManCardError> {
        self.online
            .sessions()
            .await
            .map(|v| v.into_iter().map(Into::into).collect())
            .map_err(|e| fail("sessions", e))
    }

    /// Ends one session of the account by its id (e.g. a lost phone's); signed by this
    /// phone's binding key.
    pub async fn end_session(&self, id: String) -> Result<(), ManCardError> {
        self.online
            .end_session(id)
            .await
            .map_err(|e| fail("end session", e))
    }

    /// Local online state: logged in, sync cursors, open top-ups. No network.
    pub fn online_state(&self) -> Result<OnlineState, ManCardError> {
        self.online
            .state()
            .map(Into::into)
            .map_err(|e| fail("online state", e))
    }

    /// The account and its authoritative balance, from the backend.
    pub async fn account(&self) -> Result<AccountInfo, ManCardError> {
        self.online
            .account()
            .await
            .map(Into::into)
            .map_err(|e| fail("account", e))
    }

    /// Provisions this phone (new tap key, binding-key proof, certificate installed). On a new
    /// phone this revokes the account's previous device.
    pub async fn provision(&self) -> Result<ProvisionReport, ManCardError> {
        self.online
            .provision()
            .await
            .map(Into::into)
            .map_err(|e| fail("provision", e))
    }

    /// Fetches a new certificate for this device.
    pub async fn replenish(&self) -> Result<ProvisionReport, ManCardError> {
        self.online
            .replenish()
            .await
            .map(Into::into)
            .map_err(|e| fail("replenish", e))
    }

    /// Replenishes only when due; null when not due.
    pub async fn replenish_if_due(&self) -> Result<Option<ProvisionReport>, ManCardError> {
        self.online
            .replenish_if_due()
            .await
            .map(|r| r.map(Into::into))
            .map_err(|e| fail("replenish if due", e))
    }

    /// Starts a top-up of `amount` rials; open the returned `paymentUrl` in a browser.
    pub async fn start_top_up(&self, amount: i64) -> Result<TopUpIntent, ManCardError> {
        self.online
            .start_top_up(amount)
            .await
            .map(Into::into)
            .map_err(|e| fail("start top-up", e))
    }

    /// Asks where a top-up stands (verifies the payment); once credited, history and confirmed
    /// balance are updated exactly once. Call after the gateway's redirect, or to poll.
    pub async fn complete_top_up(&self, intent_id: String) -> Result<TopUpIntent, ManCardError> {
        self.online
            .complete_top_up(intent_id)
            .await
            .map(Into::into)
            .map_err(|e| fail("complete top-up", e))
    }

    /// Top-ups started on this phone that are not final yet (resume them after a restart).
    pub fn open_top_ups(&self) -> Result<Vec<TopUpIntent>, ManCardError> {
        self.online
            .open_top_ups()
            .map(|v| v.into_iter().map(Into::into).collect())
            .map_err(|e| fail("open top-ups", e))
    }

    /// Uploads the tap log, settles taps, learns revocation, server clock and tariff, and
    /// replenishes when due. Safe while taps happen.
    pub async fn sync(&self) -> Result<SyncReport, ManCardError> {
        self.online
            .sync()
            .await
            .map(Into::into)
            .map_err(|e| fail("sync", e))
    }
}

/// `rials` as the rider reads an amount in `locale`'s language: "۲٬۰۰۰ تومان" (fa),
/// "2,000 toman (20,000 rials)" (en). Any other language gives Persian.
#[uniffi::export]
pub fn format_amount(rials: i64, locale: String) -> String {
    mancard_l10n::format_amount(mancard_l10n::Lang::negotiate(&locale), rials)
}

/// `utc` (Unix seconds) as a Solar Hijri date and time in Iran time, in `locale`'s language
/// and digits: "۱ فروردین ۱۴۰۵، ۱۲:۳۰" (fa), "Farvardin 1, 1405 AP, 12:30 PM" (en).
#[uniffi::export]
pub fn format_date_time(utc: i64, locale: String) -> String {
    let lang = mancard_l10n::Lang::negotiate(&locale);
    mancard_l10n::format_date_time(lang, utc, mancard_l10n::IRAN_UTC_OFFSET_SECS)
}

/// `utc` (Unix seconds) as a Solar Hijri date in Iran time: "۱ فروردین ۱۴۰۵".
#[uniffi::export]
pub fn format_date(utc: i64, locale: String) -> String {
    let lang = mancard_l10n::Lang::negotiate(&locale);
    mancard_l10n::format_date(lang, utc, mancard_l10n::IRAN_UTC_OFFSET_SECS)
}

/// An integer in `locale`'s digits with grouping: "۱۲٬۳۴۵" (fa), "12,345" (en).
#[uniffi::export]
pub fn format_number(n: i64, locale: String) -> String {
    mancard_l10n::format_int(mancard_l10n::Lang::negotiate(&locale), n)
}

/// FOR TESTS ONLY: panics inside Rust so the binding tests can show that a panic reaches the
/// app as an exception (`InternalException` in Kotlin) instead of crashing it. Never call it
/// from an app.
// Exported only with the `test-hooks` feature, which no app build and not the committed
// bindings have: bindings/test-bindings.sh builds the library with it and generates the
// tests' own bindings from that build.
#[cfg(feature = "test-hooks")]
#[uniffi::export]
#[allow(clippy::panic)] // the whole point of this test hook is to panic
pub fn debug_panic_for_tests(message: String) {
    panic!("debug_panic_for_tests: {message}");
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::keystore::KeystoreError;
    use super::types::CredentialState;
    use super::*;

    #[test]
    fn errors_keep_the_core_sentence_and_the_right_variant() {
        let e: ManCardError = crate::WalletError::Locked.into();
        assert_eq!(e.to_string(), "the wallet is locked");
        assert!(matches!(e, ManCardError::Locked { .. }));
        let e: ManCardError =
            crate::WalletError::Keystore(crate::KeystoreError::AuthenticationRequired {
                message: "fingerprint".into(),
            })
            .into();
        assert!(matches!(e, ManCardError::AuthenticationRequired { .. }));
        assert!(e.to_string().ends_with("fingerprint"));
        let e: ManCardError = crate::WalletError::DataMissing {
            message: "wallet.sqlite3 is missing".into(),
        }
        .into();
        assert!(matches!(e, ManCardError::DataMissing { .. }));
        assert_eq!(
            e.to_string(),
            "the wallet's files are incomplete: wallet.sqlite3 is missing"
        );
        let e: ManCardError = crate::online::OnlineError::SessionExpired.into();
        assert!(matches!(e, ManCardError::SessionExpired { .. }));
        let e: ManCardError =
            crate::online::OnlineError::Wallet(crate::WalletError::NoCredential).into();
        assert_eq!(e.to_string(), "no credential is installed on this phone");
        let e: ManCardError = crate::WalletError::CredentialNotValid {
            message: "the ticket has been revoked".into(),
            revoked: true,
        }
        .into();
        assert!(matches!(e, ManCardError::CredentialRevoked { .. }));
        assert_eq!(
            e.to_string(),
            "the credential is not valid: the ticket has been revoked"
        );
        let e: ManCardError = crate::WalletError::CredentialNotValid {
            message: "expired".into(),
            revoked: false,
        }
        .into();
        assert!(matches!(e, ManCardError::CredentialUnusable { .. }));
    }

    #[test]
    fn a_foreign_keystore_failure_is_a_typed_error() {
        let e = KeystoreError::from(uniffi::UnexpectedUniFFICallbackError::new("boom"));
        let core: crate::KeystoreError = e.into();
        assert!(matches!(core, crate::KeystoreError::Failed { .. }));
        assert!(core.to_string().contains("boom"));
    }

    #[cfg(feature = "file-keystore")]
    #[test]
    fn wallet_over_the_file_keystore_works_offline() {
        let dir = tempfile::tempdir().unwrap();
        let ks = super::keystore::open_file_keystore(dir.path().join("keys").display().to_string())
            .unwrap();
        let w = Wallet::new(
            dir.path().join("wallet").display().to_string(),
            "http://127.0.0.1:9".into(),
            ks,
        )
        .unwrap();
        assert!(matches!(
            w.boarding_pass(),
            Err(ManCardError::NoCredential { .. })
        ));
        assert_eq!(w.binding_public_key().unwrap().len(), 65);
        let r = w.process_apdu(vec![]);
        assert!(r.len() >= 2);
        w.deactivated();
        assert_eq!(w.status().unwrap().state, CredentialState::NoCredential);
    }
}
