//! The online layer's state in the wallet (schema v2, v3): the sealed session, idempotency
//! keys, top-ups, the backend's answer per uploaded tap and its verdict feed (what it charges
//! for every tap and why, newest per tap), recovered tap-log entries, sync cursors and the
//! backend ledger. See `docs/adr/0005-wallet-online.md`.
//!
//! Every method here is one short transaction on the writer connection (or a read on the
//! reader connection) through `crate::store`; none calls the network or the keystore while
//! holding a lock.

use crate::error::WalletError;
use crate::store::settings::{self, StoredSession};
use crate::store::{
    to_sql_i64, EventRow, LedgerRow, LogRow, SettlementRow, TopUpRow, VerdictRow, Write,
};
use crate::wallet::{Wallet, WriterState};
use mancard_api::{LedgerKind, TapStatus, VerdictStatus};
use mancard_protocol::{CredentialCertificate, TapProof, WalletLogEntry};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// `tap_settlements.detail` of a charged tap whose fare the backend changed after its first
/// verdict (a `fare_adjustment`); the history shows "…, re-rated".
pub(crate) const RERATED: &str = "re-rated";

/// The backend's verdict on one tap-log entry.
#[derive(Debug, Clone)]
pub(crate) struct Settlement {
    pub(crate) seq: u64,
    pub(crate) status: TapStatus,
    pub(crate) fare: Option<i64>,
    pub(crate) reason: Option<String>,
    pub(crate) detail: Option<String>,
}

/// One backend ledger entry.
#[derive(Debug, Clone)]
pub(crate) struct ServerLedgerRow {
    pub(crate) id: i64,
    pub(crate) kind: LedgerKind,
    pub(crate) amount: i64,
    pub(crate) idempotency_key: String,
    /// Card pseudonym (hex) of a `fare` / `fare_adjustment` entry. Not stored: only used to
    /// attribute a re-rating to this wallet's tap.
    pub(crate) pseudonym: Option<String>,
    pub(crate) counter: Option<u32>,
    pub(crate) intent_id: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) created_at: i64,
}

/// One verdict of the backend's feed: what it charges for one tap now, and why.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// The feed's id: the verdict cursor (a higher id is a newer verdict).
    pub(crate) id: i64,
    pub(crate) pseudonym: [u8; 16],
    pub(crate) counter: u32,
    pub(crate) status: VerdictStatus,
    pub(crate) charged: i64,
    pub(crate) reason: Option<String>,
    pub(crate) time: i64,
    pub(crate) line_id: Option<u32>,
    pub(crate) created_at: i64,
}

/// One sync answer, as the wallet applies it.
#[derive(Debug, Clone)]
pub(crate) struct SyncPage {
    pub(crate) settlements: Vec<Settlement>,
    pub(crate) ledger: Vec<ServerLedgerRow>,
    /// The verdict feed after the request's verdict cursor, oldest first.
    pub(crate) verdicts: Vec<Verdict>,
    /// Where the next upload starts.
    pub(crate) upload_from: u64,
    pub(crate) ledger_cursor: i64,
    /// The id of the last verdict the backend returned (or the request's cursor).
    pub(crate) verdict_cursor: i64,
    pub(crate) balance: i64,
    /// The balance accounts for every entry up to this one.
    pub(crate) confirmed_through: Option<u64>,
    pub(crate) server_time: i64,
}

/// What applying one sync page changed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageOutcome {
    pub(crate) settled: u64,
    pub(crate) corrections: u64,
    pub(crate) rejected: u64,
    pub(crate) new_ledger: u64,
    /// Taps whose stored fare a `fare_adjustment` changed.
    pub(crate) rerated: u64,
    /// Verdicts newer than the one stored for their tap.
    pub(crate) verdicts: u64,
}

fn seq_i64(seq: u64) -> Result<i64, WalletError> {
    to_sql_i64(seq)
}

/// A random 128-bit idempotency key, hex.
pub(crate) fn random_key() -> Result<String, WalletError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| WalletError::internal("the system random number generator failed"))?;
    Ok(hex::encode(b))
}

