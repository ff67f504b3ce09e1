//! Records and enums the app receives: owned copies of the core's types, converted with `From`.
//! Amounts are rials (`Long`), times UTC seconds (`Long`).

use crate::types as core;

/// Where the credential stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CredentialState {
    /// Nothing installed yet.
    NoCredential,
    /// Installed and usable.
    Active,
    /// Usable, but a new certificate should be fetched (expiry near or allowance low).
    ReplenishDue,
    /// Not valid yet at the (server-corrected) wallet time.
    NotYetValid,
    /// Past its validity window.
    Expired,
    /// Revoked by the backend.
    Revoked,
    /// Offline counters or allowance used up.
    Exhausted,
    /// The tap key could not be unsealed (see `WalletStatus.problem`).
    KeyUnavailable,
}

impl From<core::CredentialState> for CredentialState {
    fn from(s: core::CredentialState) -> Self {
        match s {
            core::CredentialState::NoCredential => Self::NoCredential,
            core::CredentialState::Active => Self::Active,
            core::CredentialState::ReplenishDue => Self::ReplenishDue,
            core::CredentialState::NotYetValid => Self::NotYetValid,
            core::CredentialState::Expired => Self::Expired,
            core::CredentialState::Revoked => Self::Revoked,
            core::CredentialState::Exhausted => Self::Exhausted,
            core::CredentialState::KeyUnavailable => Self::KeyUnavailable,
        }
    }
}

/// The credential's status, as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WalletStatus {
    pub state: CredentialState,
    /// Fare class name ("adult", "student", ...), when a credential is installed.
    pub fare_class: Option<String>,
    /// Certificate validity window, UTC seconds.
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    /// Rides still possible offline.
    pub rides_available: u64,
    /// Rials of offline allowance left.
    pub amount_available: i64,
    /// Counters left in the certificate's range.
    pub counters_left: u64,
    pub replenish_due: bool,
    /// A tap key is waiting for its certificate.
    pub pending_request: bool,
    pub locked: bool,
    /// Hex of the installed certificate's hash.
    pub cert_hash_hex: Option<String>,
    /// The status line in the wallet's language: "۵ سفر / ۲٬۰۰۰ تومان اعتبار آفلاین تا …" (fa),
    /// "5 rides / 2,000 toman (20,000 rials) available offline until …" (en).
    pub summary: String,
    /// The state's label in the wallet's language ("فعال", "Active").
    pub state_text: String,
    /// Why the credential cannot be used, when it cannot.
    pub problem: Option<String>,
}

impl From<core::WalletStatus> for WalletStatus {
    fn from(s: core::WalletStatus) -> Self {
        Self {
            state: s.state.into(),
            fare_class: s.fare_class,
            valid_from: s.valid_from,
            valid_until: s.valid_until,
            rides_available: s.rides_available,
            amount_available: s.amount_available,
            counters_left: s.counters_left,
            replenish_due: s.replenish_due,
            pending_request: s.pending_request,
            locked: s.locked,
            cert_hash_hex: s.cert_hash_hex,
            summary: s.summary,
            state_text: s.state_text,
            problem: s.problem,
        }
    }
}

/// Balances, rials.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LedgerView {
    /// The balance the backend last confirmed.
    pub confirmed_balance: i64,
    /// When it confirmed it (backend time, UTC seconds), if ever.
    pub confirmed_at: Option<i64>,
    /// Taps and passes recorded after the confirmed balance.
    pub pending_taps: u64,
    pub pending_amount: i64,
    /// confirmed − pending.
    pub available_balance: i64,
    /// Offline allowance left under the installed certificate (0 without one).
    pub offline_allowance_remaining: i64,
}

impl From<core::LedgerView> for LedgerView {
    fn from(l: core::LedgerView) -> Self {
        Self {
            confirmed_balance: l.confirmed_balance,
            confirmed_at: l.confirmed_at,
            pending_taps: l.pending_taps,
            pending_amount: l.pending_amount,
            available_balance: l.available_balance,
            offline_allowance_remaining: l.offline_allowance_remaining,
        }
    }
}

/// What a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum HistoryKind {
    Tap,
    Pass,
    Refusal,
    TopUp,
}

impl From<core::HistoryKind> for HistoryKind {
    fn from(k: core::HistoryKind) -> Self {
        match k {
            core::HistoryKind::Tap => Self::Tap,
            core::HistoryKind::Pass => Self::Pass,
            core::HistoryKind::Refusal => Self::Refusal,
            core::HistoryKind::TopUp => Self::TopUp,
        }
    }
}

/// Where a history entry stands (what the backend charged for a tap or pass and why, or
/// what an event was). `HistoryEntry.status_code` is the same as a stable text code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum HistoryStatus {
    /// An NFC tap the backend has not judged yet (the amount is what the phone authorized).
    NotSettled,
    /// A QR pass shown, not charged (yet), still scannable.
    PassShown,
    /// A QR pass that expired unscanned: nothing charged, its reservation released.
    PassNotUsed,
    /// Charged.
    Charged,
    /// Charged another amount than the phone authorized (a transfer, the daily cap).
    Corrected,
    /// Not charged, on the evidence (a torn tap whose gate stayed closed).
    NotCharged,
    /// The report was refused: not charged.
    Rejected,
    /// Charged, and a fraud case was opened (the amount is the real charge).
    Fraud,
    /// The phone refused a reader.
    Refused,
    /// A top-up or a credit.
    Credited,
}

