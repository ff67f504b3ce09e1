//! Errors of the issuer's logic, with no HTTP in them: [`Error`](enum@Error) says what went wrong in the
//! domain's words; the HTTP edge (`http::problem`) picks the status and the stable
//! [`mancard_api::ProblemCode`] for each variant in one `match`.
//!
//! Policy: the `Display` of a caller's mistake tells the caller what was wrong with its input
//! (it becomes the problem's `detail`); a storage or internal failure is shown to the caller
//! only as "internal error" and its cause goes to the log. No error message ever contains a
//! secret (issuer key, session token, one-time code).

use mancard_api::RevocationReason;
use thiserror::Error;

/// What a revoked device's owner can do, by the revocation's code.
fn revoked_hint(reason: &str) -> &'static str {
    match RevocationReason::parse(reason) {
        Some(RevocationReason::ReplacedByNewDevice) => {
            ": this card was moved to another phone of the account; ride with that phone"
        }
        _ => "; provision with a new binding key",
    }
}

/// A failure of the storage layer (SQLite or the key file).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Opening or migrating the database failed (including a schema newer than this build).
    #[error(transparent)]
    Open(#[from] mancard_sql::OpenError),
    #[error("key store: {0}")]
    Keys(String),
    #[error("database file: {0}")]
    File(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// A concurrent writer changed the same rows first; the request may simply be retried.
    #[error("a concurrent change: {0}; retry")]
    Conflict(&'static str),
    /// The SMS sender or the payment gateway could not be set up.
    #[error("providers: {0}")]
    Providers(String),
    /// A PostgreSQL error that is no one of the kinds below.
    #[error("database error: {0}")]
    Postgres(String),
    /// PostgreSQL aborted the transaction (serialization failure or deadlock, 40001/40P01);
    /// `Store::write` runs it again.
    #[error("a concurrent transaction conflicted: {0}; retry")]
    Retryable(String),
    /// A unique constraint refused a row (PostgreSQL 23505).
    #[error("duplicate key ({constraint}): {msg}")]
    Unique { constraint: String, msg: String },
    /// The database is overloaded or unreachable for now (no pooled connection in time,
    /// conflicts past the retry budget): 503 + `Retry-After`.
    #[error("the database is busy: {0}; retry")]
    Busy(String),
}

impl StoreError {
    /// True when a unique constraint refused a row (on PostgreSQL the transaction is then
    /// aborted: nothing after it is written).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Unique { .. })
            || matches!(
                self,
                Self::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation
            )
    }

    /// True when SQLite gave up waiting for a lock, or a concurrent writer got there first
    /// (the request may simply be retried: 503 + `Retry-After`).
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Conflict(_) | Self::Busy(_) | Self::Retryable(_))
            || matches!(
                self,
                Self::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::DatabaseBusy
                        || f.code == rusqlite::ErrorCode::DatabaseLocked
            )
    }
}

