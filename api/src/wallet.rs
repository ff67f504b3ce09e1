//! The wallet's side: credential issuance (`/v1/credential/*`), sync and the stored tap log
//! (`/v1/wallet/*`), and the health check.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NonceResponse {
    /// 32 bytes, hex: goes into the provisioning transcript.
    pub nonce: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_counter: Option<u32>,
}

/// An issuer public key, as the wallet needs it to check its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuerKeyView {
    pub key_id: u32,
    /// Uncompressed SEC1 P-256 point, hex.
    pub public_key: String,
    pub valid_from: i64,
    pub valid_until: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialResponse {
    /// The encoded `CredentialCertificate` (184 bytes), hex.
    pub certificate: String,
    /// The certificate id (`CredentialCertificate::id`, a hash of its body), hex.
    pub certificate_hash: String,
    /// This certificate's pseudonym, hex: fresh in every certificate.
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
    /// Pseudonyms of the certificates of this account's other devices revoked by this
    /// provisioning (lost phone).
    pub revoked_pseudonyms: Vec<String>,
    /// Issuer keys to verify certificates with (as in the validator bundle).
    pub issuer_keys: Vec<IssuerKeyView>,
    /// The tariff (`Tariff` encoding), hex.
    pub tariff: String,
    /// The current signed config bundle (`ValidatorConfig` encoding: issuer keys, deny lists,
    /// time rules, tariff), hex; the wallet installs it (`Wallet::install_config`).
    pub config_bundle: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncRequest {
    /// A pseudonym of the device (any of its certificates'), hex.
    pub pseudonym: String,
    /// Ledger id of the last entry the wallet has (0 for none).
    #[serde(default)]
    pub cursor: i64,
    /// Encoded `WalletLogEntry`s (hex), in sequence order, continuing the device's chain.
    /// Entries already uploaded may be sent again (they must be identical).
    #[serde(default)]
    pub entries: Vec<String>,
    /// Id of the last tap verdict the wallet has (0 for none).
    #[serde(default)]
    pub verdict_cursor: i64,
}

/// Where the device's credential stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CredentialState {
    Active,
    /// Online now: ask for a new certificate (`reason` says why).
    ReplenishDue,
    /// Deny-listed (`reason` says why): no further taps.
    Revoked,
}

impl CredentialState {
    /// The state's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReplenishDue => "replenish_due",
            Self::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialStatus {
    pub status: CredentialState,
    /// Why revoked (a [`RevocationReason`] code) or why replenishment is due (`expiry_near`,
    /// `counters_low`, `allowance_can_grow`, `no_certificate`).
    pub reason: Option<String>,
    /// The pseudonym of the device's newest certificate, hex.
    pub pseudonym: String,
    /// The device's newest certificate, hex.
    pub certificate: Option<String>,
    pub valid_until: Option<i64>,
    pub counter_first: Option<u32>,
    pub counter_last: Option<u32>,
    pub max_amount: Option<i64>,
}

/// Why a device's credential was revoked: the `reason` of a `revoked` [`CredentialStatus`]
/// (the device syncs on and learns it) and the code named in the detail of a 409
/// `credential_revoked` problem. Its text is the stable contract; a code this build does not
/// know (a newer server) parses as `None` and is shown as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// The account provisioned another phone: the card moved there (the lost-phone path).
    /// This device's certificates are on the deny list; the balance stays with the account.
    ReplacedByNewDevice,
    /// A fraud case was opened against the device on its own signatures.
    Fraud(crate::FraudKind),
    /// Its rider showed one pass at several validators more often than allowed in a day.
    SharedPass,
}

impl RevocationReason {
    /// The reason's wire (and database) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ReplacedByNewDevice => "replaced_by_new_device",
            Self::Fraud(kind) => kind.as_str(),
            Self::SharedPass => "shared_pass",
        }
    }

    /// The reason for its text, if known.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "replaced_by_new_device" => Some(Self::ReplacedByNewDevice),
            "shared_pass" => Some(Self::SharedPass),
            other => crate::FraudKind::parse(other).map(Self::Fraud),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainState {
    /// Sequence number the next uploaded entry must have.
    pub next_seq: u64,
    /// The chain link of the last stored entry (its proof id, `TapProof::id`: what the next
    /// proof under the same certificate signs as `prev`), hex; empty when none is stored.
    pub head_hash: String,
}

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// A verified gateway payment (credit).
    Topup,
    /// A tap's charge (debit).
    Fare,
    /// A later re-rating of a tap (transfer, daily cap), either sign.
    FareAdjustment,
    /// An operator's adjustment, either sign.
    Adjustment,
}

