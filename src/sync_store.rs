//! Wallet-core storage for the online layer (schema v2): the sealed session, idempotency keys,
//! top-ups, the backend's verdict per tap, recovered tap-log entries, sync cursors and the
//! backend ledger. See `docs/adr/0005-wallet-online.md`.
//!
//! Every method here is one short transaction on the writer connection (or a read on the
//! reader connection); none calls the network or the keystore while holding a lock.

use crate::error::WalletError;
use crate::util::lock;
use crate::wallet::{get_setting, set_setting, settings, Wallet};
use mancard_protocol::{CredentialCertificate, TapProof, WalletLogEntry};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// `tap_settlements.detail` of a charged tap whose fare the backend changed after its first
/// verdict (a `fare_adjustment`); the history shows "…, re-rated".
pub(crate) const RERATED: &str = "re-rated";

pub(crate) mod keys {
    pub const SESSION_SEALED: &str = "session_sealed";
    pub const SESSION_ACCOUNT: &str = "session_account";
    pub const SESSION_PHONE: &str = "session_phone";
    pub const SESSION_EXPIRES: &str = "session_expires_at";
    pub const UPLOAD_FROM_SEQ: &str = "sync_upload_from_seq";
    pub const LEDGER_CURSOR: &str = "sync_ledger_cursor";
    pub const LAST_SYNC_AT: &str = "last_sync_at";
}

/// The stored (sealed) session.
pub(crate) struct StoredSession {
    pub(crate) sealed: Vec<u8>,
    pub(crate) account_id: Option<i64>,
    pub(crate) phone: Option<String>,
    pub(crate) expires_at: Option<i64>,
}

/// The backend's verdict on one tap-log entry.
#[derive(Debug, Clone)]
pub(crate) struct Settlement {
    pub(crate) seq: u64,
    pub(crate) status: String,
    pub(crate) fare: Option<i64>,
    pub(crate) reason: Option<String>,
    pub(crate) detail: Option<String>,
}

/// One backend ledger entry.
#[derive(Debug, Clone)]
pub(crate) struct ServerLedgerRow {
    pub(crate) id: i64,
    pub(crate) kind: String,
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

/// What applying one sync page changed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageOutcome {
    pub(crate) settled: u64,
    pub(crate) corrections: u64,
    pub(crate) rejected: u64,
    pub(crate) new_ledger: u64,
    /// Taps whose stored fare a `fare_adjustment` changed.
    pub(crate) rerated: u64,
}

/// A top-up row.
#[derive(Debug, Clone)]
pub(crate) struct TopUpRow {
    pub(crate) key: String,
    pub(crate) amount: i64,
    pub(crate) intent_id: Option<String>,
    pub(crate) status: String,
    pub(crate) payment_url: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) ledger_entry_id: Option<i64>,
    pub(crate) gateway_ref: Option<String>,
}

