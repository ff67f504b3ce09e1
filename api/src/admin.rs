//! Operators: `/v1/admin/*`.

use serde::{Deserialize, Serialize};

/// Registers (or re-keys) a validator; the answer carries its issuer-signed certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterValidatorRequest {
    pub validator_id: u32,
    /// Uncompressed SEC1 P-256 public key, hex.
    pub public_key: String,
    /// The transit operator that runs the validator (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<u32>,
    /// The lines the validator may charge for (at most 3); empty or absent: any line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<u32>,
}

impl RegisterValidatorRequest {
    /// A request for `validator_id` with its public key (hex), operator 1, any line.
    pub fn new(validator_id: u32, public_key: impl Into<String>) -> Self {
        Self {
            validator_id,
            public_key: public_key.into(),
            operator_id: None,
            lines: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterValidatorResponse {
    pub validator_id: u32,
    pub registered_at: i64,
    /// The encoded `ValidatorCertificate` signed by the current issuer key, hex: install it on
    /// the validator (`mancard validator install-certificate`).
    pub certificate: String,
    pub operator_id: u32,
    /// The lines the certificate allows (empty: any line).
    pub lines: Vec<u32>,
    /// The certificate's validity, UTC seconds.
    pub valid_from: i64,
    pub valid_until: i64,
}

/// Puts a validator on the validator deny list (a stolen or decommissioned reader): the next
/// config bundle names it, phones stop answering it, and its challenges signed from now on are
/// not charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DenyValidatorRequest {
    pub validator_id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DenyValidatorResponse {
    pub validator_id: u32,
    /// When it was first denied (denying again keeps the first time).
    pub denied_at: i64,
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

/// Where a fraud case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FraudCaseStatus {
    /// Not resolved yet: the account is frozen (no new certificates).
    Open,
    /// An operator resolved it.
    Resolved,
}

impl FraudCaseStatus {
    /// The status's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
}

/// How an operator resolved a fraud case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FraudResolution {
    /// The fraud is real: the device stays revoked (the rider provisions a new device).
    Confirmed,
    /// A false alarm: the revocation the case caused is lifted (the device's pseudonyms leave
    /// the deny list).
    Dismissed,
}

impl FraudResolution {
    /// The resolution's wire (and database) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Dismissed => "dismissed",
        }
    }

    /// The resolution for its text, if known.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Confirmed, Self::Dismissed]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// A fraud case. While one is open the account is frozen: no certificate is issued
/// (provisioning and replenishing answer 403 `account_frozen`); top-ups are still credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FraudCase {
    pub id: i64,
    pub account_id: i64,
    pub device_id: i64,
    /// Hex pseudonym.
    pub pseudonym: String,
    pub kind: FraudKind,
    pub counter: Option<u32>,
    pub detail: String,
    pub opened_at: i64,
    pub status: FraudCaseStatus,
    /// Set once resolved.
    pub resolution: Option<FraudResolution>,
    pub resolved_at: Option<i64>,
    /// The operator who resolved it.
    pub resolved_by: Option<String>,
    /// The operator's note.
    pub note: Option<String>,
}

/// Which cases `GET /v1/admin/fraud` lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FraudStatusFilter {
    #[default]
    Open,
    Resolved,
    All,
}

impl FraudStatusFilter {
    /// The filter's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
            Self::All => "all",
        }
    }
}

/// The query string of `GET /v1/admin/fraud`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct FraudCasesQuery {
    /// `open` (default), `resolved` or `all`.
    #[serde(default)]
    pub status: FraudStatusFilter,
}

/// One case with its evidence: the signed messages that prove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FraudCaseDetail {
    pub case: FraudCase,
    /// The evidence bytes, hex (decode with `mancard inspect`); empty for a case opened before
    /// the backend kept evidence.
    pub evidence: String,
    /// The evidence decoded, one line per field (what `mancard inspect` prints).
    pub evidence_summary: Vec<String>,
}