/// Inserts a backend ledger entry if new; a new `topup` also goes to the history. Returns
/// whether it was new.
fn insert_ledger(
    w: &Write<'_>,
    e: &ServerLedgerRow,
    after_seq: i64,
    now: i64,
) -> Result<bool, WalletError> {
    let new = w.insert_server_ledger(&LedgerRow {
        id: e.id,
        kind: e.kind,
        amount: e.amount,
        idempotency_key: &e.idempotency_key,
        counter: e.counter,
        intent_id: e.intent_id.as_deref(),
        note: e.note.as_deref(),
        created_at: e.created_at,
    })?;
    if !new {
        return Ok(false);
    }
    let label = match e.kind {
        LedgerKind::Topup if e.amount > 0 => Some(format!(
            "top-up {}",
            e.intent_id
                .clone()
                .unwrap_or_else(|| e.idempotency_key.clone())
        )),
        LedgerKind::Adjustment if e.amount > 0 => Some(format!(
            "adjustment: {}",
            e.note.clone().unwrap_or_default()
        )),
        _ => None,
    };
    if let Some(detail) = label {
        w.insert_event(&EventRow {
            after_seq,
            time: now.max(e.created_at),
            kind: "top_up",
            amount: e.amount,
            line_id: None,
            validator_id: None,
            status_word: None,
            detail: &detail,
        })?;
    }
    Ok(true)
}

/// Applies a new `fare_adjustment` ledger entry to the stored verdict of the tap it re-rates,
/// if that tap is in this wallet's log (same pseudonym and counter) and already has a charged
/// verdict. The entry's amount is a credit to the account, so the tap's fare becomes
/// `fare − amount`. Called only for entries new to `server_ledger` (deduplicated by ledger id
/// in the same transaction), so a re-delivered entry changes nothing.
///
/// A verdict in the same answer (`fresh`) already is the tap's current charge, adjustment
/// included: it is only marked re-rated. A tap without a verdict yet is left alone: its
/// verdict, when it comes, carries the current charge. Returns whether a fare changed.
fn apply_fare_adjustment(
    w: &Write<'_>,
    e: &ServerLedgerRow,
    fresh: &HashSet<i64>,
    now: i64,
) -> Result<bool, WalletError> {
    let (Some(pseudonym), Some(counter)) = (e.pseudonym.as_deref(), e.counter) else {
        return Ok(false);
    };
    // Counters are unique in this wallet's log (across its credentials); the pseudonym tells
    // this wallet's tap from another device's of the same account with the same counter.
    let Some((seq, cert)) = w.tap_with_counter(counter)? else {
        return Ok(false);
    };
    let cert =
        CredentialCertificate::decode(&cert).map_err(|err| WalletError::DatabaseCorrupt {
            message: format!("stored certificate: {err}"),
        })?;
    if !hex::encode(cert.body.pseudonym.0).eq_ignore_ascii_case(pseudonym) {
        return Ok(false);
    }
    if fresh.contains(&seq) {
        w.mark_settlement(seq, RERATED)?;
        return Ok(false);
    }
    w.rerate_settlement(seq, e.amount, RERATED, now)
}

/// Whether a verdict charges the tap ("duplicate": settled by another report).
fn is_charged(status: TapStatus) -> bool {
    matches!(status, TapStatus::Settled | TapStatus::Duplicate)
}

/// Stores the backend's verdict on one entry, counting what changed in `out`.
fn apply_settlement(
    w: &Write<'_>,
    s: &Settlement,
    t: i64,
    out: &mut PageOutcome,
) -> Result<(), WalletError> {
    let seq = seq_i64(s.seq)?;
    let Some(amount) = w.tap_amount(seq)? else {
        return Ok(()); // not in this wallet's log (never happens with a sane backend)
    };
    let prev = w.settlement(seq)?;
    let charged = is_charged(s.status);
    let was_charged = prev.as_ref().is_some_and(|p| is_charged(p.status));
    if was_charged && !charged {
        // A charge is final: a later re-upload refused for another reason (e.g. under a new
        // device) does not undo it.
        return Ok(());
    }
    // "duplicate" on a re-upload is the same settlement: keep "settled".
    let status = match (&prev, s.status) {
        (Some(p), TapStatus::Duplicate) if p.status == TapStatus::Settled => TapStatus::Settled,
        (_, status) => status,
    };
    // A fraud tap is charged (the real charge, never shown as 0); the others are not.
    let fare = match s.status {
        _ if charged => s.fare,
        TapStatus::Fraud => Some(s.fare.unwrap_or(0)),
        _ => Some(0),
    };
    if prev.as_ref().is_some_and(|p| {
        p.status == status && p.fare == fare && p.reason.as_deref() == s.reason.as_deref()
    }) {
        return Ok(());
    }
    // A charged tap answered again (a re-upload) with another fare was re-rated by the
    // backend in between.
    let rerated = charged
        && was_charged
        && prev
            .as_ref()
            .is_some_and(|p| p.fare.is_some() && p.fare != fare);
    let detail = match &s.detail {
        None if rerated => Some(RERATED),
        d => d.as_deref(),
    };
    let row = SettlementRow {
        status,
        fare,
        reason: s.reason.clone(),
    };
    w.put_settlement(seq, &row, detail, t)?;
    if prev.is_none() {
        match s.status {
            TapStatus::Settled | TapStatus::Duplicate => {
                out.settled = out.settled.saturating_add(1);
            }
            TapStatus::Fraud | TapStatus::Rejected => {
                out.rejected = out.rejected.saturating_add(1);
            }
            // Not charged (yet): neither settled nor refused.
            TapStatus::Pending | TapStatus::NotCharged => {}
        }
    }
    if charged && fare.is_some_and(|f| f != amount) {
        out.corrections = out.corrections.saturating_add(1);
    }
    Ok(())
}