impl LedgerKind {
    /// The kind's wire (and database) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Topup => "topup",
            Self::Fare => "fare",
            Self::FareAdjustment => "fare_adjustment",
            Self::Adjustment => "adjustment",
        }
    }

    /// The kind for its text, if known.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Topup,
            Self::Fare,
            Self::FareAdjustment,
            Self::Adjustment,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEntry {
    /// Monotonic id; the sync cursor.
    pub id: i64,
    pub kind: LedgerKind,
    /// Rials: positive credits, negative debits.
    pub amount: i64,
    pub idempotency_key: String,
    /// Card pseudonym (hex) of a fare entry.
    pub pseudonym: Option<String>,
    /// Tap counter of a fare entry.
    pub counter: Option<u32>,
    /// Top-up intent of a top-up entry.
    pub intent_id: Option<String>,
    pub note: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub taps: Vec<crate::TapResult>,
    pub chain: ChainState,
    /// The tariff (`Tariff` encoding), hex.
    pub tariff: String,
    /// The current signed config bundle (`ValidatorConfig` encoding), hex, as in
    /// [`CredentialResponse::config_bundle`].
    pub config_bundle: String,
    /// What the backend decided about the device's taps since the request's
    /// `verdict_cursor`, oldest first (at most 500): every change of a tap's status or charge,
    /// whoever reported the tap.
    #[serde(default)]
    pub verdicts: Vec<TapVerdict>,
    /// Pass back as `verdict_cursor` next time.
    #[serde(default)]
    pub verdict_cursor: i64,
}

/// Where a tap stands at the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VerdictStatus {
    /// Charged (`charged` rials, after re-rating).
    Charged,
    /// Known only from the wallet and not charged yet: a pass no validator reported (yet).
    Pending,
    /// Not charged, and never will be on this evidence (`reason` says why: a torn tap whose
    /// gate stayed closed, a pass that expired unscanned).
    NotCharged,
    /// Charged, and a fraud case was opened on signed evidence (`reason` is its kind).
    Fraud,
    /// The report was refused (`reason` says why): not charged, no case.
    Rejected,
}

impl VerdictStatus {
    /// The status's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Charged => "charged",
            Self::Pending => "pending",
            Self::NotCharged => "not_charged",
            Self::Fraud => "fraud",
            Self::Rejected => "rejected",
        }
    }

    /// The status for its text, if known.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Charged,
            Self::Pending,
            Self::NotCharged,
            Self::Fraud,
            Self::Rejected,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// The backend's verdict on one tap of the device, as the rider's history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TapVerdict {
    /// Monotonic id: the verdict cursor.
    pub id: i64,
    /// The certificate's pseudonym, hex.
    pub pseudonym: String,
    pub counter: u32,
    pub status: VerdictStatus,
    /// Rials the backend charges for this tap now (0 or more).
    pub charged: i64,
    /// Stable code: why (`torn_gate_closed`, `pass_not_scanned`, `pass_expired_unscanned`,
    /// `shared_pass`, `from_the_future`, a fraud kind, a rejection reason, `transfer`, ...).
    pub reason: Option<String>,
    /// The tap's signed time, UTC seconds.
    pub time: i64,
    pub line_id: Option<u32>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogItem {
    pub seq: u64,
    /// Encoded `WalletLogEntry`, hex.
    pub entry: String,
}

/// The query string of `GET /v1/wallet/log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct LogQuery {
    /// A pseudonym of the device (any of its certificates'), hex.
    pub pseudonym: String,
    /// First sequence number wanted.
    #[serde(default)]
    pub from_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogResponse {
    pub entries: Vec<LogItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    pub server_time: i64,
}