/// Why an operation of the issuer failed.
#[derive(Debug, Error)]
pub enum Error {
    // ---- malformed input -----------------------------------------------------------------
    #[error("{field} is not hex")]
    InvalidHex { field: &'static str },
    #[error("{field} must be {len} bytes")]
    InvalidLength { field: &'static str, len: usize },
    /// A public key that does not parse (the protocol's message).
    #[error("{0}")]
    InvalidKey(String),
    #[error("{0}")]
    InvalidPhone(&'static str),
    #[error("the code is 8 digits")]
    InvalidCode,
    #[error("the request id is the 32 hex characters the code request was answered with")]
    InvalidRequestId,

    // ---- who is calling ------------------------------------------------------------------
    /// No, a malformed or an unknown credential (session token, one-time code).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A login typed the live code of another code request of the number (not counted as a
    /// guess).
    #[error(
        "this code was sent for another request of this number: type the code of the \
             last request this app made, or ask for a new one"
    )]
    CodeOfAnotherRequest,
    /// Too many attempts or requests.
    #[error("{0}")]
    RateLimited(&'static str),
    /// The operation exists only in sandbox mode.
    #[error("only in sandbox mode")]
    SandboxOnly,
    /// A sandbox endpoint asked of a server not in sandbox mode: it does not exist.
    #[error("no such endpoint")]
    NoSuchEndpoint,

    // ---- accounts ------------------------------------------------------------------------
    #[error("no SMS provider is configured; run with --sandbox")]
    SmsUnavailable,
    #[error("no live code for this number")]
    NoCode,
    #[error("no such account")]
    UnknownAccount,

    // ---- issuance ------------------------------------------------------------------------
    #[error("unknown, used or expired nonce; get a new one")]
    InvalidNonce,
    #[error("the binding-key signature over the provisioning transcript does not verify")]
    BadProof,
    #[error("this binding key belongs to another account")]
    BindingKeyInUse,
    /// `reason` is a [`mancard_api::RevocationReason`] code.
    #[error("this device's credential is revoked ({reason}){}", revoked_hint(.reason))]
    CredentialRevoked { reason: String },
    #[error("no device with this binding key; provision first")]
    UnknownBindingKey,
    #[error("no such device on this account")]
    UnknownDevice,
    #[error("this device has used every counter; provision a new device")]
    CountersExhausted,
    #[error(
        "this account is frozen while a fraud case is open; no new ticket can be issued until \
         an operator resolves it (top-ups are still credited)"
    )]
    AccountFrozen,
    #[error("no fraud case {0}")]
    UnknownFraudCase(i64),
    #[error("fraud case {id} is already resolved ({resolution}); a case is resolved once")]
    FraudCaseResolved { id: i64, resolution: String },
    #[error("{0}")]
    InvalidResolution(&'static str),
    #[error("this account was issued {max} certificates in the last 24 hours; try again later")]
    IssuanceRateLimited { max: u32 },

    // ---- top-up --------------------------------------------------------------------------
    #[error("no payment gateway is configured; run with --sandbox")]
    GatewayUnavailable,
    #[error("a top-up is {min} to {max} rials")]
    InvalidAmount { min: i64, max: i64 },
    #[error("{0}")]
    InvalidIdempotencyKey(&'static str),
    #[error("this idempotency key was used for another amount")]
    IdempotencyConflict,
    #[error("no such top-up intent")]
    UnknownIntent,
    #[error("no such payment")]
    UnknownPayment,
    #[error("this payment page has expired")]
    PaymentExpired,
    #[error("the gateway's record does not match the intent")]
    VerificationFailed,

    // ---- sync and settlement -------------------------------------------------------------
    #[error("at most {max} entries per sync")]
    TooManyEntries { max: usize },
    #[error("the cursor is ≥ 0")]
    InvalidCursor,
    /// An uploaded log entry that is not hex or does not decode.
    #[error("{0}")]
    InvalidEntry(String),
    #[error("entry {seq} does not follow the stored chain; upload from entry {expected}")]
    ChainGap { seq: u64, expected: u64 },
    /// The uploaded entries do not continue the stored chain and nothing signed proves a fork:
    /// refused, never a fraud case (a power loss can cost a phone its newest entries).
    #[error("the wallet log does not continue the stored chain: {0}")]
    ChainConflict(String),
    /// A batch that does not decode.
    #[error("{0}")]
    InvalidBatch(String),
    #[error("validator {0} is not registered")]
    UnknownValidator(u32),
    #[error("the batch signature does not verify under the validator's registered key")]
    BadBatchSignature,
    #[error("the batch signature is not canonical (high S): a modified copy of a signed batch")]
    NonCanonicalBatchSignature,
    #[error("this batch id was used for a different batch")]
    BatchIdConflict,

    // ---- operators -----------------------------------------------------------------------
    #[error("no validator {0} is registered")]
    NoSuchValidator(u32),
    #[error("a validator certificate names at most {max} lines")]
    InvalidLines { max: usize },
    #[error("an adjustment is non-zero, at most 10^12 rials, with a note of at most 500 bytes")]
    InvalidAdjustment,

    // ---- ours ----------------------------------------------------------------------------
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure that is no one's input: the random generator, signing, serialization.
    #[error("{0}")]
    Internal(String),

    // ---- operators (issue #15) -----------------------------------------------------------
    #[error("no adjustment {0}")]
    UnknownAdjustment(i64),
    #[error("the operator who requested an adjustment cannot approve it; another operator must")]
    SelfApproval,
    #[error("adjustment {id} is {status} already; it cannot be decided the other way")]
    AdjustmentDecided { id: i64, status: &'static str },
    #[error("{0}")]
    InvalidDecision(&'static str),
    /// The payment gateway did not answer (or answered nothing usable); retry later.
    #[error("the payment gateway is not answering; try again in a minute")]
    GatewayDown,
    /// The SMS service did not take the message.
    #[error("the SMS service did not take the message; try again in a minute")]
    SmsFailed,
    // ---- sessions (issue #15) ------------------------------------------------------------
    /// Refused for now; the same request succeeds after `retry_after` seconds (429 +
    /// `Retry-After`).
    #[error("{detail}; try again in {retry_after} s")]
    RetryLater {
        detail: &'static str,
        retry_after: u64,
    },
    /// A phone number that is not an Iranian mobile number in any spelling we read.
    #[error("{0}")]
    InvalidPhoneNumber(String),
    #[error(
        "this session is bound to its device: this call needs a ManCard-Proof header signed \
         by that device's binding key"
    )]
    ProofRequired,
    #[error("{0}")]
    BadRequestProof(&'static str),
    #[error(
        "this session belongs to another device of the account; log in again on this phone \
         to provision it"
    )]
    WrongDevice,
    #[error("no such session on this account")]
    UnknownSession,
    /// A query parameter out of its documented range.
    #[error("{0}")]
    InvalidQueryValue(&'static str),
    /// Rotating the issuer key would list more keys than a config bundle may carry.
    #[error(
        "too many issuer keys are still listed ({listed} of at most {max}); retire old ones \
         before rotating again"
    )]
    TooManyIssuerKeys { listed: usize, max: usize },
    /// A session asked to end one made after it (only a newer session ends an older one).
    #[error("a session can end only sessions older than itself; this one was made after yours")]
    NewerSession,
}

impl Error {
    /// An internal failure with its cause (logged at the HTTP edge, never shown).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(StoreError::from(e))
    }
}

/// The result of the issuer's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