/// Stores the verdicts of one answer (each only if newer than the one stored for its tap, so
/// a re-delivered or reordered verdict changes nothing); returns how many were stored.
fn apply_verdicts(w: &Write<'_>, verdicts: &[Verdict], t: i64) -> Result<u64, WalletError> {
    let mut n = 0u64;
    for v in verdicts {
        let row = VerdictRow {
            pseudonym: &v.pseudonym,
            counter: v.counter,
            id: v.id,
            status: v.status,
            charged: v.charged,
            reason: v.reason.as_deref(),
            time: v.time,
            line_id: v.line_id,
            created_at: v.created_at,
        };
        if w.put_verdict(&row, t)? {
            n = n.saturating_add(1);
        }
    }
    Ok(n)
}

/// Appends one recovered entry if it continues the chain and belongs to one of this wallet's
/// credentials; returns whether it did (appending stops at the first that does not).
fn append_one_recovered(
    ws: &mut WriterState,
    seq: u64,
    bytes: &[u8],
    t: i64,
) -> Result<bool, WalletError> {
    let Ok(e) = WalletLogEntry::decode(bytes) else {
        return Ok(false);
    };
    let cert_id = e.proof.cert_id();
    if e.seq != seq || e.seq != ws.log.next_seq || e.proof.prev() != ws.log.expected_prev(&cert_id)
    {
        return Ok(false);
    }
    let counter = e.counter();
    let Some(credential_id) = ws.db.read().credential_id(&cert_id)? else {
        return Ok(false);
    };
    let (line_id, validator_id) = match &e.proof {
        TapProof::Nfc { challenge, .. } => (
            Some(challenge.body.line_id),
            Some(challenge.body.validator_id),
        ),
        TapProof::Qr { .. } => (None, None),
    };
    let hash = e.hash();
    let row = LogRow {
        seq: seq_i64(e.seq)?,
        credential_id,
        counter,
        kind: e.proof.kind_byte(),
        amount: e.amount,
        time: e.time,
        line_id,
        validator_id,
        entry: bytes,
        hash: &hash,
    };
    // False: the counter is already in the log under another sequence number, not ours.
    if !ws.db.write(|w| w.append_recovered(&row, t))? {
        return Ok(false);
    }
    ws.log.next_seq = ws.log.next_seq.saturating_add(1);
    ws.log.last = Some((cert_id, hash));
    ws.next_counter = ws.next_counter.max(u64::from(counter).saturating_add(1));
    if let Some(a) = ws.active.as_mut() {
        if a.id == credential_id {
            a.spent = a.spent.saturating_add(e.amount);
        }
    }
    Ok(true)
}

impl Wallet {
    // ----- session ---------------------------------------------------------------------------

    pub(crate) fn store_session(
        &self,
        sealed: Vec<u8>,
        account_id: i64,
        phone: &str,
        expires_at: i64,
    ) -> Result<(), WalletError> {
        self.writer()
            .db
            .write(|w| w.store_session(sealed, account_id, phone, expires_at))
    }

    pub(crate) fn store_session_phone(&self, phone: &str) -> Result<(), WalletError> {
        self.writer().db.write(|w| w.set_session_phone(phone))
    }

    pub(crate) fn stored_session(&self) -> Result<Option<StoredSession>, WalletError> {
        self.reader().read().session()
    }

    pub(crate) fn clear_session(&self) -> Result<(), WalletError> {
        self.writer().db.write(|w| w.clear_session())
    }

    // ----- idempotency keys ------------------------------------------------------------------

    /// The open request of `scope`: (key, request fingerprint).
    pub(crate) fn idempotency_get(
        &self,
        scope: &str,
    ) -> Result<Option<(String, Vec<u8>)>, WalletError> {
        self.reader().read().idempotency(scope)
    }

