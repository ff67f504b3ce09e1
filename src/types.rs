//! Owned, FFI-friendly records the wallet returns.

use crate::qr::QrMatrix;

/// Tunables of a wallet. `Default` gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletConfig {
    /// Counters reserved per fsync (the reservation block; doubles up to 16× if bursts of taps
    /// outrun the fsync). A process killed between a tap and the next park skips at most what
    /// is left of its block.
    pub counter_block: u32,
    /// Replenishment is due this long before the certificate expires, seconds.
    pub replenish_before_expiry_secs: i64,
    /// Replenishment is due when this many rides or fewer are left offline.
    pub replenish_below_rides: u64,
    /// Lifetime of a QR pass, seconds (capped by the config bundle's maximum).
    pub pass_lifetime_secs: u16,
    /// Amount a QR pass reserves against the allowance; `None`: the tariff's highest fare for the
    /// credential's fare class.
    pub pass_max_amount: Option<i64>,
    /// Most AUTHORIZE TAPs the phone signs in a minute (a rogue reader cannot drain the
    /// allowance faster). Production: [`mancard_protocol::MAX_AUTHORIZATIONS_PER_MINUTE`];
    /// benchmarks and load tests raise it.
    pub max_authorizations_per_minute: u32,
    /// Run counter reservations and WAL checkpoints on a background thread (the default). When
    /// false they run inline, on the caller's thread (for tests that want determinism).
    pub background_maintenance: bool,
    /// After the NFC field drops (`deactivated()`) and no reader selects ManCard again for this
    /// long, the wallet durably records the next counter (one fsync off the tap path), so a
    /// process killed while idle loses no counters. 0: at once.
    pub park_after_quiet_ms: u32,
    /// Most refusal rows the history keeps; older refusals are dropped beyond it.
    pub refusal_log_limit: u32,
    /// The language of the rider-facing text at open (Persian by default); the app changes
    /// it with `Wallet::set_language`.
    pub language: mancard_l10n::Lang,
}

impl Default for WalletConfig {
    fn default() -> Self {
        Self {
            counter_block: 4,
            replenish_before_expiry_secs: 2 * 86_400,
            replenish_below_rides: 4,
            pass_lifetime_secs: mancard_protocol::DEFAULT_PASS_LIFETIME_SECS,
            pass_max_amount: None,
            max_authorizations_per_minute: mancard_protocol::MAX_AUTHORIZATIONS_PER_MINUTE,
            background_maintenance: true,
            park_after_quiet_ms: 1_000,
            refusal_log_limit: 1_000,
            language: mancard_l10n::Lang::Fa,
        }
    }
}

/// An issuer public key the wallet may verify a certificate against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKeyInfo {
    pub key_id: u32,
    /// Uncompressed SEC1 P-256 point (65 bytes).
    pub public_key: Vec<u8>,
    pub valid_from: i64,
    pub valid_until: i64,
}

/// What the backend needs to issue a certificate for this wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRequest {
    /// The pending tap key's public half (65 bytes): goes into the certificate.
    pub tap_public_key: Vec<u8>,
    /// The binding key's public half (65 bytes).
    pub binding_public_key: Vec<u8>,
    /// The lowest counter this wallet can still use: the certificate's range must reach past it.
    pub next_counter: u32,
}

/// Where the credential stands, for the app to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The tap key could not be unsealed (see `WalletStatus::problem`).
    KeyUnavailable,
}

impl CredentialState {
    /// The stable machine code (`active`, `replenish_due`, `key_unavailable`, ...): the
    /// catalogs' key for the app's label.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NoCredential => "no_credential",
            Self::Active => "active",
            Self::ReplenishDue => "replenish_due",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Exhausted => "exhausted",
            Self::KeyUnavailable => "key_unavailable",
        }
    }
}

/// The wallet's state, as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletStatus {
    pub state: CredentialState,
    /// Fare class name ("adult", "student", ...), when a credential is installed.
    pub fare_class: Option<String>,
    /// Certificate validity window, UTC seconds.
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    /// Rides still possible offline (bounded by counters and by allowance / highest fare).
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
    /// The status line in the wallet's language: "۵ سفر / ۲٬۰۰۰ تومان اعتبار آفلاین تا ۹ آذر ۱۴۰۵،
    /// ۱۲:۰۰" (fa), "5 rides / 2,000 toman (20,000 rials) available offline until Azar 9, 1405 AP,
    /// 12:00 PM" (en).
    pub summary: String,
    /// The state's label in the wallet's language ("فعال", "Active").
    pub state_text: String,
    /// Why the credential cannot be used, when it cannot.
    pub problem: Option<String>,
}

/// Balances as the app shows them, rials.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// What a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    Tap,
    Pass,
    Refusal,
    TopUp,
}

impl HistoryKind {
    /// The stable machine code (`tap`, `pass`, `refusal`, `top_up`).
    pub const fn code(self) -> &'static str {
        match self {
            Self::Tap => "tap",
            Self::Pass => "pass",
            Self::Refusal => "refusal",
            Self::TopUp => "top_up",
        }
    }

    /// The kind stored under `s` ([`HistoryKind::code`]).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Self::Tap, Self::Pass, Self::Refusal, Self::TopUp]
            .into_iter()
            .find(|k| k.code() == s)
    }
}