impl From<core::HistoryStatus> for HistoryStatus {
    fn from(s: core::HistoryStatus) -> Self {
        match s {
            core::HistoryStatus::NotSettled => Self::NotSettled,
            core::HistoryStatus::PassShown => Self::PassShown,
            core::HistoryStatus::PassNotUsed => Self::PassNotUsed,
            core::HistoryStatus::Charged => Self::Charged,
            core::HistoryStatus::Corrected => Self::Corrected,
            core::HistoryStatus::NotCharged => Self::NotCharged,
            core::HistoryStatus::Rejected => Self::Rejected,
            core::HistoryStatus::Fraud => Self::Fraud,
            core::HistoryStatus::Refused => Self::Refused,
            core::HistoryStatus::Credited => Self::Credited,
        }
    }
}

/// One line of the rider's history.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// Stable, opaque id; also usable as a pagination cursor.
    pub id: String,
    /// Wallet clock (server-corrected), UTC seconds.
    pub time: i64,
    pub kind: HistoryKind,
    /// Rials the entry is about: what the backend charges for a tap or pass it judged (a
    /// fraud tap's real charge); for one not judged yet, the fare authorized (NFC) or what
    /// the pass holds; 0 for a pass not used and for refusals; a top-up's amount.
    pub amount: i64,
    /// What the phone signed for a tap or pass: the NFC fare, or the pass's maximum.
    pub authorized: Option<i64>,
    /// What the backend charges for the tap or pass now, once it judged it.
    pub charged: Option<i64>,
    pub status: HistoryStatus,
    /// Stable machine code of `status` ("not_settled", "pass_shown", "pass_not_used",
    /// "charged", "corrected", "not_charged", "rejected", "fraud", "refused", "credited").
    pub status_code: String,
    /// The backend's reason code ("transfer", "torn_gate_closed", "from_the_future", ...).
    pub reason: Option<String>,
    /// The status as a sentence in the wallet's language (`set_locale`).
    pub status_text: String,
    pub log_seq: Option<u64>,
    pub counter: Option<u32>,
    pub line_id: Option<u32>,
    pub validator_id: Option<u32>,
    /// Status word answered (NFC taps and refusals).
    pub status_word: Option<u16>,
    /// Human explanation beyond the status (refusal reason, top-up reference).
    pub detail: String,
}

impl From<core::HistoryItem> for HistoryEntry {
    fn from(i: core::HistoryItem) -> Self {
        Self {
            id: i.id,
            time: i.time,
            kind: i.kind.into(),
            amount: i.amount,
            authorized: i.authorized,
            charged: i.charged,
            status: i.status.into(),
            status_code: i.status.code().to_string(),
            reason: i.reason,
            status_text: i.status_text,
            log_seq: i.log_seq,
            counter: i.counter,
            line_id: i.line_id,
            validator_id: i.validator_id,
            status_word: i.status_word,
            detail: i.detail,
        }
    }
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next (older) page; null at the end.
    pub next_cursor: Option<String>,
}

impl From<core::HistoryPage> for HistoryPage {
    fn from(p: core::HistoryPage) -> Self {
        Self {
            entries: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// A QR symbol: `width × width` modules, row-major, true = dark, without the quiet zone (leave
/// 4 light modules around it when drawing).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QrModules {
    pub width: u32,
    pub version: u8,
    pub modules: Vec<bool>,
}

/// A boarding pass ready to show. The app redraws it at `refresh_at` (device clock) by asking
/// for a new one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BoardingPass {
    /// What the QR code encodes ("MC2:...").
    pub text: String,
    pub matrix: QrModules,
    /// SVG document (8 units per module, quiet zone included).
    pub svg: String,
    /// PNG image, 8 pixels per module, quiet zone included.
    pub png: Vec<u8>,
    pub counter: u32,
    /// Server-corrected issue time and end of validity, UTC seconds.
    pub issued_at: i64,
    pub expires_at: i64,
    /// Device clock time (UTC seconds) at which to ask for a new pass.
    pub refresh_at: i64,
    /// The most a validator may charge for it, rials.
    pub max_amount: i64,
}

/// Pixels per QR module of [`BoardingPass::png`].
pub(crate) const PASS_PNG_MODULE_PX: u32 = 8;

impl TryFrom<core::BoardingPassQr> for BoardingPass {
    type Error = crate::WalletError;
    fn try_from(q: core::BoardingPassQr) -> Result<Self, Self::Error> {
        let svg = q.svg();
        let png = q.png(PASS_PNG_MODULE_PX)?;
        Ok(Self {
            svg,
            png,
            text: q.text,
            matrix: QrModules {
                width: q.matrix.width,
                version: q.matrix.version,
                modules: q.matrix.modules,
            },
            counter: q.counter,
            issued_at: q.issued_at,
            expires_at: q.expires_at,
            refresh_at: q.refresh_at,
            max_amount: q.max_amount,
        })
    }
}
