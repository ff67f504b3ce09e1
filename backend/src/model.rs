//! JSON request and response bodies of the `/v1/` API. Binary protocol messages travel as
//! lowercase hex strings.

use crate::keys::KeyInfo;
use crate::repo::LedgerEntry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct OtpRequest {
    /// Phone number: `+<country><number>` (8–15 digits) or an Iranian `09…` mobile number.
    pub phone: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OtpResponse {
    /// Normalized phone number.
    pub phone: String,
    /// When the code stops working, UTC seconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SandboxOtp {
    pub phone: String,
    pub code: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SessionRequest {
    pub phone: String,
    /// The 6-digit one-time code.
    pub code: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Bearer token (64 hex characters) for `Authorization: Bearer <token>`.
    pub token: String,
    pub account_id: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountResponse {
    pub account_id: i64,
    pub phone: String,
    /// `adult`, `student`, `senior` or `free`.
    pub fare_class: String,
    /// Confirmed balance, rials.
    pub balance: i64,
    pub server_time: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NonceResponse {
    /// 32 bytes, hex: goes into the provisioning transcript.
    pub nonce: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CredentialRequest {
    /// Nonce from `POST /v1/credential/nonce`, hex.
    pub nonce: String,
    /// Binding public key, uncompressed SEC1 P-256 (65 bytes), hex.
    pub binding_public_key: String,
    /// The new certificate's tap public key, uncompressed SEC1 P-256, hex.
    pub tap_public_key: String,
    /// Fixed 64-byte `r ‖ s` ECDSA signature by the binding key over
    /// `mancard_protocol::provision::provision_transcript`, hex.
    pub signature: String,
    /// Optional: the lowest counter the wallet can still use; the new range starts at or after
    /// it (it is not signed: it can only push the wallet's own range forward).
    #[serde(default)]
    pub next_counter: Option<u32>,
}

/// An issuer public key, as the wallet needs it to check its certificate.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuerKeyView {
    pub key_id: u32,
    /// Uncompressed SEC1 P-256 point, hex.
    pub public_key: String,
    pub valid_from: i64,
    pub valid_until: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CredentialResponse {
    /// The encoded `CredentialCertificate` (184 bytes), hex.
    pub certificate: String,
    /// `CredentialCertificate::hash`, hex.
    pub certificate_hash: String,
    pub pseudonym: String,
    pub issuer_key_id: u32,
    pub valid_from: i64,
    pub valid_until: i64,
    pub counter_first: u32,
    pub counter_last: u32,
    /// Offline allowance, rials.
    pub max_amount: i64,
    pub fare_class: String,
    pub balance: i64,
    pub server_time: i64,
    /// Pseudonyms of this account's other devices revoked by this provisioning (lost phone).
    pub revoked_pseudonyms: Vec<String>,
    /// Issuer keys to verify certificates with (as in the validator bundle).
    pub issuer_keys: Vec<IssuerKeyView>,
    /// The tariff (`Tariff` encoding), hex.
    pub tariff: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TopupRequest {
    /// Rials.
    pub amount: i64,
    /// Chosen by the client, stored before the request is sent and reused on every retry
    /// (1–128 printable ASCII characters).
    pub idempotency_key: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopupIntentResponse {
    pub intent_id: String,
    pub amount: i64,
    /// `pending`, `credited`, `cancelled` or `expired`.
    pub status: String,
    /// Gateway page to open in a browser.
    pub payment_url: String,
    pub expires_at: i64,
    /// Ledger entry of the credit, once credited.
    pub ledger_entry_id: Option<i64>,
    /// Gateway reference number, once paid.
    pub gateway_ref: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SyncRequest {
    /// The device's card pseudonym, hex.
    pub pseudonym: String,
    /// Ledger id of the last entry the wallet has (0 for none).
    #[serde(default)]
    pub cursor: i64,
    /// Encoded `WalletLogEntry`s (hex), in sequence order, continuing the device's chain.
    /// Entries already uploaded may be sent again (they must be identical).
    #[serde(default)]
    pub entries: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CredentialStatus {
    /// `active`, `replenish_due` or `revoked`.
    pub status: String,
    /// Why revoked or why replenishment is due.
    pub reason: Option<String>,
    pub pseudonym: String,
    /// The device's newest certificate, hex.
    pub certificate: Option<String>,
    pub valid_until: Option<i64>,
    pub counter_first: Option<u32>,
    pub counter_last: Option<u32>,
    pub max_amount: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TapResult {
    /// Log sequence number (wallet uploads) or index in the batch (validator uploads).
    pub seq: u64,
    pub pseudonym: Option<String>,
    pub counter: Option<u32>,
    /// `settled` (charged now), `duplicate` (already settled with identical evidence),
    /// `fraud` (conflicting or out-of-limit evidence: credential revoked) or `rejected`
    /// (evidence does not verify; not charged).
    pub status: String,
    /// What this tap is charged now, rials (settled, duplicate, and fraud when charged).
    pub fare: Option<i64>,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainState {
    /// Sequence number the next uploaded entry must have.
    pub next_seq: u64,
    /// Hash of the last stored entry (its successor's `prev_hash`), hex.
    pub head_hash: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncResponse {
    pub server_time: i64,
    /// Confirmed balance, rials.
    pub balance: i64,
    /// Pass back as `cursor` next time.
    pub cursor: i64,
    /// Ledger entries after the request's cursor (at most 500; `more` if there are others).
    pub ledger: Vec<LedgerEntry>,
    pub more: bool,
    pub credential: CredentialStatus,
    /// One result per uploaded entry.
    pub taps: Vec<TapResult>,
    pub chain: ChainState,
    /// The tariff (`Tariff` encoding), hex.
    pub tariff: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogItem {
    pub seq: u64,
    /// Encoded `WalletLogEntry`, hex.
    pub entry: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogResponse {
    pub entries: Vec<LogItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// Hex.
    pub batch_id: String,
    pub validator_id: u32,
    /// True if this batch id had been processed before (the stored answer is returned).
    pub duplicate_batch: bool,
    pub settled: usize,
    pub duplicates: usize,
    pub fraud: usize,
    pub rejected: usize,
    pub records: Vec<TapResult>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RegisterValidatorRequest {
    pub validator_id: u32,
    /// Uncompressed SEC1 P-256 public key, hex.
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegisterValidatorResponse {
    pub validator_id: u32,
    pub registered_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeysResponse {
    pub current_key_id: u32,
    pub keys: Vec<KeyInfo>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AdjustmentRequest {
    pub account_id: i64,
    /// Rials, positive or negative.
    pub amount: i64,
    pub idempotency_key: String,
    pub note: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdjustmentResponse {
    pub ledger_entry_id: i64,
    /// False if the idempotency key had been used already (nothing appended).
    pub created: bool,
    pub balance: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub server_time: i64,
}
