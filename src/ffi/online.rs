//! Records of the online layer (`crate::online`): owned copies converted with `From`.

use crate::online as core;

/// A one-time code was sent by SMS.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CodeSent {
    /// The phone number as the backend normalised it (`+98…`).
    pub phone: String,
    /// When the code expires, UTC seconds.
    pub expires_at: i64,
}

impl From<core::CodeSent> for CodeSent {
    fn from(c: core::CodeSent) -> Self {
        Self {
            phone: c.phone,
            expires_at: c.expires_at,
        }
    }
}

/// The logged-in session (the token itself never leaves the core).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionInfo {
    pub account_id: i64,
    pub phone: String,
    /// UTC seconds.
    pub expires_at: i64,
}

impl From<core::SessionInfo> for SessionInfo {
    fn from(s: core::SessionInfo) -> Self {
        Self {
            account_id: s.account_id,
            phone: s.phone,
            expires_at: s.expires_at,
        }
    }
}

/// The rider's account as the backend knows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountInfo {
    pub account_id: i64,
    pub phone: String,
    pub fare_class: String,
    /// Rials (authoritative).
    pub balance: i64,
    pub server_time: i64,
}

impl From<core::AccountInfo> for AccountInfo {
    fn from(a: core::AccountInfo) -> Self {
        Self {
            account_id: a.account_id,
            phone: a.phone,
            fare_class: a.fare_class,
            balance: a.balance,
            server_time: a.server_time,
        }
    }
}

/// The certificate a provisioning or replenishment installed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProvisionReport {
    /// Hex of the card pseudonym.
    pub pseudonym: String,
    /// Hex of the certificate hash.
    pub certificate_hash: String,
    pub valid_from: i64,
    pub valid_until: i64,
    pub counter_first: u32,
    pub counter_last: u32,
    /// Offline allowance, rials.
    pub max_amount: i64,
    pub fare_class: String,
    /// Account balance, rials.
    pub balance: i64,
    /// Other devices of the account this provisioning revoked (hex pseudonyms).
    pub revoked_pseudonyms: Vec<String>,
}

impl From<core::ProvisionReport> for ProvisionReport {
    fn from(p: core::ProvisionReport) -> Self {
        Self {
            pseudonym: p.pseudonym,
            certificate_hash: p.certificate_hash,
            valid_from: p.valid_from,
            valid_until: p.valid_until,
            counter_first: p.counter_first,
            counter_last: p.counter_last,
            max_amount: p.max_amount,
            fare_class: p.fare_class,
            balance: p.balance,
            revoked_pseudonyms: p.revoked_pseudonyms,
        }
    }
}

/// Where a top-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TopUpStatus {
    /// Waiting for the rider to pay on the gateway page.
    Pending,
    /// Paid, verified and credited (exactly once).
    Credited,
    Cancelled,
    Expired,
}

impl From<core::TopUpStatus> for TopUpStatus {
    fn from(s: core::TopUpStatus) -> Self {
        match s {
            core::TopUpStatus::Pending => Self::Pending,
            core::TopUpStatus::Credited => Self::Credited,
            core::TopUpStatus::Cancelled => Self::Cancelled,
            core::TopUpStatus::Expired => Self::Expired,
        }
    }
}

/// A top-up (payment intent).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TopUpIntent {
    pub intent_id: String,
    /// Rials.
    pub amount: i64,
    pub status: TopUpStatus,
    /// Open this in a browser (the bank gateway's page).
    pub payment_url: String,
    /// UTC seconds.
    pub expires_at: i64,
    /// The backend ledger entry that credited it.
    pub ledger_entry_id: Option<i64>,
    /// The gateway's reference (show it on the receipt).
    pub gateway_ref: Option<String>,
    /// The idempotency key the wallet chose for it.
    pub idempotency_key: String,
}

