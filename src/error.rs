//! The wallet's error type: a small enum with human messages that keeps the underlying
//! SQLite and I/O errors as its sources. The FFI flattens it into `ManCardError` (one
//! conversion, `src/ffi/error.rs`). Messages never contain key material, sealed blobs or
//! signatures.

use crate::keystore::KeystoreError;
use thiserror::Error;

/// Why a wallet operation failed. Every variant reads as a sentence the app may show or log.
#[derive(Debug, Error)]
pub enum WalletError {
    /// The wallet database or a wallet file could not be read or written.
    #[error("wallet storage error: {message}")]
    Storage { message: String },
    /// SQLite failed (I/O, locking, a full disk).
    #[error("wallet storage error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// A wallet file could not be read or written.
    #[error("wallet storage error: {0}")]
    Io(#[from] std::io::Error),
    /// The database was written by a newer version of the app; it is left untouched.
    #[error("the wallet database has schema version {found}, newer than this app supports ({supported}); update the app")]
    DatabaseTooNew { found: u32, supported: u32 },
    /// The database file is not a wallet database, or is damaged; it is left untouched.
    #[error("the wallet database is damaged or not a ManCard wallet: {message}")]
    DatabaseCorrupt { message: String },
    /// The counter reservation file is missing or damaged; taps are refused rather than risk
    /// reusing a counter.
    #[error("the counter reservation file is unusable: {message}")]
    CounterFile { message: String },
    /// The database is missing or empty (0 bytes) while the data directory or the keystore
    /// shows that a wallet lived there (its counter file, its write-ahead log, keys that
    /// existed before this open). Nothing was created or changed: the message says to restore
    /// the files, or to start again and sign in and sync. Never a new, empty wallet.
    #[error("the wallet's files are incomplete: {message}")]
    DataMissing { message: String },
    /// Another wallet instance (another process, or an object not yet closed) has this data
    /// directory open; nothing was changed. Close it and retry.
    #[error("the wallet is in use: {message}")]
    InUse { message: String },
    /// The platform keystore failed.
    #[error("platform keystore error: {0}")]
    Keystore(#[from] KeystoreError),
    /// The tap key of the installed credential could not be unsealed or does not match.
    #[error("the tap key cannot be used: {message}")]
    KeyUnavailable { message: String },
    /// No credential is installed.
    #[error("no credential is installed on this phone")]
    NoCredential,
    /// The credential is expired, not yet valid or revoked.
    #[error("the credential is not valid: {message}")]
    CredentialNotValid {
        message: String,
        /// Revoked by the backend: only a new provisioning restores service.
        revoked: bool,
    },
    /// The certificate's counter range is used up.
    #[error("the offline rides of this credential are used up")]
    CountersExhausted,
    /// The amount needed exceeds what is left of the offline allowance.
    #[error("{needed} rials needed but only {remaining} rials of offline allowance are left")]
    AllowanceExhausted { needed: i64, remaining: i64 },
    /// The wallet is locked by the rider.
    #[error("the wallet is locked")]
    Locked,
    /// A certificate was refused at installation.
    #[error("certificate refused: {message}")]
    InvalidCertificate { message: String },
    /// A config bundle was refused (unreadable, signed by a key the wallet does not trust, or
    /// not newer than the installed one); nothing was changed.
    #[error("config bundle refused: {message}")]
    InvalidConfig { message: String },
    /// An argument is out of range or malformed.
    #[error("invalid input: {message}")]
    InvalidInput { message: String },
    /// A bug or an unexpected condition; nothing was changed.
    #[error("internal error: {message}")]
    Internal { message: String },
}

impl WalletError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        Self::Storage {
            message: e.to_string(),
        }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            message: message.into(),
        }
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
        }
    }
}

impl From<rusqlite::Error> for WalletError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) {
                return Self::DatabaseCorrupt {
                    message: e.to_string(),
                };
            }
        }
        Self::Sqlite(e)
    }
}

impl From<mancard_sql::OpenError> for WalletError {
    fn from(e: mancard_sql::OpenError) -> Self {
        use mancard_sql::OpenError;
        match e {
            OpenError::Sqlite(e) => e.into(),
            OpenError::Io { path, source } => Self::storage(format!("{path}: {source}")),
            OpenError::Corrupt(message) => Self::DatabaseCorrupt { message },
            OpenError::TooNew { found, supported } => Self::DatabaseTooNew { found, supported },
            OpenError::VersionMismatch { found, expected } => Self::internal(format!(
                "secondary connection sees schema version {found}, expected {expected}"
            )),
        }
    }
}
