//! The one error type the app sees, [`ManCardError`]: a variant per thing the app can act on,
//! each carrying the core's human sentence (a flat error: Kotlin's `Exception.message` and
//! Swift's `message` are that sentence, not field dumps).
//! Messages never contain key material, tokens or sealed blobs (the core's rule, kept here).

use crate::online::OnlineError;
use crate::WalletError;

/// Why a wallet operation failed, grouped by what the app should do about it.
///
/// Flat on purpose: each variant crosses as its `Display` sentence, so Kotlin's `e.message`
/// and Swift's `message` associated value are that sentence. (A non-flat error exported with
/// `Display` only changes Kotlin's `toString()`; `message` stays "detail=…". A flat error
/// cannot also carry `#[uniffi::export(Display)]`: it is never lifted back into Rust.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ManCardError {
    /// No credential is installed: provision one (online).
    #[error("{detail}")]
    NoCredential { detail: String },
    /// The rider locked the wallet: unlock it first.
    #[error("{detail}")]
    Locked { detail: String },
    /// The credential cannot be used now (expired, not yet valid, offline rides or allowance
    /// used up): replenish or top up when online.
    #[error("{detail}")]
    CredentialUnusable { detail: String },
    /// The backend revoked the credential (e.g. the account was provisioned on another phone).
    #[error("{detail}")]
    CredentialRevoked { detail: String },
    /// The backend cannot be reached: retry later; everything offline keeps working.
    #[error("{detail}")]
    Offline { detail: String },
    /// The session is missing or expired: sign in again (one-time code).
    #[error("{detail}")]
    SessionExpired { detail: String },
    /// The account or this phone is blocked by the backend (fraud case, binding key of
    /// another account).
    #[error("{detail}")]
    AccountBlocked { detail: String },
    /// Too many attempts (one-time codes): wait before trying again.
    #[error("{detail}")]
    RateLimited { detail: String },
    /// An argument or a certificate was refused (bad phone number, code, amount, cursor...).
    #[error("{detail}")]
    Validation { detail: String },
    /// The backend answered with an error the app cannot fix (5xx, unexpected answer).
    #[error("{detail}")]
    Server { detail: String },
    /// Wallet storage failed, or the database is damaged or too new: nothing was changed.
    #[error("{detail}")]
    Storage { detail: String },
    /// The wallet's database is missing or empty but its other files (or keys) are still there:
    /// its data was lost or only partly restored, and no new wallet was made. Offer the rider to
    /// restore the app's data, or to start again (clear the app's data, sign in, sync: the
    /// backend restores the confirmed balance).
    #[error("{detail}")]
    DataMissing { detail: String },
    /// The platform keystore needs the rider to authenticate (biometric prompt) first.
    #[error("{detail}")]
    AuthenticationRequired { detail: String },
    /// The platform keystore failed, or the tap key cannot be unsealed.
    #[error("{detail}")]
    Keystore { detail: String },
    /// A bug or an unexpected condition (including a caught panic): report it.
    #[error("{detail}")]
    Internal { detail: String },
}

/// How loudly a failure crossing the boundary is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Part of normal use (no ticket yet, locked, offline, a wrong code): `info`, so a field
    /// report shows what the rider ran into without flagging it.
    Expected,
    /// Worth a look in a field report (revoked, blocked, server or storage trouble): `warn`.
    Notable,
    /// A bug or an unexpected condition: `error`.
    Bug,
}

impl ManCardError {
    /// The severity of this failure.
    pub(crate) fn severity(&self) -> Severity {
        match self {
            Self::NoCredential { .. }
            | Self::Locked { .. }
            | Self::CredentialUnusable { .. }
            | Self::Offline { .. }
            | Self::SessionExpired { .. }
            | Self::RateLimited { .. }
            | Self::Validation { .. }
            | Self::AuthenticationRequired { .. } => Severity::Expected,
            Self::CredentialRevoked { .. }
            | Self::AccountBlocked { .. }
            | Self::Server { .. }
            | Self::Storage { .. }
            | Self::DataMissing { .. }
            | Self::Keystore { .. } => Severity::Notable,
            Self::Internal { .. } => Severity::Bug,
        }
    }
}

/// The one conversion from the core's errors to the app's: flattens `e` into its
/// [`ManCardError`] and logs it at the level its severity picks (messages hold no secrets).
pub(crate) fn to_app(op: &str, e: impl Into<ManCardError>) -> ManCardError {
    let e = e.into();
    match e.severity() {
        Severity::Expected => tracing::info!(target: "mancard::ffi", "{op} failed: {e}"),
        Severity::Notable => tracing::warn!(target: "mancard::ffi", "{op} failed: {e}"),
        Severity::Bug => tracing::error!(target: "mancard::ffi", "{op} failed: {e}"),
    }
    e
}

impl From<WalletError> for ManCardError {
    fn from(e: WalletError) -> Self {
        let detail = e.to_string();
        match e {
            WalletError::Storage { .. }
            | WalletError::Sqlite(_)
            | WalletError::Io(_)
            | WalletError::DatabaseTooNew { .. }
            | WalletError::DatabaseCorrupt { .. }
            | WalletError::CounterFile { .. }
            | WalletError::InUse { .. } => Self::Storage { detail },
            WalletError::DataMissing { .. } => Self::DataMissing { detail },
            WalletError::Keystore(crate::KeystoreError::AuthenticationRequired { .. }) => {
                Self::AuthenticationRequired { detail }
            }
            WalletError::Keystore(_) | WalletError::KeyUnavailable { .. } => {
                Self::Keystore { detail }
            }
            WalletError::NoCredential => Self::NoCredential { detail },
            WalletError::CredentialNotValid { revoked: true, .. } => {
                Self::CredentialRevoked { detail }
            }
            WalletError::CredentialNotValid { .. }
            | WalletError::CountersExhausted
            | WalletError::AllowanceExhausted { .. } => Self::CredentialUnusable { detail },
            WalletError::Locked => Self::Locked { detail },
            WalletError::InvalidCertificate { .. }
            | WalletError::InvalidConfig { .. }
            | WalletError::InvalidInput { .. } => Self::Validation { detail },
            WalletError::Internal { .. } => Self::Internal { detail },
        }
    }
}

impl From<OnlineError> for ManCardError {
    fn from(e: OnlineError) -> Self {
        let detail = e.to_string();
        match e {
            OnlineError::Offline { .. } => Self::Offline { detail },
            OnlineError::SessionExpired => Self::SessionExpired { detail },
            OnlineError::CredentialRevoked { .. } => Self::CredentialRevoked { detail },
            OnlineError::AccountBlocked { .. } => Self::AccountBlocked { detail },
            OnlineError::RateLimited { .. } => Self::RateLimited { detail },
            OnlineError::Validation { .. } => Self::Validation { detail },
            OnlineError::Server { .. } => Self::Server { detail },
            OnlineError::Wallet(w) => w.into(),
        }
    }
}