impl From<core::TopUpIntent> for TopUpIntent {
    fn from(t: core::TopUpIntent) -> Self {
        Self {
            intent_id: t.intent_id,
            amount: t.amount,
            status: t.status.into(),
            payment_url: t.payment_url,
            expires_at: t.expires_at,
            ledger_entry_id: t.ledger_entry_id,
            gateway_ref: t.gateway_ref,
            idempotency_key: t.idempotency_key,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Backend time at the last answer, UTC seconds.
    pub server_time: i64,
    /// Authoritative balance, rials.
    pub balance: i64,
    /// Tap-log entries sent.
    pub uploaded: u64,
    /// Taps whose settlement the wallet learned in this sync.
    pub settled: u64,
    /// Of those, taps whose actual fare differs from the authorized amount.
    pub fare_corrections: u64,
    /// Taps the backend refused.
    pub rejected: u64,
    /// Tap-log entries the wallet had lost and got back.
    pub recovered: u64,
    /// New backend ledger entries learned.
    pub ledger_entries: u64,
    /// Tap-log entries still pending.
    pub pending_taps: u64,
    /// Backend view of the credential: "active", "replenish_due", "revoked", or "none".
    pub credential_status: String,
    pub credential_reason: Option<String>,
    /// The credential was found revoked and marked so in this sync.
    pub revoked: bool,
    /// A new certificate was installed by this sync.
    pub replenished: bool,
    /// Why a due replenishment failed (the sync itself succeeded).
    pub replenish_error: Option<String>,
    /// Server − device clock, seconds.
    pub clock_offset_secs: i64,
    /// False when the measured offset was out of bounds and was not stored.
    pub clock_offset_applied: bool,
}

impl From<core::SyncReport> for SyncReport {
    fn from(r: core::SyncReport) -> Self {
        Self {
            server_time: r.server_time,
            balance: r.balance,
            uploaded: r.uploaded,
            settled: r.settled,
            fare_corrections: r.fare_corrections,
            rejected: r.rejected,
            recovered: r.recovered,
            ledger_entries: r.ledger_entries,
            pending_taps: r.pending_taps,
            credential_status: r.credential_status,
            credential_reason: r.credential_reason,
            revoked: r.revoked,
            replenished: r.replenished,
            replenish_error: r.replenish_error,
            clock_offset_secs: r.clock_offset_secs,
            clock_offset_applied: r.clock_offset_applied,
        }
    }
}

/// Local online state: session, sync cursors, open top-ups.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OnlineState {
    pub logged_in: bool,
    pub account_id: Option<i64>,
    pub phone: Option<String>,
    pub session_expires_at: Option<i64>,
    /// Next tap-log entry to upload.
    pub upload_from_seq: u64,
    /// Backend ledger cursor.
    pub ledger_cursor: i64,
    /// Top-ups started and not final.
    pub open_top_ups: u64,
}

impl From<core::OnlineState> for OnlineState {
    fn from(s: core::OnlineState) -> Self {
        Self {
            logged_in: s.logged_in,
            account_id: s.account_id,
            phone: s.phone,
            session_expires_at: s.session_expires_at,
            upload_from_seq: s.upload_from_seq,
            ledger_cursor: s.ledger_cursor,
            open_top_ups: s.open_top_ups,
        }
    }
}

/// One live session of the account (never its token).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionEntry {
    /// What `end_session` takes.
    pub id: String,
    /// UTC seconds.
    pub created_at: i64,
    pub last_used_at: i64,
    /// The latest it ends.
    pub expires_at: i64,
    /// When it ends if left unused.
    pub idle_expires_at: i64,
    /// Bound to a phone that provisioned with it.
    pub bound: bool,
    /// The session of this phone.
    pub current: bool,
}

impl From<core::SessionEntry> for SessionEntry {
    fn from(s: core::SessionEntry) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            idle_expires_at: s.idle_expires_at,
            bound: s.bound,
            current: s.current,
        }
    }
}