fn seq_i64(seq: u64) -> Result<i64, WalletError> {
    i64::try_from(seq).map_err(|_| WalletError::invalid("log sequence out of range"))
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
    tx: &rusqlite::Transaction<'_>,
    e: &ServerLedgerRow,
    after_seq: i64,
    now: i64,
) -> Result<bool, WalletError> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO server_ledger (id, kind, amount, idempotency_key, counter,
                                              intent_id, note, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            e.id,
            e.kind,
            e.amount,
            e.idempotency_key,
            e.counter,
            e.intent_id,
            e.note,
            e.created_at
        ],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let label = match e.kind.as_str() {
        "topup" if e.amount > 0 => Some(format!(
            "top-up {}",
            e.intent_id
                .clone()
                .unwrap_or_else(|| e.idempotency_key.clone())
        )),
        "adjustment" if e.amount > 0 => Some(format!(
            "adjustment: {}",
            e.note.clone().unwrap_or_default()
        )),
        _ => None,
    };
    if let Some(detail) = label {
        tx.execute(
            "INSERT INTO events (after_seq, time, kind, amount, detail)
             VALUES (?1, ?2, 'top_up', ?3, ?4)",
            params![after_seq, now.max(e.created_at), e.amount, detail],
        )?;
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
    tx: &rusqlite::Transaction<'_>,
    e: &ServerLedgerRow,
    fresh: &HashSet<i64>,
    now: i64,
) -> Result<bool, WalletError> {
    let (Some(pseudonym), Some(counter)) = (e.pseudonym.as_deref(), e.counter) else {
        return Ok(false);
    };
    // Counters are unique in this wallet's log (across its credentials); the pseudonym tells
    // this wallet's tap from another device's of the same account with the same counter.
    let tap: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT t.seq, c.certificate FROM tap_log t
             JOIN credentials c ON c.id = t.credential_id WHERE t.counter = ?1",
            params![counter],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, cert)) = tap else {
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
        tx.execute(
            "UPDATE tap_settlements SET detail = ?2
             WHERE seq = ?1 AND status IN ('settled', 'duplicate') AND detail IS NULL",
            params![seq, RERATED],
        )?;
        return Ok(false);
    }
    let n = tx.execute(
        "UPDATE tap_settlements SET fare = fare - ?2, detail = ?3, updated_at = ?4
         WHERE seq = ?1 AND status IN ('settled', 'duplicate') AND fare IS NOT NULL",
        params![seq, e.amount, RERATED, now],
    )?;
    Ok(n > 0)
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
        let mut ws = lock(&self.writer);
        let tx = ws.conn.transaction()?;
        set_setting(&tx, keys::SESSION_SEALED, sealed)?;
        set_setting(&tx, keys::SESSION_ACCOUNT, account_id)?;
        // As a blob: the settings column has numeric affinity ("+98…" would become a number).
        set_setting(&tx, keys::SESSION_PHONE, phone.as_bytes())?;
        set_setting(&tx, keys::SESSION_EXPIRES, expires_at)?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn store_session_phone(&self, phone: &str) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        set_setting(&ws.conn, keys::SESSION_PHONE, phone.as_bytes())?;
        Ok(())
    }

    pub(crate) fn stored_session(&self) -> Result<Option<StoredSession>, WalletError> {
        let r = lock(&self.reader);
        let Some(sealed) = get_setting::<Vec<u8>>(&r, keys::SESSION_SEALED)? else {
            return Ok(None);
        };
        Ok(Some(StoredSession {
            sealed,
            account_id: get_setting(&r, keys::SESSION_ACCOUNT)?,
            phone: get_setting::<Vec<u8>>(&r, keys::SESSION_PHONE)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            expires_at: get_setting(&r, keys::SESSION_EXPIRES)?,
        }))
    }

    pub(crate) fn clear_session(&self) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        ws.conn.execute(
            "DELETE FROM settings WHERE key IN (?1, ?2, ?3, ?4)",
            params![
                keys::SESSION_SEALED,
                keys::SESSION_ACCOUNT,
                keys::SESSION_PHONE,
                keys::SESSION_EXPIRES
            ],
        )?;
        Ok(())
    }

    // ----- idempotency keys ------------------------------------------------------------------

    /// The open request of `scope`: (key, request fingerprint).
    pub(crate) fn idempotency_get(
        &self,
        scope: &str,
    ) -> Result<Option<(String, Vec<u8>)>, WalletError> {
        let r = lock(&self.reader);
        Ok(r.query_row(
            "SELECT key, request FROM idempotency_keys WHERE scope = ?1",
            params![scope],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
    }

    /// Stores (replacing) the open request of `scope`. Called before the request is sent.
    pub(crate) fn idempotency_put(
        &self,
        scope: &str,
        key: &str,
        request: &[u8],
        now: i64,
    ) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        ws.conn.execute(
            "INSERT INTO idempotency_keys (scope, key, request, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(scope) DO UPDATE SET key = excluded.key, request = excluded.request,
                                              created_at = excluded.created_at",
            params![scope, key, request, now],
        )?;
        Ok(())
    }

    /// Closes the open request of `scope` (its answer was applied).
    pub(crate) fn idempotency_clear(&self, scope: &str) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        ws.conn.execute(
            "DELETE FROM idempotency_keys WHERE scope = ?1",
            params![scope],
        )?;
        Ok(())
    }

    // ----- top-ups ---------------------------------------------------------------------------

    /// The idempotency key for a new top-up of `amount`: the key of a top-up of the same
    /// amount whose creation was never confirmed (a retry), else a new key, stored before
    /// returning. Unconfirmed top-ups of another amount are abandoned.
    pub(crate) fn topup_key_for(&self, amount: i64, now: i64) -> Result<String, WalletError> {
        if amount <= 0 {
            return Err(WalletError::invalid("a top-up amount must be positive"));
        }
        let mut ws = lock(&self.writer);
        let tx = ws
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT idempotency_key FROM topups WHERE status = 'starting' AND amount = ?1
                 ORDER BY created_at DESC LIMIT 1",
                params![amount],
                |r| r.get(0),
            )
            .optional()?;
        let key = match existing {
            Some(k) => k,
            None => {
                let k = random_key()?;
                tx.execute(
                    "INSERT INTO topups (idempotency_key, amount, status, created_at, updated_at)
                     VALUES (?1, ?2, 'starting', ?3, ?3)",
                    params![k, amount, now],
                )?;
                k
            }
        };
        tx.execute(
            "UPDATE topups SET status = 'abandoned', updated_at = ?2
             WHERE status = 'starting' AND idempotency_key <> ?1",
            params![key, now],
        )?;
        tx.commit()?;
        Ok(key)
    }

    /// Records what the backend said about a top-up.
    pub(crate) fn topup_update(&self, row: &TopUpRow, now: i64) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        ws.conn.execute(
            "UPDATE topups SET intent_id = ?2, status = ?3, payment_url = ?4, expires_at = ?5,
                               ledger_entry_id = ?6, gateway_ref = ?7, updated_at = ?8
             WHERE idempotency_key = ?1",
            params![
                row.key,
                row.intent_id,
                row.status,
                row.payment_url,
                row.expires_at,
                row.ledger_entry_id,
                row.gateway_ref,
                now
            ],
        )?;
        Ok(())
    }

    fn topup_rows(&self, filter: &str, arg: &str) -> Result<Vec<TopUpRow>, WalletError> {
        let r = lock(&self.reader);
        let sql = format!(
            "SELECT idempotency_key, amount, intent_id, status, payment_url, expires_at,
                    ledger_entry_id, gateway_ref
             FROM topups WHERE {filter} ORDER BY created_at, idempotency_key"
        );
        let mut st = r.prepare(&sql)?;
        let rows = st.query_map(params![arg], |row| {
            Ok(TopUpRow {
                key: row.get(0)?,
                amount: row.get(1)?,
                intent_id: row.get(2)?,
                status: row.get(3)?,
                payment_url: row.get(4)?,
                expires_at: row.get(5)?,
                ledger_entry_id: row.get(6)?,
                gateway_ref: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub(crate) fn topup_by_intent(&self, intent_id: &str) -> Result<Option<TopUpRow>, WalletError> {
        Ok(self
            .topup_rows("intent_id = ?1", intent_id)?
            .into_iter()
            .next())
    }

    pub(crate) fn topups_open(&self) -> Result<Vec<TopUpRow>, WalletError> {
        self.topup_rows("status = 'pending' AND ?1 = ?1", "")
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
        let mut ws = lock(&self.writer);
        let after = seq_i64(ws.log.next_seq)?;
        let t = self.corrected(now);
        let tx = ws.conn.transaction()?;
        let new = insert_ledger(
            &tx,
            &ServerLedgerRow {
                id: ledger_entry_id,
                kind: "topup".into(),
                amount,
                idempotency_key: format!("topup:{intent_id}"),
                pseudonym: None,
                counter: None,
                intent_id: Some(intent_id.to_string()),
                note: None,
                created_at: t,
            },
            after,
            t,
        )?;
        tx.commit()?;
        Ok(new)
    }

    // ----- sync ------------------------------------------------------------------------------

    /// (next tap-log entry to upload, backend ledger cursor).
    pub(crate) fn sync_cursors(&self) -> Result<(u64, i64), WalletError> {
        let r = lock(&self.reader);
        let up: i64 = get_setting(&r, keys::UPLOAD_FROM_SEQ)?.unwrap_or(0);
        let cur: i64 = get_setting(&r, keys::LEDGER_CURSOR)?.unwrap_or(0);
        Ok((u64::try_from(up).unwrap_or(0), cur.max(0)))
    }

    /// Sets where the next upload starts (after a `chain_gap` answer).
    pub(crate) fn set_upload_from(&self, seq: u64) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        set_setting(&ws.conn, keys::UPLOAD_FROM_SEQ, seq_i64(seq)?)?;
        Ok(())
    }

    /// The number of tap-log entries (the next sequence number).
    pub(crate) fn log_len(&self) -> u64 {
        lock(&self.writer).log.next_seq
    }

    /// Applies one sync answer in one transaction: the verdict on each uploaded entry, new
    /// ledger entries, the cursors and the confirmed balance (which accounts for every entry
    /// up to `confirmed_through`). Re-applying the same answer changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_sync_page(
        &self,
        settlements: &[Settlement],
        ledger: &[ServerLedgerRow],
        upload_from: u64,
        ledger_cursor: i64,
        balance: i64,
        confirmed_through: Option<u64>,
        server_time: i64,
        now: i64,
    ) -> Result<PageOutcome, WalletError> {
        let mut out = PageOutcome::default();
        let mut ws = lock(&self.writer);
        let log_len = ws.log.next_seq;
        let after = seq_i64(log_len)?;
        let t = self.corrected(now);
        let tx = ws
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut amount_of = tx.prepare_cached("SELECT amount FROM tap_log WHERE seq = ?1")?;
            let mut prev_of = tx.prepare_cached(
                "SELECT status, fare, reason FROM tap_settlements WHERE seq = ?1",
            )?;
            let mut upsert = tx.prepare_cached(
                "INSERT INTO tap_settlements (seq, status, fare, reason, detail, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(seq) DO UPDATE SET status = excluded.status, fare = excluded.fare,
                     reason = excluded.reason, detail = excluded.detail,
                     updated_at = excluded.updated_at",
            )?;
            for s in settlements {
                let seq = seq_i64(s.seq)?;
                let Some(amount) = amount_of
                    .query_row(params![seq], |r| r.get::<_, i64>(0))
                    .optional()?
                else {
                    continue; // not in this wallet's log (never happens with a sane backend)
                };
                let status = match s.status.as_str() {
                    "settled" | "duplicate" | "fraud" | "rejected" => s.status.as_str(),
                    _ => "rejected",
                };
                let prev: Option<(String, Option<i64>, Option<String>)> = prev_of
                    .query_row(params![seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                let charged = matches!(status, "settled" | "duplicate");
                let was_charged = prev
                    .as_ref()
                    .is_some_and(|(p, _, _)| p == "settled" || p == "duplicate");
                if was_charged && !charged {
                    // A charge is final: a later re-upload refused for another reason (e.g.
                    // under a new device) does not undo it.
                    continue;
                }
                // "duplicate" on a re-upload is the same settlement: keep "settled".
                let status = match (&prev, status) {
                    (Some((p, _, _)), "duplicate") if p == "settled" => "settled",
                    _ => status,
                };
                let fare = if charged { s.fare } else { Some(0) };
                if prev.as_ref().is_some_and(|(p, f, r)| {
                    p == status && *f == fare && r.as_deref() == s.reason.as_deref()
                }) {
                    continue;
                }
                // A charged tap answered again (a re-upload) with another fare was re-rated
                // by the backend in between.
                let rerated = charged
                    && was_charged
                    && prev
                        .as_ref()
                        .is_some_and(|(_, f, _)| f.is_some() && *f != fare);
                let detail = match &s.detail {
                    None if rerated => Some(RERATED.to_string()),
                    d => d.clone(),
                };
                upsert.execute(params![seq, status, fare, s.reason, detail, t])?;
                if prev.is_none() {
                    if charged {
                        out.settled = out.settled.saturating_add(1);
                    } else {
                        out.rejected = out.rejected.saturating_add(1);
                    }
                }
                if charged && fare.is_some_and(|f| f != amount) {
                    out.corrections = out.corrections.saturating_add(1);
                }
            }
        }
        let fresh = settlements
            .iter()
            .map(|s| seq_i64(s.seq))
            .collect::<Result<HashSet<i64>, _>>()?;
        for e in ledger {
            if insert_ledger(&tx, e, after, t)? {
                out.new_ledger = out.new_ledger.saturating_add(1);
                if e.kind == "fare_adjustment" && apply_fare_adjustment(&tx, e, &fresh, t)? {
                    out.rerated = out.rerated.saturating_add(1);
                }
            }
        }
        set_setting(
            &tx,
            keys::UPLOAD_FROM_SEQ,
            seq_i64(upload_from.min(log_len))?,
        )?;
        set_setting(&tx, keys::LEDGER_CURSOR, ledger_cursor.max(0))?;
        set_setting(&tx, settings::CONFIRMED_BALANCE, balance)?;
        match confirmed_through.filter(|s| *s < log_len) {
            Some(s) => set_setting(&tx, settings::CONFIRMED_THROUGH_SEQ, seq_i64(s)?)?,
            None => {
                tx.execute(
                    "DELETE FROM settings WHERE key = ?1",
                    params![settings::CONFIRMED_THROUGH_SEQ],
                )?;
            }
        }
        set_setting(&tx, settings::CONFIRMED_AT, server_time)?;
        set_setting(&tx, keys::LAST_SYNC_AT, now)?;
        tx.commit()?;
        Ok(out)
    }

    /// Sets the confirmed balance when there is no device to sync (no credential yet): the
    /// tap log is empty or belongs to nothing the backend knows.
    pub(crate) fn set_balance_only(&self, balance: i64, as_of: i64) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        set_setting(&ws.conn, settings::CONFIRMED_BALANCE, balance)?;
        set_setting(&ws.conn, settings::CONFIRMED_AT, as_of)?;
        Ok(())
    }

    /// Appends tap-log entries the wallet lost (power loss) and the backend still has. They
    /// must continue this wallet's chain exactly (sequence and hash) and belong to one of its
    /// credentials; appending stops at the first that does not. Returns how many were added.
    pub(crate) fn append_recovered(
        &self,
        entries: &[(u64, Vec<u8>)],
        now: i64,
    ) -> Result<u64, WalletError> {
        let mut ws = lock(&self.writer);
        let mut added = 0u64;
        let t = self.corrected(now);
        for (seq, bytes) in entries {
            if *seq < ws.log.next_seq {
                continue;
            }
            let Ok(e) = WalletLogEntry::decode(bytes) else {
                break;
            };
            if e.seq != *seq || e.seq != ws.log.next_seq || e.prev_hash != ws.log.prev_hash {
                break;
            }
            let counter = e.counter();
            let cert_hash = e.proof.cert_hash();
            let cred: Option<i64> = ws
                .conn
                .query_row(
                    "SELECT id FROM credentials WHERE cert_hash = ?1",
                    params![cert_hash.to_vec()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(credential_id) = cred else {
                break;
            };
            let (line, validator) = match &e.proof {
                TapProof::Nfc { challenge, .. } => {
                    (Some(challenge.line_id), Some(challenge.validator_id))
                }
                TapProof::Qr { .. } => (None, None),
            };
            let hash = e.hash();
            let seq_db = seq_i64(e.seq)?;
            let tx = ws.conn.transaction()?;
            let n = tx.execute(
                "INSERT OR IGNORE INTO tap_log (seq, credential_id, counter, kind, amount, time,
                                                line_id, validator_id, entry, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    seq_db,
                    credential_id,
                    counter,
                    e.proof.kind_byte(),
                    e.amount,
                    e.time,
                    line,
                    validator,
                    bytes,
                    &hash[..]
                ],
            )?;
            if n == 0 {
                // the counter is already in the log under another sequence number: not ours
                break;
            }
            tx.execute(
                "INSERT OR IGNORE INTO recovered_taps (seq, recovered_at) VALUES (?1, ?2)",
                params![seq_db, t],
            )?;
            tx.commit()?;
            ws.log.next_seq = ws.log.next_seq.saturating_add(1);
            ws.log.prev_hash = hash;
            ws.next_counter = ws.next_counter.max(u64::from(counter).saturating_add(1));
            if let Some(a) = ws.active.as_mut() {
                if a.id == credential_id {
                    a.spent = a.spent.saturating_add(e.amount);
                }
            }
            added = added.saturating_add(1);
        }
        if added > 0 {
            self.counters
                .next
                .fetch_max(ws.next_counter, Ordering::AcqRel);
            ws.next_counter = ws
                .next_counter
                .max(self.counters.next.load(Ordering::Acquire));
            self.log_entries.store(ws.log.next_seq, Ordering::Relaxed);
        }
        Ok(added)
    }

    /// The installed (or revoked) credential's pseudonym, hex.
    pub(crate) fn current_pseudonym(&self) -> Option<(String, bool)> {
        let ws = lock(&self.writer);
        ws.active
            .as_ref()
            .map(|a| (hex::encode(a.cert.body.pseudonym.0), a.revoked))
    }

    /// The backend's verdict on every tap-log entry it has judged, in log order (diagnostics,
    /// tests; the history shows the same information per item).
    pub fn tap_settlements(&self) -> Result<Vec<TapSettlement>, WalletError> {
        let r = lock(&self.reader);
        let mut st =
            r.prepare("SELECT seq, status, fare, reason FROM tap_settlements ORDER BY seq")?;
        let rows = st.query_map([], |row| {
            Ok(TapSettlement {
                log_seq: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                status: row.get(1)?,
                fare: row.get(2)?,
                reason: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// The backend's verdict on one tap-log entry, learned at sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapSettlement {
    pub log_seq: u64,
    /// "settled", "duplicate" (settled by another report), "fraud" or "rejected".
    pub status: String,
    /// The actual fare charged, rials (0 when not charged).
    pub fare: Option<i64>,
    /// Why it was refused or flagged.
    pub reason: Option<String>,
}
