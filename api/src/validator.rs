//! Validators: signed batch upload results (`POST /v1/validator/batches`). The config bundle
//! itself is a binary protocol message.

use serde::{Deserialize, Serialize};

/// What settlement made of one uploaded tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TapStatus {
    /// Charged now.
    Settled,
    /// Already settled with identical evidence; not charged again.
    Duplicate,
    /// Conflicting or out-of-limit evidence: a fraud case was opened, the credential revoked.
    Fraud,
    /// The evidence does not verify; not charged.
    Rejected,
    /// Stored, not charged yet: a pass only the wallet reported (charged when a validator
    /// reports it).
    Pending,
    /// Stored, not charged: a validator reported the tap's challenge torn (the gate stayed
    /// closed).
    NotCharged,
}

impl TapStatus {
    /// The status's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Settled => "settled",
            Self::Duplicate => "duplicate",
            Self::Fraud => "fraud",
            Self::Rejected => "rejected",
            Self::Pending => "pending",
            Self::NotCharged => "not_charged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TapResult {
    /// Log sequence number (wallet uploads) or index in the batch (validator uploads).
    pub seq: u64,
    pub pseudonym: Option<String>,
    pub counter: Option<u32>,
    pub status: TapStatus,
    /// What this tap is charged now, rials (settled, duplicate, and fraud when charged).
    pub fare: Option<i64>,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Torn challenges of the batch recorded (the gate stayed closed for each).
    #[serde(default)]
    pub torn: usize,
}
