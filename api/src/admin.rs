//! Operators: `/v1/admin/*`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterValidatorRequest {
    pub validator_id: u32,
    /// Uncompressed SEC1 P-256 public key, hex.
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterValidatorResponse {
    pub validator_id: u32,
    pub registered_at: i64,
}

/// Public summary of an issuer key (what admin endpoints and the CLI show).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    pub key_id: u32,
    /// Uncompressed SEC1 public key, hex.
    pub public_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// True for the key that signs new certificates.
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeysResponse {
    pub current_key_id: u32,
    pub keys: Vec<KeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdjustmentRequest {
    pub account_id: i64,
    /// Rials, positive or negative.
    pub amount: i64,
    pub idempotency_key: String,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdjustmentResponse {
    pub ledger_entry_id: i64,
    /// False if the idempotency key had been used already (nothing appended).
    pub created: bool,
    pub balance: i64,
}

/// Why a fraud case was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FraudKind {
    /// One counter with two different proofs.
    DuplicateCounter,
    /// A counter outside the certificate's range.
    CounterOutOfRange,
    /// Signed amounts beyond the certificate's allowance.
    OverAllowance,
    /// The device's tap log does not chain.
    BrokenChain,
}

impl FraudKind {
    /// The kind's wire (and database) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DuplicateCounter => "duplicate_counter",
            Self::CounterOutOfRange => "counter_out_of_range",
            Self::OverAllowance => "over_allowance",
            Self::BrokenChain => "broken_chain",
        }
    }

    /// The kind for its text, if known.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::DuplicateCounter,
            Self::CounterOutOfRange,
            Self::OverAllowance,
            Self::BrokenChain,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// An open fraud case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FraudCase {
    pub id: i64,
    pub device_id: i64,
    /// Hex pseudonym.
    pub pseudonym: String,
    pub kind: FraudKind,
    pub counter: Option<u32>,
    pub detail: String,
    pub opened_at: i64,
}

/// Results of the ledger invariant checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditReport {
    pub accounts: i64,
    pub ledger_entries: i64,
    pub taps: i64,
    pub ledger_total: i64,
    /// Sum over accounts of their balances (must equal `ledger_total`).
    pub balances_total: i64,
    /// Taps with no fare entry (must be 0).
    pub taps_without_charge: i64,
    /// Taps whose charge is negative (must be 0).
    pub taps_negative_charge: i64,
    /// Fare entries that do not name a tap (must be 0).
    pub orphan_fare_entries: i64,
    /// Top-up intents credited more than once (must be 0).
    pub intents_credited_twice: i64,
    /// Certificates whose running total of signed amounts differs from the sum over their
    /// stored taps (must be 0).
    pub cert_totals_mismatched: i64,
    pub ok: bool,
}