    /// Stores (replacing) the open request of `scope`. Called before the request is sent.
    pub(crate) fn idempotency_put(
        &self,
        scope: &str,
        key: &str,
        request: &[u8],
        now: i64,
    ) -> Result<(), WalletError> {
        self.writer()
            .db
            .write(|w| w.put_idempotency(scope, key, request, now))
    }

    /// Closes the open request of `scope` (its answer was applied).
    pub(crate) fn idempotency_clear(&self, scope: &str) -> Result<(), WalletError> {
        self.writer().db.write(|w| w.clear_idempotency(scope))
    }

    // ----- top-ups ---------------------------------------------------------------------------

    /// The idempotency key for a new top-up of `amount`: the key of a top-up of the same
    /// amount whose creation was never confirmed (a retry), else a new key, stored before
    /// returning. Unconfirmed top-ups of another amount are abandoned.
    pub(crate) fn topup_key_for(&self, amount: i64, now: i64) -> Result<String, WalletError> {
        if amount <= 0 {
            return Err(WalletError::invalid("a top-up amount must be positive"));
        }
        self.writer().db.write_now(|w| {
            let key = match w.starting_topup(amount)? {
                Some(k) => k,
                None => {
                    let k = random_key()?;
                    w.insert_topup(&k, amount, now)?;
                    k
                }
            };
            w.abandon_topups_except(&key, now)?;
            Ok(key)
        })
    }

    /// Records what the backend said about a top-up.
    pub(crate) fn topup_update(&self, row: &TopUpRow, now: i64) -> Result<(), WalletError> {
        self.writer().db.write(|w| w.update_topup(row, now))
    }

    pub(crate) fn topup_by_intent(&self, intent_id: &str) -> Result<Option<TopUpRow>, WalletError> {
        self.reader().read().topup_by_intent(intent_id)
    }

    pub(crate) fn topups_open(&self) -> Result<Vec<TopUpRow>, WalletError> {
        self.reader().read().open_topups()
    }

    /// Records a credited top-up in the history exactly once (keyed by the backend ledger
    /// entry that credited it).
    pub(crate) fn topup_credited(
        &self,
        ledger_entry_id: i64,
        amount: i64,
        intent_id: &str,
        now: i64,
    ) -> Result<bool, WalletError> {
        let mut ws = self.writer();
        let after = seq_i64(ws.log.next_seq)?;
        let t = self.corrected(now);
        let entry = ServerLedgerRow {
            id: ledger_entry_id,
            kind: LedgerKind::Topup,
            amount,
            idempotency_key: format!("topup:{intent_id}"),
            pseudonym: None,
            counter: None,
            intent_id: Some(intent_id.to_string()),
            note: None,
            created_at: t,
        };
        ws.db.write(|w| insert_ledger(w, &entry, after, t))
    }

    // ----- sync ------------------------------------------------------------------------------

    /// The id of the newest verdict of the feed the wallet stored (0 for none): the
    /// `verdict_cursor` of the next sync.
    pub(crate) fn verdict_cursor(&self) -> Result<i64, WalletError> {
        let cur: i64 = self
            .reader()
            .read()
            .setting(settings::VERDICT_CURSOR)?
            .unwrap_or(0);
        Ok(cur.max(0))
    }

    /// (next tap-log entry to upload, backend ledger cursor).
    pub(crate) fn sync_cursors(&self) -> Result<(u64, i64), WalletError> {
        let r = self.reader();
        let r = r.read();
        let up: i64 = r.setting(settings::UPLOAD_FROM_SEQ)?.unwrap_or(0);
        let cur: i64 = r.setting(settings::LEDGER_CURSOR)?.unwrap_or(0);
        Ok((u64::try_from(up).unwrap_or(0), cur.max(0)))
    }

    /// Sets where the next upload starts (after a `chain_gap` answer).
    pub(crate) fn set_upload_from(&self, seq: u64) -> Result<(), WalletError> {
        let seq = seq_i64(seq)?;
        self.writer()
            .db
            .write(|w| w.set_setting(settings::UPLOAD_FROM_SEQ, seq))
    }

    /// The number of tap-log entries (the next sequence number).
    pub(crate) fn log_len(&self) -> u64 {
        self.writer().log.next_seq
    }