/// Where a history row stands: what the backend charged for a tap or pass and why, or what
/// an event was. [`HistoryStatus::code`] is a stable machine code (the app and #17's
/// translations key on it); the sentence in the wallet's language is [`HistoryItem::status_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistoryStatus {
    /// An NFC tap the backend has not judged yet: the amount is what the phone authorized.
    NotSettled,
    /// A QR pass shown and not charged (yet), still scannable: the amount is what it holds
    /// out of the offline allowance.
    PassShown,
    /// A QR pass that expired without being charged: never scanned, nothing charged, its
    /// reservation released.
    PassNotUsed,
    /// Charged: what the phone authorized (NFC), or what the validator charged (a pass).
    Charged,
    /// Charged another amount than the phone authorized: re-rated by the backend (a transfer,
    /// the daily cap). The amount is the corrected charge.
    Corrected,
    /// Not charged, on the evidence (a torn tap whose gate stayed closed).
    NotCharged,
    /// The report was refused (the reason says why): not charged.
    Rejected,
    /// Charged, and a fraud case was opened on signed evidence: the amount is the real charge.
    Fraud,
    /// The phone refused a reader.
    Refused,
    /// A top-up or a credit to the account.
    Credited,
}

impl HistoryStatus {
    /// The stable machine code.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotSettled => "not_settled",
            Self::PassShown => "pass_shown",
            Self::PassNotUsed => "pass_not_used",
            Self::Charged => "charged",
            Self::Corrected => "corrected",
            Self::NotCharged => "not_charged",
            Self::Rejected => "rejected",
            Self::Fraud => "fraud",
            Self::Refused => "refused",
            Self::Credited => "credited",
        }
    }
}

/// One line of the rider's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// Stable, opaque id; also usable as a pagination cursor (items older than this one).
    pub id: String,
    /// Wallet clock (server-corrected) when recorded, UTC seconds.
    pub time: i64,
    pub kind: HistoryKind,
    /// Rials the row is about: what the backend charges for a tap or pass it judged (a fraud
    /// tap's real charge, never 0 for it); for one not judged yet, the fare the phone
    /// authorized (NFC) or what the pass holds; 0 for a pass not used and for refusals; a
    /// top-up's amount.
    pub amount: i64,
    /// What the phone signed for a tap or pass: the NFC fare, or the pass's maximum.
    pub authorized: Option<i64>,
    /// What the backend charges for the tap or pass now, once it judged it.
    pub charged: Option<i64>,
    pub status: HistoryStatus,
    /// The backend's reason code (`transfer`, `torn_gate_closed`, `from_the_future`, ...).
    pub reason: Option<String>,
    /// The status as a sentence in the wallet's language ("۲٬۰۰۰ تومان کسر شد"; in English
    /// "charged 2,000 toman (20,000 rials)", "not used").
    pub status_text: String,
    /// Position in the tap log (taps and passes).
    pub log_seq: Option<u64>,
    pub counter: Option<u32>,
    pub line_id: Option<u32>,
    pub validator_id: Option<u32>,
    /// Status word answered (NFC taps and refusals).
    pub status_word: Option<u16>,
    /// Human explanation beyond the status (refusal reason, top-up reference, "recovered from
    /// the backend").
    pub detail: String,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    /// Pass this as `cursor` to get the next (older) page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// A boarding pass ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardingPassQr {
    /// `BoardingPass::to_text`: what the QR encodes.
    pub text: String,
    pub matrix: QrMatrix,
    pub counter: u32,
    /// Server-corrected issue time and end of validity, UTC seconds.
    pub issued_at: i64,
    pub expires_at: i64,
    /// Device clock time (UTC seconds) at which the app should ask for a new pass.
    pub refresh_at: i64,
    /// The most a validator may charge for it, rials (reserved against the allowance).
    pub max_amount: i64,
}

impl BoardingPassQr {
    /// SVG document (8 units per module).
    pub fn svg(&self) -> String {
        self.matrix.to_svg(8)
    }
    /// PNG image (`module_px` pixels per module, 1–64).
    pub fn png(&self, module_px: u32) -> Result<Vec<u8>, crate::WalletError> {
        self.matrix.to_png(module_px)
    }
    /// Unicode half-block rendering for a terminal.
    pub fn terminal(&self) -> String {
        self.matrix.to_terminal()
    }
}

/// Counters for diagnostics and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletStats {
    /// Reservation writes (each one fsync of the reservation file) since the wallet opened.
    pub counter_fsyncs: u64,
    /// The next counter the wallet will use.
    pub next_counter: u64,
    /// Counters below this are covered by a durable reservation.
    pub reserved_until: u64,
    /// Number of entries in the tap log.
    pub log_entries: u64,
    /// Taps or passes that had to wait for a reservation (the background one fell behind).
    pub reservation_stalls: u64,
    /// Current reservation block size (grows after stalls).
    pub reservation_block: u64,
    /// Parks written since the wallet opened (each one fsync: the next counter recorded after
    /// a quiet period, so that a kill skips nothing).
    pub counter_parks: u64,
    /// The durable mark in the counter file: a restart resumes here (at the latest).
    pub counter_mark: u64,
}