/// `POST /v1/admin/fraud/{id}/resolve`. Resolving is idempotent: the same resolution again
/// changes nothing; another resolution of a resolved case is a 409 `fraud_case_resolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolveFraudRequest {
    pub resolution: FraudResolution,
    /// Why (1 to 500 bytes).
    pub note: String,
    /// Who resolves it. Over HTTP the backend records the authenticated operator's name
    /// and ignores this field (it may be left out); offline tools set it.
    #[serde(default)]
    pub operator: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolveFraudResponse {
    pub case: FraudCase,
    /// False if the case had been resolved this way already (nothing changed).
    pub changed: bool,
    /// Whether the account is still frozen (another case of it is open).
    pub account_frozen: bool,
    /// Whether the case's device is still revoked.
    pub device_revoked: bool,
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
    /// Charged taps with no fare entry, and taps not charged (pending, torn) whose ledger
    /// entries do not sum to 0 (must be 0).
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

/// What an operator credential allows. Each `/v1/admin/*` endpoint names the scopes that
/// may call it (any one of them suffices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read the books: the ledger audit, fraud cases, issuer keys, pending adjustments, the
    /// operator log.
    Read,
    /// Request, approve and reject manual ledger adjustments.
    Adjust,
    /// Read and resolve fraud cases.
    Fraud,
    /// Rotate issuer keys, register and deny validators (each registration is an
    /// issuer-signed certificate).
    Keys,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Self::Read, Self::Adjust, Self::Fraud, Self::Keys];

    /// The scope's wire (and configuration) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Adjust => "adjust",
            Self::Fraud => "fraud",
            Self::Keys => "keys",
        }
    }

    /// The scope for its text, if known.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Where a manual adjustment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentStatus {
    /// At or under the single-approval limit: appended to the ledger when requested.
    Applied,
    /// Above the limit: waits for a second operator (nothing is in the ledger yet).
    Pending,
    /// A second operator approved it: appended to the ledger.
    Approved,
    /// Rejected (or withdrawn by its requester): never appended.
    Rejected,
}

impl AdjustmentStatus {
    /// The status's wire (and database) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    /// The status for its text, if known.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Applied, Self::Pending, Self::Approved, Self::Rejected]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A manual adjustment as the operators see it: who asked, who decided.
/// `POST /v1/admin/adjustments` answers 202 with one when a second approval is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Adjustment {
    pub id: i64,
    pub account_id: i64,
    /// Rials, positive or negative.
    pub amount: i64,
    pub idempotency_key: String,
    pub note: String,
    pub status: AdjustmentStatus,
    /// The operator who asked for it.
    pub requested_by: String,
    pub requested_at: i64,
    /// The second operator who approved or rejected it (the requester, if withdrawn).
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub decision_note: Option<String>,
    /// The ledger entry, once applied or approved.
    pub ledger_entry_id: Option<i64>,
}

/// `POST /v1/admin/adjustments/{id}/approve` and `/reject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecideAdjustmentRequest {
    /// Why (at most 500 bytes; a rejection needs one).
    #[serde(default)]
    pub note: String,
}

/// The answer to an approval or a rejection. Deciding again the same way changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecideAdjustmentResponse {
    pub adjustment: Adjustment,
    /// False if it had been decided this way already.
    pub changed: bool,
    /// The account's balance after the decision.
    pub balance: i64,
}

/// One row of the append-only operator log: every request of an identified operator (refused
/// ones too; a request naming no operator is not a row) and
/// every effect an operator had on the books, chained by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorLogRow {
    pub id: i64,
    pub at: i64,
    /// The operator, when the credential named one.
    pub operator: Option<String>,
    /// `request` (an HTTP call) or the effect (`adjustment.applied`, …).
    pub action: String,
    /// What it acted on (`POST /v1/admin/adjustments`, `adjustment 7`, …).
    pub target: String,
    /// `200`, `403`, … for requests; `ok` for effects.
    pub outcome: String,
    /// Facts of the action (never a secret).
    pub detail: String,
    /// SHA-256 over the previous row's hash and this row's fields, hex.
    pub hash: String,
}

/// The query string of `GET /v1/admin/audit-log`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct OperatorLogQuery {
    /// Rows after this id (default 0: from the start).
    #[serde(default)]
    pub after: i64,
    /// At most this many rows (1 to 500; default 500).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
}

/// A page of the operator log with the result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorLogResponse {
    pub rows: Vec<OperatorLogRow>,
    /// Rows in the whole log.
    pub total: i64,
    /// The newest row's hash, hex (anchor it elsewhere to detect a truncated log).
    pub head: String,
    /// Whether every row's hash chains to its predecessor.
    pub chain_ok: bool,
}