    /// Applies one sync answer in one transaction: the answer on each uploaded entry, the
    /// verdicts of the feed, new ledger entries, the cursors (the verdict cursor with the
    /// verdicts it covers: a crash before the commit loses both, and the next sync asks for
    /// them again) and the confirmed balance (which accounts for every entry up to
    /// `confirmed_through`). Re-applying the same answer changes nothing. Then recounts what
    /// the installed credential has spent (a charged pass counts its charge).
    pub(crate) fn apply_sync_page(
        &self,
        page: &SyncPage,
        now: i64,
    ) -> Result<PageOutcome, WalletError> {
        let mut out = PageOutcome::default();
        let mut ws = self.writer();
        let log_len = ws.log.next_seq;
        let after = seq_i64(log_len)?;
        let t = self.corrected(now);
        let fresh = page
            .settlements
            .iter()
            .map(|s| seq_i64(s.seq))
            .collect::<Result<HashSet<i64>, _>>()?;
        let upload_from = seq_i64(page.upload_from.min(log_len))?;
        let through = match page.confirmed_through.filter(|s| *s < log_len) {
            Some(s) => Some(seq_i64(s)?),
            None => None,
        };
        ws.db.write_now(|w| {
            for s in &page.settlements {
                apply_settlement(w, s, t, &mut out)?;
            }
            for e in &page.ledger {
                if insert_ledger(w, e, after, t)? {
                    out.new_ledger = out.new_ledger.saturating_add(1);
                    if e.kind == LedgerKind::FareAdjustment
                        && apply_fare_adjustment(w, e, &fresh, t)?
                    {
                        out.rerated = out.rerated.saturating_add(1);
                    }
                }
            }
            out.verdicts = apply_verdicts(w, &page.verdicts, t)?;
            w.set_setting(settings::UPLOAD_FROM_SEQ, upload_from)?;
            w.set_setting(settings::LEDGER_CURSOR, page.ledger_cursor.max(0))?;
            w.set_setting(settings::VERDICT_CURSOR, page.verdict_cursor.max(0))?;
            w.set_confirmed(page.balance, through, page.server_time)?;
            w.set_setting(settings::LAST_SYNC_AT, now)
        })?;
        self.release_expired_passes(&mut ws, t)?;
        Ok(out)
    }

    /// Sets the confirmed balance when there is no device to sync (no credential yet): the
    /// tap log is empty or belongs to nothing the backend knows.
    pub(crate) fn set_balance_only(&self, balance: i64, as_of: i64) -> Result<(), WalletError> {
        self.writer().db.write(|w| {
            w.set_setting(settings::CONFIRMED_BALANCE, balance)?;
            w.set_setting(settings::CONFIRMED_AT, as_of)
        })
    }

    /// Appends tap-log entries the wallet lost (power loss) and the backend still has. They
    /// must continue this wallet's chain exactly (sequence and hash) and belong to one of its
    /// credentials; appending stops at the first that does not. Returns how many were added.
    pub(crate) fn append_recovered(
        &self,
        entries: &[(u64, Vec<u8>)],
        now: i64,
    ) -> Result<u64, WalletError> {
        let mut ws = self.writer();
        let mut added = 0u64;
        let t = self.corrected(now);
        for (seq, bytes) in entries {
            if *seq < ws.log.next_seq {
                continue;
            }
            if !append_one_recovered(&mut ws, *seq, bytes, t)? {
                break;
            }
            added = added.saturating_add(1);
        }
        if added > 0 {
            let counters = self.counters();
            counters.next.fetch_max(ws.next_counter, Ordering::AcqRel);
            ws.next_counter = ws.next_counter.max(counters.next.load(Ordering::Acquire));
            self.publish_log_len(ws.log.next_seq);
        }
        Ok(added)
    }

    /// The installed (or revoked) credential's pseudonym, hex.
    pub(crate) fn current_pseudonym(&self) -> Option<(String, bool)> {
        let ws = self.writer();
        ws.active
            .as_ref()
            .map(|a| (hex::encode(a.cert.body.pseudonym.0), a.revoked))
    }

    /// The backend's verdict on every tap-log entry it has judged, in log order (diagnostics,
    /// tests; the history shows the same information per item).
    pub fn tap_settlements(&self) -> Result<Vec<TapSettlement>, WalletError> {
        self.reader().read().settlements()
    }
}

/// The backend's verdict on one tap-log entry, learned at sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapSettlement {
    pub log_seq: u64,
    /// "settled", "duplicate" (settled by another report), "fraud", "rejected", "pending" (a
    /// pass only the wallet reported, not charged yet) or "not_charged" (a torn tap).
    pub status: String,
    /// The actual fare charged, rials (0 when not charged).
    pub fare: Option<i64>,
    /// Why it was refused or flagged.
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests;
